"""AVI Capture Latent at Step: the first half of a split-step run, with a capture record."""

from __future__ import annotations

import logging

import torch
from comfy_api.latest import io

from ...avi_core.latent.capture import CAPTURE_KEY, make_record, resolve_capture_step
from ...avi_core.latent.schedule import check_schedule, step_timesteps
from .. import host
from ..common import CATEGORY
from ..fixes import explains_errors
from ..schema_compat import schema

logger = logging.getLogger("avi.nodes.capture")


class AVICaptureLatentAtStep(io.ComfyNode):
    """Samples like KSampler (Advanced), stops at the step nearest a fraction of T, records where."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVICaptureLatentAtStep",
            display_name="AVI Capture Latent at Step",
            category=CATEGORY,
            search_aliases=["attribute", "edit", "svd", "capture", "split sampling", "leftover noise"],
            description=(
                "Samples like KSamplerAdvanced but stops early, at the step whose timestep is nearest to a fraction "
                "of the model's T (0.8 for the original prompt x, 0.5 for the target prompt z), and returns the "
                "latent with its leftover noise plus an AVI capture record. Wire `step` into the resuming "
                "KSamplerAdvanced's start_at_step (add_noise disable) to finish the image."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model (SD 1.x/2.x/SDXL; flow models are refused)."),
                io.Combo.Input(
                    "add_noise",
                    options=["enable", "disable"],
                    tooltip="enable: start from the seed's noise (the usual first half of a split run).",
                ),
                io.Int.Input(
                    "noise_seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="The noise seed. The original (x) and target (z) captures must use the same seed.",
                ),
                io.Int.Input(
                    "steps",
                    default=50,
                    min=1,
                    max=10000,
                    tooltip="Total sampling steps of the full run (the paper: 50).",
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
                io.Combo.Input(
                    "sampler_name",
                    options=host.sampler_names(),
                    tooltip="The sampling algorithm, as in KSampler.",
                ),
                io.Combo.Input(
                    "scheduler",
                    options=host.scheduler_names(),
                    default="normal",
                    tooltip="The noise schedule, as in KSampler (the paper: normal).",
                ),
                io.Conditioning.Input("positive", tooltip="The prompt to sample (x: original, z: target)."),
                io.Conditioning.Input("negative", tooltip="The negative prompt."),
                io.Latent.Input(
                    "latent_image",
                    tooltip="The starting latent, usually Empty Latent Image (its size must match the head's).",
                ),
                io.Float.Input(
                    "stop_at",
                    default=0.8,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Where to stop, as a fraction of the model's T (1 = pure noise): the step whose "
                    "timestep is nearest. Paper: 0.8 for the original x, 0.5 for the target z.",
                ),
                io.Int.Input(
                    "stop_step",
                    default=0,
                    min=0,
                    max=10000,
                    tooltip="An explicit step to stop at instead of stop_at; 0 = use stop_at.",
                ),
            ],
            outputs=[
                io.Latent.Output(
                    "latent",
                    display_name="latent",
                    tooltip="The latent at the stop step, with leftover noise (what KSamplerAdvanced returns with "
                    "end_at_step = step and return_with_leftover_noise enabled), carrying the AVI capture record.",
                ),
                io.Int.Output(
                    "step",
                    display_name="step",
                    tooltip="The step sampling stopped at: connect it to start_at_step of the KSamplerAdvanced that "
                    "resumes.",
                ),
            ],
        )

    @classmethod
    @explains_errors
    def execute(
        cls,
        model,
        add_noise: str,
        noise_seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        positive,
        negative,
        latent_image: dict,
        stop_at: float,
        stop_step: int = 0,
    ) -> io.NodeOutput:
        sampling = model.get_model_object("model_sampling")
        total = check_schedule(sampling)
        sigmas = host.ksampler_sigmas(model, steps, sampler_name, scheduler)
        timesteps = step_timesteps(sampling, sigmas)
        step = resolve_capture_step(sigmas.tolist(), timesteps, stop_at, total, stop_step)
        (out,) = host.host_nodes().common_ksampler(
            model,
            noise_seed,
            steps,
            cfg,
            sampler_name,
            scheduler,
            positive,
            negative,
            latent_image,
            denoise=1.0,
            disable_noise=add_noise == "disable",
            start_step=0,
            last_step=step,
            force_full_denoise=False,
        )
        samples: torch.Tensor = out["samples"]
        record = make_record(
            step=step,
            steps=steps,
            sigma=float(sigmas[step]),
            timestep=timesteps[step],
            num_timesteps=total,
            scale_factor=float(model.get_model_object("latent_format").scale_factor),
            seed=noise_seed,
            batch=samples.shape[0],
            sampler=sampler_name,
            scheduler=scheduler,
            denoise=1.0,
            shape=tuple(samples.shape),
        )
        out = dict(out)
        out[CAPTURE_KEY] = record
        logger.info(
            "AVI capture: stopped at step %d of %d (timestep %d of %d, sigma %.4g)",
            step,
            steps,
            record["timestep"],
            total,
            record["sigma"],
        )
        return io.NodeOutput(out, step)


NODES: list[type[io.ComfyNode]] = [AVICaptureLatentAtStep]
