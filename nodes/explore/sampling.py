"""What 'AVI Capture Trajectory' takes from ComfyUI's sampling internals, imported lazily (like nodes/host.py)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch

from ..host import _require


def sample_keeping_steps(
    model: Any,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: Any,
    negative: Any,
    latent: dict,
    add_noise: bool,
    keep: Collection[int],
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """One full run exactly as KSampler / common_ksampler makes it, keeping the latent at the steps in `keep`.

    Returns (finished LATENT "samples" `[B, C, H, W]`, {step: LATENT "samples" at sigmas[step], CPU float32}).
    The latent at step i is the sampler's state when its callback reports step i (k-diffusion samplers report
    before the update of step i, i.e. at sigmas[i]), converted out of the model's internal scaling.
    """
    sample = _require("comfy.sample")
    utils = _require("comfy.utils")
    preview = _require("latent_preview")
    latent_image = sample.fix_empty_latent_channels(model, latent["samples"])
    if add_noise:
        noise = sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
    else:
        noise = torch.zeros(latent_image.size(), dtype=latent_image.dtype, layout=latent_image.layout, device="cpu")
    show = preview.prepare_callback(model, steps)
    sampling = model.get_model_object("model_sampling")
    sigmas = (
        _require("comfy.samplers")
        .KSampler(
            model,
            steps=steps,
            device=model.load_device,
            sampler=sampler_name,
            scheduler=scheduler,
            denoise=1.0,
            model_options=model.model_options,
        )
        .sigmas.tolist()
    )
    kept: dict[int, torch.Tensor] = {}
    wanted = set(keep)

    def callback(step: int, x0: torch.Tensor, x: torch.Tensor, total_steps: int) -> None:
        if step in wanted and step not in kept:
            sigma = torch.tensor([float(sigmas[step]) if step < len(sigmas) else 0.0], device=x.device)
            out = model.model.process_latent_out(sampling.inverse_noise_scaling(sigma, x.to(torch.float32)))
            kept[step] = out.detach().to("cpu", torch.float32).clone()
        show(step, x0, x, total_steps)

    samples = sample.sample(
        model,
        noise,
        steps,
        cfg,
        sampler_name,
        scheduler,
        positive,
        negative,
        latent_image,
        denoise=1.0,
        disable_noise=not add_noise,
        start_step=None,
        last_step=None,
        force_full_denoise=True,
        noise_mask=latent.get("noise_mask"),
        callback=callback,
        disable_pbar=not utils.PROGRESS_BAR_ENABLED,
        seed=seed,
    )
    return samples, kept
