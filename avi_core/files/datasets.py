"""Attribute datasets: many captured (x, z) pairs, collected over many queue runs (host-free).

A dataset is a folder (in ComfyUI: `models/avi_datasets/<name>/`) of shards, one shard per queue run.
A shard is a safetensors file holding

- `x`: the original-prompt latents at Tx, PAPER SPACE, float32 `[P, C, H, W]`;
- `z`: the target-prompt latents at Tz from the same seeds, PAPER SPACE, float32 `[P, C, H, W]`;
- metadata: `format` = "avi-dataset-shard", `format_version`, `pairs`, and `records`: the capture records
  of the run as JSON (what was captured: steps, sigmas, scale factor, sampler, seed...).

Latents are converted to paper space when they are written (the writer knows each latent's sigma and
scale factor from its capture record), so readers, the CLI and training never need the sampler's
schedule. The records are kept so the ComfyUI latents can be rebuilt (`from_paper_space`) if ever needed.

Writes are atomic: a shard goes to a hidden temporary name in the same folder and is renamed into place
with `os.replace`, so a reader never sees a half-written shard. Shard names carry the time, the process
id and a random part, so several ComfyUI processes can append to one dataset at the same time. Readers
only look at `*.safetensors` files whose names do not start with a dot.

A shard that cannot be read (truncated, corrupt, wrong tensors) is named in a warning and skipped; it
never costs a training run the rest of the dataset.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import DatasetError, InvalidNameError, NonFiniteError, ShapeMismatchError
from ..latent.pairs import latent_pair_to_paper
from .atomic import atomic_path
from .names import sanitize_name

logger = logging.getLogger("avi.datasets")

SHARD_FORMAT = "avi-dataset-shard"
SHARD_FORMAT_VERSION = 1
SHARD_SUFFIX = ".safetensors"
SHARD_PREFIX = "shard-"


@dataclass
class Dataset:
    """The usable pairs of a dataset folder.

    x, z: paper-space float32 `[P, C, H, W]`, pair i of x goes with pair i of z (shards in name order,
    which is the order they were written in). records: one entry per shard used, the `records` object
    that shard was written with. shards: the paths used, same order. skipped: `(path, reason)` for every
    shard left out.
    """

    folder: Path
    x: torch.Tensor
    z: torch.Tensor
    records: list[Any] = field(default_factory=list)
    shards: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        return int(self.x.shape[0])

    def summary(self) -> str:
        """One line for a log or a node's STRING output."""
        _, c, h, w = self.x.shape
        text = (
            f"dataset '{self.folder.name}': {self.pairs} pairs of {c}x{h}x{w} latents from {len(self.shards)} shard(s)"
        )
        if self.skipped:
            text += f", {len(self.skipped)} shard(s) skipped"
        return text


def sanitize_dataset_name(name: str) -> str:
    """A dataset name safe as one folder name (`files.names.sanitize_name`); InvalidNameError if none is left."""
    return sanitize_name(name, "dataset")


def dataset_folder(root: str | os.PathLike[str], name: str) -> Path:
    """`root/<sanitised name>`: the folder of dataset `name` under a datasets root (not created)."""
    return Path(root) / sanitize_dataset_name(name)


def list_datasets(root: str | os.PathLike[str]) -> list[str]:
    """Names of the datasets under `root`: its sub-folders holding at least one shard, sorted.

    A missing root gives an empty list.
    """
    base = Path(root)
    if not base.is_dir():
        return []
    names = [
        entry.name
        for entry in base.iterdir()
        if entry.is_dir() and not entry.name.startswith(".") and _shard_paths(entry)
    ]
    return sorted(names, key=str.lower)


def find_dataset(roots: Sequence[str | os.PathLike[str]], name: str) -> Path:
    """The folder of dataset `name` under the first of `roots` that has it.

    Raises DatasetError (reason "unknown"; details name, folders, available: the datasets there are, or
    "none") when no root has it, and InvalidNameError when `name` has no usable characters.
    """
    for root in roots:
        folder = dataset_folder(root, name)
        if folder.is_dir():
            return folder
    available = sorted({n for root in roots for n in list_datasets(root)}, key=str.lower)
    folders = ", ".join(str(root) for root in roots)
    there = f"the datasets there are {', '.join(available)}" if available else "there is no dataset yet"
    raise DatasetError(
        f"no dataset named {name!r} in {folders} ({there})",
        reason="unknown",
        name=name,
        folders=folders,
        available=", ".join(available) or "none",
    )


