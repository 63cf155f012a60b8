"""`invert` in the shape of a ComfyUI k-diffusion sampler function, for a node to wrap in `comfy.samplers.KSAMPLER`.

Host-free: nothing here imports ComfyUI; it only follows the calling convention of ComfyUI's sampler functions
(`comfy/k_diffusion/sampling.py`), which `KSAMPLER.sample` calls as

    sampler_function(model_k, x, sigmas, extra_args=extra_args, callback=k_callback, disable=disable_pbar)

with `model_k(x, sigma * s_in, **extra_args)` returning the guided denoised prediction (CFG applied, in the
model's internal scaling, after `process_latent_in`), `x = noise_scaling(sigmas[0], noise, latent_image)`,
and `callback` taking the dict that `sample_euler` passes ({"x", "i", "sigma", "sigma_hat", "denoised"}).

A node runs an inversion through ComfyUI's own sampling path (model loading, conditioning, patches, CFG,
`process_latent_in` / `process_latent_out`) by sampling with this function, ZERO noise (so `x` is the clean
latent: EPS `noise_scaling` adds noise * sigma to the latent image, or noise * sqrt(1 + sigma^2) on a full
schedule, either way 0), the encoded image as the latent image, and the FULL forward schedule of the sampler
and scheduler (`KSampler(...).sigmas`: the function walks `sigmas[step:]` backwards itself), e.g.

    sampler = comfy.samplers.KSAMPLER(inversion_sampler_function(step, "ddim"))
    samples = comfy.sample.sample_custom(model, torch.zeros_like(image), cfg, sampler, sigmas, positive,
                                         negative, image, seed=seed)

The result is the LATENT "samples" at `sigmas[step]` (ComfyUI's convention), to resume with KSamplerAdvanced
(`start_at_step = step`, `add_noise = disable`, same steps, sampler, scheduler, cfg and prompt).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .invert import ProgressCallback, StepCallback, check_refine, check_sampler, invert
from .schedule import check_sigmas, check_step

SamplerFunction = Callable[..., torch.Tensor]


def inversion_sampler_function(
    step: int,
    sampler: str = "euler",
    refine: int = 0,
    progress: ProgressCallback | None = None,
    on_step: StepCallback | None = None,
) -> SamplerFunction:
    """A ComfyUI sampler function (module doc) that inverts its input latent from sigma 0 to `sigmas[step]`.

    sampler, refine, progress, on_step: as in `invert` (checked now, so a node refuses a bad sampler before
    sampling). on_step receives the latent in the model's internal scaling (before `process_latent_out`).
    """
    check_sampler(sampler)
    check_refine(refine)

    def sample_inversion(
        model: Callable[..., torch.Tensor],
        x: torch.Tensor,
        sigmas: torch.Tensor,
        extra_args: dict[str, Any] | None = None,
        callback: Callable[[dict[str, Any]], Any] | None = None,
        disable: bool | None = None,
    ) -> torch.Tensor:
        extra = {} if extra_args is None else extra_args
        values = check_sigmas(sigmas)
        check_step(values, step)
        last: dict[str, Any] = {}

        def denoise(latent: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            denoised = model(latent, sigma, **extra)
            last.update(x=latent, sigma=sigma[0], denoised=denoised)
            return denoised

        def report(done: int, total: int) -> bool | None:
            if callback is not None and last:
                callback(
                    {
                        "x": last["x"],
                        "i": done - 1,
                        "sigma": last["sigma"],
                        "sigma_hat": last["sigma"],
                        "denoised": last["denoised"],
                    }
                )
            return progress(done, total) if progress is not None else None

        return invert(denoise, x, sigmas, step, sampler, report, refine=refine, on_step=on_step).to(x.dtype)

    return sample_inversion
