"""The reversed schedule of an inversion: which sigmas it visits, and where the model is evaluated (spec 10).

Input is the sampler's full sigma schedule exactly as ComfyUI computes it for KSamplerAdvanced
(`KSampler(...).sigmas`: `steps + 1` values, non-increasing, the last one 0; the samplers that invert,
euler and ddim, drop no sigma). Sampling walks it forwards, step i going from `sigmas[i]` to `sigmas[i + 1]`;
a latent "at step s" is the one at noise level `sigmas[s]` (what KSamplerAdvanced returns with
`end_at_step = s`, and resumes from with `start_at_step = s`).

Inversion walks the same sigmas backwards, from the clean latent (sigma 0, the VAE-encoded image) up to
`sigmas[step]`:

    0 = sigmas[steps] -> sigmas[steps - 1] -> ... -> sigmas[step]

i.e. `steps - step` inversion steps, each undoing one forward sampling step. Inversion step j goes from
`sigma_from = sigmas[steps - j]` to `sigma_to = sigmas[steps - j - 1]`.

Where the model is evaluated (the first step's special case): the forward Euler step from `sigma_to` down to
`sigma_from` uses the noise prediction eps(x_to, sigma_to) at its starting point; undoing it exactly would need
x_to, the unknown. Standard DDIM inversion (Song et al. 2021; Mokady et al. 2023, "null-text inversion"; the
`DDIMInverseScheduler` of diffusers) approximates x_to by the current point x_from and evaluates the model at
(x_from, sigma_to): the current latent at the NEXT (higher) noise level. This rule is used for every step, so
the first step, from sigma 0 where the model cannot be evaluated (eps = (x - denoised) / sigma is undefined),
needs no special code: it evaluates the clean latent at `sigmas[-2]`, the smallest non-zero sigma, just as
DDIM inversion steps from t - 1 to t with eps at the current point. The error this approximation adds per step
is of order (sigma_to - sigma_from)^2, so it vanishes as steps grow; the optional fixed-point refinement of
`invert` removes it (see `avi_core.inversion.invert`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import NonFiniteError, ParameterError

SigmaSchedule = Sequence[float] | torch.Tensor


@dataclass(frozen=True)
class InversionStep:
    """One step of an inversion, in the order it runs.

    index: 0 for the first inversion step (from the clean latent). from_step / to_step: the sampling steps
    (indices into `sigmas`) the step starts and ends at (to_step = from_step - 1). sigma_from / sigma_to: their
    sigmas (sigma_to >= sigma_from). sigma_eval: where the model is evaluated (= sigma_to: the DDIM rule).
    """

    index: int
    from_step: int
    to_step: int
    sigma_from: float
    sigma_to: float
    sigma_eval: float

    @property
    def delta(self) -> float:
        """sigma_to - sigma_from (>= 0): how much noise this step adds."""
        return self.sigma_to - self.sigma_from


def check_sigmas(sigmas: SigmaSchedule) -> list[float]:
    """The schedule as a list of floats, checked: >= 2 values, finite, non-increasing, last 0, others > 0.

    Raises NonFiniteError (reason "sigmas") for NaN or infinity, ParameterError (name "sigmas") otherwise.
    """
    if isinstance(sigmas, torch.Tensor):
        if sigmas.dim() != 1:
            raise ParameterError(
                f"the sigma schedule must be one list of values, got a tensor of shape {tuple(sigmas.shape)}",
                reason="shape",
                name="sigmas",
                value=tuple(sigmas.shape),
            )
        values = [float(v) for v in sigmas.detach().to("cpu", torch.float64).tolist()]
    else:
        values = [float(v) for v in sigmas]
    if len(values) < 2:
        raise ParameterError(
            f"the sigma schedule has {len(values)} value(s); a schedule of n steps has n + 1 (the last one 0)",
            reason="short",
            name="sigmas",
            value=len(values),
        )
    if not all(math.isfinite(v) for v in values):
        raise NonFiniteError("the sigma schedule holds NaN or infinity", reason="sigmas", sigmas=values)
    if values[-1] != 0.0:
        raise ParameterError(
            f"the sigma schedule ends at {values[-1]:.4g}, not 0: inversion starts from the clean latent at sigma 0",
            reason="end",
            name="sigmas",
            value=values[-1],
        )
    if any(v <= 0.0 for v in values[:-1]):
        raise ParameterError(
            "the sigma schedule has a sigma <= 0 before its last value", reason="order", name="sigmas", value=values
        )
    if any(a < b for a, b in zip(values, values[1:], strict=False)):
        raise ParameterError(
            "the sigma schedule is not in sampling order (non-increasing sigmas)",
            reason="order",
            name="sigmas",
            value=values,
        )
    return values


def check_step(values: Sequence[float], step: int) -> int:
    """`step` as an int when the schedule has noise there (0 <= step < steps), else ParameterError."""
    steps = len(values) - 1
    try:
        if isinstance(step, bool):
            raise TypeError
        number = operator.index(step)
    except TypeError:
        raise ParameterError(
            f"the target step must be a whole number, got {step!r}", reason="type", name="step", value=step
        ) from None
    if not 0 <= number < steps:
        raise ParameterError(
            f"target step {number} is outside 0..{steps - 1}: with {steps} steps, step {steps} is the clean latent "
            "(sigma 0) and inversion must end at a step that has noise",
            reason="range",
            name="step",
            value=number,
            low=0,
            high=steps - 1,
        )
    return number


def reversed_sigmas(sigmas: SigmaSchedule, step: int) -> list[float]:
    """The sigmas an inversion to `step` visits, in the order it visits them: `sigmas[step:]` reversed.

    Starts at 0 (the clean latent) and ends at `sigmas[step]`; `steps - step + 1` values.
    """
    values = check_sigmas(sigmas)
    step = check_step(values, step)
    return values[step:][::-1]


def inversion_schedule(sigmas: SigmaSchedule, step: int) -> list[InversionStep]:
    """The `steps - step` inversion steps from sigma 0 up to `sigmas[step]`, in the order they run (module doc)."""
    values = check_sigmas(sigmas)
    step = check_step(values, step)
    steps = len(values) - 1
    plan = []
    for index, from_step in enumerate(range(steps, step, -1)):
        sigma_from, sigma_to = values[from_step], values[from_step - 1]
        plan.append(
            InversionStep(
                index=index,
                from_step=from_step,
                to_step=from_step - 1,
                sigma_from=sigma_from,
                sigma_to=sigma_to,
                sigma_eval=sigma_to,
            )
        )
    return plan
