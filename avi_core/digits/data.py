"""MNIST in its original IDX format, the fixed held-out split, and the 64 x 64 pixel frame of the digit model.

The data are the MNIST test set (10,000 labelled 28 x 28 images; LeCun, Cortes and Burges, CC BY-SA 3.0).
`held_out_split` sets aside 100 images per digit (1,000 in all), chosen by a seeded permutation: they are never
used to train the diffusion model or the classifier. `to_frame` puts a 28 x 28 digit into the model's
64 x 64 frame: bilinear upscaling to 56 x 56 and a border of 4 black pixels.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DatasetError, FileFormatError, ShapeMismatchError

logger = logging.getLogger(__name__)

FRAME = 64
"""Height and width of a digit image as the model and every measure here see it."""
HELD_OUT_PER_DIGIT = 100
SPLIT_SEED = 12
"""Seed of the permutation that picks the held-out images (never change it: results depend on it)."""
IMAGES_FILE = "t10k-images-idx3-ubyte"
LABELS_FILE = "t10k-labels-idx1-ubyte"
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4")}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or .gz): the array with the shape its header states.

    Raises FileFormatError for a missing file, a bad magic number, an unknown type or a truncated body.
    """
    path = Path(path)
    if not path.is_file() and path.with_name(path.name + ".gz").is_file():
        path = path.with_name(path.name + ".gz")
    if not path.is_file():
        raise FileFormatError(f"IDX file {path} does not exist", reason="missing", path=str(path))
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise FileFormatError(
                f"IDX file {path} is not valid gzip ({err})", reason="corrupt", path=str(path)
            ) from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise FileFormatError(f"{path} is not an IDX file (bad magic number)", reason="foreign", path=str(path))
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise FileFormatError(f"IDX file {path} has a truncated header", reason="truncated", path=str(path))
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    need = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != need:
        raise FileFormatError(
            f"IDX file {path} holds {len(raw) - header} data bytes, its header says {need}",
            reason="truncated",
            path=str(path),
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


@dataclass(frozen=True)
class Digits:
    """Labelled digit images. images: uint8 [N, 28, 28] (0 = black background); labels: int64 [N]."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: np.ndarray) -> Digits:
        """The images at `index` (an integer array), in that order."""
        return Digits(self.images[index], self.labels[index])


def load_mnist(folder: str | Path) -> Digits:
    """The MNIST test set from `folder` (the two t10k IDX files, plain or gzipped)."""
    folder = Path(folder)
    images = read_idx(folder / IMAGES_FILE)
    labels = read_idx(folder / LABELS_FILE).astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"MNIST files in {folder} do not match: images {images.shape}, labels {labels.shape}",
            reason="shape",
            path=str(folder),
        )
    if labels.min() < 0 or labels.max() > 9:
        raise DatasetError(f"MNIST labels in {folder} leave 0..9", reason="labels", path=str(folder))
    return Digits(images.astype(np.uint8), labels)


def held_out_split(labels: np.ndarray, per_digit: int = HELD_OUT_PER_DIGIT, seed: int = SPLIT_SEED):
    """(train_index, held_out_index): `per_digit` images of every digit held out, picked by a seeded permutation.

    Both are sorted int64 arrays of positions into `labels`; together they cover every position once.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    order = rng.permutation(labels.shape[0])
    held: list[int] = []
    for digit in range(10):
        of_digit = order[labels[order] == digit]
        if of_digit.shape[0] < per_digit:
            raise DatasetError(
                f"only {of_digit.shape[0]} images of digit {digit}, {per_digit} are held out",
                reason="too_few",
                digit=digit,
            )
        held.extend(int(i) for i in of_digit[:per_digit])
    held_index = np.sort(np.array(held, dtype=np.int64))
    mask = np.ones(labels.shape[0], dtype=bool)
    mask[held_index] = False
    return np.nonzero(mask)[0].astype(np.int64), held_index


def to_frame(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """28 x 28 digits (uint8 0..255 or float 0..1, [N, 28, 28]) -> float32 [N, 1, 64, 64] in [0, 1]."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.ndim != 3 or tuple(x.shape[1:]) != (28, 28):
        raise ShapeMismatchError(f"digits must be [N, 28, 28], got {tuple(x.shape)}", reason="digits")
    x = x.to(torch.float32)
    if x.max() > 1.0:
        x = x / 255.0
    x = F.interpolate(x[:, None], size=(56, 56), mode="bilinear", align_corners=False)
    x = F.pad(x, (4, 4, 4, 4))
    return x.clamp(0.0, 1.0)
