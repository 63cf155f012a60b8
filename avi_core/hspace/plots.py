"""Plots of h-space spectra as ComfyUI IMAGEs `[1, H, W, 3]`, float32 in 0..1 (matplotlib Agg, `plots.figure`).

- `render_explained_variance(stds, total_variance)`: one step: a bar per PCA direction with the percentage of
  the variance it explains, and the cumulative percentage as a line; per step (`stds [S, K]`): one line per
  direction over the steps. Without total_variance the standard deviations themselves are plotted.
- `render_singular_values(values)`: the Jacobian's singular values, a bar per direction (`[K]`), or a line per
  direction over the steps (`[S, K]`).
- `render_projections(projections_a, projections_b)`: a supervised direction: where the two labelled sets lie
  along it (a histogram of h . d per set, the means marked).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..plots.figure import figure, to_image


def _matrix(values: torch.Tensor | Sequence, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(values).detach().to("cpu", torch.float64)
    if tensor.dim() not in (1, 2) or tensor.numel() == 0:
        raise ValueError(f"{name} must be [K] or [S, K], got shape {tuple(tensor.shape)}")
    return tensor


def _steps_axis(steps: Sequence[int] | None, count: int) -> list[float]:
    if steps is None:
        return list(range(count))
    if len(steps) != count:
        raise ValueError(f"{len(steps)} step labels for {count} steps")
    return [float(s) for s in steps]


def render_explained_variance(
    stds: torch.Tensor | Sequence,
    total_variance: torch.Tensor | float | Sequence | None = None,
    *,
    steps: Sequence[int] | None = None,
    width: int = 512,
    height: int = 320,
    title: str = "h-space PCA",
) -> torch.Tensor:
    """stds `[K]` (or `[S, K]`) and total variance `[]` (or `[S]`) -> IMAGE `[1, height, width, 3]`."""
    spread = _matrix(stds, "stds")
    if total_variance is not None:
        total = torch.as_tensor(total_variance).detach().to("cpu", torch.float64).reshape(-1)
        if spread.dim() == 2:
            total = total.reshape(-1, 1)
        values = 100.0 * spread.square() / total.clamp_min(1e-300)
        label = "variance explained (%)"
    else:
        values = spread
        label = "standard deviation"
    with figure(width, height) as fig:
        axes = fig.add_subplot()
        if values.dim() == 1:
            index = list(range(1, values.numel() + 1))
            axes.bar(index, values.tolist(), color="#1f77b4", label=label)
            if total_variance is not None:
                axes.plot(
                    index, values.cumsum(0).tolist(), color="#d62728", marker="o", markersize=3, label="cumulative"
                )
                axes.legend(fontsize=7, loc="center right")
            axes.set_xlabel("direction")
            axes.set_xticks(index)
        else:
            xs = _steps_axis(steps, values.shape[0])
            for k in range(values.shape[1]):
                axes.plot(
                    xs, values[:, k].tolist(), marker="o", markersize=2, linewidth=1.2, label=f"direction {k + 1}"
                )
            axes.set_xlabel("step")
            axes.legend(fontsize=7, loc="upper right")
        axes.set_ylabel(label)
        axes.set_title(title, fontsize=10)
        axes.grid(True, color="#dddddd", linewidth=0.6)
        fig.tight_layout()
        return to_image(fig)


def render_singular_values(
    values: torch.Tensor | Sequence,
    *,
    steps: Sequence[int] | None = None,
    width: int = 512,
    height: int = 320,
    title: str = "Jacobian singular values",
) -> torch.Tensor:
    """singular values `[K]` (or `[S, K]`) -> IMAGE `[1, height, width, 3]`."""
    sigma = _matrix(values, "singular values")
    with figure(width, height) as fig:
        axes = fig.add_subplot()
        if sigma.dim() == 1:
            index = list(range(1, sigma.numel() + 1))
            axes.bar(index, sigma.tolist(), color="#2ca02c")
            axes.set_xlabel("direction")
            axes.set_xticks(index)
        else:
            xs = _steps_axis(steps, sigma.shape[0])
            for k in range(sigma.shape[1]):
                axes.plot(xs, sigma[:, k].tolist(), marker="o", markersize=2, linewidth=1.2, label=f"sigma {k + 1}")
            axes.set_xlabel("step")
            axes.legend(fontsize=7, loc="upper right")
        axes.set_ylabel("singular value")
        axes.set_title(title, fontsize=10)
        axes.grid(True, color="#dddddd", linewidth=0.6)
        fig.tight_layout()
        return to_image(fig)


def render_projections(
    projections_a: torch.Tensor | Sequence,
    projections_b: torch.Tensor | Sequence,
    *,
    label_a: str = "a",
    label_b: str = "b",
    width: int = 512,
    height: int = 320,
    title: str = "h-space supervised direction",
) -> torch.Tensor:
    """Where the two labelled sets lie along a supervised direction: a histogram of h . d per set (`[Na]`,
    `[Nb]`) with each set's mean marked -> IMAGE `[1, height, width, 3]`. Set b should lie to the right."""
    a = torch.as_tensor(projections_a).detach().to("cpu", torch.float64).reshape(-1)
    b = torch.as_tensor(projections_b).detach().to("cpu", torch.float64).reshape(-1)
    if a.numel() == 0 or b.numel() == 0:
        raise ValueError(f"both sets need projections, got {a.numel()} and {b.numel()}")
    both = torch.cat([a, b])
    low, high = float(both.min()), float(both.max())
    if high <= low:
        low, high = low - 0.5, high + 0.5
    bins = [low + (high - low) * i / 20 for i in range(21)]
    with figure(width, height) as fig:
        axes = fig.add_subplot()
        for values, label, color in ((a, label_a, "#1f77b4"), (b, label_b, "#d62728")):
            axes.hist(values.tolist(), bins=bins, alpha=0.55, color=color, label=f"{label[:40]} ({values.numel()})")
            axes.axvline(float(values.mean()), color=color, linewidth=1.5, linestyle="--")
        axes.set_xlabel("h . direction")
        axes.set_ylabel("images")
        axes.legend(fontsize=7, loc="upper right")
        axes.set_title(title, fontsize=10)
        axes.grid(True, color="#dddddd", linewidth=0.6)
        fig.tight_layout()
        return to_image(fig)
