"""A plot of the mixing-step search: held-out accuracy per step, the rule's band and the chosen step.

`render_accuracy_curve(steps, accuracies, chosen, tolerance)` (or `render_search(search)`) returns a ComfyUI
IMAGE `[1, H, W, 3]`, float32 in 0..1: accuracy in percent against the step index (noisier to the left), a
dashed line at best - tolerance (every step on or above it qualifies) and the chosen step marked and labelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ..plots.figure import figure, to_image
from .search import StepSearch

LINE = "#1f77b4"
CHOSEN = "#d62728"
BAND = "#7f7f7f"


def render_accuracy_curve(
    steps: Sequence[int],
    accuracies: Sequence[float],
    chosen: int,
    tolerance: float,
    *,
    sigmas: Mapping[int, float] | None = None,
    width: int = 512,
    height: int = 320,
) -> torch.Tensor:
    """steps (increasing), accuracies (0..1, one per step), the chosen step -> IMAGE `[1, height, width, 3]`.

    sigmas: optional {step: sigma}, shown under the step numbers.
    """
    if len(steps) == 0 or len(steps) != len(accuracies) or chosen not in steps:
        raise ValueError(f"{len(steps)} steps, {len(accuracies)} accuracies and chosen step {chosen} do not fit")
    order = sorted(range(len(steps)), key=lambda i: steps[i])
    xs = [steps[i] for i in order]
    ys = [100.0 * float(accuracies[i]) for i in order]
    best = max(ys)
    picked = ys[xs.index(chosen)]
    with figure(width, height) as fig:
        axes = fig.add_subplot()
        axes.plot(xs, ys, color=LINE, marker="o", markersize=4, linewidth=1.5, label="held-out accuracy")
        axes.axhline(
            best - 100.0 * tolerance,
            color=BAND,
            linestyle="--",
            linewidth=1.0,
            label=f"best - {100.0 * tolerance:g} points",
        )
        axes.axvline(chosen, color=CHOSEN, linewidth=1.0, alpha=0.6)
        axes.plot(
            [chosen],
            [picked],
            marker="o",
            markersize=9,
            markerfacecolor="none",
            markeredgecolor=CHOSEN,
            markeredgewidth=2.0,
            linestyle="none",
            label=f"chosen: step {chosen} ({picked:.1f}%)",
        )
        axes.set_xticks(xs)
        if sigmas:
            axes.set_xticklabels([f"{s}\n{sigmas[s]:.3g}" if s in sigmas else str(s) for s in xs], fontsize=7)
            axes.set_xlabel("mixing step (sigma below); noisier to the left")
        else:
            axes.set_xlabel("mixing step; noisier to the left")
        low = min(min(ys), best - 100.0 * tolerance)
        axes.set_ylim(max(0.0, low - 5.0), min(100.0, best) + 3.0)
        axes.set_ylabel("held-out accuracy (%)")
        axes.set_title("Boundary accuracy by mixing step", fontsize=10)
        axes.grid(True, color="#dddddd", linewidth=0.6)
        axes.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        return to_image(fig)


def render_search(search: StepSearch, *, width: int = 512, height: int = 320) -> torch.Tensor:
    """The plot of a `StepSearch` (sigmas from its boundaries' capture info, when recorded)."""
    sigmas = {
        step: float(b.info["sigma"])
        for step, b in search.boundaries.items()
        if isinstance(b.info.get("sigma"), (int, float))
    }
    return render_accuracy_curve(
        search.steps,
        search.accuracies,
        search.chosen,
        search.tolerance,
        sigmas=sigmas or None,
        width=width,
        height=height,
    )
