"""The explorer's plots as IMAGE outputs: singular spectra across steps, rank-one views, subspace distances (spec 11).

Thin adapters to `avi_core.explore`: the trajectory's ComfyUI latents go to paper space (`paper_trajectory`)
before spectra and distances; rank-one views are taken in the latent's own space (a view commutes with the
positive scaling between the two) and decoded through the VAE, after finishing the sampling of a noisy one.
"""

from __future__ import annotations

import logging

import torch
from comfy_api.latest import io

from ...avi_core.errors import ParameterError
from ...avi_core.explore import (
    PAPER_K,
    SIDES,
    paper_trajectory,
    plot_singular_spectrum,
    plot_subspace_distance,
    plot_view_grid,
    rank_one_grid,
    singular_spectrum,
    trajectory_distances,
    view_labels,
)
from ...avi_core.explore.plots import DISTANCE_KINDS, SPECTRUM_MODES
from ...avi_core.latent.capture import CAPTURE_KEY, validate_record
from ...avi_core.values import parse_number_list
from .. import host
from ..common import CATEGORY
from ..fixes import explains_errors
from ..schema_compat import advanced_input, schema
from .settings import parse_channels, parse_pair_groups
from .trajectory import Trajectory

logger = logging.getLogger("avi.nodes.explore")


def _paper(trajectory: dict) -> torch.Tensor:
    """The trajectory's latents in paper space: `[S, B, C, H, W]`."""
    return paper_trajectory(trajectory["latents"], trajectory["sigmas"], trajectory["scale_factor"])


def _size_inputs(width: int, height: int) -> list:
    return [
        advanced_input(io.Int.Input, "width", default=width, min=256, max=4096, tooltip="Plot width in pixels."),
        advanced_input(io.Int.Input, "height", default=height, min=192, max=4096, tooltip="Plot height in pixels."),
    ]


class AVIPlotSingularSpectrum(io.ComfyNode):
    """The singular values of every latent channel at every captured step (the paper's Figure 2)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVIPlotSingularSpectrum",
            display_name="AVI Plot Singular Spectrum",
            category=CATEGORY,
            search_aliases=["attribute", "svd", "explore", "singular values", "spectrum", "plot"],
            description=(
                "Plots the singular values of each latent channel at each step of a captured trajectory (the AVI "
                "paper's Figure 2), in the paper's latent space so that steps compare, averaged over the batch of "
                "seeds. Shows how much of the image the leading singular pairs already fix at each step: where "
                "the curves stop moving, AVI's k leading directions of x are settled."
            ),
            inputs=[
                Trajectory.Input("trajectory", tooltip="From AVI Capture Trajectory."),
                io.Combo.Input(
                    "mode",
                    options=list(SPECTRUM_MODES),
                    default="index",
                    tooltip="index: x = singular pair, one curve per step (noisy to finished); step: x = step, "
                    "one curve per pair (the 'top' largest).",
                ),
                io.Int.Input(
                    "top",
                    default=0,
                    min=0,
                    max=4096,
                    tooltip="How many of the largest pairs to draw; 0 = all (index mode) or 8 (step mode).",
                ),
                io.Boolean.Input("log_scale", default=True, tooltip="Singular values on a log axis."),
                *_size_inputs(768, 512),
            ],
            outputs=[io.Image.Output("plot", display_name="plot", tooltip="The plot, one panel per channel.")],
        )

    @classmethod
    @explains_errors
    def execute(
        cls, trajectory: dict, mode: str, top: int, log_scale: bool, width: int = 768, height: int = 512
    ) -> io.NodeOutput:
        spectra = singular_spectrum(_paper(trajectory))  # [S, B, C, r]
        plot = plot_singular_spectrum(
            spectra, trajectory["labels"], mode=mode, top=top or None, log=log_scale, width=width, height=height
        )
        return io.NodeOutput(plot)


class AVIPlotSubspaceDistance(io.ComfyNode):
    """Grassmann distance between the top-k singular subspaces of every two captured steps (the paper's Figure 5)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVIPlotSubspaceDistance",
            display_name="AVI Plot Subspace Distance",
            category=CATEGORY,
            search_aliases=["attribute", "svd", "explore", "subspace", "principal angles", "grassmann", "plot"],
            description=(
                "Plots how far the span of the top-k singular vectors of each latent channel moves between the "
                "steps of a captured trajectory: the geodesic distance on the Grassmannian (square root of the "
                "sum of squared principal angles), averaged over the channels and the batch of seeds (the AVI "
                "paper's Figure 5). Small distances between late steps are why AVI can keep x's leading "
                "directions and take the rest from z."
            ),
            inputs=[
                Trajectory.Input("trajectory", tooltip="From AVI Capture Trajectory (a batch of seeds averages)."),
                io.Int.Input(
                    "k",
                    default=PAPER_K,
                    min=1,
                    max=4096,
                    tooltip=f"How many leading singular vectors span the subspace (the paper: {PAPER_K}).",
                ),
                io.Combo.Input(
                    "side",
                    options=list(SIDES),
                    default="left",
                    tooltip="left: the column spaces (U, vectors over the latent's rows); right: the row spaces "
                    "(V, over its columns).",
                ),
                io.Combo.Input(
                    "kind",
                    options=list(DISTANCE_KINDS),
                    default="both",
                    tooltip="heatmap: every two steps; curve: each step to the next (with the spread over seeds "
                    "and channels) and to the last; both: side by side.",
                ),
                *_size_inputs(768, 384),
            ],
            outputs=[io.Image.Output("plot", display_name="plot", tooltip="The plot of the distances, in radians.")],
        )

    @classmethod
    @explains_errors
    def execute(
        cls, trajectory: dict, k: int, side: str, kind: str, width: int = 768, height: int = 384
    ) -> io.NodeOutput:
        distances = trajectory_distances(_paper(trajectory), k, side)  # [S, S, B, C]
        plot = plot_subspace_distance(
            distances, trajectory["labels"], kind=kind, k=k, side=side, width=width, height=height
        )
        return io.NodeOutput(plot)


