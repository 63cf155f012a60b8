"""AVI Capture Trajectory: one sampling run (a batch of seeds) captured at several steps, for the explorer's plots."""

from __future__ import annotations

import logging

import torch
from comfy_api.latest import io

from ...avi_core.errors import UnsupportedSamplerError
from ...avi_core.latent.schedule import check_schedule, step_timesteps
from .. import host
from ..common import CATEGORY
from ..fixes import explains_errors
from ..schema_compat import schema
from .sampling import sample_keeping_steps
from .settings import step_label, trajectory_steps

logger = logging.getLogger("avi.nodes.explore")

TRAJECTORY_TYPE = "AVI_TRAJECTORY"
Trajectory = io.Custom(TRAJECTORY_TYPE)
"""A captured trajectory between nodes: a dict (see `AVICaptureTrajectory.execute`)."""

DEFAULT_AT = "1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0"


class AVICaptureTrajectory(io.ComfyNode):
    """Samples like KSamplerAdvanced and keeps the latent at every requested step (and the finished one)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVICaptureTrajectory",
            display_name="AVI Capture Trajectory",
            category=CATEGORY,
            search_aliases=["attribute", "svd", "explore", "singular values", "spectrum", "trajectory", "subspace"],
            description=(
                "Samples one prompt like KSamplerAdvanced (a batch = several seeds) and keeps the latent at each "
                "step nearest the fractions of T listed in 'at', for the explorer's plots: AVI Plot Singular "
                "Spectrum and AVI Plot Subspace Distance (the AVI paper's Figures 2 and 5). Also returns the "
                "finished latent. It is one ordinary run (the same images as KSampler with these settings): the "
                "latents are read from the sampler as it passes the steps."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model (SD 1.x/2.x/SDXL; flow models are refused)."),
                io.Combo.Input(
                    "add_noise",
                    options=["enable", "disable"],
                    tooltip="enable: start from the seed's noise (the usual); disable: start from latent_image "
                    "as it is (e.g. the noise output of AVI Invert).",
                ),
                io.Int.Input(
                    "noise_seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="The noise seed (each image of the batch gets its own noise from it).",
                ),
                io.Int.Input("steps", default=50, min=1, max=10000, tooltip="Total sampling steps (the paper: 50)."),
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
                io.Conditioning.Input("positive", tooltip="The prompt to explore."),
                io.Conditioning.Input("negative", tooltip="The negative prompt."),
                io.Latent.Input(
                    "latent_image",
                    tooltip="The starting latent, usually Empty Latent Image; its batch_size is the number of "
                    "seeds the plots average over (the paper's Figure 5: a batch of seeds).",
                ),
                io.String.Input(
                    "at",
                    default=DEFAULT_AT,
                    tooltip="Where to capture, as fractions of T separated by commas (1 = pure noise, the first "
                    "step; 0 = the finished latent): each picks the step whose timestep is nearest.",
                ),
            ],
            outputs=[
                Trajectory.Output(
                    "trajectory",
                    display_name="trajectory",
                    tooltip="The captured latents with their steps and noise levels: into AVI Plot Singular "
                    "Spectrum and AVI Plot Subspace Distance.",
                ),
                io.Latent.Output(
                    "final",
                    display_name="final",
                    tooltip="The finished latent of the same run (what KSampler would give): decode it, or give "
                    "it to AVI Rank-One Views.",
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
        at: str,
    ) -> io.NodeOutput:
        sampling = model.get_model_object("model_sampling")
        total = check_schedule(sampling)
        sigmas = host.ksampler_sigmas(model, steps, sampler_name, scheduler).tolist()
        timesteps = step_timesteps(sampling, sigmas)
        end = len(sigmas) - 1
        wanted = trajectory_steps(at, sigmas, timesteps, total)
        host.throw_if_interrupted()
        samples, kept = sample_keeping_steps(
            model,
            noise_seed,
            steps,
            cfg,
            sampler_name,
            scheduler,
            positive,
            negative,
            latent_image,
            add_noise == "enable",
            [s for s in wanted if s < end],
        )
        missing = [s for s in wanted if s < end and s not in kept]
        if missing:
            raise UnsupportedSamplerError(
                f"the sampler {sampler_name!r} did not report the steps {missing}, so they cannot be captured",
                reason="trajectory",
                sampler=sampler_name,
            )
        kept[end] = samples.detach().to("cpu", torch.float32).clone()
        final = {k: v for k, v in latent_image.items() if k not in ("avi_capture", "noise_mask")}
        final["samples"] = samples
        trajectory = {
            "latents": torch.stack([kept[s] for s in wanted]),
            "steps": wanted,
            "sigmas": [float(sigmas[s]) for s in wanted],
            "timesteps": [float(timesteps[s]) for s in wanted],
            "labels": [step_label(s, timesteps[s], end) for s in wanted],
            "T": total,
            "total_steps": steps,
            "scale_factor": float(model.get_model_object("latent_format").scale_factor),
            "seed": int(noise_seed),
            "sampler": sampler_name,
            "scheduler": scheduler,
        }
        logger.info(
            "AVI trajectory: %d latent(s) of shape %s at steps %s of %d",
            len(wanted),
            tuple(samples.shape),
            wanted,
            steps,
        )
        return io.NodeOutput(trajectory, final)


NODES: list[type[io.ComfyNode]] = [AVICaptureTrajectory]
