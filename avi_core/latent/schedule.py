"""A model's discrete schedule of training timesteps, read from ComfyUI's `model_sampling` object (spec 2).

`model_sampling` is duck-typed here (no ComfyUI import): `noise_scaling(sigma, noise, latent)`,
`inverse_noise_scaling(sigma, latent)`, `num_timesteps` (T), `sigmas` (the T training sigmas, ascending) and
`timestep(sigma)`. `check_schedule` refuses a model whose noise is not `x0 + sigma * eps` (flow models) or
whose timesteps are not numbered 0..T-1, because "0.8T" has no meaning for it; `step_timesteps` gives the
model's timestep of each sigma of a sampler's schedule, which `capture.resolve_stop_step` searches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import UnsupportedModelError
from .capture import check_additive_noise


def sampling_name(sampling: Any) -> str:
    """How messages name a model by its model_sampling: 'the model (sampling: ModelSamplingDiscrete + EPS)'.

    ComfyUI builds model_sampling as `class ModelSampling(schedule, prediction)`; its two bases are named.
    """
    kinds = [k.__name__ for k in type(sampling).__bases__ if k is not object] or [type(sampling).__name__]
    return f"the model (sampling: {' + '.join(kinds)})"


def check_schedule(sampling: Any) -> int:
    """T, the model's number of training timesteps, or UnsupportedModelError when AVI cannot place 0.8T on it.

    reason "flow" / "unknown": the noise is not x0 + sigma * eps (`capture.check_additive_noise`);
    "continuous": no discrete list of T sigmas; "numbering": its timesteps do not run 0..T-1.
    """
    name = sampling_name(sampling)
    check_additive_noise(sampling.noise_scaling, sampling.inverse_noise_scaling, name)
    total = getattr(sampling, "num_timesteps", None)
    sigmas = getattr(sampling, "sigmas", None)
    if not isinstance(total, int) or sigmas is None or len(sigmas) != total:
        raise UnsupportedModelError(
            f"{name} has no discrete schedule of training timesteps, so a fraction of T has no meaning for it",
            reason="continuous",
            model=name,
        )
    first = int(sampling.timestep(sigmas[-1:].clone()).item())
    last = int(sampling.timestep(sigmas[:1].clone()).item())
    if (first, last) != (total - 1, 0):
        raise UnsupportedModelError(
            f"{name} does not number its timesteps 0..{total - 1} (got {last}..{first}), so 0.8T cannot be placed "
            "on its schedule",
            reason="numbering",
            model=name,
        )
    return total


def step_timesteps(sampling: Any, sigmas: Sequence[float] | torch.Tensor) -> list[float]:
    """The model's timestep of each sigma of a sampler's schedule (0.0 for the final sigma 0)."""
    values = torch.as_tensor(sigmas).detach().float().cpu()
    return [
        float(sampling.timestep(values[i : i + 1].clone()).item()) if float(values[i]) > 0 else 0.0
        for i in range(len(values))
    ]