class AVIRankOneViews(io.ComfyNode):
    """A grid of decoded images of a latent with one singular pair scaled, or kept alone (the paper's Figs 3-4)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVIRankOneViews",
            display_name="AVI Rank-One Views",
            category=CATEGORY,
            search_aliases=["attribute", "svd", "explore", "singular pair", "rank one", "amplify", "grid"],
            description=(
                "Shows what single singular pairs of the latent control (the AVI paper's Figures 3-4): every channel "
                "matrix of the latent is rebuilt with the chosen pair(s) scaled (or kept alone, the rest removed), "
                "and each view is decoded into a labelled grid, one row per pair group and one column per scale. "
                "A finished latent is decoded directly; a captured (noisy) latent is first sampled to the end from "
                "its step with the model and prompts connected, as its capture record says."
            ),
            inputs=[
                io.Latent.Input(
                    "latent",
                    tooltip="A finished latent (KSampler, AVI Capture Trajectory's final, VAE Encode) or one from "
                    "'AVI Capture Latent at Step' / 'AVI Invert' (then connect model, positive and negative).",
                ),
                io.Vae.Input("vae", tooltip="The checkpoint's VAE, to decode the views."),
                io.String.Input(
                    "pairs",
                    default="0, 1, 2, 3",
                    tooltip="The singular pairs, one grid row each, separated by commas (0 = the largest "
                    "singular value); '0+1' scales two pairs together.",
                ),
                io.String.Input(
                    "scales",
                    default="0, 1, 2, 4",
                    tooltip="The factors, one grid column each: a pair's singular value times the factor (1 = the "
                    "latent unchanged, 0 = the pair removed); with alone, the pair alone times the factor.",
                ),
                io.Boolean.Input(
                    "alone",
                    default=False,
                    tooltip="Keep only the chosen pair(s) (times the scale) instead of scaling them in the latent.",
                ),
                advanced_input(
                    io.String.Input,
                    "channels",
                    default="",
                    tooltip="The latent channels to change, e.g. '0, 2'; empty = every channel.",
                ),
                advanced_input(
                    io.Int.Input,
                    "batch_index",
                    default=0,
                    min=0,
                    max=4095,
                    tooltip="Which image of the latent's batch to explore.",
                ),
                advanced_input(
                    io.Int.Input, "cell", default=128, min=32, max=1024, tooltip="Height of each grid image, pixels."
                ),
                advanced_input(
                    io.Float.Input,
                    "cfg",
                    default=7.5,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip="Guidance when finishing a captured latent's views (the capture's cfg).",
                ),
                io.Model.Input("model", optional=True, tooltip="To finish sampling the views of a captured latent."),
                io.Conditioning.Input(
                    "positive", optional=True, tooltip="The captured latent's prompt (to finish sampling)."
                ),
                io.Conditioning.Input("negative", optional=True, tooltip="The negative prompt (to finish sampling)."),
            ],
            outputs=[
                io.Image.Output(
                    "grid", display_name="grid", tooltip="The labelled grid: rows = pairs, columns = scales."
                ),
                io.Image.Output(
                    "images", display_name="images", tooltip="The decoded views as a batch, row by row (unlabelled)."
                ),
                io.Latent.Output(
                    "views",
                    display_name="views",
                    tooltip="The views as latents (at the input's noise level, before any sampling), row by row.",
                ),
            ],
        )

    @classmethod
    @explains_errors
    def execute(
        cls,
        latent: dict,
        vae,
        pairs: str,
        scales: str,
        alone: bool,
        channels: str = "",
        batch_index: int = 0,
        cell: int = 128,
        cfg: float = 7.5,
        model=None,
        positive=None,
        negative=None,
    ) -> io.NodeOutput:
        samples: torch.Tensor = latent["samples"]
        if not 0 <= batch_index < samples.shape[0]:
            raise ParameterError(
                f"batch_index {batch_index} is outside 0..{samples.shape[0] - 1} (the latent's batch)",
                reason="range",
                name="batch_index",
                value=batch_index,
                low=0,
                high=samples.shape[0] - 1,
            )
        groups = parse_pair_groups(pairs)
        factors = parse_number_list(scales, "scales", -100.0, 100.0)
        if not factors:
            raise ParameterError("scales names no factor", reason="empty", name="scales", value=scales)
        record = latent.get(CAPTURE_KEY)
        record = None if record is None else validate_record(record, "latent")
        noisy = record is not None and record["step"] < record["steps"] and record["sigma"] > 0
        if noisy and (model is None or positive is None or negative is None):
            raise ParameterError(
                f"the latent was captured at step {record['step']} of {record['steps']} and still holds noise: "
                "decoding its views directly shows noise",
                reason="resume",
                name="model",
            )
        one = samples[batch_index : batch_index + 1].detach().to(torch.float32)
        grid = rank_one_grid(one, groups, factors, alone=alone, channels=parse_channels(channels))  # [G, N, 1, C, H, W]
        views = grid.flatten(0, 2).to(samples.dtype)  # [G * N, C, H, W], row-major
        host.throw_if_interrupted()
        finished = views
        if noisy:
            (out,) = host.host_nodes().common_ksampler(
                model,
                int(record["seed"]),
                int(record["steps"]),
                cfg,
                str(record.get("sampler", "euler")),
                str(record.get("scheduler", "normal")),
                positive,
                negative,
                {"samples": views},
                denoise=1.0,
                disable_noise=True,
                start_step=int(record["step"]),
                last_step=None,
                force_full_denoise=True,
            )
            finished = out["samples"]
        host.throw_if_interrupted()
        with torch.no_grad():
            images = vae.decode(finished).detach()
        if images.dim() == 5:  # video VAEs: [B, T, H, W, C]
            images = images.reshape(-1, *images.shape[-3:])
        images = images.to(torch.float32).clamp(0.0, 1.0)
        rows, columns = view_labels([tuple(g) for g in groups], factors, alone)
        where = f"step {record['step']} of {record['steps']}, " if record is not None else ""
        title = f"Rank-one views ({where}{'alone' if alone else 'scaled'})"
        plot = plot_view_grid(images, len(groups), rows, columns, title=title, cell=cell)
        out_latent = {k: v for k, v in latent.items() if k not in ("samples", "batch_index", "noise_mask")}
        out_latent.pop(CAPTURE_KEY, None)
        out_latent["samples"] = views
        logger.info("AVI rank-one views: %d pair group(s) x %d scale(s)", len(groups), len(factors))
        return io.NodeOutput(plot, images, out_latent)


NODES: list[type[io.ComfyNode]] = [AVIPlotSingularSpectrum, AVIRankOneViews, AVIPlotSubspaceDistance]
