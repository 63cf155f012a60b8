"""Boundary files: a `Boundary` and how it was made, in one safetensors file (`files.safetensors_io`).

Layout: one tensor, `normal` (float64, the shape of one sample, unit length), and the metadata strings
`format` = "avi-boundary", `format_version` = "1" and `avi` = a JSON object with

- sample_shape (list of ints), offset, unit (> 0), accuracy and train_accuracy (0..1), counts and held_out
  ([side a, side b]): the numbers of `Boundary`;
- how it was fitted: holdout, seed, C, refit, solver, flatten ("C": row-major), sign ("s > 0 on side b"),
  unit_rule, support_vectors; after a search, `search` (steps, accuracies, chosen, tolerance);
- what the caller recorded: the capture (step, steps, sigma, timestep, T, fraction, scale_factor, sampler,
  scheduler, denoise, channels, height, width), space ("paper" or "h"), prompts, description...;
- pack_version and created.

Reading refuses, like every file kind, a missing file, pickle, a truncated or corrupt file, a safetensors file of
another kind, a newer format version (FileVersionError), a `normal` of the wrong shape or dtype, NaN or infinity;
and a normal that is not of unit length or metadata numbers that are missing, not finite or out of range.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import torch

from ..files.safetensors_io import (
    FileKind,
    read_typed_file,
    read_typed_metadata,
    write_typed_file,
)
from .fit import Boundary

logger = logging.getLogger("avi.boundary.files")

BOUNDARY_FORMAT = "avi-boundary"
BOUNDARY_FORMAT_VERSION = 1
BOUNDARY_KIND = FileKind("semantic boundary", BOUNDARY_FORMAT, BOUNDARY_FORMAT_VERSION)
NORM_TOLERANCE = 1e-6
SPACES = ("paper", "h")  # what the samples were: paper-space latents (spec section 1) or h (section 8)
_STORED_DTYPES = (torch.float64, torch.float32)
_FIELDS = ("sample_shape", "offset", "unit", "accuracy", "train_accuracy", "counts", "held_out")


def save_boundary(boundary: Boundary, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> Path:
    """Write `boundary` to `path` atomically; `metadata` adds to `boundary.info` (e.g. a description).

    The folder must exist. OutputPathError when the file cannot be written; FileFormatError when a value is not
    finite or the metadata is not JSON-safe.
    """
    info: dict[str, Any] = dict(boundary.info)
    info.update(metadata or {})
    info.update(
        sample_shape=list(boundary.sample_shape),
        offset=float(boundary.offset),
        unit=float(boundary.unit),
        accuracy=float(boundary.accuracy),
        train_accuracy=float(boundary.train_accuracy),
        counts=list(boundary.counts),
        held_out=list(boundary.held_out),
    )
    if info.get("space", "paper") not in SPACES:
        raise BOUNDARY_KIND.error(
            f"refusing to save the {BOUNDARY_KIND.label} {path}: its space {info.get('space')!r} is not one of "
            f"{list(SPACES)}",
            reason="metadata",
            path=str(path),
            kind=BOUNDARY_KIND.label,
        )
    for key in ("offset", "unit", "accuracy", "train_accuracy"):
        if not math.isfinite(info[key]):
            raise BOUNDARY_KIND.error(
                f"refusing to save the {BOUNDARY_KIND.label} {path}: its {key} is not finite",
                reason="nonfinite",
                path=str(path),
                kind=BOUNDARY_KIND.label,
            )
    tensors = {"normal": boundary.normal.to(torch.float64)}
    try:
        final = write_typed_file(path, BOUNDARY_KIND, tensors, info)
    except (TypeError, ValueError) as err:  # json.dumps: metadata that is not JSON-safe
        raise BOUNDARY_KIND.error(
            f"refusing to save the {BOUNDARY_KIND.label} {path}: its metadata cannot be stored as JSON ({err})",
            reason="metadata",
            path=str(path),
            kind=BOUNDARY_KIND.label,
        ) from None
    logger.info("saved %s to %s", boundary.summary(), final)
    return final


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_info(path: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Refuse metadata whose boundary numbers are missing, of the wrong kind, not finite or out of range."""
    shape = info.get("sample_shape")
    if not (isinstance(shape, list) and shape and all(_is_int(s, 1) for s in shape)):
        raise BOUNDARY_KIND.refuse(path, f"its metadata lacks a valid sample_shape (got {shape!r})")
    for key in ("offset", "unit", "accuracy", "train_accuracy"):
        if not _is_number(info.get(key)):
            raise BOUNDARY_KIND.refuse(path, f"its metadata lacks a finite {key} (got {info.get(key)!r})")
    if not info["unit"] > 0:
        raise BOUNDARY_KIND.refuse(path, f"its unit of distance {info['unit']} is not positive")
    for key in ("accuracy", "train_accuracy"):
        if not 0.0 <= info[key] <= 1.0:
            raise BOUNDARY_KIND.refuse(path, f"its {key} {info[key]} is not a fraction in 0..1")
    for key in ("counts", "held_out"):
        value = info.get(key)
        if not (isinstance(value, list) and len(value) == 2 and all(_is_int(v, 0) for v in value)):
            raise BOUNDARY_KIND.refuse(path, f"its metadata lacks valid {key} (got {value!r})")
    for key in ("step", "steps"):
        if key in info and not _is_int(info[key], 0):
            raise BOUNDARY_KIND.refuse(path, f"its capture {key} {info[key]!r} is not a step number")
    for key in ("sigma", "scale_factor"):
        if key in info and not (_is_number(info[key]) and info[key] >= 0):
            raise BOUNDARY_KIND.refuse(path, f"its capture {key} {info[key]!r} is not a finite number")
    if info.get("space", "paper") not in SPACES:
        raise BOUNDARY_KIND.refuse(path, f"its space {info.get('space')!r} is not one of {list(SPACES)}")
    return info


def read_boundary_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked metadata of a boundary file (module doc), without reading its normal."""
    return _check_info(Path(path), read_typed_metadata(path, BOUNDARY_KIND))


def load_boundary(path: str | os.PathLike[str]) -> Boundary:
    """Read and check the boundary stored at `path` (normal: float64 on the CPU, renormalised to unit length)."""
    path = Path(path)

    def expected(info: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        return {"normal": tuple(_check_info(path, info)["sample_shape"])}

    tensors, info = read_typed_file(path, BOUNDARY_KIND, expected, dtypes=_STORED_DTYPES)
    normal = tensors["normal"].to(torch.float64)
    norm = float(normal.norm())
    if not abs(norm - 1.0) <= NORM_TOLERANCE:
        raise BOUNDARY_KIND.refuse(path, f"its normal has length {norm:.9g}, not 1; the file is damaged")
    rest = {key: value for key, value in info.items() if key not in _FIELDS}
    return Boundary(
        normal=normal / norm,
        offset=float(info["offset"]),
        unit=float(info["unit"]),
        accuracy=float(info["accuracy"]),
        train_accuracy=float(info["train_accuracy"]),
        counts=(info["counts"][0], info["counts"][1]),
        held_out=(info["held_out"][0], info["held_out"][1]),
        info=rest,
    )
