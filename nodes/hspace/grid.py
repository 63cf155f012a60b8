"""AVI Image Grid: a batch of images as one grid image (a sweep or a direction-by-strength grid at a glance)."""

from __future__ import annotations

import math

import torch
from comfy_api.latest import io

from ...avi_core.errors import ShapeMismatchError
from ..schema_compat import advanced_input, schema
from .fixes import explains_hspace_errors
from .types import HSPACE_CATEGORY


def image_grid(images: torch.Tensor, columns: int, gap: int = 0, background: float = 1.0) -> torch.Tensor:
    """IMAGE `[N, H, W, C]` -> `[1, rows * H + (rows - 1) * gap, columns * W + (columns - 1) * gap, C]`, filled
    row by row (image i at row i // columns, column i % columns); columns 0 = about square. Empty cells and gaps
    are `background`."""
    if images.dim() != 4 or images.shape[0] == 0:
        raise ShapeMismatchError(f"images must be a batch [N, H, W, C], got shape {tuple(images.shape)}", reason="rank")
    count, height, width, channels = images.shape
    columns = int(columns) if columns > 0 else math.ceil(math.sqrt(count))
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    out = torch.full(
        (1, rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap, channels),
        float(background),
        dtype=images.dtype,
        device=images.device,
    )
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        out[0, top : top + height, left : left + width] = images[index]
    return out


class AVIImageGrid(io.ComfyNode):
    """Lays a batch of images out as one grid image."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVIImageGrid",
            display_name="AVI Image Grid",
            category=HSPACE_CATEGORY,
            search_aliases=["h-space", "hspace", "edit", "grid", "contact sheet", "sweep"],
            description=(
                "Lays a batch of images out as one image, row by row: with 'AVI Apply h-space Direction's "
                "direction and strength lists, one row per direction and one column per strength (set columns to "
                "the number of strengths). Save or preview the grid like any image."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The batch of images, e.g. from VAE Decode after a sweep."),
                io.Int.Input(
                    "columns",
                    default=0,
                    min=0,
                    max=256,
                    tooltip="Images per row: the number of strengths in a sweep. 0 = about square.",
                ),
                advanced_input(
                    io.Int.Input,
                    "gap",
                    default=4,
                    min=0,
                    max=64,
                    tooltip="White pixels between the images.",
                ),
            ],
            outputs=[io.Image.Output("grid", display_name="grid", tooltip="One image holding the whole batch.")],
        )

    @classmethod
    @explains_hspace_errors
    def execute(cls, images: torch.Tensor, columns: int, gap: int = 4) -> io.NodeOutput:
        return io.NodeOutput(image_grid(images, columns, gap))


NODES: list[type[io.ComfyNode]] = [AVIImageGrid]
