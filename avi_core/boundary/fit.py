"""Fitting a boundary: two labelled sets of samples -> a `Boundary` (unit normal, offset, unit of distance, accuracy).

Held-out accuracy and the boundary used for editing (decided here, recorded in every boundary):

- The samples of each side are split with `svm.stratified_split` (seeded; `holdout` of each side held out).
  A first SVM is fitted on the training part; `accuracy` is its accuracy on the held-out part. This is the
  number the mixing-step search compares and the user reads.
- With `refit=True` (the default) the SVM is then fitted again on ALL samples, and that hyperplane is the
  boundary: more samples make a better normal, and the held-out accuracy of the split fit is an honest (slightly
  pessimistic) estimate of it. With `refit=False` the boundary is the split fit itself.
- `train_accuracy` is the boundary's accuracy on the samples it was fitted on; `unit` is the median |s| of those
  samples (the typical distance of a sample to the boundary, in raw feature units): distances given to the
  editing functions are multiples of it, so distance 1 puts a latent as far on a side as a typical example.

Reproducible: the same data, holdout, seed, C and refit give the same boundary (libsvm is deterministic; the
split is seeded).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import DatasetError, ParameterError
from .samples import Sides, stack_sides
from .svm import (
    SOLVER,
    centred_gram,
    decision,
    feature_mean,
    fit_on_gram,
    hyperplane,
    stratified_split,
)

logger = logging.getLogger("avi.boundary.fit")

DEFAULT_HOLDOUT = 0.2
DEFAULT_C = 1.0
FLATTEN_ORDER = "C"  # row-major: tensor.reshape(N, -1)


@dataclass(frozen=True)
class Boundary:
    """A hyperplane s(x) = normal . x + offset between side a (s < 0) and side b (s > 0).

    normal: float64 `[*S]` on the CPU, unit length (S: the shape of one sample, e.g. `[4, 64, 64]` paper-space or
    `[1280, 8, 8]` h). offset: in raw feature units. unit: the median |s| of the samples the boundary was fitted
    on, > 0: editing distances are multiples of it. accuracy: held-out accuracy (0..1) of the split fit.
    train_accuracy: accuracy of this hyperplane on the samples it was fitted on. counts: (N1, N2) samples per side.
    held_out: samples held out per side. info: how it was made (holdout, seed, C, refit, solver, ...) plus what the
    caller recorded (capture step, steps, sigma, space, prompts); JSON-safe.
    """

    normal: torch.Tensor
    offset: float
    unit: float
    accuracy: float
    train_accuracy: float
    counts: tuple[int, int]
    held_out: tuple[int, int]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.normal.shape)

    @property
    def step(self) -> int | None:
        """The sampling step the sides were captured at, when the caller recorded it."""
        value = self.info.get("step")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def summary(self) -> str:
        """One line for a log or a node's STRING output."""
        shape = "x".join(map(str, self.sample_shape))
        at = f" at step {self.step}" if self.step is not None else ""
        return (
            f"boundary{at}: {self.counts[0]} + {self.counts[1]} samples of {shape}, held-out accuracy "
            f"{100 * self.accuracy:.1f}% ({sum(self.held_out)} held out), unit {self.unit:.4g}"
        )


def _check_settings(holdout: float, seed: int, C: float) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ParameterError(f"seed = {seed!r} must be a non-negative integer", reason="range", name="seed", value=seed)
    if not isinstance(holdout, (int, float)) or isinstance(holdout, bool) or not 0.0 < float(holdout) < 1.0:
        raise ParameterError(
            f"holdout = {holdout!r} must lie strictly between 0 and 1 (the fraction of each side held out)",
            reason="range",
            name="holdout",
            value=holdout,
            low=0,
            high=1,
        )
    if not isinstance(C, (int, float)) or isinstance(C, bool) or not (math.isfinite(C) and C > 0):
        raise ParameterError(f"C = {C!r} must be a positive number", reason="range", name="C", value=C, low=0)


def compute_device(device: torch.device | str | None) -> torch.device:
    """Where the float64 products run: `device`, or the CPU (also for MPS, which has no float64)."""
    chosen = torch.device(device) if device is not None else torch.device("cpu")
    if chosen.type == "mps":
        logger.info("MPS has no float64: fitting the boundary on the CPU")
        return torch.device("cpu")
    return chosen


