"""The explorer's figures as ComfyUI IMAGE tensors `[1, H, W, 3]`, float32 in 0..1 (spec 11, paper Figs 2-5).

- `plot_singular_spectrum`: the singular values of each channel at each captured step (one panel per channel),
  either as spectra (x = pair index, one curve per step) or as trajectories (x = step, one curve per pair).
- `plot_view_grid`: decoded images of rank-one views (`rank_one_grid`), labelled by pair group and scale.
- `plot_subspace_distance`: the distances of `trajectory_distances`, averaged over the batch of seeds and the
  channels, as a heat map (every pair of steps) and / or a curve (each step to the next, mean +- std).

Labels name the steps however the caller likes ("t=795", "0.8T", "step 10"); default "step j".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import NonFiniteError, ParameterError, ShapeMismatchError
from ..plots.figure import figure, to_image

SPECTRUM_MODES = ("index", "step")
DISTANCE_KINDS = ("heatmap", "curve", "both")
_CMAP = "viridis"


def _labels(labels: Sequence[str] | None, count: int) -> list[str]:
    if labels is None:
        return [f"step {j}" for j in range(count)]
    names = [str(name) for name in labels]
    if len(names) != count:
        raise ParameterError(
            f"got {len(names)} step labels for {count} steps", reason="count", name="labels", value=len(names)
        )
    return names


def _place_axes(
    fig: Any,
    width: int,
    height: int,
    rows: int,
    columns: int,
    margins: tuple[int, int, int, int],
    gaps: tuple[int, int],
) -> None:
    """Lay the subplot grid out with fixed pixel margins (left, right, bottom, top) and gaps (horizontal,
    vertical): several times faster than tight_layout, which draws the figure once more to measure it."""
    left, right, bottom, top = margins
    across, down = gaps
    cell_w = max(1.0, (width - left - right - (columns - 1) * across) / columns)
    cell_h = max(1.0, (height - bottom - top - (rows - 1) * down) / rows)
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=across / cell_w,
        hspace=down / cell_h,
    )


def _finite_numpy(values: torch.Tensor, what: str) -> np.ndarray:
    array = values.detach().to("cpu", torch.float64).numpy()
    if not np.isfinite(array).all():
        raise NonFiniteError(f"the {what} hold NaN or infinity", reason="input")
    return array


def plot_singular_spectrum(
    spectra: torch.Tensor,
    labels: Sequence[str] | None = None,
    *,
    mode: str = "index",
    top: int | None = None,
    log: bool = True,
    width: int = 768,
    height: int = 512,
) -> torch.Tensor:
    """Singular values per channel across steps -> IMAGE `[1, height, width, 3]`.

    spectra: `[S, C, r]` (S steps, C channels, r values, e.g. `singular_spectrum(paper_trajectory(...))[:, 0]`)
    or `[S, B, C, r]` (averaged over the B seeds). mode "index": x = pair index, one curve per step coloured from
    the first step (noisiest) to the last; "step": x = step, one curve per pair (the `top` largest, default 8).
    top: pairs shown (default all for "index"). Paper space is the meaningful one (see `spectrum`).
    """
    if mode not in SPECTRUM_MODES:
        raise ParameterError(f"mode must be 'index' or 'step', got {mode!r}", reason="choice", name="mode", value=mode)
    if spectra.dim() == 4:
        spectra = spectra.double().mean(1)
    if spectra.dim() != 3 or 0 in spectra.shape:
        raise ShapeMismatchError(
            f"spectra must be [S, C, r] or [S, B, C, r], got {tuple(spectra.shape)}",
            reason="shape",
            shape=tuple(spectra.shape),
        )
    values = _finite_numpy(spectra, "singular values")
    steps, channels, rank = values.shape
    names = _labels(labels, steps)
    shown = rank if top is None and mode == "index" else min(rank, 8 if top is None else max(1, int(top)))
    columns = min(channels, 2 if channels <= 4 else math.ceil(math.sqrt(channels)))
    rows = math.ceil(channels / columns)
    with figure(width, height) as fig:
        from matplotlib import colormaps
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize
        from matplotlib.ticker import LogFormatter

        cmap = colormaps[_CMAP]
        colour_bar = mode == "index" and steps > 8  # too many steps for a legend
        bottom = 40 if mode == "index" else 50
        _place_axes(fig, width, height, rows, columns, (55, 90 if colour_bar else 12, bottom, 48), (50, 55))
        axes_list = []
        for channel in range(channels):
            axes = fig.add_subplot(rows, columns, channel + 1)
            axes_list.append(axes)
            if mode == "index":
                x = np.arange(1, shown + 1)
                for j in range(steps):
                    colour = cmap(j / max(steps - 1, 1))
                    axes.plot(x, values[j, channel, :shown], color=colour, linewidth=1.0, label=names[j])
                axes.set_xlabel("singular pair i", fontsize=7)
            else:
                x = np.arange(steps)
                pair_cmap = colormaps["tab10" if shown <= 10 else "tab20"]
                for i in range(shown):
                    axes.plot(x, values[:, channel, i], color=pair_cmap(i % pair_cmap.N), linewidth=1.0, label=f"s{i}")
                axes.set_xticks(x)
                axes.set_xticklabels(names, rotation=45, ha="right", fontsize=6)
            if log and (values[:, channel, :shown] > 0).all():
                axes.set_yscale("log")
                axes.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=True))
                axes.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
            axes.set_title(f"channel {channel}", fontsize=8)
            axes.tick_params(labelsize=6)
            axes.grid(True, color="#dddddd", linewidth=0.5)
        if mode == "step":
            axes_list[0].legend(fontsize=5, ncol=2, loc="upper right")
        elif steps <= 8:
            axes_list[0].legend(fontsize=6, loc="upper right")
        fig.suptitle("Singular values per channel across steps", fontsize=10)
        if colour_bar:
            box = (1 - 70 / width, bottom / height, 12 / width, 1 - (bottom + 48) / height)
            bar = fig.colorbar(ScalarMappable(Normalize(0, steps - 1), cmap), cax=fig.add_axes(box))
            ticks = sorted({0, steps // 2, steps - 1})
            bar.set_ticks(ticks)
            bar.set_ticklabels([names[t] for t in ticks])
            bar.ax.tick_params(labelsize=6)
            bar.set_label("step", fontsize=7)
        return to_image(fig)


def plot_view_grid(
    images: torch.Tensor,
    rows: int,
    row_labels: Sequence[str] | None = None,
    column_labels: Sequence[str] | None = None,
    *,
    title: str = "",
    cell: int = 128,
) -> torch.Tensor:
    """Decoded views `[rows * columns, h, w, 3]` (row-major, as `rank_one_grid(...).flatten(0, 1)` decodes) ->
    one labelled grid IMAGE `[1, H, W, 3]`, each image drawn `cell` pixels high."""
    if images.dim() != 4 or images.shape[-1] not in (1, 3) or images.shape[0] == 0:
        raise ShapeMismatchError(
            f"images must be an IMAGE batch [N, H, W, 3], got {tuple(images.shape)}",
            reason="shape",
            shape=tuple(images.shape),
        )
    count = images.shape[0]
    if rows < 1 or count % rows:
        raise ParameterError(
            f"{count} images do not fill {rows} rows", reason="count", name="rows", value=rows, low=1, high=count
        )
    columns = count // rows
    pixels = _finite_numpy(images.clamp(0, 1), "images")
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    aspect = pixels.shape[2] / pixels.shape[1]
    cell_w, cell_h = max(16, round(cell * aspect)), max(16, int(cell))
    left = 90 if row_labels else 8
    top = (22 if column_labels else 4) + (24 if title else 0)
    gap = 4
    width = max(64, left + columns * (cell_w + gap) + 4)
    height = max(48, top + rows * (cell_h + gap) + 4)
    row_names = list(row_labels) if row_labels else []
    column_names = list(column_labels) if column_labels else []
    with figure(width, height) as fig:
        for index in range(count):
            row, col = divmod(index, columns)
            x0 = left + col * (cell_w + gap)
            y0 = top + row * (cell_h + gap)
            axes = fig.add_axes((x0 / width, 1 - (y0 + cell_h) / height, cell_w / width, cell_h / height))
            axes.imshow(pixels[index], interpolation="nearest", aspect="auto")
            axes.set_axis_off()
        for row, name in enumerate(row_names[:rows]):
            y = 1 - (top + row * (cell_h + gap) + cell_h / 2) / height
            fig.text(4 / width, y, name, fontsize=8, va="center", ha="left")
        for col, name in enumerate(column_names[:columns]):
            x = (left + col * (cell_w + gap) + cell_w / 2) / width
            fig.text(x, 1 - (top - 12) / height, name, fontsize=8, ha="center", va="center")
        if title:
            fig.text(0.5, 1 - 12 / height, title, fontsize=9, ha="center", va="center")
        return to_image(fig)


def plot_subspace_distance(
    distances: torch.Tensor,
    labels: Sequence[str] | None = None,
    *,
    kind: str = "both",
    k: int | None = None,
    side: str = "left",
    width: int = 768,
    height: int = 384,
) -> torch.Tensor:
    """Distances between steps `[S, S, ...]` (`trajectory_distances`) -> IMAGE `[1, height, width, 3]`.

    The trailing dimensions (seeds, channels) are averaged. kind "heatmap": every pair of steps; "curve": the
    distance of each step to the next (mean, with a +-1 std band over the seeds and channels) and of each step to
    the last one (dashed); "both": side by side. k and side only go into the title.
    """
    if kind not in DISTANCE_KINDS:
        raise ParameterError(
            f"kind must be one of {', '.join(DISTANCE_KINDS)}, got {kind!r}", reason="choice", name="kind", value=kind
        )
    if distances.dim() < 2 or distances.shape[0] != distances.shape[1] or distances.shape[0] == 0:
        raise ShapeMismatchError(
            f"distances must be [S, S, ...], got {tuple(distances.shape)}",
            reason="shape",
            shape=tuple(distances.shape),
        )
    values = _finite_numpy(distances, "distances")
    steps = values.shape[0]
    samples = values.reshape(steps, steps, -1)
    mean = samples.mean(-1)
    std = samples.std(-1)
    names = _labels(labels, steps)
    panels = ["heatmap", "curve"] if kind == "both" else [kind]
    with figure(width, height) as fig:
        _place_axes(fig, width, height, 1, len(panels), (60, 15, 55, 45), (110, 0))
        for number, panel in enumerate(panels, start=1):
            axes = fig.add_subplot(1, len(panels), number)
            ticks = list(range(steps)) if steps <= 12 else sorted({round(t) for t in np.linspace(0, steps - 1, 8)})
            if panel == "heatmap":
                image = axes.imshow(mean, cmap=_CMAP, origin="upper", interpolation="nearest")
                axes.set_xticks(ticks)
                axes.set_yticks(ticks)
                axes.set_xticklabels([names[t] for t in ticks], rotation=45, ha="right", fontsize=6)
                axes.set_yticklabels([names[t] for t in ticks], fontsize=6)
                bar = fig.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
                bar.set_label("geodesic distance (rad)", fontsize=7)
                bar.ax.tick_params(labelsize=6)
                axes.set_title("between every two steps", fontsize=8)
            else:
                if steps < 2:
                    axes.text(0.5, 0.5, "one step: no distance", ha="center", va="center", transform=axes.transAxes)
                    axes.set_axis_off()
                    continue
                x = np.arange(steps - 1)
                nxt = np.array([mean[j, j + 1] for j in range(steps - 1)])
                spread = np.array([std[j, j + 1] for j in range(steps - 1)])
                axes.plot(x, nxt, color="#1f77b4", marker="o", markersize=3, linewidth=1.2, label="to the next step")
                axes.fill_between(x, nxt - spread, nxt + spread, color="#1f77b4", alpha=0.2, linewidth=0)
                axes.plot(x, mean[:-1, -1], color="#d62728", linestyle="--", linewidth=1.0, label="to the last step")
                curve_ticks = [t for t in ticks if t < steps - 1]
                axes.set_xticks(curve_ticks)
                axes.set_xticklabels([names[t] for t in curve_ticks], rotation=45, ha="right", fontsize=6)
                axes.tick_params(labelsize=6)
                axes.set_ylabel("geodesic distance (rad)", fontsize=7)
                axes.grid(True, color="#dddddd", linewidth=0.5)
                axes.legend(fontsize=6, loc="upper right")
                axes.set_title("along the trajectory", fontsize=8)
        detail = f"top-{k} {side} singular vectors" if k else f"{side} singular vectors"
        fig.suptitle(f"Subspace distance between steps ({detail}, mean over {samples.shape[-1]})", fontsize=9)
        return to_image(fig)
