"""Which sampling step an h belongs to, and whether a step lies in an edit window (spec section 8).

ComfyUI gives a patch the sigma of the current model evaluation (`transformer_options["sigmas"]`) and the
sampler's schedule (`transformer_options["sample_sigmas"]`, steps + 1 values, descending, usually ending in 0;
after KSamplerAdvanced's start_at_step it is the remaining part of the schedule, so steps count from there).

- `step_of_sigma`: the step is the index of the nearest sigma of the schedule; an in-between evaluation of a
  multistage sampler (Heun's or DPM++ 2S's midpoints: sigma_{i+1} < sigma < sigma_i) belongs to its step i,
  the step in progress, even when sigma_{i+1} is nearer. A sigma equal (to a relative 1e-4) to a schedule
  value is that value's step. A sigma above the first is step 0; the final sigma (0, or the last value) is
  counted as the last step, steps - 1.
- `in_window`: step i of `steps` covers the fraction [i / steps, (i + 1) / steps] of the sampling; it is in the
  window [start, end] (fractions, 0 <= start <= end <= 1) when the middle of that interval, (i + 0.5) / steps,
  lies in it. Adjacent windows [0, 0.5] and [0.5, 1] thus split an even number of steps without overlap. A
  window of zero width (start == end) selects the one step whose interval contains that fraction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..errors import ParameterError

SIGMA_RTOL = 1e-4


def _as_floats(values: torch.Tensor | Sequence[float], name: str) -> list[float]:
    if isinstance(values, torch.Tensor):
        values = values.detach().reshape(-1).to("cpu", torch.float64).tolist()
    out = [float(v) for v in values]
    if not out or not all(math.isfinite(v) for v in out):
        raise ParameterError(f"{name} must hold finite values, got {out}", name=name, value=out)
    return out


def _as_float(value: torch.Tensor | float, name: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() == 0:
            raise ParameterError(f"{name} is empty", name=name, value=None)
        # A CFG batch carries one sigma per row, all equal within one evaluation: take the first.
        value = value.detach().reshape(-1)[0].item()
    number = float(value)
    if not math.isfinite(number):
        raise ParameterError(f"{name} = {number} is not finite", name=name, value=number)
    return number


def step_of_sigma(sigma: torch.Tensor | float, sample_sigmas: torch.Tensor | Sequence[float]) -> int:
    """The step (0 .. steps - 1) of a model evaluation at `sigma` in the schedule `sample_sigmas` (see module doc).

    sigma: a number or a tensor (its first value). sample_sigmas: steps + 1 values in sampling order (descending).
    """
    current = _as_float(sigma, "sigma")
    schedule = _as_floats(sample_sigmas, "sample_sigmas")
    steps = max(1, len(schedule) - 1)
    for index, value in enumerate(schedule):
        if abs(current - value) <= SIGMA_RTOL * max(abs(current), abs(value)):
            return min(index, steps - 1)
    for index in range(len(schedule) - 1):
        high, low = schedule[index], schedule[index + 1]
        if max(high, low) > current > min(high, low):
            return index
    # Outside the schedule: nearest end.
    nearest = min(range(len(schedule)), key=lambda i: (abs(schedule[i] - current), i))
    return min(nearest, steps - 1)


def _check_window(start: float, end: float) -> tuple[float, float]:
    start, end = float(start), float(end)
    for name, value in (("start", start), ("end", end)):
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ParameterError(
                f"window {name} = {value:g} is outside 0..1 (a fraction of the sampling)",
                reason="range",
                name=name,
                value=value,
                low=0.0,
                high=1.0,
            )
    if start > end:
        raise ParameterError(
            f"the window starts at {start:g}, after its end {end:g}", reason="order", name="window", value=(start, end)
        )
    return start, end


def in_window(step: int, steps: int, start: float, end: float) -> bool:
    """Whether step `step` (0-based) of `steps` lies in the window [start, end] (fractions; see module doc)."""
    if steps < 1:
        raise ParameterError(f"steps = {steps} must be >= 1", name="steps", value=steps, low=1)
    start, end = _check_window(start, end)
    if start == end:
        point = min(math.floor(start * steps + 1e-9), steps - 1)  # 0.29 * 100 = 28.999...: still step 29
        return step == point
    middle = (step + 0.5) / steps
    return start <= middle <= end


def window_steps(steps: int, start: float, end: float) -> list[int]:
    """The steps of `steps` in the window [start, end], ascending."""
    return [step for step in range(steps) if in_window(step, steps, start, end)]


def nearest_stored_step(sigma: float, stored_sigmas: Sequence[float]) -> int:
    """Index of the stored step whose sigma is nearest to `sigma` on a log scale (per-step direction files).

    Sigmas are clamped to at least 1e-10 before the logarithm; ties go to the earlier step.
    """
    stored = _as_floats(stored_sigmas, "stored sigmas")
    current = math.log(max(_as_float(sigma, "sigma"), 1e-10))
    distances = [abs(math.log(max(value, 1e-10)) - current) for value in stored]
    return min(range(len(stored)), key=lambda i: (distances[i], i))