def sample_distances(
    features: torch.Tensor, rows: torch.Tensor, normal: torch.Tensor, offset: float, device: torch.device
) -> torch.Tensor:
    """s = normal . x + offset of the samples `features[rows]` (float64 `[len(rows)]` on the CPU)."""
    flat = normal.reshape(-1).to(device, torch.float64)
    out = torch.empty(len(rows), dtype=torch.float64)
    step = max(1, (1 << 25) // max(flat.numel(), 1))
    for start in range(0, len(rows), step):
        block = features[rows[start : start + step]].to(device, torch.float64)
        out[start : start + step] = (block @ flat + offset).cpu()
    return out


def fit_sides(
    sides: Sides,
    holdout: float = DEFAULT_HOLDOUT,
    seed: int = 0,
    *,
    C: float = DEFAULT_C,
    refit: bool = True,
    device: torch.device | str | None = None,
    info: Mapping[str, Any] | None = None,
    paired: bool = False,
) -> Boundary:
    """`fit_boundary` on sides already checked and stacked (`samples.stack_sides`)."""
    _check_settings(holdout, seed, C)
    started = time.perf_counter()
    where = compute_device(device)
    features, labels = sides.features, sides.labels
    mean = feature_mean(features, where)
    gram = centred_gram(features, mean)
    train, held = stratified_split(labels, float(holdout), seed, paired=paired)

    coef, b0, r2 = fit_on_gram(gram, labels, train, float(C))
    predicted = decision(gram, train, coef, b0, r2)[held] > 0
    accuracy = float((predicted == (labels[held] == 1)).double().mean())

    rows = torch.arange(len(labels)) if refit else train
    if refit:
        coef, b0, r2 = fit_on_gram(gram, labels, rows, float(C))
    plane = hyperplane(features, gram, mean, rows, coef, b0, r2)
    distances = sample_distances(features, rows, plane.normal, plane.offset, where)
    train_accuracy = float(((distances > 0) == (labels[rows] == 1)).double().mean())
    unit = float(torch.quantile(distances.abs(), 0.5))
    if not (math.isfinite(unit) and unit > 0):
        raise DatasetError(
            "the samples lie on the fitted boundary (median distance 0): it gives no unit of distance",
            reason="degenerate",
            samples=int(len(rows)),
        )
    held_counts = (int((labels[held] == 0).sum()), int((labels[held] == 1).sum()))
    made = {
        "holdout": float(holdout),
        "seed": int(seed),
        "C": float(C),
        "refit": bool(refit),
        "paired": bool(paired),
        "solver": SOLVER,
        "flatten": FLATTEN_ORDER,
        "sign": "s > 0 on side b",
        "unit_rule": "median |s| of the samples the boundary was fitted on",
        "support_vectors": plane.support,
    }
    boundary = Boundary(
        normal=plane.normal.reshape(sides.sample_shape),
        offset=float(plane.offset),
        unit=unit,
        accuracy=accuracy,
        train_accuracy=train_accuracy,
        counts=sides.counts,
        held_out=held_counts,
        info={**dict(info or {}), **made},
    )
    logger.info("%s (fitted in %.2f s)", boundary.summary(), time.perf_counter() - started)
    return boundary


def fit_boundary(
    a: torch.Tensor,
    b: torch.Tensor,
    holdout: float = DEFAULT_HOLDOUT,
    seed: int = 0,
    *,
    C: float = DEFAULT_C,
    refit: bool = True,
    device: torch.device | str | None = None,
    info: Mapping[str, Any] | None = None,
    paired: bool = False,
) -> Boundary:
    """Fit the boundary between side a `[N1, *S]` and side b `[N2, *S]` (s > 0 on b's side).

    a, b: floating-point samples (paper-space latents or h; float32 or float64, float16 h captures are upcast),
    any per-sample shape S, the same for both, at least 2 samples per side, all finite; flattened in C order.
    holdout: the fraction of each side held out to measure `accuracy` (0 < holdout < 1; at least one sample per
    side in each part). seed: the split's seed. C: the SVM's soft-margin constant on samples scaled to unit mean
    squared norm (see `svm`). refit: fit the editing boundary on all samples after measuring (module doc).
    device: where the float64 matrix products run (default CPU). info: JSON-safe facts the caller records
    (capture step, steps, sigma, space, prompts); kept in `Boundary.info` and in the boundary file.
    paired: sample i of a and sample i of b come from one seed (a boundary collection): the held-out part keeps
    pairs together (`svm.stratified_split`); otherwise the accuracy of paired sides is far below chance.

    Raises ShapeMismatchError (not tensors, sample shapes differ), NonFiniteError (NaN / inf), DatasetError (a
    side empty or with fewer than 2 samples; "degenerate": identical samples, no separating direction),
    ParameterError (holdout, seed, C).
    """
    return fit_sides(stack_sides(a, b), holdout, seed, C=C, refit=refit, device=device, info=info, paired=paired)
