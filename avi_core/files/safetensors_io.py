"""Reading and writing the pack's safetensors files safely: one implementation for every file kind.

Every file the pack writes (heads, directions, boundaries, dataset shards) is a safetensors file whose string
metadata holds `format` (what it is, e.g. "avi-head"), `format_version` (an integer) and `avi` (a JSON object
describing how it was made). Reading refuses, with a `FileFormatError` subtype that names the file:
a missing file; a pickle (torch.save, .ckpt, .pt, .bin: never unpickled); a truncated or corrupt file; a
safetensors file of another kind (foreign); a newer format version (`FileVersionError`); tensors of the wrong
names, shapes or dtypes; NaN or infinity. Writing checks every tensor is finite and goes through a temporary
name (`files.atomic`), so a crash never leaves a half-written file under the final name.

ComfyUI's own `.latent` files have no `format` key; `files.latent_files` uses the sniffing and opening parts.
"""

from __future__ import annotations

import datetime as _dt
import json
import struct
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import FileFormatError, FileVersionError
from ..version import __version__
from .atomic import write_atomically

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
INFO_KEY = "avi"

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL_OPCODE = 0x80


@dataclass(frozen=True)
class FileKind:
    """One kind of file the pack writes.

    label: how messages name it ("attribute head"). format: the `format` metadata value. version: the newest
    format version this pack reads (and the one it writes). error / version_error: the exception types raised
    for it (a FileFormatError subtype, and a FileVersionError subtype).
    """

    label: str
    format: str
    version: int
    error: type[FileFormatError] = FileFormatError
    version_error: type[FileVersionError] = FileVersionError

    def refuse(self, path: Path, problem: str, reason: str = "damaged") -> FileFormatError:
        """The error for a file of this kind that cannot be used, naming the file."""
        return self.error(
            f"cannot load the {self.label} {path}: {problem}", reason=reason, path=str(path), kind=self.label
        )


def sniff_not_safetensors(path: Path) -> tuple[str, str] | None:
    """(reason, problem) when the first bytes show `path` is not a safetensors file at all, else None.

    A safetensors file starts with its header's length (8 bytes, little-endian) and then the JSON header, `{`.
    Only when that `{` is missing are the first bytes read as a pickle's (zip archive, or protocol opcode 0x80):
    a header length can itself start with those bytes. reason is "truncated", "pickle" or "foreign".
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(16)
    if len(head) < 9:
        return "truncated", f"it is only {len(head)} bytes long, too short for a safetensors file (truncated or empty)"
    if head[8:9] != b"{":
        if head.startswith(_ZIP_MAGIC) or head[0] == _PICKLE_PROTOCOL_OPCODE:
            return (
                "pickle",
                "it is a pickle file (torch.save / .pt / .ckpt / .bin), which the pack never loads because "
                "unpickling can run arbitrary code",
            )
        return "foreign", "it is not a safetensors file (its header does not start where safetensors puts it)"
    (header_len,) = struct.unpack("<Q", head[:8])
    if header_len > size - 8:
        return "truncated", "its header claims more bytes than the file holds: it is truncated, or not safetensors"
    return None


@contextmanager
def open_safetensors(path: Path, kind: FileKind) -> Iterator[Any]:
    """`safe_open(path)` on the CPU, or the kind's error: missing, not a file, pickle, truncated, corrupt."""
    if not path.exists():
        raise kind.error(f"no {kind.label} file at {path}", reason="missing", path=str(path), kind=kind.label)
    if not path.is_file():
        raise kind.refuse(path, "it is not a regular file", reason="missing")
    sniffed = sniff_not_safetensors(path)
    if sniffed is not None:
        raise kind.refuse(path, sniffed[1], reason=sniffed[0])
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except Exception as err:  # safetensors raises several unrelated types for a bad file
        raise kind.refuse(
            path, f"it is not a readable safetensors file ({type(err).__name__}: {err}); it may be truncated or corrupt"
        ) from None
    with handle:
        yield handle


