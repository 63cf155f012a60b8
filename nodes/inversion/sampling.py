"""What 'AVI Invert' takes from ComfyUI's sampling internals, imported lazily (like nodes/host.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..host import _require


def fix_empty_latent_channels(model: Any, samples: torch.Tensor) -> torch.Tensor:
    """The latent with the model's channel count, as KSampler prepares it (`comfy.sample`)."""
    return _require("comfy.sample").fix_empty_latent_channels(model, samples)


def sample_with_function(
    model: Any,
    function: Callable[..., torch.Tensor],
    sigmas: torch.Tensor,
    cfg: float,
    positive: Any,
    negative: Any,
    latent_image: torch.Tensor,
    seed: int,
) -> torch.Tensor:
    """`comfy.sample.sample_custom` with a k-diffusion sampler function, zero noise and ComfyUI's pipeline.

    latent_image `[B, C, H, W]` (LATENT "samples"); returns LATENT "samples" `[B, C, H, W]`.
    """
    samplers = _require("comfy.samplers")
    sample = _require("comfy.sample")
    utils = _require("comfy.utils")
    noise = torch.zeros(latent_image.size(), dtype=latent_image.dtype, layout=latent_image.layout, device="cpu")
    return sample.sample_custom(
        model,
        noise,
        cfg,
        samplers.KSAMPLER(function),
        sigmas,
        positive,
        negative,
        latent_image,
        disable_pbar=not utils.PROGRESS_BAR_ENABLED,
        seed=seed,
    )


def latent_out(model: Any, internal: torch.Tensor) -> torch.Tensor:
    """A latent in the model's internal scaling (what a sampler function sees) -> LATENT "samples"."""
    return model.model.process_latent_out(internal.to(torch.float32))
