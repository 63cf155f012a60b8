"""Editing with a boundary: signed distances, the one-step move x' = x + (d - s(x)) n, and the editing checks.

Sign convention: s(x) = n . x + offset, s > 0 on side b's side (the target prompt's): a positive distance moves
a latent towards b. Distances are in units of `Boundary.unit` (the median |s| of the samples the boundary was
fitted on) unless `raw=True`. Every product runs in float64 (on the CPU for MPS, which has none), so the move
lands at d up to the rounding of the result's dtype.

The editing checks are those the later node needs before it moves a captured latent: the latent's capture
record must be at the boundary's step of the same schedule, and its size must be the boundary's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..errors import CaptureRecordError, NonFiniteError, ShapeMismatchError, StepMismatchError
from ..latent.capture import validate_record
from ..values import values_or_default
from .fit import Boundary

logger = logging.getLogger("avi.boundary.edit")

# The distance slider and list range, in units of the boundary's typical |s| (spec section 9: at least -20..20).
DISTANCE_RANGE = (-50.0, 50.0)
DEFAULT_DISTANCE = 1.0
_SIZE_KEYS = ("channels", "height", "width")  # a record's latent size, as make_record writes it
SIGMA_RTOL = 1e-4  # sigmas of one step of one schedule agree to rounding; another schedule differs far more


def _work_device(x: torch.Tensor) -> torch.device:
    return torch.device("cpu") if x.device.type == "mps" else x.device


def _flatten(x: torch.Tensor, boundary: Boundary) -> tuple[torch.Tensor, tuple[int, ...]]:
    """x `[*L, *S]` -> (float64 `[prod(L), D]` on the work device, L), refusing a wrong shape or NaN."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        kind = type(x).__name__ if not isinstance(x, torch.Tensor) else str(x.dtype)
        raise ShapeMismatchError(f"the latent to edit must be a floating-point tensor, got {kind}", reason="type")
    shape = boundary.sample_shape
    if x.dim() < len(shape) or tuple(x.shape[x.dim() - len(shape) :]) != shape:
        raise ShapeMismatchError(
            f"the boundary was fitted on samples of shape {shape} but the tensor to edit has shape {tuple(x.shape)}",
            reason="size",
            expected=shape,
            got=tuple(x.shape),
        )
    if not bool(torch.isfinite(x).all()):
        raise NonFiniteError("the latent to edit holds NaN or infinite values")
    lead = tuple(x.shape[: x.dim() - len(shape)])
    return x.detach().to(_work_device(x), torch.float64).reshape(math.prod(lead), -1), lead


def _raw_distances(flat: torch.Tensor, boundary: Boundary) -> torch.Tensor:
    return flat @ boundary.normal.reshape(-1).to(flat.device, torch.float64) + boundary.offset


def signed_distance(x: torch.Tensor, boundary: Boundary, *, raw: bool = False) -> torch.Tensor:
    """s(x) of every sample of x `[*L, *S]` (S: the boundary's sample shape; L: any leading dimensions).

    Returns float64 `[*L]` (on x's device; the CPU for MPS), > 0 on side b's side, in units of `boundary.unit`
    (raw=True: in raw feature units, n . x + offset).
    """
    flat, lead = _flatten(x, boundary)
    distances = _raw_distances(flat, boundary)
    if not raw:
        distances = distances / boundary.unit
    return distances.reshape(lead)


def move_to_distance(x: torch.Tensor, boundary: Boundary, distance: float | torch.Tensor) -> torch.Tensor:
    """x' = x + (d * unit - s(x)) n for every sample of x `[*L, *S]`: afterwards signed_distance(x') = d.

    distance: d in units of `boundary.unit`, a number or a tensor broadcastable to `[*L]` (one per sample).
    d > 0 moves to side b (the target prompt's side), d < 0 to side a, d = 0 onto the boundary; d = s(x) leaves x
    as it is (up to rounding). Returns x' with x's shape, dtype and device. Only the component along n changes.
    """
    flat, lead = _flatten(x, boundary)
    target = torch.as_tensor(distance, dtype=torch.float64, device=flat.device)
    if not bool(torch.isfinite(target).all()):
        raise NonFiniteError(f"the distance to move to is not finite ({distance})")
    try:
        target = torch.broadcast_to(target, lead).reshape(-1)
    except RuntimeError:
        raise ShapeMismatchError(
            f"{tuple(target.shape)} distances do not fit the {lead} latents to move",
            reason="distances",
            expected=lead,
            got=tuple(target.shape),
        ) from None
    normal = boundary.normal.reshape(-1).to(flat.device, torch.float64)
    delta = target * boundary.unit - (flat @ normal + boundary.offset)
    moved = (flat + delta[:, None] * normal).reshape(x.shape).to(x.device, x.dtype)
    if not bool(torch.isfinite(moved).all()):
        raise NonFiniteError(f"moving the latent to distance {distance} overflows {x.dtype}")
    return moved


