"""Small tensor helpers shared by the h-space modules: working dtypes, flattening, finiteness and shape checks.

Flattening convention (used everywhere in `avi_core.hspace`): a sample of h of shape `[*shape]` (for SD 2.1 at
512 px `[1280, 8, 8]`) is flattened in row-major (C) order with `reshape(-1)`, so a direction `[*shape]` and its
flat vector `[D]` hold the same numbers in the same order, D = prod(shape).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..errors import NonFiniteError, ShapeMismatchError


def working_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 when any input is float64, else float32: the arithmetic of every h-space computation."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def check_samples(h: torch.Tensor, name: str) -> torch.Tensor:
    """`h` as a floating-point batch `[N, *shape]` with N >= 1 and a non-empty sample shape; raises otherwise."""
    if not isinstance(h, torch.Tensor):
        raise ShapeMismatchError(
            f"{name} must be a tensor [N, ...] of h samples, got {type(h).__name__}", name=name, shape=None
        )
    if h.dim() < 2 or h.shape[0] == 0 or math.prod(h.shape[1:]) == 0:
        raise ShapeMismatchError(
            f"{name} must be a batch of h samples [N, ...] with N >= 1, got shape {tuple(h.shape)}",
            name=name,
            shape=tuple(h.shape),
        )
    if not h.is_floating_point():
        raise ShapeMismatchError(f"{name} must be floating point, got {h.dtype}", name=name, shape=tuple(h.shape))
    return h


def check_finite(tensor: torch.Tensor, what: str) -> torch.Tensor:
    """`tensor`, or NonFiniteError naming `what` when it holds NaN or infinity."""
    if not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise NonFiniteError(f"{what} holds {bad} NaN or infinite value(s)", what=what, count=bad)
    return tensor


def same_shape(a: Sequence[int], b: Sequence[int], what_a: str, what_b: str) -> None:
    """ShapeMismatchError with both shapes unless `a == b`."""
    if tuple(a) != tuple(b):
        raise ShapeMismatchError(
            f"{what_a} has shape {tuple(a)} but {what_b} has shape {tuple(b)}",
            reason="shape",
            first=what_a,
            first_shape=tuple(a),
            second=what_b,
            second_shape=tuple(b),
        )


def flat(h: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`[N, *shape]` -> `[N, D]` (row-major), optionally converted to `dtype`."""
    out = h.reshape(h.shape[0], -1)
    return out if dtype is None else out.to(dtype)