def dataset_fingerprint(roots: Sequence[str | os.PathLike[str]], name: str) -> str:
    """A string that changes whenever dataset `name` gains, loses or rewrites a finished shard: its folder and
    each shard's name, size and modification time ("" when there is no such dataset, or no name).

    For a node's cache key (ComfyUI's fingerprint_inputs): training from a dataset must run again after more
    pairs were appended, even though no widget changed.
    """
    if not (name or "").strip():
        return ""
    try:
        folder = find_dataset(roots, name.strip())
    except (DatasetError, InvalidNameError):
        return ""
    parts = [str(folder)]
    for path in _shard_paths(folder):
        try:
            stat = path.stat()
        except OSError:  # removed between listing and stat: the next queue sees the change
            continue
        parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(parts)


def _shard_paths(folder: Path) -> list[Path]:
    """Finished shards of a folder, in name (= write time) order; temporary files are ignored."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    return sorted(p for p in entries if p.suffix == SHARD_SUFFIX and not p.name.startswith(".") and p.is_file())


def count_pairs(folder: str | os.PathLike[str]) -> tuple[int, int]:
    """(shards, pairs) of a dataset folder, read from shard headers only; unreadable shards not counted."""
    shards = pairs = 0
    for path in _shard_paths(Path(folder)):
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                meta = handle.metadata() or {}
                if meta.get("format") != SHARD_FORMAT:
                    continue
                pairs += int(handle.get_slice("x").get_shape()[0])
        except Exception:  # counting is informative only; read_dataset names broken shards
            continue
        shards += 1
    return shards, pairs


def _check_pairs(x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    for label, t in (("x", x), ("z", z)):
        if not isinstance(t, torch.Tensor):
            raise ShapeMismatchError(f"{label} must be a tensor [P, C, H, W], got {type(t).__name__}")
        if t.dim() != 4:
            raise ShapeMismatchError(f"{label} must be a batch of latents [P, C, H, W], got shape {tuple(t.shape)}")
        if t.shape[0] == 0:
            raise ShapeMismatchError(f"{label} holds no latents (batch size 0); capture at least one pair")
        if not t.is_floating_point():
            raise ShapeMismatchError(f"{label} must be floating point, got {t.dtype}")
    if x.shape != z.shape:
        raise ShapeMismatchError(
            f"x {tuple(x.shape)} and z {tuple(z.shape)} must have the same shape: capture both from the "
            "same EmptyLatentImage (same size and batch size) and the same seed"
        )
    xs = x.detach().to("cpu", torch.float32).contiguous()
    zs = z.detach().to("cpu", torch.float32).contiguous()
    for label, t in (("x", xs), ("z", zs)):
        if not torch.isfinite(t).all():
            raise NonFiniteError(f"{label} holds NaN or infinite values; nothing was written to the dataset")
    return xs, zs


def _shard_name() -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    micro = f"{time.time_ns() // 1000 % 1_000_000:06d}"
    return f"{SHARD_PREFIX}{stamp}{micro}-{os.getpid()}-{secrets.token_hex(4)}{SHARD_SUFFIX}"


def append_shard(folder: str | os.PathLike[str], x: torch.Tensor, z: torch.Tensor, records: Any = None) -> Path:
    """Write one shard of pairs into the dataset `folder` (created if missing); return its path.

    x, z: PAPER-SPACE latents `[P, C, H, W]` (convert ComfyUI latents with `to_paper_space` first),
    pair i of x captured from the same seed as pair i of z. records: any JSON-serialisable object
    describing the capture (kept in the shard's metadata). Atomic and safe with concurrent writers.
    """
    xs, zs = _check_pairs(x, z)
    try:
        records_json = json.dumps(records, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"the capture records cannot be stored as JSON ({exc})") from exc
    target_dir = Path(folder)
    target_dir.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": SHARD_FORMAT,
        "format_version": str(SHARD_FORMAT_VERSION),
        "space": "paper",
        "pairs": str(xs.shape[0]),
        "records": records_json,
    }
    while True:
        final = target_dir / _shard_name()
        if not final.exists():
            break
    # atomic_path writes to a hidden ".<name>.<pid>.<random>.tmp" sibling, which readers ignore.
    with atomic_path(final) as tmp:
        save_file({"x": xs, "z": zs}, str(tmp), metadata=metadata)
    logger.info("wrote %d pair(s) to %s", xs.shape[0], final)
    return final


def append_latent_pair(folder: str | os.PathLike[str], original: Mapping[str, Any], target: Mapping[str, Any]) -> Path:
    """Convert a captured pair of ComfyUI LATENTs to paper space and append it as one shard."""
    x, z, records = latent_pair_to_paper(original, target)
    return append_shard(folder, x, z, records)


def _read_shard(path: Path) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Read one shard; raises ValueError (or an I/O error) with a short reason when it is unusable."""
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        meta = handle.metadata() or {}
        keys = set(handle.keys())
        if meta.get("format") != SHARD_FORMAT:
            raise ValueError(f"not an AVI dataset shard (format {meta.get('format')!r})")
        version = int(meta.get("format_version", "0"))
        if version > SHARD_FORMAT_VERSION:
            raise ValueError(
                f"written by a newer version of the pack (shard format {version}, this pack reads "
                f"up to {SHARD_FORMAT_VERSION}); update the pack"
            )
        if not {"x", "z"} <= keys:
            raise ValueError(f"missing tensors: holds {sorted(keys)}, needs 'x' and 'z'")
        x = handle.get_tensor("x")
        z = handle.get_tensor("z")
    if x.dim() != 4 or x.shape != z.shape or x.shape[0] == 0:
        raise ValueError(f"x {tuple(x.shape)} and z {tuple(z.shape)} are not matching [P, C, H, W] batches")
    if not (x.is_floating_point() and z.is_floating_point()):
        raise ValueError(f"tensors are not floating point ({x.dtype}, {z.dtype})")
    x = x.to(torch.float32)
    z = z.to(torch.float32)
    if not (torch.isfinite(x).all() and torch.isfinite(z).all()):
        raise ValueError("holds NaN or infinite values")
    try:
        records = json.loads(meta.get("records", "null"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"its capture records are not valid JSON ({exc})") from exc
    return x, z, records


def read_dataset(folder: str | os.PathLike[str], *, device: torch.device | str | None = None) -> Dataset:
    """All usable pairs of the dataset `folder`, concatenated in shard order.

    Returns a Dataset with x, z paper-space float32 `[P, C, H, W]` (on `device`, CPU by default).
    Unreadable shards, and shards whose latent size (C, H, W) differs from the one most shards have
    (ties: the earliest shard's), are skipped with a logged warning and listed in `.skipped`.
    Raises DatasetError naming the folder and the fix when no usable shard is left.
    """
    base = Path(folder)
    if not base.is_dir():
        raise DatasetError(f"the dataset folder {base} does not exist", reason="missing", folder=str(base))
    paths = _shard_paths(base)
    if not paths:
        raise DatasetError(
            f"the dataset folder {base} holds no shards (*.safetensors)", reason="empty", folder=str(base)
        )
    loaded: list[tuple[Path, torch.Tensor, torch.Tensor, Any]] = []
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        try:
            x, z, records = _read_shard(path)
        except Exception as exc:  # any failure to read one shard must not cost the whole dataset
            reason = f"unreadable shard: {exc}".strip()
            logger.warning("AVI dataset: skipping %s (%s)", path, reason)
            skipped.append((path, reason))
            continue
        loaded.append((path, x, z, records))

    if loaded:
        sizes = Counter(tuple(item[1].shape[1:]) for item in loaded)
        best = max(sizes.values())
        # Most common size; among equally common sizes, the earliest shard's.
        ref = next(tuple(item[1].shape[1:]) for item in loaded if sizes[tuple(item[1].shape[1:])] == best)
        kept = []
        for item in loaded:
            size = tuple(item[1].shape[1:])
            if size != ref:
                reason = (
                    f"latent size {'x'.join(map(str, size))} differs from the dataset's "
                    f"{'x'.join(map(str, ref))}; keep one image size per dataset"
                )
                logger.warning("AVI dataset: skipping %s (%s)", item[0], reason)
                skipped.append((item[0], reason))
            else:
                kept.append(item)
        loaded = kept

    if not loaded:
        reasons = "; ".join(f"{p.name}: {r}" for p, r in skipped)
        raise DatasetError(
            f"the dataset folder {base} has no usable shard ({reasons})", reason="unusable", folder=str(base)
        )
    x = torch.cat([item[1] for item in loaded])
    z = torch.cat([item[2] for item in loaded])
    if device is not None:
        x = x.to(device)
        z = z.to(device)
    skipped.sort(key=lambda item: item[0].name)
    return Dataset(
        folder=base,
        x=x,
        z=z,
        records=[item[3] for item in loaded],
        shards=[item[0] for item in loaded],
        skipped=skipped,
    )


def iter_shard_paths(folder: str | os.PathLike[str]) -> Iterable[Path]:
    """The finished shard files of a dataset folder, in write order (temporary files left out)."""
    return iter(_shard_paths(Path(folder)))
