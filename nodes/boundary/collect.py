"""AVI Collect Boundary Samples: both prompts from the same seeds, captured at several steps, appended."""

from __future__ import annotations

import logging

import torch
from comfy_api.latest import io, ui

from ...avi_core.errors import ParameterError
from ...avi_core.files.datasets import count_pairs, dataset_folder, sanitize_dataset_name
from ...avi_core.latent.capture import make_record
from ...avi_core.latent.conventions import to_paper_space
from ...avi_core.latent.schedule import check_schedule, step_timesteps
from ...avi_core.values import parse_number_list
from .. import host
from ..common import CATEGORY
from ..fixes import explains_errors
from ..schema_compat import schema
from .latents import append_sides

logger = logging.getLogger("avi.nodes.boundary.collect")

DEFAULT_STEPS = "5, 10, 15, 20, 25, 30"


def parse_capture_steps(text: str, steps: int, sigmas: list[float]) -> list[int]:
    """The distinct steps of a list like '5, 10, 15', increasing; each a whole number 1..steps - 1 with noise left."""
    values = parse_number_list(text, "capture_steps", 1, steps - 1)
    if not values:
        raise ParameterError("capture_steps is empty", reason="empty", name="capture_steps")
    for value in values:
        if not float(value).is_integer():
            raise ParameterError(
                f"capture_steps: {value:g} is not a whole step number", reason="type", name="capture_steps"
            )
    chosen = sorted({int(v) for v in values})
    for step in chosen:
        if not sigmas[step] > 0:
            raise ParameterError(
                f"capture_steps: step {step} of this schedule has no noise left (sigma 0)",
                reason="range",
                name="capture_steps",
                value=step,
                low=1,
                high=steps - 1,
            )
    return chosen


