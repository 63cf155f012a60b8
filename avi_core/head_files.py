"""Head files: an AttributeHead and everything that explains it, in one safetensors file.

Layout: the head's state dict (float32, or float16 with `half=True`) and three metadata strings:
`format` = "avi-head", `format_version` = "1", and `avi` = a JSON object with at least height, width, rank,
k and hidden, plus whatever the trainer recorded (lambdas, learning rate, epochs, pairs, timesteps and steps of
x and z, scale factor, description, final losses, created, pack_version). Only safetensors is ever read:
pickle-based files are refused.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from . import __version__
from .atomic import write_atomically
from .errors import HeadFileError, HeadVersionError
from .head import AttributeHead

logger = logging.getLogger("avi.head_files")

HEAD_FORMAT = "avi-head"
HEAD_FORMAT_VERSION = 1
_STORED_DTYPES = {torch.float32, torch.float16, torch.bfloat16}
_REQUIRED_INTS = ("height", "width", "rank", "k", "hidden")


def _json_safe(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def save_head(
    head: AttributeHead,
    path: str | os.PathLike[str],
    metadata: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write `head` to `path` atomically; `metadata` adds to (and overrides) `head.metadata`.

    half=True stores the weights as float16 (half the size; loaded back as float32).
    """
    dtype = torch.float16 if half else torch.float32
    tensors = {}
    for name, value in head.state_dict().items():
        stored = value.detach().to(device="cpu", dtype=dtype).contiguous()
        if not torch.isfinite(stored).all():
            raise HeadFileError(
                f"refusing to save {path}: tensor {name} is not finite"
                + (" in float16 (values beyond 65504); save in float32" if half else " (the training diverged)")
            )
        tensors[name] = stored
    info: dict[str, Any] = dict(head.metadata)
    info.update(metadata or {})
    info.update(
        height=head.height,
        width=head.width,
        rank=head.rank,
        k=head.k,
        hidden=head.hidden,
        storage_dtype=str(dtype).removeprefix("torch."),
        pack_version=__version__,
    )
    info.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    header = {
        "format": HEAD_FORMAT,
        "format_version": str(HEAD_FORMAT_VERSION),
        "avi": json.dumps({key: _json_safe(v) for key, v in info.items()}, sort_keys=True),
    }
    final = write_atomically(path, lambda temp: save_file(tensors, str(temp), metadata=header))
    logger.info("saved attribute head to %s", final)
    return final


def _refuse(path: Path, problem: str) -> HeadFileError:
    return HeadFileError(f"cannot load the attribute head {path}: {problem}")


def _parse_metadata(path: Path, header: dict[str, str] | None) -> dict[str, Any]:
    header = header or {}
    if header.get("format") != HEAD_FORMAT:
        raise _refuse(
            path,
            f"it is a safetensors file but not an AVI head (format {header.get('format')!r}); "
            "pick a file made by AVI Train Attribute Head or `python -m avi_core train`",
        )
    try:
        version = int(header.get("format_version", ""))
    except ValueError:
        raise _refuse(path, f"its format version {header.get('format_version')!r} is not a number") from None
    if version > HEAD_FORMAT_VERSION:
        raise HeadVersionError(
            f"cannot load the attribute head {path}: it was written by a newer version of the AVI pack "
            f"(head format {version}; this pack, {__version__}, reads up to format {HEAD_FORMAT_VERSION}). "
            "Update the pack (ComfyUI-Manager > Update, or git pull) to use it."
        )
    if version < 1:
        raise _refuse(path, f"its format version {version} is not valid")
    try:
        info = json.loads(header.get("avi", ""))
    except json.JSONDecodeError as err:
        raise _refuse(path, f"its metadata is not valid JSON ({err})") from None
    if not isinstance(info, dict):
        raise _refuse(path, "its metadata is not a JSON object")
    for key in _REQUIRED_INTS:
        if not isinstance(info.get(key), int) or isinstance(info.get(key), bool) or info[key] < 1:
            raise _refuse(path, f"its metadata lacks a valid {key!r}")
    if info["rank"] != min(info["height"], info["width"]) or not 1 <= info["k"] < info["rank"]:
        raise _refuse(path, f"its sizes do not fit together (H {info['height']}, W {info['width']}, "
                            f"r {info['rank']}, k {info['k']})")
    return info


def _open(path: Path):
    if not path.is_file():
        raise HeadFileError(f"no attribute head file at {path}")
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except Exception as err:  # safetensors raises several unrelated types for a bad file
        raise _refuse(
            path,
            f"it is not a readable safetensors file ({type(err).__name__}: {err}). It may be truncated or "
            "corrupt, or a pickle (.ckpt/.pt/.bin) file, which AVI never loads. Download or train it again.",
        ) from None


def read_head_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a head file, validated, without reading its weights."""
    path = Path(path)
    with _open(path) as handle:
        return _parse_metadata(path, handle.metadata())


def load_head(path: str | os.PathLike[str], device: torch.device | str | None = None) -> AttributeHead:
    """Read, validate and build the head stored at `path` (float32, eval mode, on `device` or CPU)."""
    path = Path(path)
    with _open(path) as handle:
        info = _parse_metadata(path, handle.metadata())
        expected = AttributeHead.parameter_shapes(info["height"], info["width"], info["hidden"])
        names = set(handle.keys())
        missing, unexpected = sorted(set(expected) - names), sorted(names - set(expected))
        if missing or unexpected:
            raise _refuse(path, f"its tensors do not match a head of its size (missing {missing}, "
                                f"unexpected {unexpected})")
        state = {}
        for name, shape in expected.items():
            try:
                tensor = handle.get_tensor(name)
            except Exception as err:
                raise _refuse(path, f"tensor {name} cannot be read ({err}); the file is corrupt") from None
            if tuple(tensor.shape) != shape:
                raise _refuse(path, f"tensor {name} has shape {tuple(tensor.shape)}, expected {shape}")
            if tensor.dtype not in _STORED_DTYPES:
                raise _refuse(path, f"tensor {name} is {tensor.dtype}; heads are float32, float16 or bfloat16")
            if not torch.isfinite(tensor).all():
                raise _refuse(path, f"tensor {name} contains NaN or infinity; the head is damaged")
            state[name] = tensor.to(torch.float32)
    with torch.device("meta"):
        head = AttributeHead(info["height"], info["width"], hidden=info["hidden"], k=info["k"])
    head.load_state_dict(state, assign=True)
    head.metadata = info
    head.requires_grad_(False)
    head.eval()
    return head.to(device) if device is not None else head
