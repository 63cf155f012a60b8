"""AVI Capture Latent at Step: the first half of a split-step run, with a capture record."""

from __future__ import annotations

import logging

import torch

from ...avi_core.errors import UnsupportedModelError
from ...avi_core.latent.capture import CAPTURE_KEY, check_additive_noise, make_record, resolve_stop_step
from .. import host
from ..common import CATEGORY

logger = logging.getLogger("avi.nodes.capture")


def model_schedule(model) -> tuple[object, int]:
    """(model_sampling, T) of a ComfyUI MODEL, or UnsupportedModelError when AVI cannot use it."""
    sampling = model.get_model_object("model_sampling")
    # ComfyUI builds model_sampling as `class ModelSampling(schedule, prediction)`: name those two bases.
    kinds = [k.__name__ for k in type(sampling).__bases__] or [type(sampling).__name__]
    name = f"the model (sampling: {' + '.join(kinds)})"
    check_additive_noise(sampling.noise_scaling, sampling.inverse_noise_scaling, name)
    total = getattr(sampling, "num_timesteps", None)
    sigmas = getattr(sampling, "sigmas", None)
    if not isinstance(total, int) or sigmas is None or len(sigmas) != total:
        raise UnsupportedModelError(
            f"{name} has no discrete schedule of training timesteps, so a fraction of T has no meaning for it. Use a "
            "Stable Diffusion 1.x, 2.x or SDXL checkpoint without a continuous-time sampling patch."
        )
    first = int(sampling.timestep(sigmas[-1:].clone()).item())
    last = int(sampling.timestep(sigmas[:1].clone()).item())
    if (first, last) != (total - 1, 0):
        raise UnsupportedModelError(
            f"{name} does not number its timesteps 0..{total - 1} (got {last}..{first}), so AVI cannot place 0.8T on "
            "its schedule. Remove the model-sampling patch, or use a standard SD 1.x/2.x/SDXL model."
        )
    return sampling, total


class AVICaptureLatentAtStep:
    DESCRIPTION = (
        "Samples like KSamplerAdvanced but stops early, at the step whose timestep is nearest to a fraction of the "
        "model's T (0.8 for the original prompt x, 0.5 for the target prompt z), and returns the latent with its "
        "leftover noise plus an AVI capture record. Wire `step` into the resuming KSamplerAdvanced's start_at_step "
        "(add_noise disable) to finish the image."
    )
    CATEGORY = CATEGORY
    FUNCTION = "capture"
    RETURN_TYPES = ("LATENT", "INT")
    RETURN_NAMES = ("latent", "step")
    OUTPUT_TOOLTIPS = (
        "The latent at the stop step, with leftover noise (what KSamplerAdvanced returns with end_at_step = step "
        "and return_with_leftover_noise enabled), carrying the AVI capture record.",
        "The step sampling stopped at: connect it to start_at_step of the KSamplerAdvanced that resumes.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (
                    "MODEL",
                    {"tooltip": "The diffusion model (SD 1.x/2.x/SDXL; flow models are refused)."},
                ),
                "add_noise": (
                    ["enable", "disable"],
                    {"tooltip": "enable: start from the seed's noise (the usual first half of a split run)."},
                ),
                "noise_seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 0xFFFFFFFFFFFFFFFF,
                        "control_after_generate": True,
                        "tooltip": "The noise seed. The original (x) and target (z) captures must use the same seed.",
                    },
                ),
                "steps": (
                    "INT",
                    {
                        "default": 50,
                        "min": 1,
                        "max": 10000,
                        "tooltip": "Total sampling steps of the full run (the paper: 50).",
                    },
                ),
                "cfg": (
                    "FLOAT",
                    {
                        "default": 7.5,
                        "min": 0.0,
                        "max": 100.0,
                        "step": 0.1,
                        "round": 0.01,
                        "tooltip": "Classifier-free guidance scale, as in KSampler.",
                    },
                ),
                "sampler_name": (
                    host.sampler_names(),
                    {"tooltip": "The sampling algorithm, as in KSampler."},
                ),
                "scheduler": (
                    host.scheduler_names(),
                    {
                        "default": "normal",
                        "tooltip": "The noise schedule, as in KSampler (the paper: normal).",
                    },
                ),
                "positive": ("CONDITIONING", {"tooltip": "The prompt to sample (x: original, z: target)."}),
                "negative": ("CONDITIONING", {"tooltip": "The negative prompt."}),
                "latent_image": (
                    "LATENT",
                    {"tooltip": "The starting latent, usually Empty Latent Image (its size must match the head's)."},
                ),
                "stop_at": (
                    "FLOAT",
                    {
                        "default": 0.8,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "Where to stop, as a fraction of the model's T (1 = pure noise): the step whose "
                        "timestep is nearest. Paper: 0.8 for the original x, 0.5 for the target z.",
                    },
                ),
                "stop_step": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 10000,
                        "tooltip": "An explicit step to stop at instead of stop_at; 0 = use stop_at.",
                    },
                ),
            }
        }

    def capture(
        self,
        model,
        add_noise,
        noise_seed,
        steps,
        cfg,
        sampler_name,
        scheduler,
        positive,
        negative,
        latent_image,
        stop_at,
        stop_step=0,
    ):
        sampling, total = model_schedule(model)
        sigmas = host.ksampler_sigmas(model, steps, sampler_name, scheduler)
        timesteps = [
            float(sampling.timestep(sigmas[i : i + 1].clone()).item()) if float(sigmas[i]) > 0 else 0.0
            for i in range(len(sigmas))
        ]
        step = resolve_stop_step(sigmas.tolist(), timesteps, stop_at, total, stop_step)
        comfy_nodes = host.host_nodes()
        (out,) = comfy_nodes.common_ksampler(
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
        scale = float(model.get_model_object("latent_format").scale_factor)
        record = make_record(
            step=step,
            steps=steps,
            sigma=float(sigmas[step]),
            timestep=timesteps[step],
            num_timesteps=total,
            scale_factor=scale,
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
        return (out, step)


NODE_CLASS_MAPPINGS = {"AVICaptureLatentAtStep": AVICaptureLatentAtStep}
NODE_DISPLAY_NAME_MAPPINGS = {"AVICaptureLatentAtStep": "AVI Capture Latent at Step"}
