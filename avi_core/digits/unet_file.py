"""The digit model's weights file: ComfyUI SD20 UNet tensors (bare `diffusion_model` keys) plus JSON metadata
(format "avi_digit_unet", the unet_config, training steps, loss history, ...), written by
tools/train_digit_model.py. Reading checks the format, the config and that every tensor is finite."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import FileFormatError, FileVersionError

WEIGHTS_FILE = Path(__file__).resolve().parent / "weights" / "digit_unet.safetensors"
FORMAT = "avi_digit_unet"
VERSION = 1


@dataclass
class DigitUNetFile:
    """state_dict: UNet tensors (float32); unet_config: the config to build ComfyUI's SD20 with;
    num_head_channels: attention head width; meta: every metadata field, decoded."""

    state_dict: dict[str, torch.Tensor]
    unet_config: dict[str, Any]
    num_head_channels: int
    meta: dict[str, Any]


def read_digit_unet(path: str | Path = WEIGHTS_FILE) -> DigitUNetFile:
    """Read and check a digit model file. Raises FileFormatError (missing, corrupt, foreign, nonfinite) and
    FileVersionError (written by a newer pack)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"digit model file {path} does not exist", reason="missing", path=str(path))
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as err:  # safetensors raises its own types for truncated or corrupt files
        raise FileFormatError(
            f"{path} is not a readable safetensors file ({err})", reason="corrupt", path=str(path)
        ) from err
    try:
        meta = {k: json.loads(v) for k, v in raw.items()}
    except ValueError as err:
        raise FileFormatError(f"{path} has unreadable metadata ({err})", reason="corrupt", path=str(path)) from err
    if meta.get("format") != FORMAT or not isinstance(meta.get("unet_config"), dict):
        raise FileFormatError(f"{path} is not a digit model file", reason="foreign", path=str(path))
    version = meta.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise FileVersionError(
            f"{path} is a digit model file of version {version}; this pack reads version {VERSION}",
            path=str(path),
            version=version,
        )
    for key, value in tensors.items():
        if value.dtype.is_floating_point and not torch.isfinite(value).all():
            raise FileFormatError(f"{path}: tensor {key} holds NaN or infinity", reason="nonfinite", path=str(path))
    state = {k: v.to(torch.float32) if v.dtype.is_floating_point else v for k, v in tensors.items()}
    return DigitUNetFile(state, dict(meta["unet_config"]), int(meta.get("num_head_channels", 32)), meta)
