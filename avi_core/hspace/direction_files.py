"""Direction files: a set of h-space directions and how it was made, in one safetensors file.

Layout (`files.safetensors_io`, the same safety rules as head files: pickle, foreign, truncated, NaN, wrong shape
and newer-format files are refused with a FileFormatError / FileVersionError naming the file):

- `directions`: float32 (or float16 with `half=True`) `[K, *shape]`, or `[S, K, *shape]` for a per-step set
  (one direction per stored step), each direction of unit norm (flattened row-major), signs fixed by the
  rules of `signs`;
- `scales`: float32 `[K]` (`[S, K]`), >= 0: the unit of a strength for each direction, so that applying it
  with strength a adds a * scale * direction (`scale_unit` says what it is: "std" for PCA, sigma_i / sqrt(N-1);
  "separation" for a supervised direction, the distance between the two sets' means along it; "norm" for a
  stored vector, its length; any other name a maker chooses);
- metadata `format` = "avi-hspace-directions", `format_version` = "1", and `avi`, a JSON object with the
  required keys method ("pca", "supervised", "jacobian" or "custom"), count (K), shape (the shape of one h
  sample, e.g. [1280, 8, 8]), per_step, scale_unit, sigmas (per-step sets: the S sigmas the steps were made at,
  used to pick the step when applying), plus what the maker recorded: model (family), step / steps / sigma /
  timestep (or their lists per step), window, prompts, labels, samples (N), height and width (the image or latent
  size), seed, pass ("cond", "uncond" or "both"), singular values, explained variance, description; and
  storage_dtype, created, pack_version.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import FileFormatError, FileVersionError, ParameterError, ShapeMismatchError
from ..files.safetensors_io import FileKind, read_typed_file, read_typed_metadata, write_typed_file
from ._tensors import check_finite

if TYPE_CHECKING:
    from .apply import HEdit

logger = logging.getLogger("avi.hspace.direction_files")

DIRECTION_FORMAT = "avi-hspace-directions"
DIRECTION_FORMAT_VERSION = 1
DIRECTION_KIND = FileKind(
    "h-space direction file", DIRECTION_FORMAT, DIRECTION_FORMAT_VERSION, FileFormatError, FileVersionError
)
METHODS = ("pca", "supervised", "jacobian", "custom")
# A stored direction whose norm differs from 1 by more than this is refused (float16 storage stays far inside).
UNIT_TOLERANCE = 1e-2
_STORED_DTYPES = (torch.float32, torch.float16)
_RESERVED = ("method", "count", "shape", "per_step", "scale_unit", "sigmas", "storage_dtype")


@dataclass
class DirectionSet:
    """Directions in h-space with their strength units and the story of how they were made.

    directions: `[K, *shape]` or, per step, `[S, K, *shape]`, unit norm. scales: `[K]` or `[S, K]`, >= 0.
    method: one of METHODS. scale_unit: what a scale is ("std", "separation", "norm", ...). sigmas: None, or the S
    sigmas of a per-step set. info: everything else worth keeping (see the module doc).
    """

    directions: torch.Tensor
    scales: torch.Tensor
    method: str
    scale_unit: str = "std"
    sigmas: list[float] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ParameterError(
                f"direction method {self.method!r} is not one of {', '.join(METHODS)}", name="method", value=self.method
            )
        lead = 2 if self.sigmas is not None else 1
        if self.directions.dim() < lead + 1 or self.directions.numel() == 0:
            raise ShapeMismatchError(
                f"directions must be {'[S, K, ...]' if lead == 2 else '[K, ...]'}, "
                f"got shape {tuple(self.directions.shape)}",
                reason="shape",
            )
        if tuple(self.scales.shape) != tuple(self.directions.shape[:lead]):
            raise ShapeMismatchError(
                f"scales have shape {tuple(self.scales.shape)} but directions {tuple(self.directions.shape)} need "
                f"{tuple(self.directions.shape[:lead])}",
                reason="shape",
            )
        if self.sigmas is not None:
            self.sigmas = [float(s) for s in self.sigmas]
            if len(self.sigmas) != self.directions.shape[0] or not all(
                math.isfinite(s) and s >= 0 for s in self.sigmas
            ):
                raise ShapeMismatchError(
                    f"{len(self.sigmas)} sigma(s) {self.sigmas} for {self.directions.shape[0]} stored step(s)",
                    reason="steps",
                )
        check_finite(self.directions, "the directions")
        check_finite(self.scales, "the direction scales")
        if bool((self.scales < 0).any()):
            raise ParameterError("direction scales must be >= 0", name="scales", value=self.scales.tolist())
        norms = self.directions.reshape(*self.directions.shape[:lead], -1).to(torch.float64).norm(dim=-1)
        worst = float((norms - 1).abs().max())
        if worst > UNIT_TOLERANCE:
            raise ParameterError(
                "directions must have unit norm; the norms range from "
                f"{float(norms.min()):.4g} to {float(norms.max()):.4g}",
                reason="not_unit",
                name="directions",
            )

    @classmethod
    def from_vectors(
        cls, vectors: torch.Tensor, method: str = "custom", info: dict[str, Any] | None = None
    ) -> DirectionSet:
        """A set from raw edits `[K, *shape]`: unit directions, with each vector's norm as its scale ("norm")."""
        flat = vectors.reshape(vectors.shape[0], -1).to(torch.float64)
        norms = flat.norm(dim=1)
        if bool((norms == 0).any()):
            raise ParameterError("a direction vector is zero", reason="zero", name="vectors")
        directions = (flat / norms.unsqueeze(1)).to(torch.float32).reshape(vectors.shape)
        return cls(directions, norms.to(torch.float32), method, "norm", None, dict(info or {}))

    @property
    def per_step(self) -> bool:
        return self.sigmas is not None

    @property
    def count(self) -> int:
        return int(self.directions.shape[1 if self.per_step else 0])

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one h sample the directions apply to."""
        return tuple(self.directions.shape[2 if self.per_step else 1 :])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> DirectionSet:
        """A copy with the tensors on `device` / in `dtype`."""
        return DirectionSet(
            self.directions.to(device=device, dtype=dtype),
            self.scales.to(device=device),
            self.method,
            self.scale_unit,
            None if self.sigmas is None else list(self.sigmas),
            dict(self.info),
        )

    def check_model(self, model: str | None) -> None:
        """ShapeMismatchError (reason "model") when the set records the model family it was made with (info
        "model", e.g. "SD20") and `model` is another one; nothing when either is unknown."""
        made_for = self.info.get("model")
        if made_for and model and str(made_for) != str(model):
            raise ShapeMismatchError(
                f"these h-space directions were made with a {made_for} model, but the model given is {model}",
                reason="model",
                made_for=str(made_for),
                model=str(model),
            )

    def edit(self, strengths: list[float], start: float = 0.0, end: float = 1.0, target: str = "both") -> HEdit:
        """An `apply.HEdit` of these directions with `strengths` (K numbers) in the window [start, end]."""
        from .apply import HEdit

        return HEdit(self.directions, strengths, self.scales, start, end, target, self.sigmas)


def save_directions(path: str | os.PathLike[str], directions: DirectionSet, half: bool = False) -> Path:
    """Write `directions` to `path` atomically (the folder must exist). half=True stores float16 directions."""
    dtype = torch.float16 if half else torch.float32
    stored = directions.directions.detach().to("cpu", dtype)
    info: dict[str, Any] = {k: v for k, v in directions.info.items() if k not in _RESERVED}
    info.update(
        method=directions.method,
        count=directions.count,
        shape=list(directions.shape),
        per_step=directions.per_step,
        scale_unit=directions.scale_unit,
        sigmas=directions.sigmas,
        storage_dtype=str(dtype).removeprefix("torch."),
    )
    final = write_typed_file(
        path,
        DIRECTION_KIND,
        {"directions": stored, "scales": directions.scales.detach().to("cpu", torch.float32)},
        info,
    )
    logger.info("saved %d %s h-space direction(s) to %s", directions.count, directions.method, final)
    return final


def _check_metadata(path: Path, info: dict[str, Any]) -> dict[str, Any]:
    refuse = DIRECTION_KIND.refuse
    if info.get("method") not in METHODS:
        raise refuse(path, f"its metadata names no known method ({info.get('method')!r})")
    count = info.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise refuse(path, f"its metadata lacks a valid direction count ({count!r})")
    shape = info.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)
    ):
        raise refuse(path, f"its metadata lacks a valid h shape ({shape!r})")
    if not isinstance(info.get("per_step"), bool):
        raise refuse(path, "its metadata does not say whether it holds one direction per step")
    if not isinstance(info.get("scale_unit"), str):
        raise refuse(path, "its metadata lacks the unit of its scales")
    sigmas = info.get("sigmas")
    if info["per_step"]:
        if (
            not isinstance(sigmas, list)
            or not sigmas
            or not all(
                isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) and s >= 0 for s in sigmas
            )
        ):
            raise refuse(path, f"it holds per-step directions but no valid list of their sigmas ({sigmas!r})")
    return info


def _expected(path: Path):
    def expected(info: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        _check_metadata(path, info)
        lead = (len(info["sigmas"]), info["count"]) if info["per_step"] else (info["count"],)
        return {"directions": (*lead, *info["shape"]), "scales": lead}

    return expected


def read_direction_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked metadata of a direction file, without reading its tensors."""
    return _check_metadata(Path(path), read_typed_metadata(path, DIRECTION_KIND))


def load_directions(path: str | os.PathLike[str], device: torch.device | str | None = None) -> DirectionSet:
    """Read and check the direction file at `path`: a DirectionSet (float32 directions, on `device` or the CPU)."""
    path = Path(path)
    tensors, info = read_typed_file(path, DIRECTION_KIND, _expected(path), dtypes=_STORED_DTYPES)
    directions = tensors["directions"].to(torch.float32)
    scales = tensors["scales"].to(torch.float32)
    try:
        result = DirectionSet(
            directions,
            scales,
            info["method"],
            info["scale_unit"],
            info["sigmas"] if info["per_step"] else None,
            {k: v for k, v in info.items() if k not in _RESERVED},
        )
    except (ParameterError, ShapeMismatchError) as err:
        raise DIRECTION_KIND.refuse(path, err.facts) from None
    if tensors["directions"].dtype != torch.float32:  # float16 storage: make the norms exact again
        lead = 2 if result.per_step else 1
        norms = result.directions.reshape(*result.directions.shape[:lead], -1).norm(dim=-1)
        result.directions = result.directions / norms.reshape(*norms.shape, *(1,) * len(result.shape))
    return result.to(device) if device is not None else result