class AVICollectBoundarySamples(io.ComfyNode):
    """Samples prompt A and prompt B from the same noise, keeps the latents at every listed step, appends them."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVICollectBoundarySamples",
            display_name="AVI Collect Boundary Samples",
            category=CATEGORY,
            search_aliases=[
                "boundary",
                "attribute",
                "edit",
                "boundarydiffusion",
                "semantic boundary",
                "collect",
                "svm",
                "mixing step",
            ],
            description=(
                "Collects the two sides of a semantic boundary: samples prompt A (side a, the original) and prompt B "
                "(side b, the target) from the same seeds, keeps both latents at every step of capture_steps (with "
                "their leftover noise, like KSamplerAdvanced stopped there) and appends them to "
                "models/avi_boundary_collections/<collection>/ (one file per step, written atomically). Queue it many "
                "times with the seed set to increment (100+ images per side), then fit with 'AVI Fit Boundary'. "
                "Both sides are captured at the same step, which a boundary needs: AVI datasets hold x and z at two "
                "different steps and cannot be used."
            ),
            is_output_node=True,
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model (SD 1.x/2.x/SDXL; flow models are refused)."),
                io.Int.Input(
                    "noise_seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="The noise seed of both prompts (set it to increment: every queue run adds new images).",
                ),
                io.Int.Input(
                    "steps",
                    default=50,
                    min=2,
                    max=10000,
                    tooltip="Total sampling steps of the schedule. Editing later must use the same steps, sampler "
                    "and scheduler.",
                ),
                io.Float.Input(
                    "cfg",
                    default=7.5,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip="Classifier-free guidance scale, as in KSampler.",
                ),
                io.Combo.Input("sampler_name", options=host.sampler_names(), tooltip="The sampler, as in KSampler."),
                io.Combo.Input(
                    "scheduler",
                    options=host.scheduler_names(),
                    default="normal",
                    tooltip="The noise schedule, as in KSampler.",
                ),
                io.Conditioning.Input(
                    "positive_a", tooltip="Prompt A: side a of the boundary (the original, e.g. 'a person')."
                ),
                io.Conditioning.Input(
                    "positive_b",
                    tooltip="Prompt B: side b (the target, e.g. 'a smiling person'); a positive edit distance moves "
                    "towards it.",
                ),
                io.Conditioning.Input("negative", tooltip="The negative prompt, shared by both sides."),
                io.Latent.Input(
                    "latent_image",
                    tooltip="Usually Empty Latent Image: its batch_size is the number of images per side this run "
                    "adds; keep one size per collection.",
                ),
                io.String.Input(
                    "capture_steps",
                    default=DEFAULT_STEPS,
                    tooltip="The steps to keep, comma separated (each 1..steps-1): the candidate mixing steps that "
                    "'AVI Fit Boundary' compares. One number collects for one step only.",
                ),
                io.String.Input(
                    "collection",
                    default="my_boundary",
                    tooltip="Name of the collection: a folder in models/avi_boundary_collections (letters, digits, "
                    "'-', '_'). Type the same name into 'AVI Fit Boundary'.",
                ),
            ],
            outputs=[
                io.String.Output(
                    "summary",
                    display_name="summary",
                    tooltip="What was written: images per side and step, and the collection's size so far.",
                ),
            ],
        )

    @classmethod
    @explains_errors
    def execute(
        cls,
        model,
        noise_seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        positive_a,
        positive_b,
        negative,
        latent_image: dict,
        capture_steps: str,
        collection: str,
    ) -> io.NodeOutput:
        name = sanitize_dataset_name(collection)
        sampling = model.get_model_object("model_sampling")
        total = check_schedule(sampling)
        sigmas = host.ksampler_sigmas(model, steps, sampler_name, scheduler)
        timesteps = step_timesteps(sampling, sigmas)
        chosen = parse_capture_steps(capture_steps, steps, sigmas.tolist())
        scale = float(model.get_model_object("latent_format").scale_factor)
        comfy_nodes = host.host_nodes()
        captured: dict[str, dict[int, torch.Tensor]] = {"a": {}, "b": {}}
        for side, positive in (("a", positive_a), ("b", positive_b)):
            current, start = latent_image, 0
            for step in chosen:
                host.throw_if_interrupted()
                (current,) = comfy_nodes.common_ksampler(
                    model,
                    noise_seed,
                    steps,
                    cfg,
                    sampler_name,
                    scheduler,
                    positive,
                    negative,
                    current,
                    denoise=1.0,
                    disable_noise=start > 0,
                    start_step=start,
                    last_step=step,
                    force_full_denoise=False,
                )
                captured[side][step] = current["samples"]
                start = step
        host.throw_if_interrupted()  # Cancel before anything is written: the collection stays as it was
        folder = dataset_folder(host.boundary_collection_roots()[0], name)
        batch = int(latent_image["samples"].shape[0])
        for step in chosen:
            samples_a, samples_b = captured["a"][step], captured["b"][step]
            record = make_record(
                step=step,
                steps=steps,
                sigma=float(sigmas[step]),
                timestep=timesteps[step],
                num_timesteps=total,
                scale_factor=scale,
                seed=noise_seed,
                batch=samples_a.shape[0],
                sampler=sampler_name,
                scheduler=scheduler,
                denoise=1.0,
                shape=tuple(samples_a.shape),
            )
            append_sides(
                folder,
                to_paper_space(samples_a, record["sigma"], scale),
                to_paper_space(samples_b, record["sigma"], scale),
                dict(record, side="a"),
                dict(record, side="b"),
            )
        shards, pairs = count_pairs(folder)
        summary = (
            f"added {batch} image(s) per side at step(s) {', '.join(map(str, chosen))} of {steps} to collection "
            f"'{name}': now {pairs} pair(s) in {shards} file(s) ({folder})"
        )
        logger.info("AVI boundary collection: %s", summary)
        return io.NodeOutput(summary, ui=ui.PreviewText(summary))


NODES: list[type[io.ComfyNode]] = [AVICollectBoundarySamples]
