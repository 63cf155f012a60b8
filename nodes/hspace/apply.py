"""AVI Apply h-space Direction: MODEL in, MODEL out, with h <- h + strength * scale * d in a step window."""

from __future__ import annotations

import logging
import math

import torch
from comfy_api.latest import io

from ...avi_core.errors import ParameterError
from ...avi_core.hspace.apply import TARGETS, HSweep
from ...avi_core.hspace.direction_files import DirectionSet
from ...avi_core.values import check_range, format_values, parse_number_list
from .. import host
from ..schema_compat import advanced_input, schema
from .capture import H_BLOCK
from .fixes import explains_hspace_errors, hspace_errors
from .types import HSPACE_CATEGORY, Directions

logger = logging.getLogger("avi.nodes.hspace.apply")

STRENGTH_RANGE = (-20.0, 20.0)
"""Strengths in the direction's own unit (one PCA standard deviation, the supervised sets' separation, ...)."""
MAX_VARIANTS = 256


def direction_indices(text: str, default: int, count: int) -> list[int]:
    """'1, 3' -> [0, 2] (1-based on the node), or [default - 1] when empty; ParameterError outside 1..count."""
    values = parse_number_list(text, "direction_list", 1, count) if (text or "").strip() else []
    if not values:
        values = [check_range("direction", default, 1, count)]
    out = []
    for value in values:
        if value != int(value):
            raise ParameterError(
                f"direction_list: {value:g} is not a whole direction number",
                reason="list",
                name="direction_list",
                value=value,
                low=1,
                high=count,
            )
        out.append(int(value) - 1)
    return out


def variants(
    directions: DirectionSet, strengths: list[float], indices: list[int]
) -> list[tuple[int, float, list[float]]]:
    """(direction index, strength, strength vector over the set) per variant: direction-major, then strength."""
    out = []
    for index in indices:
        for strength in strengths:
            vector = [0.0] * directions.count
            vector[index] = strength
            out.append((index, strength, vector))
    if len(out) > MAX_VARIANTS:
        raise ParameterError(
            f"{len(indices)} direction(s) x {len(strengths)} strength(s) make {len(out)} images per seed, more "
            f"than {MAX_VARIANTS}",
            reason="range",
            name="strength_list",
            value=len(out),
            low=1,
            high=MAX_VARIANTS,
        )
    return out


def repeat_latent(latent: dict, times: int) -> dict:
    """The latent tiled `times` times (all B images, then all B again, ...) with the same noise for every copy:
    batch_index repeats the original indices, so the sampler draws copy k of image i from image i's noise."""
    samples = latent["samples"]
    batch = int(samples.shape[0])
    out = dict(latent)
    out["samples"] = samples.repeat((times,) + (1,) * (samples.dim() - 1))
    indices = list(latent.get("batch_index") or range(batch))
    out["batch_index"] = indices * times
    mask = latent.get("noise_mask")
    if isinstance(mask, torch.Tensor) and mask.dim() >= 1 and mask.shape[0] == batch and batch > 1:
        out["noise_mask"] = mask.repeat((times,) + (1,) * (mask.dim() - 1))
    return out


class DirectionPatch:
    """The output-block patch: edits h at ("output", 0) with an HSweep (one variant or several)."""

    def __init__(self, sweep: HSweep) -> None:
        self.sweep = sweep

    def __call__(self, h: torch.Tensor, hsp: torch.Tensor, transformer_options: dict):
        if transformer_options.get("block") != H_BLOCK:
            return h, hsp
        schedule = transformer_options.get("sample_sigmas")
        sigmas = transformer_options.get("sigmas")
        if schedule is None or sigmas is None:  # not a sampler's evaluation: leave h as it is
            return h, hsp
        with hspace_errors():
            return self.sweep.edit(h, sigmas, schedule, transformer_options.get("cond_or_uncond")), hsp


