"""A plot of the four AVI loss terms over the training steps, drawn with plain torch (no matplotlib).

`render_loss_plot(history)` returns a ComfyUI IMAGE tensor `[1, H, W, 3]`, float32 in 0..1: a white canvas,
the four unweighted terms L1..L4 (spec section 5) as coloured lines on a shared log10 axis with a grid line
and label at every power of ten, the step axis from 1 to the number of steps, and a legend.
"""

from __future__ import annotations

import math

import torch

COLORS = (
    (0.12, 0.47, 0.71),  # L1 blue
    (1.00, 0.50, 0.05),  # L2 orange
    (0.17, 0.63, 0.17),  # L3 green
    (0.84, 0.15, 0.16),  # L4 red
)
_GRID = (0.88, 0.88, 0.88)
_AXIS = (0.25, 0.25, 0.25)
_FONT_SCALE = 2

# 3x5 pixel glyphs, rows top to bottom, '1' = ink.
_GLYPHS = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "001", "001", "001"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
    "e": ("000", "111", "111", "100", "111"),
    "-": ("000", "000", "111", "000", "000"),
    "L": ("100", "100", "100", "100", "111"),
    "s": ("000", "011", "110", "011", "110"),
    "t": ("010", "111", "010", "010", "011"),
    "p": ("000", "111", "101", "111", "100"),
    " ": ("000", "000", "000", "000", "000"),
}


def _text(canvas: torch.Tensor, text: str, top: int, left: int, color: tuple[float, float, float]) -> int:
    """Draw `text` with its top-left corner at (top, left); returns the x after the last glyph."""
    h, w = canvas.shape[:2]
    s = _FONT_SCALE
    x = left
    for char in text:
        glyph = _GLYPHS.get(char, _GLYPHS[" "])
        for r, row in enumerate(glyph):
            for c, bit in enumerate(row):
                if bit == "1":
                    y0, x0 = top + r * s, x + c * s
                    if 0 <= y0 and y0 + s <= h and 0 <= x0 and x0 + s <= w:
                        canvas[y0 : y0 + s, x0 : x0 + s] = torch.tensor(color)
        x += 4 * s
    return x


def _segment_column(canvas: torch.Tensor, col: int, y0: float, y1: float, color, thickness: int = 2) -> None:
    top, bottom = int(math.floor(min(y0, y1))), int(math.ceil(max(y0, y1)))
    canvas[top : bottom + thickness, col : col + thickness] = torch.tensor(color)


def render_loss_plot(history: torch.Tensor, width: int = 512, height: int = 320) -> torch.Tensor:
    """history: [steps, 4] unweighted L1..L4 per step -> IMAGE [1, height, width, 3] float32 in 0..1.

    Non-positive or non-finite values are left out of the lines (log axis). An empty history gives the
    empty axes.
    """
    if history.dim() != 2 or history.shape[1] != 4:
        raise ValueError(f"history must be [steps, 4] (L1..L4), got {tuple(history.shape)}")
    if width < 160 or height < 120:
        raise ValueError(f"the plot needs at least 160x120 pixels, got {width}x{height}")
    canvas = torch.ones(height, width, 3)
    left, right, top, bottom = 56, width - 12, 30, height - 28
    values = history.detach().to("cpu", torch.float64)
    valid = torch.isfinite(values) & (values > 0)
    logs = torch.where(valid, values.clamp_min(1e-30).log10(), torch.zeros_like(values))
    if valid.any():
        lo = math.floor(float(logs[valid].min()))
        hi = math.ceil(float(logs[valid].max()))
    else:
        lo, hi = 0, 1
    if hi <= lo:
        hi = lo + 1

    def y_of(log_value: float) -> float:
        return bottom - (log_value - lo) / (hi - lo) * (bottom - top)

    # Grid and labels at each power of ten.
    for decade in range(lo, hi + 1):
        y = int(round(y_of(decade)))
        canvas[y, left:right] = torch.tensor(_GRID)
        _text(canvas, f"1e{decade}", y - 5, 4, _AXIS)
    canvas[top : bottom + 1, left] = torch.tensor(_AXIS)
    canvas[bottom, left : right + 1] = torch.tensor(_AXIS)

    steps = values.shape[0]
    _text(canvas, f"steps 1-{steps}" if steps else "steps 0", bottom + 8, left, _AXIS)

    # Lines: one sample per pixel column, interpolated along the steps.
    cols = right - left - 2
    if steps > 0:
        for term in range(4):
            color = COLORS[term]
            previous = None
            for i in range(cols):
                pos = i * (steps - 1) / max(cols - 1, 1)
                a, b = int(math.floor(pos)), min(int(math.floor(pos)) + 1, steps - 1)
                if not (valid[a, term] and valid[b, term]):
                    previous = None
                    continue
                frac = pos - a
                y = y_of(float(logs[a, term] * (1 - frac) + logs[b, term] * frac))
                col = left + 1 + i
                _segment_column(canvas, col, y, previous if previous is not None else y, color)
                previous = y

    # Legend across the top.
    x = left
    for term in range(4):
        canvas[10:16, x : x + 14] = torch.tensor(COLORS[term])
        x = _text(canvas, f"L{term + 1}", 8, x + 18, _AXIS) + 14
    return canvas.clamp(0, 1).unsqueeze(0).to(torch.float32)
