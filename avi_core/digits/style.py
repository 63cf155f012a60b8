"""Style measures of a digit image: stroke thickness and slant, and their terciles (spec section 12).

thickness = ink area / skeleton length: the mean stroke width in pixels. Ink is every pixel at or above 0.5
(images in [0, 1], the 64 x 64 frame); the skeleton is the Zhang-Suen thinning of the ink.
slant = -mu11 / mu02 from the intensity's second-order central moments (x to the right, y downwards): the
horizontal shift per row going up, so a digit whose top leans right has a positive slant.

Tercile edges are computed on the 9,000 training images (tools/train_digit_classifier.py writes them to
weights/style_edges.json): below the first edge is "thin" / "left", above the second "thick" / "right".
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from ..errors import FileFormatError, ShapeMismatchError

logger = logging.getLogger(__name__)

THICKNESS = ("thin", "medium", "thick")
SLANT = ("left", "upright", "right")
INK_LEVEL = 0.5
EDGES_FILE = Path(__file__).resolve().parent / "weights" / "style_edges.json"


def _as_images(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """[N, 1, H, W] or [N, H, W] (or one [H, W]) in [0, 1] -> float64 numpy [N, H, W]."""
    x = images.detach().to("cpu", torch.float64).numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    x = x.astype(np.float64)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    elif x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ShapeMismatchError(f"digit images must be [N, 1, H, W] or [N, H, W], got {x.shape}", reason="digits")
    return x


def zhang_suen(ink: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of binary images [N, H, W] (bool) -> the skeletons, bool [N, H, W]."""
    img = np.pad(ink.astype(np.uint8), ((0, 0), (1, 1), (1, 1)))
    while True:
        changed = False
        for step in (0, 1):
            p = img
            c = p[:, 1:-1, 1:-1]
            p2, p3, p4 = p[:, :-2, 1:-1], p[:, :-2, 2:], p[:, 1:-1, 2:]
            p5, p6, p7 = p[:, 2:, 2:], p[:, 2:, 1:-1], p[:, 2:, :-2]
            p8, p9 = p[:, 1:-1, :-2], p[:, :-2, :-2]
            ring = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
            b = p2 + p3 + p4 + p5 + p6 + p7 + p8 + p9
            a = sum(((ring[i] == 0) & (ring[i + 1] == 1)).astype(np.uint8) for i in range(8))
            if step == 0:
                cond = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                cond = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            remove = (c == 1) & (b >= 2) & (b <= 6) & (a == 1) & cond
            if remove.any():
                changed = True
                img = img.copy()
                img[:, 1:-1, 1:-1][remove] = 0
        if not changed:
            return img[:, 1:-1, 1:-1].astype(bool)


def thickness(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """Mean stroke width in pixels (ink area / skeleton length) per image: float64 [N] (0 for an empty image)."""
    x = _as_images(images)
    ink = x >= INK_LEVEL
    skeleton = zhang_suen(ink)
    area = ink.sum(axis=(1, 2)).astype(np.float64)
    length = skeleton.sum(axis=(1, 2)).astype(np.float64)
    return np.where(length > 0, area / np.maximum(length, 1.0), 0.0)


def slant(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """-mu11 / mu02 of the intensity per image (positive: the top leans right): float64 [N] (0 if empty)."""
    x = _as_images(images)
    n, h, w = x.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    mass = x.sum(axis=(1, 2))
    safe = np.maximum(mass, 1e-12)
    cx = (x * xs).sum(axis=(1, 2)) / safe
    cy = (x * ys).sum(axis=(1, 2)) / safe
    dx = xs[None] - cx[:, None, None]
    dy = ys[None] - cy[:, None, None]
    mu11 = (x * dx * dy).sum(axis=(1, 2))
    mu02 = (x * dy * dy).sum(axis=(1, 2))
    return np.where((mass > 1e-9) & (mu02 > 1e-9), -mu11 / np.maximum(mu02, 1e-12), 0.0)


def tercile_edges(values: np.ndarray) -> tuple[float, float]:
    """The 1/3 and 2/3 quantiles of `values`."""
    low, high = np.quantile(np.asarray(values, dtype=np.float64), [1 / 3, 2 / 3])
    return float(low), float(high)


def classify(values: np.ndarray, edges: tuple[float, float], names: tuple[str, str, str]) -> list[str]:
    """The tercile name of every value: names[0] below edges[0], names[2] above edges[1], else names[1]."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    index = (values >= edges[0]).astype(int) + (values > edges[1]).astype(int)
    return [names[i] for i in index]


def save_edges(path: str | Path, thickness_edges: tuple[float, float], slant_edges: tuple[float, float]) -> None:
    """Write the tercile edges as JSON."""
    data = {"thickness": list(thickness_edges), "slant": list(slant_edges), "ink_level": INK_LEVEL}
    Path(path).write_text(json.dumps(data, indent=1) + "\n")


def load_edges(path: str | Path = EDGES_FILE) -> dict[str, tuple[float, float]]:
    """{"thickness": (low, high), "slant": (low, high)} from the JSON `save_edges` wrote."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        edges = {key: (float(data[key][0]), float(data[key][1])) for key in ("thickness", "slant")}
    except FileNotFoundError as err:
        raise FileFormatError(f"style edges file {path} does not exist", reason="missing", path=str(path)) from err
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise FileFormatError(
            f"style edges file {path} is not valid ({err})", reason="corrupt", path=str(path)
        ) from err
    for key, (low, high) in edges.items():
        if not (np.isfinite(low) and np.isfinite(high) and low <= high):
            raise FileFormatError(
                f"style edges file {path}: {key} edges {low}, {high}", reason="corrupt", path=str(path)
            )
    return edges


def styles(images: np.ndarray | torch.Tensor, edges: dict[str, tuple[float, float]] | None = None) -> list[dict]:
    """Per image {"thickness": value, "slant": value, "thickness_class": "thin"|..., "slant_class": "left"|...}."""
    edges = load_edges() if edges is None else edges
    t = thickness(images)
    s = slant(images)
    tc = classify(t, edges["thickness"], THICKNESS)
    sc = classify(s, edges["slant"], SLANT)
    return [
        {"thickness": float(t[i]), "slant": float(s[i]), "thickness_class": tc[i], "slant_class": sc[i]}
        for i in range(len(t))
    ]