def parse_header(path: Path, header: Mapping[str, str] | None, kind: FileKind) -> dict[str, Any]:
    """Check `format` and `format_version` and return the `avi` JSON object of a file's metadata."""
    header = header or {}
    if header.get("format") != kind.format:
        raise kind.refuse(
            path,
            f"it is a safetensors file but not an AVI {kind.label} (format {header.get('format')!r}, "
            f"expected {kind.format!r})",
            reason="foreign",
        )
    try:
        version = int(header.get("format_version", ""))
    except ValueError:
        raise kind.refuse(path, f"its format version {header.get('format_version')!r} is not a number") from None
    if version > kind.version:
        raise kind.version_error(
            f"cannot load the {kind.label} {path}: it was written by a newer version of the pack ({kind.label} "
            f"format {version}; this pack, {__version__}, reads up to format {kind.version})",
            reason="newer",
            path=str(path),
            kind=kind.label,
            version=version,
            supported=kind.version,
        )
    if version < 1:
        raise kind.refuse(path, f"its format version {version} is not valid")
    try:
        info = json.loads(header.get(INFO_KEY, ""))
    except json.JSONDecodeError as err:
        raise kind.refuse(path, f"its metadata is not valid JSON ({err})") from None
    if not isinstance(info, dict):
        raise kind.refuse(path, "its metadata is not a JSON object")
    return info


def check_tensor(
    path: Path,
    kind: FileKind,
    name: str,
    tensor: torch.Tensor,
    shape: tuple[int, ...] | None = None,
    dtypes: tuple[torch.dtype, ...] = FLOAT_DTYPES,
) -> torch.Tensor:
    """Refuse a stored tensor of the wrong shape or dtype, or holding NaN / infinity; returns it."""
    if shape is not None and tuple(tensor.shape) != tuple(shape):
        raise kind.refuse(path, f"tensor {name} has shape {tuple(tensor.shape)}, expected {tuple(shape)}")
    if tensor.dtype not in dtypes:
        allowed = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise kind.refuse(path, f"tensor {name} is {tensor.dtype}; {kind.label} tensors are {allowed}")
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        raise kind.refuse(path, f"tensor {name} contains NaN or infinity; the file is damaged", reason="nonfinite")
    return tensor


def read_typed_file(
    path: str | Path,
    kind: FileKind,
    expected: Callable[[dict[str, Any]], Mapping[str, tuple[int, ...] | None]],
    dtypes: tuple[torch.dtype, ...] = FLOAT_DTYPES,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file of `kind`: (tensors by name, its `avi` metadata), every check of the module doc applied.

    expected(info) gives the tensor names the file must hold and each one's shape (None: any shape), from
    the metadata; extra or missing names are refused.
    """
    path = Path(path)
    with open_safetensors(path, kind) as handle:
        info = parse_header(path, handle.metadata(), kind)
        wanted = dict(expected(info))
        names = set(handle.keys())
        missing, unexpected = sorted(set(wanted) - names), sorted(names - set(wanted))
        if missing or unexpected:
            raise kind.refuse(path, f"its tensors do not match (missing {missing}, unexpected {unexpected})")
        tensors = {}
        for name, shape in wanted.items():
            try:
                tensor = handle.get_tensor(name)
            except Exception as err:
                raise kind.refuse(path, f"tensor {name} cannot be read ({err}); the file is corrupt") from None
            tensors[name] = check_tensor(path, kind, name, tensor, shape, dtypes)
    return tensors, info


def read_typed_metadata(path: str | Path, kind: FileKind) -> dict[str, Any]:
    """The checked `avi` metadata of a file of `kind`, without reading its tensors."""
    path = Path(path)
    with open_safetensors(path, kind) as handle:
        return parse_header(path, handle.metadata(), kind)


def _json_safe(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def write_typed_file(
    path: str | Path, kind: FileKind, tensors: Mapping[str, torch.Tensor], info: Mapping[str, Any]
) -> Path:
    """Write `tensors` (moved to the CPU, made contiguous) and `info` as a file of `kind`, atomically.

    `info` gains `pack_version` and `created` (unless given). Refuses non-finite tensors before writing anything.
    """
    stored = {}
    for name, value in tensors.items():
        tensor = value.detach().to("cpu").contiguous()
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise kind.error(
                f"refusing to save the {kind.label} {path}: tensor {name} is not finite",
                reason="nonfinite",
                path=str(path),
                kind=kind.label,
            )
        stored[name] = tensor
    meta = {key: _json_safe(value) for key, value in info.items()}
    meta["pack_version"] = __version__
    meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    header = {
        "format": kind.format,
        "format_version": str(kind.version),
        INFO_KEY: json.dumps(meta, sort_keys=True, allow_nan=False),
    }
    return write_atomically(path, lambda temp: save_file(stored, str(temp), metadata=header))
