"""The mixing-step search (spec section 9): fit a boundary at each candidate step, then choose one by the rule.

The rule: among the candidate steps, choose the NOISIEST step whose held-out accuracy is within `tolerance`
(default 0.02, i.e. 2 percentage points) of the best accuracy, inclusive: acc(step) >= best - tolerance.
Editing at a noisier step changes more of the image, at a less noisy step keeps more.

Ordering, precisely: candidates are step indices of ONE sampling schedule (the same number of steps, sampler,
scheduler and denoise). Step 0 is the first step of the sampling, the noisiest; the schedule's sigma decreases
as the step index grows, so "noisiest" = the smallest step index = the highest sigma. When the candidates carry
their sigmas (`captures.StepSides`), the search checks that they decrease with the step index.

Resolution: a held-out accuracy moves in steps of 1 / (held-out samples). With fewer than 50 held-out samples
(250 pairs per step at holdout 0.2, both sides together) one sample is worth more than 2 points, and the rule
reduces to "the noisiest step as accurate as the best".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch

from ..errors import ParameterError, StepMismatchError
from .captures import StepSides
from .fit import DEFAULT_C, DEFAULT_HOLDOUT, Boundary, fit_boundary

logger = logging.getLogger("avi.boundary.search")

DEFAULT_TOLERANCE = 0.02  # 2 points of accuracy
_EPSILON = 1e-9  # accuracies are fractions k/n: a comparison "within 2 points" must not fail on float rounding

# Called after each fitted step as progress(done, total).
SearchProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class StepSearch:
    """The result of a search. steps: candidate steps, increasing (noisiest first). accuracies: held-out accuracy
    of each (0..1). chosen: the step the rule picks. best: the highest accuracy. tolerance: the rule's margin.
    boundaries: the boundary fitted at each step."""

    steps: tuple[int, ...]
    accuracies: tuple[float, ...]
    chosen: int
    best: float
    tolerance: float
    boundaries: dict[int, Boundary] = field(default_factory=dict)

    @property
    def boundary(self) -> Boundary:
        """The boundary at the chosen step."""
        return self.boundaries[self.chosen]

    def summary(self) -> str:
        """One line: each step's accuracy, then the choice."""
        curve = ", ".join(f"{s}: {100 * a:.1f}%" for s, a in zip(self.steps, self.accuracies, strict=True))
        return (
            f"held-out accuracy by step ({curve}); chosen step {self.chosen}, the noisiest within "
            f"{100 * self.tolerance:g} points of the best ({100 * self.best:.1f}%)"
        )


def _check_steps(steps: Sequence[int]) -> None:
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in steps) or len(set(steps)) != len(steps):
        raise ParameterError(
            f"the steps {list(steps)} must be distinct non-negative integers",
            reason="list",
            name="steps",
            value=list(steps),
        )


def _check_tolerance(tolerance: float) -> None:
    if isinstance(tolerance, bool) or not (
        isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and 0.0 <= tolerance <= 1.0
    ):
        raise ParameterError(
            f"tolerance = {tolerance!r} must lie in 0..1 (0.02 = 2 points)",
            reason="range",
            name="tolerance",
            value=tolerance,
            low=0,
            high=1,
        )


def choose_mixing_step(steps: Sequence[int], accuracies: Sequence[float], tolerance: float = DEFAULT_TOLERANCE) -> int:
    """The rule: the smallest step index (noisiest) whose accuracy >= max(accuracies) - tolerance.

    steps: distinct non-negative step indices of one schedule (any order); accuracies: the held-out accuracy of
    each, in 0..1; tolerance: in accuracy units (0.02 = 2 points), 0..1. Ties at the best accuracy also go to the
    noisiest step.
    """
    if len(steps) == 0 or len(steps) != len(accuracies):
        raise ParameterError(
            f"{len(steps)} steps and {len(accuracies)} accuracies: the rule needs one accuracy per step, at least one",
            reason="list",
            name="steps",
            value=len(steps),
        )
    _check_steps(steps)
    for value in accuracies:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ParameterError(
                f"accuracy {value!r} is not a fraction in 0..1",
                reason="range",
                name="accuracy",
                value=value,
                low=0,
                high=1,
            )
    _check_tolerance(tolerance)
    best = max(accuracies)
    return min(s for s, a in zip(steps, accuracies, strict=True) if a >= best - tolerance - _EPSILON)


def _check_schedule(candidates: Mapping[int, StepSides | tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Sigmas (when known) must decrease as the step grows, and the number of steps be one."""
    infos = {step: value.info for step, value in candidates.items() if isinstance(value, StepSides)}
    counts = {info["steps"] for info in infos.values() if "steps" in info}
    if len(counts) > 1:
        raise StepMismatchError(
            f"the candidate steps come from schedules of {sorted(counts)} steps: a search compares the steps of one "
            "schedule",
            reason="steps",
            role="search",
        )
    known = sorted((step, info["sigma"]) for step, info in infos.items() if "sigma" in info)
    for (s0, sigma0), (s1, sigma1) in zip(known[:-1], known[1:], strict=True):
        if not sigma1 < sigma0:
            raise StepMismatchError(
                f"step {s1} has sigma {sigma1:.6g}, not less than step {s0}'s {sigma0:.6g}: the candidates do not come "
                "from one sampling schedule",
                reason="schedule",
                role="search",
                step=s1,
            )


def mixing_step_search(
    candidates: Mapping[int, StepSides | tuple[torch.Tensor, torch.Tensor]],
    holdout: float = DEFAULT_HOLDOUT,
    seed: int = 0,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    C: float = DEFAULT_C,
    refit: bool = True,
    device: torch.device | str | None = None,
    progress: SearchProgress | None = None,
    paired: bool = False,
) -> StepSearch:
    """Fit a boundary at each candidate step and choose the mixing step by the rule (module doc).

    candidates: {step: StepSides} (e.g. `captures.dataset_sides`) or {step: (a `[N1, *S]`, b `[N2, *S]`)}, the
    sides captured at that step of one schedule. Every step is fitted with the same holdout and seed (so, with the
    same seeds captured at every step in the same order, the same samples are held out at every step), C, refit
    and device (see `fit_boundary`). progress(done, total) is called after each step. paired: the sides are
    pairs from the same seeds, as `captures.dataset_sides` gives them: pairs are held out together.
    """
    if not candidates:
        raise ParameterError("there are no candidate steps to search", reason="list", name="steps", value=0)
    _check_tolerance(tolerance)
    _check_steps(list(candidates))
    _check_schedule(candidates)
    steps = sorted(candidates)
    boundaries: dict[int, Boundary] = {}
    for done, step in enumerate(steps, start=1):
        value = candidates[step]
        if isinstance(value, StepSides):
            a, b, info = value.a, value.b, dict(value.info)
        else:
            (a, b), info = value, {}
        info["step"] = step
        boundaries[step] = fit_boundary(a, b, holdout, seed, C=C, refit=refit, device=device, info=info, paired=paired)
        if progress is not None:
            progress(done, len(steps))
    accuracies = tuple(boundaries[s].accuracy for s in steps)
    chosen = choose_mixing_step(steps, accuracies, tolerance)
    curve = {"steps": steps, "accuracies": list(accuracies), "chosen": chosen, "tolerance": float(tolerance)}
    boundaries = {s: replace(b, info={**b.info, "search": curve}) for s, b in boundaries.items()}
    result = StepSearch(
        steps=tuple(steps),
        accuracies=accuracies,
        chosen=chosen,
        best=max(accuracies),
        tolerance=float(tolerance),
        boundaries=boundaries,
    )
    logger.info("%s", result.summary())
    return result
