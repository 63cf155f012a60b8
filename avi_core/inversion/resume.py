"""Deterministic forward Euler sampling from a step: the host-free twin of resuming with KSamplerAdvanced.

`resume(denoise_fn, latent, sigmas, step)` runs what ComfyUI's "euler" (and "ddim") sampler does with
`start_at_step = step`, `add_noise = disable` and no churn: for i = step .. end - 1,

    x <- x + (sigmas[i + 1] - sigmas[i]) * (x - denoise_fn(x, sigmas[i])) / sigmas[i]

(the last step, to sigma 0, gives the denoised prediction itself). It is the forward map that
`invert.invert` undoes; the tests and a host-free reconstruction check use it. Same conventions as `invert`.
"""

from __future__ import annotations

import logging

import torch

from ..errors import NonFiniteError, OperationStoppedError, ParameterError
from .invert import DenoiseFn, ProgressCallback, check_latent, noise_estimate
from .schedule import SigmaSchedule, check_sigmas, check_step

logger = logging.getLogger("avi.inversion")


def resume(
    denoise_fn: DenoiseFn,
    latent: torch.Tensor,
    sigmas: SigmaSchedule,
    step: int,
    end: int | None = None,
    progress: ProgressCallback | None = None,
) -> torch.Tensor:
    """Sample `latent [B, ...]` (at `sigmas[step]`) forward with Euler steps to `sigmas[end]` (default: 0).

    Returns `[B, ...]`, float32 (float64 for a float64 latent), on `latent`'s device. `progress(done, total)`
    as in `invert` (False stops with OperationStoppedError).
    """
    values = check_sigmas(sigmas)
    start = check_step(values, step)
    steps = len(values) - 1
    stop = steps if end is None else int(end)
    if not start <= stop <= steps:
        raise ParameterError(
            f"end step {stop} is outside {start}..{steps}",
            reason="range",
            name="end",
            value=stop,
            low=start,
            high=steps,
        )
    x = check_latent(latent)
    total = stop - start
    with torch.no_grad():
        for done, i in enumerate(range(start, stop), start=1):
            delta = values[i + 1] - values[i]
            if delta != 0.0:
                x = x + delta * noise_estimate(denoise_fn, x, values[i])
                if not bool(torch.isfinite(x).all()):
                    raise NonFiniteError(
                        f"sampling diverged at step {i + 1} (sigma {values[i + 1]:.4g})",
                        reason="diverged",
                        step=i + 1,
                        sigma=values[i + 1],
                    )
            if progress is not None and progress(done, total) is False:
                raise OperationStoppedError(
                    f"sampling was stopped after {done} of {total} steps", reason="progress", done=done, total=total
                )
    logger.debug("resumed %s latent from step %d to step %d", tuple(x.shape), start, stop)
    return x
