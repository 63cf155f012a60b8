"""Applying h-space directions during sampling (spec section 8): h <- h + sum_i strength_i * scale_i * d_i.

Pure functions of tensors and numbers (no host objects), for a ComfyUI `output_block_patch` at
`transformer_options["block"] == ("output", 0)` to call:

- `apply_directions(h, directions, strengths, scales=..., cond_or_uncond=..., target=...)`: one edit of one
  batch of h, not in place.
- `HEdit`: a whole edit, with its window and per-step directions; `edit(h, sigma, sample_sigmas, cond_or_uncond)`
  finds the step (`steps.step_of_sigma`), returns h unchanged outside the window [start, end] (`steps.in_window`),
  and adds the edit of that step otherwise.

Batches. ComfyUI runs the cond and uncond passes of CFG as chunks of one batch, in the order of
`transformer_options["cond_or_uncond"]` (0 = cond, 1 = uncond), each chunk b images; h is `[chunks * b, *item]`.
target "both" (default: Haas et al. edit both passes), "cond" or "uncond" picks the chunks edited. A direction is
`[*item]` (the same edit for every image) or `[b, *item]` (one per image, e.g. image-specific Jacobian
directions, repeated in every chunk); anything else is a ShapeMismatchError stating both shapes.

Per-step directions. A set of directions `[S, K, ...]` holds one direction per stored step, with the sigma each
was made at; the step nearest on a log-sigma scale (`steps.nearest_stored_step`) is used. A set without steps,
`[K, ...]`, is used at every step of the window. The edit is summed in float32 and added in h's dtype.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..errors import ParameterError, ShapeMismatchError
from ._tensors import check_finite
from .steps import _check_window, in_window, nearest_stored_step, step_of_sigma

logger = logging.getLogger("avi.hspace.apply")

TARGETS = ("both", "cond", "uncond")
COND, UNCOND = 0, 1


def _check_target(target: str) -> str:
    if target not in TARGETS:
        raise ParameterError(
            f"target {target!r} is not one of {', '.join(TARGETS)}", reason="choice", name="target", value=target
        )
    return target


def _chunk_count(cond_or_uncond: Sequence[int] | None, batch: int) -> int:
    chunks = len(cond_or_uncond) if cond_or_uncond else 1
    if batch % chunks:
        raise ShapeMismatchError(
            f"h holds {batch} rows, which do not split into the {chunks} cond/uncond chunk(s) "
            f"{list(cond_or_uncond or [])}",
            reason="chunks",
            batch=batch,
            chunks=chunks,
        )
    return chunks


def row_mask(cond_or_uncond: Sequence[int] | None, batch: int, target: str) -> torch.Tensor:
    """bool `[batch]`: the rows of a CFG batch that `target` edits (chunks in `cond_or_uncond` order).

    cond_or_uncond None or empty: one chunk, edited whatever the target.
    """
    _check_target(target)
    chunks = _chunk_count(cond_or_uncond, batch)
    if not cond_or_uncond or target == "both":
        return torch.ones(batch, dtype=torch.bool)
    wanted = COND if target == "cond" else UNCOND
    flags = torch.tensor([int(kind) == wanted for kind in cond_or_uncond], dtype=torch.bool)
    return flags.repeat_interleave(batch // chunks)


def combine(
    directions: torch.Tensor, strengths: Sequence[float] | torch.Tensor, scales: torch.Tensor | None = None
) -> torch.Tensor:
    """sum_k strengths_k * scales_k * directions_k in float32: directions `[K, *X]` -> `[*X]`.

    strengths: K numbers; scales: `[K]` (None: all 1).
    """
    count = int(directions.shape[0])
    weights = torch.as_tensor(strengths).detach().to("cpu", torch.float64).reshape(-1)
    if weights.numel() != count:
        raise ShapeMismatchError(
            f"{weights.numel()} strength(s) for {count} direction(s)", reason="strengths", strengths=weights.numel()
        )
    check_finite(weights, "the strengths")
    if scales is not None:
        scale = torch.as_tensor(scales).detach().to("cpu", torch.float64).reshape(-1)
        if scale.numel() != count:
            raise ShapeMismatchError(f"{scale.numel()} scale(s) for {count} direction(s)", reason="scales")
        weights = weights * scale
    weights = weights.to(device=directions.device, dtype=torch.float32)
    return torch.tensordot(weights, directions.to(torch.float32), dims=1)


def _delta_rows(delta: torch.Tensor, h: torch.Tensor, chunks: int) -> torch.Tensor:
    """The edit `[*item]` or `[b, *item]` as rows for h `[chunks * b, *item]` (broadcastable)."""
    item = tuple(h.shape[1:])
    per_chunk = h.shape[0] // chunks
    if tuple(delta.shape) == item:
        return delta.unsqueeze(0)
    if tuple(delta.shape) == (per_chunk, *item):
        return delta.repeat((chunks,) + (1,) * len(item))
    raise ShapeMismatchError(
        f"the direction has shape {tuple(delta.shape)} but h has shape {tuple(h.shape)} (one image: {item}, "
        f"{per_chunk} image(s) per chunk)",
        reason="shape",
        first="direction",
        first_shape=tuple(delta.shape),
        second="h",
        second_shape=tuple(h.shape),
    )


def add_delta(
    h: torch.Tensor, delta: torch.Tensor, cond_or_uncond: Sequence[int] | None = None, target: str = "both"
) -> torch.Tensor:
    """h + delta on the rows `target` picks (a new tensor in h's dtype). delta `[*item]` or `[b, *item]`."""
    if h.dim() < 2:
        raise ShapeMismatchError(f"h must be a batch [B, ...], got shape {tuple(h.shape)}", reason="shape")
    chunks = _chunk_count(cond_or_uncond, int(h.shape[0]))
    rows = _delta_rows(delta.to(h.device), h, chunks)
    mask = row_mask(cond_or_uncond, int(h.shape[0]), target).to(h.device)
    if bool(mask.all()):
        return h + rows.to(h.dtype)
    mask = mask.reshape((-1,) + (1,) * (h.dim() - 1))
    return h + (rows * mask).to(h.dtype)


def apply_directions(
    h: torch.Tensor,
    directions: torch.Tensor,
    strengths: Sequence[float] | torch.Tensor,
    *,
    scales: torch.Tensor | None = None,
    cond_or_uncond: Sequence[int] | None = None,
    target: str = "both",
) -> torch.Tensor:
    """h `[B, *item]` + sum_k strengths_k * scales_k * directions_k on the rows `target` picks; not in place.

    directions: `[K, *item]` or `[K, b, *item]` (b = images per chunk); strengths: K numbers; scales: `[K]`
    (the unit of each strength, e.g. the PCA standard deviations; None: 1).
    """
    _check_target(target)
    return add_delta(h, combine(directions.to(h.device), strengths, scales), cond_or_uncond, target)


@dataclass
class HEdit:
    """A configured edit: directions, strengths, window, target, and (per-step sets) the sigma of each step.

    directions: `[K, *X]`, or `[S, K, *X]` with `stored_sigmas` (S values); X is `item` or `[b, *item]`.
    scales: `[K]` (or `[S, K]`), None for 1. start, end: the window (fractions of the sampling).
    The combined edit of each stored step is computed once, in float32, at construction.
    """

    directions: torch.Tensor
    strengths: Sequence[float]
    scales: torch.Tensor | None = None
    start: float = 0.0
    end: float = 1.0
    target: str = "both"
    stored_sigmas: Sequence[float] | None = None
    _deltas: torch.Tensor = field(init=False, repr=False)
    _cache: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        _check_target(self.target)
        self.start, self.end = _check_window(self.start, self.end)
        check_finite(self.directions, "the directions")
        if self.stored_sigmas is None:
            self._deltas = combine(self.directions, self.strengths, self.scales).unsqueeze(0)
            return
        sigmas = [float(s) for s in self.stored_sigmas]
        if self.directions.dim() < 3 or self.directions.shape[0] != len(sigmas):
            raise ShapeMismatchError(
                f"per-step directions of shape {tuple(self.directions.shape)} do not match {len(sigmas)} stored "
                "sigma(s) (expected [S, K, ...] with S = the number of sigmas)",
                reason="steps",
            )
        self.stored_sigmas = sigmas
        scales = self.scales
        self._deltas = torch.stack(
            [
                combine(self.directions[s], self.strengths, None if scales is None else scales[s])
                for s in range(len(sigmas))
            ]
        )

    @property
    def per_step(self) -> bool:
        return self.stored_sigmas is not None

    def delta(self, sigma: float | torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
        """The combined edit `[*X]` (float32) used at `sigma`."""
        index = nearest_stored_step(sigma, self.stored_sigmas) if self.stored_sigmas is not None else 0
        key = (index, device)
        if key not in self._cache:
            self._cache[key] = self._deltas[index].to(device) if device is not None else self._deltas[index]
        return self._cache[key]

    def edit(
        self,
        h: torch.Tensor,
        sigma: float | torch.Tensor,
        sample_sigmas: torch.Tensor | Sequence[float],
        cond_or_uncond: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """h edited at this evaluation (a new tensor), or h itself when the step is outside the window."""
        schedule = sample_sigmas
        steps = max(1, (schedule.numel() if isinstance(schedule, torch.Tensor) else len(schedule)) - 1)
        step = step_of_sigma(sigma, schedule)
        if not in_window(step, steps, self.start, self.end):
            return h
        return add_delta(h, self.delta(sigma, h.device), cond_or_uncond, self.target)

    __call__ = edit


@dataclass
class HSweep:
    """Several edits in one sampling: variant v edits its own block of rows (a strength sweep, a grid).

    A sweep repeats the batch of B images V times with the same noise (tiled: all B images of variant 0, then
    of variant 1, ...), so each chunk of a CFG batch holds rows `[..., V, stride]` where stride is the number of
    rows per variant when this sweep was added (B, or the rows of an earlier sweep's whole batch). Row r of a
    chunk is edited by variant `(r // stride) % V`; sweeps added one after another thus nest (the later one
    outermost) and each still finds its own variant. All edits share one window and target (the first's).

    edits: V HEdits (the same direction shape); stride: >= 1.
    """

    edits: Sequence[HEdit]
    stride: int = 1

    def __post_init__(self) -> None:
        self.edits = list(self.edits)
        if not self.edits:
            raise ParameterError("a sweep needs at least one edit", reason="empty", name="edits")
        if isinstance(self.stride, bool) or not isinstance(self.stride, int) or self.stride < 1:
            raise ParameterError(
                f"the sweep stride {self.stride!r} must be a whole number >= 1", name="stride", value=self.stride
            )
        first = self.edits[0]
        for other in self.edits[1:]:
            if (other.start, other.end, other.target) != (first.start, first.end, first.target):
                raise ParameterError("the edits of a sweep must share one window and target", name="edits")

    @property
    def variants(self) -> int:
        return len(self.edits)

    def variant_of_rows(self, rows: int) -> torch.Tensor:
        """long `[rows]`: the variant of each row of one chunk; ShapeMismatchError (reason "sweep") when the
        rows are not a whole number of sweeps (V * stride)."""
        period = self.variants * self.stride
        if rows % period:
            raise ShapeMismatchError(
                f"the sampler runs {rows} image(s) per pass, not a multiple of the {self.variants} sweep value(s) "
                f"x {self.stride} image(s) this sweep was made for",
                reason="sweep",
                rows=rows,
                variants=self.variants,
                stride=self.stride,
            )
        return (torch.arange(rows) // self.stride) % self.variants

    def edit(
        self,
        h: torch.Tensor,
        sigma: float | torch.Tensor,
        sample_sigmas: torch.Tensor | Sequence[float],
        cond_or_uncond: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """h edited at this evaluation, variant by variant (a new tensor), or h itself outside the window."""
        first = self.edits[0]
        schedule = sample_sigmas
        steps = max(1, (schedule.numel() if isinstance(schedule, torch.Tensor) else len(schedule)) - 1)
        if not in_window(step_of_sigma(sigma, schedule), steps, first.start, first.end):
            return h
        if h.dim() < 2:
            raise ShapeMismatchError(f"h must be a batch [B, ...], got shape {tuple(h.shape)}", reason="shape")
        chunks = _chunk_count(cond_or_uncond, int(h.shape[0]))
        per_chunk = int(h.shape[0]) // chunks
        index = self.variant_of_rows(per_chunk).to(h.device)
        deltas = [e.delta(sigma, h.device) for e in self.edits]
        item = tuple(h.shape[1:])
        for delta in deltas:
            if tuple(delta.shape) != item:
                raise ShapeMismatchError(
                    f"the direction has shape {tuple(delta.shape)} but h has shape {tuple(h.shape)} (one image: "
                    f"{item})",
                    reason="shape",
                    first="direction",
                    first_shape=tuple(delta.shape),
                    second="h",
                    second_shape=tuple(h.shape),
                )
        rows = torch.stack(deltas).index_select(0, index)  # [per_chunk, *item]
        return add_delta(h, rows, cond_or_uncond, first.target)

    __call__ = edit
