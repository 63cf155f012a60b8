"""AVI Invert: a real photo's latent, deterministically inverted to a sampling step, with a capture record (spec 10).

The node runs `avi_core.inversion` through ComfyUI's own sampling path (`comfy.sample.sample_custom` with the
engine's sampler function, zero noise, the encoded image as the latent image), so model loading, patches,
conditioning and CFG are exactly those of the KSamplerAdvanced that later resumes the latent. One inversion to
step 0 gives both outputs: the latent at the chosen step is the one the inversion passes on its way (bit for
bit the result of inverting only that far).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from comfy_api.latest import io

from ...avi_core.errors import ParameterError, UnsupportedSamplerError
from ...avi_core.inversion import (
    SUPPORTED_SAMPLERS,
    check_sampler,
    inversion_record,
    inversion_sampler_function,
    inversion_seed,
)
from ...avi_core.inversion.invert import MAX_REFINE
from ...avi_core.latent.capture import CAPTURE_KEY, resolve_stop_step
from ...avi_core.latent.schedule import check_schedule, step_timesteps
from .. import host
from ..common import CATEGORY
from ..fixes import explained
from ..schema_compat import advanced_input, schema
from . import sampling as comfy_sampling
from .fixes import explains_inversion_errors, invert_node_fixes

logger = logging.getLogger("avi.nodes.inversion")


def encoded_latent(latent: dict | None, image: torch.Tensor | None, vae: Any) -> dict:
    """The LATENT to invert: `latent` (the node's `encoded` input, VAE Encode's) as given, or `image [B, H, W, C]`
    encoded with `vae`.

    Exactly one source: ParameterError (reason "source") for none or both, or an image without a vae.
    """
    if latent is not None and image is not None:
        raise ParameterError(
            "both an encoded latent and an image are connected: AVI Invert inverts one of them",
            reason="source",
            name="encoded",
        )
    if latent is not None:
        if not isinstance(latent, dict) or not isinstance(latent.get("samples"), torch.Tensor):
            raise ParameterError("the encoded input is not a LATENT", reason="source", name="encoded")
        return latent
    if image is None:
        raise ParameterError("nothing to invert: neither an encoded latent nor an image is connected", reason="source")
    if vae is None:
        raise ParameterError("an image is connected but no VAE to encode it with", reason="source", name="vae")
    return {"samples": vae.encode(image[:, :, :, :3])}


class AVIInvert(io.ComfyNode):
    """Euler / DDIM inversion of an encoded photo to the step nearest a fraction of T, like a captured latent."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVIInvert",
            display_name="AVI Invert",
            category=CATEGORY,
            search_aliases=["attribute", "svd", "edit", "inversion", "ddim inversion", "real image", "photo", "invert"],
            description=(
                "Edits real photos: runs the sampler backwards (deterministic DDIM / Euler inversion) from a "
                "VAE-encoded image, with the ORIGINAL prompt, to the step nearest a fraction of T (0.8 for AVI's x). "
                "The latent comes with the same capture record 'AVI Capture Latent at Step' makes at that step, so "
                "AVI Merge takes it as x. It also returns the fully inverted latent at step 0: sample the target "
                "prompt from it (Capture, add_noise disable, noise_seed = seed) to get z. Resuming the latent with "
                "KSamplerAdvanced (start_at_step = step, add_noise disable, same prompt, cfg, sampler, scheduler) "
                "reconstructs the photo. Only euler and ddim can be inverted."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model (SD 1.x/2.x/SDXL; flow models are refused)."),
                io.Conditioning.Input(
                    "positive",
                    tooltip="The ORIGINAL prompt: what the photo shows (the prompt that resumes it later).",
                ),
                io.Conditioning.Input("negative", tooltip="The negative prompt (the same as when resuming)."),
                io.Int.Input(
                    "steps",
                    default=50,
                    min=1,
                    max=10000,
                    tooltip="Total sampling steps of the full run (the paper inverts with 50 DDIM steps).",
                ),
                io.Float.Input(
                    "cfg",
                    default=7.5,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip="Classifier-free guidance while inverting. Use the cfg of the sampler that resumes; "
                    "a lower cfg on both (e.g. 1 to 3) reconstructs the photo more faithfully.",
                ),
                io.Combo.Input(
                    "sampler_name",
                    options=host.sampler_names(),
                    default="euler",
                    tooltip=f"The sampler to undo: only {' and '.join(SUPPORTED_SAMPLERS)} can be inverted (the "
                    "others add noise or use several model calls per step). Resume with the same one.",
                ),
                io.Combo.Input(
                    "scheduler",
                    options=host.scheduler_names(),
                    default="normal",
                    tooltip="The noise schedule, as in KSampler (the paper: normal). Resume with the same one.",
                ),
                io.Float.Input(
                    "stop_at",
                    default=0.8,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Where the inversion stops, as a fraction of the model's T (1 = pure noise): the step "
                    "whose timestep is nearest. AVI's x: 0.8.",
                ),
                io.Int.Input(
                    "stop_step",
                    default=0,
                    min=0,
                    max=10000,
                    tooltip="An explicit step to stop at instead of stop_at; 0 = use stop_at.",
                ),
                advanced_input(
                    io.Int.Input,
                    "refine",
                    default=0,
                    min=0,
                    max=MAX_REFINE,
                    tooltip="Fixed-point iterations per step (0 = plain DDIM inversion, the paper's). Each one "
                    "costs a model call per step and brings the reconstruction closer to the photo.",
                ),
                io.Latent.Input(
                    "encoded",
                    optional=True,
                    tooltip="The photo's latent from VAE Encode (or connect image and vae instead).",
                ),
                io.Image.Input(
                    "image",
                    optional=True,
                    tooltip="The photo (Load Image), encoded here with vae; leave unconnected when encoded is.",
                ),
                io.Vae.Input("vae", optional=True, tooltip="The checkpoint's VAE, to encode image."),
            ],
            outputs=[
                io.Latent.Output(
                    "latent",
                    display_name="latent",
                    tooltip="The photo inverted to the stop step, with an AVI capture record (like Capture's at "
                    "that step, marked inverted): AVI Merge's original (x), or resume it to reconstruct the photo.",
                ),
                io.Int.Output(
                    "step",
                    display_name="step",
                    tooltip="The stop step: connect it to start_at_step of the KSamplerAdvanced that resumes.",
                ),
                io.Latent.Output(
                    "noise",
                    display_name="noise",
                    tooltip="The photo inverted all the way, to step 0: the latent_image of the target prompt's "
                    "Capture (add_noise disable), which makes z.",
                ),
                io.Int.Output(
                    "seed",
                    display_name="seed",
                    tooltip="The photo's pseudo-seed, recorded as the seed of both latents: connect it to the "
                    "noise_seed of the target's Capture so that AVI Merge accepts x and z as a pair.",
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, sampler_name: str | None = None) -> bool | str:
        # Refuse at queue time, before anything samples (a linked sampler_name is checked in execute).
        if isinstance(sampler_name, str):
            try:
                check_sampler(sampler_name)
            except UnsupportedSamplerError as err:
                return explained(err, invert_node_fixes())
        return True

    @classmethod
    @explains_inversion_errors
    def execute(
        cls,
        model,
        positive,
        negative,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        stop_at: float,
        stop_step: int = 0,
        refine: int = 0,
        encoded: dict | None = None,
        image: torch.Tensor | None = None,
        vae=None,
    ) -> io.NodeOutput:
        check_sampler(sampler_name)
        source = encoded_latent(encoded, image, vae)
        sampling = model.get_model_object("model_sampling")
        total = check_schedule(sampling)
        sigmas = host.ksampler_sigmas(model, steps, sampler_name, scheduler)
        values = sigmas.tolist()
        timesteps = step_timesteps(sampling, values)
        step = resolve_stop_step(values, timesteps, stop_at, total, stop_step)
        clean = comfy_sampling.fix_empty_latent_channels(model, source["samples"])
        seed = inversion_seed(clean)
        scale_factor = float(model.get_model_object("latent_format").scale_factor)

        bar = host.progress_bar(steps)
        kept: dict[str, torch.Tensor] = {}

        def progress(done: int, count: int) -> None:
            host.throw_if_interrupted()  # Cancel: comfy's exception propagates through the sampler untouched
            bar.update_absolute(done, count)

        def on_step(at: int, x: torch.Tensor) -> None:
            if at == step:
                kept["x"] = x.detach().clone()

        function = inversion_sampler_function(0, sampler_name, refine, progress=progress, on_step=on_step)
        noise_samples = comfy_sampling.sample_with_function(
            model, function, sigmas, cfg, positive, negative, clean, seed
        )
        at_step = comfy_sampling.latent_out(model, kept["x"]).to(noise_samples.device, noise_samples.dtype)

        def with_record(samples: torch.Tensor, at: int) -> dict:
            record = inversion_record(
                sigmas=values,
                step=at,
                timestep=timesteps[at],
                num_timesteps=total,
                scale_factor=scale_factor,
                seed=seed,
                batch=samples.shape[0],
                sampler=sampler_name,
                scheduler=scheduler,
                denoise=1.0,
                shape=tuple(samples.shape),
            )
            out = {k: v for k, v in source.items() if k != "noise_mask"}
            out["samples"] = samples
            out[CAPTURE_KEY] = record
            return out

        x = with_record(at_step, step)
        noise = with_record(noise_samples, 0)
        logger.info(
            "AVI invert: %d image(s) to step %d of %d (timestep %d of %d, sigma %.4g), %s, refine %d, seed %d",
            at_step.shape[0],
            step,
            steps,
            x[CAPTURE_KEY]["timestep"],
            total,
            values[step],
            sampler_name,
            refine,
            seed,
        )
        return io.NodeOutput(x, step, noise, seed)


NODES: list[type[io.ComfyNode]] = [AVIInvert]
