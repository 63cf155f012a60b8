"""Supervised h-space directions and their disentanglement (spec section 8, Haas et al.).

- `mean_difference_direction(h_a, h_b)`: n = mean(h_b) - mean(h_a), normalised to unit length: the direction
  from set a towards set b (say images of prompt A and of prompt B at one step).
- `disentangle(direction, others)`: n' = n - N^T (N N^T)^-1 N n, renormalised, where the rows of N are the
  other directions (flattened row-major): n with its components along every other direction removed. Computed
  in float64 through an orthonormal basis of the rows of N (a thin SVD of N), which equals the formula when the
  rows are independent and stays defined when they are not (the pseudo-inverse).
- `separation(h_a, h_b, direction)`: how far apart the two sets' means are along a unit direction,
  direction . (mean(h_b) - mean(h_a)): the natural unit of strength for a supervised direction (a strength of 1
  moves h by the distance between the two sets along it).

All inputs are `[N, *shape]` batches (directions `[*shape]`, others `[M, *shape]`); results are float32
(float64 when an input is), on the first input's device.
"""

from __future__ import annotations

import logging

import torch

from ..errors import DatasetError, ParameterError, ShapeMismatchError
from ._tensors import check_finite, check_samples, same_shape, working_dtype

logger = logging.getLogger("avi.hspace.supervised")

# Singular values of N below this fraction of the largest are treated as zero (dependent rows).
SPAN_RTOL = 1e-10
# A projected direction shorter than this fraction of the original lies in the span of the others.
RESIDUAL_RTOL = 1e-6


def _mean64(h: torch.Tensor) -> torch.Tensor:
    return h.reshape(h.shape[0], -1).to(torch.float64).mean(dim=0)


def mean_difference_direction(h_a: torch.Tensor, h_b: torch.Tensor) -> torch.Tensor:
    """Unit direction `[*shape]` from set a towards set b: (mean(h_b) - mean(h_a)) / its norm.

    h_a `[Na, *shape]`, h_b `[Nb, *shape]`, Na, Nb >= 1. Raises ShapeMismatchError (both shapes) when the sample
    shapes differ, DatasetError (reason "same_mean") when the means coincide, NonFiniteError for NaN / infinity.
    """
    check_samples(h_a, "h_a")
    check_samples(h_b, "h_b")
    same_shape(h_a.shape[1:], h_b.shape[1:], "h_a samples", "h_b samples")
    check_finite(h_a, "h_a")
    check_finite(h_b, "h_b")
    diff = _mean64(h_b).to(h_a.device) - _mean64(h_a).to(h_a.device)
    norm = diff.norm()
    if float(norm) == 0.0:
        raise DatasetError(
            f"the two sets of h ({h_a.shape[0]} and {h_b.shape[0]} samples) have the same mean; "
            "they define no direction",
            reason="same_mean",
            samples_a=int(h_a.shape[0]),
            samples_b=int(h_b.shape[0]),
        )
    out = check_finite(diff / norm, "the mean-difference direction")
    return out.to(working_dtype(h_a, h_b)).reshape(h_a.shape[1:])


def separation(h_a: torch.Tensor, h_b: torch.Tensor, direction: torch.Tensor) -> float:
    """direction . (mean(h_b) - mean(h_a)) for a unit `direction [*shape]` (float64 arithmetic)."""
    check_samples(h_a, "h_a")
    check_samples(h_b, "h_b")
    same_shape(h_a.shape[1:], h_b.shape[1:], "h_a samples", "h_b samples")
    same_shape(direction.shape, h_a.shape[1:], "the direction", "h samples")
    diff = _mean64(h_b).to(h_a.device) - _mean64(h_a).to(h_a.device)
    return float(diff @ direction.reshape(-1).to(device=h_a.device, dtype=torch.float64))


def _numel(shape: torch.Size) -> int:
    return int(torch.Size(shape).numel())


def _as_rows(others: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if tuple(others.shape) == tuple(shape):
        return others.reshape(1, -1)
    if others.dim() == len(shape) + 1 and tuple(others.shape[1:]) == tuple(shape):
        return others.reshape(others.shape[0], _numel(shape))
    raise ShapeMismatchError(
        f"the other directions have shape {tuple(others.shape)}, expected [M, {', '.join(map(str, shape))}] for a "
        f"direction of shape {tuple(shape)}",
        reason="shape",
        first="others",
        first_shape=tuple(others.shape),
        second="direction",
        second_shape=tuple(shape),
    )


def disentangle(direction: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """n' = n - N^T (N N^T)^-1 N n, renormalised: `direction [*shape]` made orthogonal to every row of `others`.

    others: `[M, *shape]` (M >= 0), or one direction `[*shape]`. The result `[*shape]` has unit norm (even when
    `direction` has not) and is orthogonal to every row of others to float64 rounding before the cast back.
    Idempotent: disentangling the result again against the same others returns it. Raises ParameterError
    (reason "in_span") when nothing of the direction is left (it lies in the span of the others).
    """
    if not isinstance(direction, torch.Tensor) or direction.numel() == 0 or not direction.is_floating_point():
        raise ShapeMismatchError(f"the direction must be a non-empty floating-point tensor, got {direction!r:.60}")
    rows = _as_rows(others, direction.shape)
    check_finite(direction, "the direction")
    check_finite(rows, "the other directions")
    device = direction.device
    n = direction.reshape(-1).to(torch.float64)
    norm = n.norm()
    if float(norm) == 0.0:
        raise ParameterError("the direction to disentangle is zero", reason="zero", name="direction")
    n = n / norm
    if rows.shape[0] > 0:
        basis_rows = rows.to(device=device, dtype=torch.float64)
        _, sigma, vh = torch.linalg.svd(basis_rows, full_matrices=False)
        keep = sigma > SPAN_RTOL * sigma[0] if float(sigma[0]) > 0 else torch.zeros_like(sigma, dtype=torch.bool)
        basis = vh[keep]  # orthonormal rows spanning the others
        if basis.shape[0]:
            n = n - basis.T @ (basis @ n)
            n = n - basis.T @ (basis @ n)  # a second pass removes what rounding left of the first
    residual = n.norm()
    if float(residual) <= RESIDUAL_RTOL:
        raise ParameterError(
            f"the direction lies in the span of the {rows.shape[0]} other direction(s): projecting them out leaves "
            f"{float(residual):.2e} of its length",
            reason="in_span",
            name="direction",
            others=int(rows.shape[0]),
        )
    out = check_finite(n / residual, "the disentangled direction")
    return out.to(working_dtype(direction, others)).reshape(direction.shape)
