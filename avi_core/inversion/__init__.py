"""Real images: deterministic Euler / DDIM inversion of a VAE-encoded latent up to a sampling step (spec 10).

Host-free: the model comes in as `denoise_fn(x [B, ...], sigma [B]) -> denoised`, ComfyUI's k-diffusion
convention (x = x0 + sigma * eps). Modules, one job each:

- `schedule`: the reversed schedule an inversion to a step visits, and where the model is evaluated.
- `invert`: `invert(...)`, `SUPPORTED_SAMPLERS`, `check_sampler`.
- `resume`: the forward Euler sampler `invert` undoes (KSamplerAdvanced resuming at a step, host-free).
- `record`: the capture record of an inverted latent and the pseudo-seed it records.
- `sampler_function`: `invert` as a ComfyUI k-diffusion sampler function (for `comfy.samplers.KSAMPLER`).
"""

from __future__ import annotations

from .invert import (
    SUPPORTED_SAMPLERS,
    DenoiseFn,
    ProgressCallback,
    StepCallback,
    check_sampler,
    invert,
    noise_estimate,
)
from .record import INVERTED_KEY, inversion_record, inversion_seed, is_inverted
from .resume import resume
from .sampler_function import inversion_sampler_function
from .schedule import InversionStep, check_sigmas, check_step, inversion_schedule, reversed_sigmas

__all__ = [
    "INVERTED_KEY",
    "SUPPORTED_SAMPLERS",
    "DenoiseFn",
    "InversionStep",
    "ProgressCallback",
    "StepCallback",
    "check_sampler",
    "check_sigmas",
    "check_step",
    "inversion_record",
    "inversion_sampler_function",
    "inversion_schedule",
    "inversion_seed",
    "invert",
    "is_inverted",
    "noise_estimate",
    "resume",
    "reversed_sigmas",
]