class AVIHSpaceApplyDirection(io.ComfyNode):
    """Adds an h-space direction to the UNet's bottleneck while sampling; sweeps and grids in one queue."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVIHSpaceApplyDirection",
            display_name="AVI Apply h-space Direction",
            category=HSPACE_CATEGORY,
            search_aliases=["h-space", "hspace", "edit", "bottleneck", "semantic direction", "slider", "pca"],
            description=(
                "Returns the model with an edit of the UNet's bottleneck h (Haas et al.): at every step in the "
                "window, h <- h + strength x d, on the cond and uncond passes alike (or one of them). Chain "
                "several to stack directions. A strength list (and a direction list) gives a sweep (a grid) in one "
                "queue: connect the Empty Latent Image through this node, which repeats it once per value with "
                "the same noise, so the images differ only by the edit."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model the directions were found with."),
                Directions.Input(
                    "directions",
                    tooltip="h-space directions from 'AVI Load h-space Direction' or a Find node.",
                ),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=STRENGTH_RANGE[0],
                    max=STRENGTH_RANGE[1],
                    step=0.05,
                    display_mode=io.NumberDisplay.slider,
                    tooltip="How far to move h along the direction, in the direction's unit: standard deviations "
                    "of the images (PCA), the distance between the two sets (supervised: 1 = from A to B), or "
                    "the image's |h| (Jacobian: 0.1 = 10 %). Negative goes the other way; 0 = no edit.",
                ),
                io.Int.Input(
                    "direction",
                    default=1,
                    min=1,
                    max=4096,
                    tooltip="Which direction of the set to apply: 1 = the first (PCA: the one that varies most).",
                ),
                io.Float.Input(
                    "start",
                    default=0.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Where the edit starts, as a fraction of the sampling (0 = the first, noisiest step).",
                ),
                io.Float.Input(
                    "end",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Where the edit ends, as a fraction of the sampling (1 = the last step). Early steps "
                    "change layout and identity, late steps details.",
                ),
                advanced_input(
                    io.Combo.Input,
                    "target",
                    options=list(TARGETS),
                    default="both",
                    tooltip="Which guidance pass to edit: both (Haas et al.), cond (the prompt's) or uncond (the "
                    "negative prompt's).",
                ),
                io.String.Input(
                    "strength_list",
                    default="",
                    tooltip="Optional comma-separated strengths, e.g. '-2, -1, 0, 1, 2': one image per value "
                    "(needs the latent connected through this node); strength is ignored. Empty = strength.",
                ),
                io.String.Input(
                    "direction_list",
                    default="",
                    tooltip="Optional comma-separated direction numbers, e.g. '1, 2, 3, 4': a grid, one row per "
                    "direction with every strength (needs the latent connected). Empty = direction.",
                ),
                io.Latent.Input(
                    "latent",
                    optional=True,
                    tooltip="The latent the sampler starts from (Empty Latent Image). Needed for a strength or "
                    "direction list: it comes out repeated once per image of the sweep, with the same noise.",
                ),
            ],
            outputs=[
                io.Model.Output(
                    "patched_model", display_name="model", tooltip="The model with the edit: into the sampler."
                ),
                io.Latent.Output(
                    "sweep_latent",
                    display_name="latent",
                    tooltip="The latent input, repeated once per sweep image (direction-major, then strength, "
                    "then the batch), each copy with its original's noise; for the sampler's latent_image. "
                    "Empty when no latent is connected.",
                ),
            ],
        )

    @classmethod
    @explains_hspace_errors
    def execute(
        cls,
        model,
        directions: DirectionSet,
        strength: float,
        direction: int,
        start: float,
        end: float,
        target: str = "both",
        strength_list: str = "",
        direction_list: str = "",
        latent: dict | None = None,
    ) -> io.NodeOutput:
        directions.check_model(host.model_family(model))
        strengths = parse_number_list(strength_list, "strength_list", *STRENGTH_RANGE) or [
            check_range("strength", strength, *STRENGTH_RANGE)
        ]
        indices = direction_indices(direction_list, direction, directions.count)
        chosen = variants(directions, strengths, indices)
        edits = [directions.edit(vector, start, end, target) for _, _, vector in chosen]
        if len(chosen) > 1 and latent is None:
            raise ParameterError(
                f"a sweep of {len(chosen)} images needs the latent connected through this node",
                reason="sweep_latent",
                name="latent",
            )
        stride = int(latent["samples"].shape[0]) if latent is not None else 1
        sweep = HSweep(edits, stride=stride)
        patched = model.clone()
        patched.set_model_output_block_patch(DirectionPatch(sweep))
        out_latent = repeat_latent(latent, len(chosen)) if latent is not None and len(chosen) > 1 else latent
        if math.isclose(max(abs(s) for s in strengths), 0.0):
            logger.info("AVI Apply h-space Direction: every strength is 0 (no edit)")
        logger.info(
            "AVI Apply h-space Direction: %s direction(s) %s x strengths %s, window %g..%g, %s",
            directions.method,
            [i + 1 for i in indices],
            format_values(strengths),
            start,
            end,
            target,
        )
        return io.NodeOutput(patched, out_latent)


NODES: list[type[io.ComfyNode]] = [AVIHSpaceApplyDirection]
