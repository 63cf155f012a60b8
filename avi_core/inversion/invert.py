"""Deterministic Euler / DDIM inversion of a clean latent up to a sampling step (spec section 10).

Convention (ComfyUI's, variance-exploding): a latent at noise level sigma is `x = x0 + sigma * eps`, and the
model, given (x, sigma), predicts the clean latent `denoised` (ComfyUI's `calculate_denoised` for EPS models),
so its noise estimate is `eps = (x - denoised) / sigma`. `denoise_fn(x, sigma)` is exactly what ComfyUI's
k-diffusion samplers call: `x [B, ...]` and `sigma [B]` (one value per batch item, like `sigma * s_in`) ->
`denoised`, same shape as x.

All the update rules are linear and homogeneous in (x, denoised), so `invert` works in whichever scaling
`latent` and `denoise_fn` share: the model's internal space (`x0 + sigma * eps`, what a ComfyUI sampler
function receives after `process_latent_in`) or a LATENT's "samples" (that divided by the scale factor s),
as long as denoise_fn takes and returns that same scaling.

The update, for both supported samplers: ComfyUI's "ddim" sampler IS its Euler sampler
(`sampler_object("ddim")` builds `ksampler("euler", ...)`), and deterministic DDIM (eta = 0) written in the
variance-exploding variable is Euler on sigma: with `paper = x / sqrt(1 + sigma^2)` and
`abar = 1 / (1 + sigma^2)`, the DDIM step `paper' = sqrt(abar') * x0_pred + sqrt(1 - abar') * eps` is
`x' = x0_pred + sigma' * eps = x + (sigma' - sigma) * eps`. Inversion runs the reversed schedule
(`schedule.inversion_schedule`) with the DDIM-inversion rule, the model evaluated at the current point and the
next (higher) sigma:

    x_{j+1} = x_j + (sigma_to - sigma_from) * eps(x_j, sigma_to)

which also covers the first step from sigma 0. `refine = n` then applies n fixed-point iterations per step,

    x_{j+1} <- x_j + (sigma_to - sigma_from) * eps(x_{j+1}, sigma_to)

whose fixed point is the exact inverse of the forward Euler step (sampling from x_{j+1} at sigma_to lands
exactly on x_j), at the cost of n more model calls per step (fixed-point inversion: Pan et al. 2023, "Effective
real image editing with accelerated iterative diffusion inversion"; Garibi et al. 2024, "ReNoise").
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from ..errors import NonFiniteError, OperationStoppedError, ParameterError, ShapeMismatchError, UnsupportedSamplerError
from .schedule import InversionStep, SigmaSchedule, inversion_schedule

logger = logging.getLogger("avi.inversion")

# denoise_fn(x [B, ...], sigma [B]) -> denoised [B, ...] (the model's clean-latent prediction, x's scaling).
DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# progress(done, total) after every inversion step (done = 1..total). Returning False stops the inversion with
# OperationStoppedError (a latent stopped half-way has no step to be resumed from); exceptions propagate.
ProgressCallback = Callable[[int, int], bool | None]
# on_step(step, x) after every inversion step: the sampling step the latent `x [B, ...]` has reached (from
# steps - 1 down to the target) and the latent there (the working tensor itself: clone it to keep it).
StepCallback = Callable[[int, torch.Tensor], None]

# ComfyUI sampler names whose sampling is the deterministic Euler step that `invert` undoes.
SUPPORTED_SAMPLERS: tuple[str, ...] = ("euler", "ddim")
MAX_REFINE = 100


def check_sampler(sampler: str) -> str:
    """`sampler` when inversion has a meaning for it (SUPPORTED_SAMPLERS), else UnsupportedSamplerError."""
    if sampler not in SUPPORTED_SAMPLERS:
        raise UnsupportedSamplerError(
            f"inversion is defined for the deterministic samplers {', '.join(SUPPORTED_SAMPLERS)}, not for "
            f"{sampler!r}: its steps cannot be undone by running its update backwards",
            reason="inversion",
            sampler=sampler,
            supported=list(SUPPORTED_SAMPLERS),
        )
    return sampler


def working_dtype(latent: torch.Tensor) -> torch.dtype:
    """float64 for a float64 latent, float32 for every other dtype (half, bfloat16, float32)."""
    return torch.float64 if latent.dtype == torch.float64 else torch.float32


def check_latent(latent: torch.Tensor, what: str = "latent") -> torch.Tensor:
    """`latent` as a float32+ tensor `[B, ...]` (at least 2 dimensions, finite); raises on anything else."""
    if not isinstance(latent, torch.Tensor):
        raise TypeError(f"the {what} must be a torch.Tensor, got {type(latent).__name__}")
    if latent.dim() < 2 or latent.shape[0] == 0 or latent.numel() == 0:
        raise ShapeMismatchError(
            f"the {what} must be a non-empty batch [B, C, H, W], got shape {tuple(latent.shape)}",
            reason="shape",
            shape=tuple(latent.shape),
        )
    if latent.is_complex() or not latent.is_floating_point():
        raise TypeError(f"the {what} must hold real floating-point values, got {latent.dtype}")
    work = latent.detach().to(working_dtype(latent))
    if not bool(torch.isfinite(work).all()):
        raise NonFiniteError(f"the {what} holds NaN or infinity", reason="input", shape=tuple(latent.shape))
    return work


def noise_estimate(denoise_fn: DenoiseFn, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """eps = (x - denoise_fn(x, sigma)) / sigma for `x [B, ...]` at one sigma > 0, checked (shape, finite)."""
    sigmas = torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)
    denoised = denoise_fn(x, sigmas)
    if not isinstance(denoised, torch.Tensor) or denoised.shape != x.shape:
        got = tuple(denoised.shape) if isinstance(denoised, torch.Tensor) else type(denoised).__name__
        raise ShapeMismatchError(
            f"the model's denoised prediction at sigma {sigma:.4g} has shape {got}, the latent {tuple(x.shape)}",
            reason="denoised",
            expected=tuple(x.shape),
            got=got,
        )
    denoised = denoised.detach().to(device=x.device, dtype=x.dtype)
    if not bool(torch.isfinite(denoised).all()):
        raise NonFiniteError(
            f"the model's denoised prediction at sigma {sigma:.4g} holds NaN or infinity", reason="model", sigma=sigma
        )
    return (x - denoised) / sigma


def _inversion_step(denoise_fn: DenoiseFn, x: torch.Tensor, plan: InversionStep, refine: int) -> torch.Tensor:
    delta = plan.delta
    nxt = x + delta * noise_estimate(denoise_fn, x, plan.sigma_eval)
    for _ in range(refine):
        nxt = x + delta * noise_estimate(denoise_fn, nxt, plan.sigma_eval)
    if not bool(torch.isfinite(nxt).all()):
        raise NonFiniteError(
            f"inversion diverged at sigma {plan.sigma_to:.4g} (step {plan.to_step}): the latent holds NaN or infinity",
            reason="diverged",
            step=plan.to_step,
            sigma=plan.sigma_to,
        )
    return nxt


def check_refine(refine: int) -> int:
    """The number of fixed-point iterations per step, 0..MAX_REFINE, else ParameterError."""
    if isinstance(refine, bool) or not isinstance(refine, int) or not 0 <= refine <= MAX_REFINE:
        raise ParameterError(
            f"refine = {refine!r} must be a whole number of iterations in 0..{MAX_REFINE}",
            reason="range",
            name="refine",
            value=refine,
            low=0,
            high=MAX_REFINE,
        )
    return refine


def invert(
    denoise_fn: DenoiseFn,
    latent: torch.Tensor,
    sigmas: SigmaSchedule,
    step: int,
    sampler: str = "euler",
    progress: ProgressCallback | None = None,
    *,
    refine: int = 0,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Invert the clean latent `latent [B, ...]` (sigma 0) up to `sigmas[step]`.

    sigmas: the sampler's full schedule as ComfyUI computes it (`steps + 1` values, the last 0); step: the
    target sampling step (0 = the first step, the noise a full run starts from; < steps). sampler: one of
    SUPPORTED_SAMPLERS (both run the same update, see the module doc). refine: fixed-point iterations per step
    (0 = plain DDIM inversion, one model call per step; n costs n + 1 calls per step).

    Returns the latent at `sigmas[step]` in the convention and scaling of `latent` (ComfyUI's `x0 + sigma * eps`,
    module doc), shape `[B, ...]`, float32 (float64 for a float64 latent), on `latent`'s device. Resuming
    from it with the same sampler, schedule and model (KSamplerAdvanced `start_at_step = step`,
    `add_noise = disable`) gives back `latent` up to the inversion error.

    Raises UnsupportedSamplerError, ParameterError (schedule, step, refine), NonFiniteError (input, model
    output, divergence), ShapeMismatchError, OperationStoppedError when `progress` returns False.
    """
    check_sampler(sampler)
    refine = check_refine(refine)
    plan = inversion_schedule(sigmas, step)
    x = check_latent(latent)
    total = len(plan)
    logger.debug(
        "inverting %s latent to step %d (sigma %.4g): %d steps, sampler %s, refine %d",
        tuple(x.shape),
        plan[-1].to_step,
        plan[-1].sigma_to,
        total,
        sampler,
        refine,
    )
    with torch.no_grad():
        for item in plan:
            if item.delta > 0.0:
                x = _inversion_step(denoise_fn, x, item, refine)
            if on_step is not None:
                on_step(item.to_step, x)
            if progress is not None and progress(item.index + 1, total) is False:
                raise OperationStoppedError(
                    f"the inversion was stopped after {item.index + 1} of {total} steps, at sigma "
                    f"{item.sigma_to:.4g} instead of the target {plan[-1].sigma_to:.4g}",
                    reason="progress",
                    done=item.index + 1,
                    total=total,
                )
    logger.info(
        "inverted %d latent(s) to step %d (sigma %.4g) in %d steps (%s, refine %d)",
        x.shape[0],
        plan[-1].to_step,
        plan[-1].sigma_to,
        total,
        sampler,
        refine,
    )
    return x
