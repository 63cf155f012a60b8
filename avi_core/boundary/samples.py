"""The two sides of a boundary, checked and flattened: a `[N1, *S]` and b `[N2, *S]` -> one `[N1 + N2, D]` matrix.

Flattening is C order (row-major), `tensor.reshape(N, -1)`: for samples `[C, H, W]` feature `c * H * W + h * W + w`.
Rows 0..N1-1 are side a (label 0), rows N1.. are side b (label 1). The stored dtype is kept (float16 h captures
stay small); every computation upcasts to float64 block by block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import DatasetError, NonFiniteError, ShapeMismatchError

MIN_PER_SIDE = 2
SIDE_NAMES = ("a", "b")


@dataclass(frozen=True)
class Sides:
    """Both sides as one matrix. features: `[N1 + N2, D]` on the CPU, side a first. labels: int64 `[N1 + N2]`,
    0 for a and 1 for b. sample_shape: `S`, the shape of one sample (D = prod(S))."""

    features: torch.Tensor
    labels: torch.Tensor
    sample_shape: tuple[int, ...]
    counts: tuple[int, int]

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])


def check_side(t: object, name: str) -> torch.Tensor:
    """One side `[N, *S]`: a floating-point tensor with a sample axis, every value finite; returned unchanged."""
    if not isinstance(t, torch.Tensor):
        raise ShapeMismatchError(
            f"side {name} must be a tensor [N, ...] of samples, got {type(t).__name__}", reason="type", side=name
        )
    if not t.is_floating_point():
        raise ShapeMismatchError(
            f"side {name} must hold floating-point samples, got {t.dtype}",
            reason="dtype",
            side=name,
            dtype=str(t.dtype),
        )
    if t.dim() < 2:
        raise ShapeMismatchError(
            f"side {name} must be a batch of samples [N, ...] (at least 2 dimensions), got shape {tuple(t.shape)}",
            reason="shape",
            side=name,
            shape=tuple(t.shape),
        )
    if t.shape[0] == 0:
        raise DatasetError(f"side {name} holds no samples", reason="empty", side=name, count=0, need=MIN_PER_SIDE)
    if t.shape[0] < MIN_PER_SIDE:
        raise DatasetError(
            f"side {name} holds {t.shape[0]} sample(s); a boundary needs at least {MIN_PER_SIDE} per side (one to "
            "fit, one to hold out)",
            reason="too_few",
            side=name,
            count=int(t.shape[0]),
            need=MIN_PER_SIDE,
        )
    if math.prod(t.shape[1:]) == 0:
        raise ShapeMismatchError(
            f"the samples of side {name} are empty (shape {tuple(t.shape[1:])})", reason="shape", side=name
        )
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).reshape(t.shape[0], -1).any(dim=1).sum())
        raise NonFiniteError(
            f"side {name} holds NaN or infinite values ({bad} of {t.shape[0]} samples)", side=name, samples=bad
        )
    return t


def stack_sides(a: torch.Tensor, b: torch.Tensor) -> Sides:
    """Check both sides and stack them (a first) into `Sides`; the sample shapes must be equal."""
    check_side(a, "a")
    check_side(b, "b")
    if a.shape[1:] != b.shape[1:]:
        raise ShapeMismatchError(
            f"the samples of side a have shape {tuple(a.shape[1:])} but those of side b {tuple(b.shape[1:])}",
            reason="sample_shape",
            a=tuple(a.shape[1:]),
            b=tuple(b.shape[1:]),
        )
    dtype = torch.promote_types(a.dtype, b.dtype)
    n1, n2 = int(a.shape[0]), int(b.shape[0])
    features = torch.cat([a.detach().to("cpu", dtype).reshape(n1, -1), b.detach().to("cpu", dtype).reshape(n2, -1)])
    labels = torch.cat([torch.zeros(n1, dtype=torch.int64), torch.ones(n2, dtype=torch.int64)])
    return Sides(features.contiguous(), labels, tuple(int(s) for s in a.shape[1:]), (n1, n2))
