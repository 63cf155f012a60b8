"""A plot of the four AVI loss terms over the training steps (spec section 5).

`render_loss_plot(history)` returns a ComfyUI IMAGE `[1, H, W, 3]`, float32 in 0..1: the four unweighted terms
L1..L4 as coloured lines on a shared logarithmic axis, steps from 1 to the number of steps, with a legend.
Non-finite or non-positive values (a log axis cannot show them) are left out of the lines.
"""

from __future__ import annotations

import torch

from .figure import figure, to_image

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
LABELS = ("L1 = |y^ - Z|^2", "L2 = |y~ - X|^2", "L3 = |S - Sz|^2", "L4 = |S + ds - Sx|^2")


def render_loss_plot(history: torch.Tensor, width: int = 512, height: int = 320) -> torch.Tensor:
    """history `[steps, 4]` (unweighted L1..L4 per step) -> IMAGE `[1, height, width, 3]`."""
    if history.dim() != 2 or history.shape[1] != 4:
        raise ValueError(f"history must be [steps, 4] (L1..L4), got {tuple(history.shape)}")
    values = history.detach().to("cpu", torch.float64)
    steps = torch.arange(1, values.shape[0] + 1)
    with figure(width, height) as fig:
        axes = fig.add_subplot()
        for column, (color, label) in enumerate(zip(COLORS, LABELS, strict=True)):
            line = values[:, column].clone()
            line[~torch.isfinite(line) | (line <= 0)] = float("nan")
            axes.plot(steps.numpy(), line.numpy(), color=color, linewidth=1.5, label=label)
        if torch.isfinite(values).any() and (values > 0).any():
            axes.set_yscale("log")
        axes.set_xlabel("step")
        axes.set_ylabel("loss (unweighted)")
        axes.set_title("AVI training losses", fontsize=10)
        axes.grid(True, which="major", color="#dddddd", linewidth=0.6)
        axes.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        return to_image(fig)