def sweep_distances(x: torch.Tensor, boundary: Boundary, distances: Sequence[float]) -> torch.Tensor:
    """x `[B, *S]` moved to each distance in turn: `[len(distances) * B, *S]`, all of x at distances[0] first."""
    if len(distances) == 0:
        raise ShapeMismatchError("there are no distances to move to", reason="distances", expected=1, got=0)
    return torch.cat([move_to_distance(x, boundary, float(d)) for d in distances])


def parse_distances(text: str, default: float = DEFAULT_DISTANCE) -> list[float]:
    """The distance list of a sweep ('-4, -2, 0, 2, 4'), or [default] when it is empty; each in DISTANCE_RANGE."""
    return values_or_default(text, "distances", default, *DISTANCE_RANGE)


def check_edit_target(
    record: Mapping[str, Any],
    boundary: Boundary,
    sample_shape: Sequence[int] | None = None,
    role: str = "original",
) -> dict[str, Any]:
    """Check that a captured latent (its capture record) can be edited with `boundary`; returns the record.

    The boundary's `info` says where its sides were captured (`captures.capture_info`: step, steps, sigma,
    scale_factor, channels / height / width). Facts it lacks are not checked. The latent must be at the same step
    of the same number of steps (StepMismatchError reason "step" / "steps"), at the same sigma (reason "schedule":
    another sampler, scheduler or denoise), from a model with the same latent scale factor (CaptureRecordError
    reason "scale"). sample_shape: the shape of one sample to be moved (a latent's `[C, H, W]`, an h's
    `[1280, h, w]`); for paper-space boundaries the record's channels / height / width are compared too
    (ShapeMismatchError reason "size").
    """
    rec = validate_record(record, role)
    info = boundary.info
    facts = {"role": role, "boundary_step": info.get("step"), "boundary_steps": info.get("steps")}
    if isinstance(info.get("steps"), int) and rec["steps"] != info["steps"]:
        raise StepMismatchError(
            f"the {role} latent was captured at step {rec['step']} of {rec['steps']} but the boundary was fitted on "
            f"captures at step {info.get('step')} of {info['steps']}",
            reason="steps",
            step=rec["step"],
            steps=rec["steps"],
            **facts,
        )
    if isinstance(info.get("step"), int) and rec["step"] != info["step"]:
        raise StepMismatchError(
            f"the {role} latent was captured at step {rec['step']} of {rec['steps']} but the boundary was fitted on "
            f"captures at step {info['step']}",
            reason="step",
            step=rec["step"],
            steps=rec["steps"],
            **facts,
        )
    sigma = info.get("sigma")
    if isinstance(sigma, (int, float)) and not math.isclose(rec["sigma"], sigma, rel_tol=SIGMA_RTOL, abs_tol=1e-8):
        raise StepMismatchError(
            f"the {role} latent was captured at sigma {rec['sigma']:.6g} but the boundary's captures at the same step "
            f"were at sigma {sigma:.6g}: another sampler, scheduler or denoise",
            reason="schedule",
            step=rec["step"],
            steps=rec["steps"],
            sigma=rec["sigma"],
            boundary_sigma=sigma,
            **facts,
        )
    scale = info.get("scale_factor")
    if isinstance(scale, (int, float)) and not math.isclose(rec["scale_factor"], scale, rel_tol=1e-6):
        raise CaptureRecordError(
            f"the {role} latent comes from a model with latent scale factor {rec['scale_factor']} but the boundary "
            f"from one with {scale}",
            reason="scale",
            role=role,
            scale_factor=rec["scale_factor"],
            boundary_scale_factor=scale,
        )
    expected = boundary.sample_shape
    if sample_shape is not None and tuple(int(s) for s in sample_shape) != expected:
        raise ShapeMismatchError(
            f"the boundary was fitted on samples of shape {expected} but the {role} sample has shape "
            f"{tuple(sample_shape)}",
            reason="size",
            expected=expected,
            got=tuple(sample_shape),
        )
    if info.get("space", "paper") == "paper" and len(expected) == 3 and all(k in rec for k in _SIZE_KEYS):
        size = tuple(int(rec[k]) for k in _SIZE_KEYS)
        if size != expected:
            raise ShapeMismatchError(
                f"the {role} latent is {size[0]}x{size[1]}x{size[2]} (channels x height x width) but the boundary "
                f"was fitted on {expected[0]}x{expected[1]}x{expected[2]} latents",
                reason="size",
                expected=expected,
                got=size,
            )
    return rec
