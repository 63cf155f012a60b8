"""ComfyUI `.latent` files, as the core SaveLatent / LoadLatent nodes write and read them.

A `.latent` file is a safetensors file holding

- `latent_tensor`: the latent batch `[B, C, H, W]` in ComfyUI's convention (unscaled VAE space, i.e. what
  `latent["samples"]` holds inside ComfyUI);
- `latent_format_version_0`: an empty tensor marking the current format. Files without it are from ComfyUI's
  first format, which stored latents multiplied by 0.18215; LoadLatent multiplies them by 1 / 0.18215 and so
  does `read_latent_file`.

String metadata (SaveLatent stores the workflow as `prompt`) is kept as written. These files carry no sigma:
whoever converts them to paper space must know the noise level they were saved at.

Only safetensors is read; pickle-based files (torch.save) are refused, never unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ..errors import LatentFileError
from .atomic import write_atomically
from .safetensors_io import FileKind, open_safetensors

LATENT_KEY = "latent_tensor"
VERSION_MARKER = "latent_format_version_0"
# ComfyUI's first .latent format stored latents scaled by SD 1.x's factor; LoadLatent undoes it.
LEGACY_SCALE = 0.18215
LATENT_SUFFIX = ".latent"

LATENT_KIND = FileKind("ComfyUI latent", "", 0, LatentFileError)
"""ComfyUI's .latent files have no `format` metadata: only the opening and tensor checks apply."""


def _refuse(path: Path, problem: str, reason: str = "damaged") -> LatentFileError:
    return LATENT_KIND.refuse(path, problem, reason)


def read_latent_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata of a `.latent` file (SaveLatent's `prompt`...); {} when it has none."""
    path = Path(path)
    with open_safetensors(path, LATENT_KIND) as handle:
        return dict(handle.metadata() or {})


def read_latent_file(path: str | os.PathLike[str]) -> torch.Tensor:
    """The latent batch of a ComfyUI `.latent` file: float32 `[B, C, H, W]`, ComfyUI's unscaled convention.

    Matches ComfyUI's LoadLatent exactly: `tensor.float()`, times 1 / 0.18215 when the file lacks the
    `latent_format_version_0` marker. Raises LatentFileError naming the file and the problem.
    """
    path = Path(path)
    with open_safetensors(path, LATENT_KIND) as handle:
        keys = set(handle.keys())
        if LATENT_KEY not in keys:
            raise _refuse(
                path,
                f"it holds no '{LATENT_KEY}' tensor (it holds {sorted(keys) or 'no tensors'}); it is a "
                "safetensors file but not a ComfyUI .latent file",
                reason="foreign",
            )
        try:
            tensor = handle.get_tensor(LATENT_KEY)
        except Exception as err:
            raise _refuse(path, f"its '{LATENT_KEY}' tensor cannot be read ({err}); the file is corrupt") from None
        legacy = VERSION_MARKER not in keys
    if not tensor.is_floating_point():
        raise _refuse(path, f"its latent is {tensor.dtype}, not floating point")
    if tensor.dim() != 4:
        raise _refuse(
            path,
            f"its latent has shape {tuple(tensor.shape)}, not an image latent [batch, channels, H, W] "
            "(video and audio latents are not supported)",
        )
    if tensor.numel() == 0:
        raise _refuse(path, f"its latent is empty (shape {tuple(tensor.shape)})")
    multiplier = 1.0 / LEGACY_SCALE if legacy else 1.0
    samples = tensor.float() * multiplier
    if not torch.isfinite(samples).all():
        raise _refuse(path, "its latent contains NaN or infinity", reason="nonfinite")
    return samples


def _metadata_strings(metadata: dict[str, Any] | None) -> dict[str, str] | None:
    if not metadata:
        return None
    return {str(key): value if isinstance(value, str) else json.dumps(value) for key, value in metadata.items()}


def write_latent_file(
    path: str | os.PathLike[str], samples: torch.Tensor, metadata: dict[str, Any] | None = None
) -> Path:
    """Write `samples` (`[B, C, H, W]`, ComfyUI's unscaled convention) as a current-format `.latent` file.

    Stored as float32 with the `latent_format_version_0` marker, so ComfyUI's LoadLatent reads it back
    unchanged. Metadata values that are not strings are stored as JSON. Atomic: written to a temporary name
    in the same folder and renamed into place.
    """
    if not isinstance(samples, torch.Tensor) or not samples.is_floating_point():
        raise LatentFileError(f"refusing to write {path}: the latent must be a floating-point tensor")
    if samples.dim() != 4:
        raise LatentFileError(
            f"refusing to write {path}: a latent must be [batch, channels, H, W], got shape {tuple(samples.shape)}"
        )
    stored = samples.detach().to(device="cpu", dtype=torch.float32).contiguous()
    if not torch.isfinite(stored).all():
        raise LatentFileError(f"refusing to write {path}: the latent contains NaN or infinity")
    tensors = {LATENT_KEY: stored, VERSION_MARKER: torch.tensor([])}
    header = _metadata_strings(metadata)
    return write_atomically(path, lambda temp: save_file(tensors, str(temp), metadata=header))
