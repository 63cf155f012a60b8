"""Head files: an AttributeHead and everything that explains it, in one safetensors file.

Layout (`files.safetensors_io`): the head's state dict (float32, or float16 with `half=True`) and three
metadata strings: `format` = "avi-head", `format_version` = "1", and `avi` = a JSON object with at least height,
width, rank, k and hidden, plus whatever the trainer recorded (lambdas, learning rate, epochs, pairs, timesteps
and steps of x and z, scale factor, description, final losses, created, pack_version). Only safetensors is ever
read: pickle-based files are refused, never unpickled.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import HeadFileError, HeadVersionError
from ..files.safetensors_io import FileKind, read_typed_file, read_typed_metadata, write_typed_file
from .head import AttributeHead

logger = logging.getLogger("avi.head_files")

HEAD_FORMAT = "avi-head"
HEAD_FORMAT_VERSION = 1
HEAD_KIND = FileKind("attribute head", HEAD_FORMAT, HEAD_FORMAT_VERSION, HeadFileError, HeadVersionError)
_STORED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_REQUIRED_INTS = ("height", "width", "rank", "k", "hidden")


def save_head(
    head: AttributeHead,
    path: str | os.PathLike[str],
    metadata: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write `head` to `path` atomically; `metadata` adds to (and overrides) `head.metadata`.

    half=True stores the weights as float16 (half the size; loaded back as float32). The folder must exist.
    """
    dtype = torch.float16 if half else torch.float32
    tensors = {}
    for name, value in head.state_dict().items():
        stored = value.detach().to(device="cpu", dtype=dtype)
        if not torch.isfinite(stored).all():
            raise HeadFileError(
                f"refusing to save {path}: tensor {name} is not finite"
                + (" in float16 (values beyond 65504)" if half else " (the training diverged)"),
                reason="half_overflow" if half else "nonfinite",
                path=str(path),
                kind=HEAD_KIND.label,
            )
        tensors[name] = stored
    info: dict[str, Any] = dict(head.metadata)
    info.update(metadata or {})
    info.update(
        height=head.height,
        width=head.width,
        rank=head.rank,
        k=head.k,
        hidden=head.hidden,
        storage_dtype=str(dtype).removeprefix("torch."),
    )
    final = write_typed_file(path, HEAD_KIND, tensors, info)
    logger.info("saved attribute head to %s", final)
    return final


def _check_sizes(path: Path, info: dict[str, Any]) -> dict[str, Any]:
    for key in _REQUIRED_INTS:
        value = info.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise HEAD_KIND.refuse(path, f"its metadata lacks a valid {key!r}")
    if info["rank"] != min(info["height"], info["width"]) or not 1 <= info["k"] < info["rank"]:
        raise HEAD_KIND.refuse(
            path,
            f"its sizes do not fit together (H {info['height']}, W {info['width']}, r {info['rank']}, k {info['k']})",
        )
    return info


def read_head_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a head file, validated, without reading its weights."""
    return _check_sizes(Path(path), read_typed_metadata(path, HEAD_KIND))


def load_head(path: str | os.PathLike[str], device: torch.device | str | None = None) -> AttributeHead:
    """Read, validate and build the head stored at `path` (float32, eval mode, on `device` or CPU)."""
    path = Path(path)

    def expected(info: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        _check_sizes(path, info)
        return AttributeHead.parameter_shapes(info["height"], info["width"], info["hidden"])

    tensors, info = read_typed_file(path, HEAD_KIND, expected, dtypes=_STORED_DTYPES)
    state = {name: tensor.to(torch.float32) for name, tensor in tensors.items()}
    with torch.device("meta"):
        head = AttributeHead(info["height"], info["width"], hidden=info["hidden"], k=info["k"])
    head.load_state_dict(state, assign=True)
    head.metadata = info
    head.requires_grad_(False)
    head.eval()
    return head.to(device) if device is not None else head
