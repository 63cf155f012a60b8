"""Shared plumbing for plots: a headless matplotlib figure of a given pixel size, rendered to a tensor.

matplotlib is imported lazily and always with the Agg backend, so plotting never opens a window, never needs
a display and never changes the backend of a host program that already chose one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

DPI = 100


def _pyplot() -> Any:
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        with contextlib.suppress(Exception):  # a host that already drew with another backend keeps it
            matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure


@contextlib.contextmanager
def figure(width: int, height: int) -> Iterator[Any]:
    """A matplotlib Figure of `width` x `height` pixels, not attached to pyplot (thread-safe, never shown)."""
    if width < 64 or height < 48:
        raise ValueError(f"a plot needs at least 64x48 pixels, got {width}x{height}")
    figure_class = _pyplot()
    fig = figure_class(figsize=(width / DPI, height / DPI), dpi=DPI)
    yield fig


def to_image(fig: Any) -> torch.Tensor:
    """Render `fig` to a ComfyUI IMAGE `[1, H, W, 3]`, float32 in 0..1."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba(), dtype=np.uint8)
    return torch.from_numpy(rgba[..., :3].astype(np.float32) / 255.0).unsqueeze(0)


def image_grid(images: torch.Tensor, columns: int, pad: int = 2, background: float = 1.0) -> torch.Tensor:
    """Tile IMAGEs `[N, H, W, C]` into one `[1, rows*(H+pad)-pad, columns*(W+pad)-pad, C]`, row-major."""
    count, height, width, channels = images.shape
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    out = torch.full(
        (rows * (height + pad) - pad, columns * (width + pad) - pad, channels), background, dtype=images.dtype
    )
    for index in range(count):
        row, col = divmod(index, columns)
        top, left = row * (height + pad), col * (width + pad)
        out[top : top + height, left : left + width] = images[index]
    return out.unsqueeze(0)


def save_png(image: torch.Tensor, path: str) -> None:
    """Write an IMAGE `[1, H, W, 3]` (or `[H, W, 3]`) in 0..1 as a PNG, atomically."""
    from matplotlib.image import imsave

    from ..files.atomic import write_atomically

    pixels = image[0] if image.dim() == 4 else image
    array = (pixels.clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    write_atomically(path, lambda temp: imsave(str(temp), array, format="png"))
