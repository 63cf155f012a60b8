"""Collections of captured h: many samples of the UNet bottleneck, gathered over many queue runs (host-free).

A collection is a folder (in ComfyUI, say `models/avi_hspace/<name>/`) of shards, one per queue run, in the
design of `files.datasets`: shard names carry the time, the process id and a random part, so several processes
can append to one collection at once; a shard is written to a hidden temporary name and renamed into place
(`files.atomic`), so readers never see half a shard; readers only look at `*.safetensors` files not starting with
a dot; a shard that cannot be read (truncated, corrupt, foreign, NaN, wrong shape, newer format) is named in a
warning and skipped, and so is one whose h shape differs from the one most shards have.

A shard is a safetensors file (`files.safetensors_io`, format "avi-hspace-collection", version 1) holding

- `h`: float16 `[M, *shape]` on the CPU: M captured h, one per image, step and pass (cond or uncond);
- metadata `avi`: {"rows": M, "shape": [...], "records": [M records], "run": {...}} where record i describes row
  i and "run" whatever describes the whole run (model, height, width, sampler, scheduler, ...).

A record is a JSON object with at least

    step      int    the sampling step (0-based; `steps.step_of_sigma`)
    steps     int    the number of steps of the sampling
    sigma     float  the sigma of the evaluation
    timestep  float  the model's timestep of that sigma
    label     str    what the image is of: the prompt, or a label given to it
    seed      int    the noise seed of the image
    pass      str    "cond" or "uncond"

and any other JSON-safe keys (batch_index, prompt, score, ...). `make_record` builds one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import DatasetError, FileFormatError, FileVersionError, NonFiniteError
from ..files.names import sanitize_name
from ..files.safetensors_io import FileKind, read_typed_file, write_typed_file
from ._tensors import check_finite, check_samples

logger = logging.getLogger("avi.hspace.collection")

COLLECTION_FORMAT = "avi-hspace-collection"
COLLECTION_FORMAT_VERSION = 1
COLLECTION_KIND = FileKind(
    "h-space collection shard", COLLECTION_FORMAT, COLLECTION_FORMAT_VERSION, FileFormatError, FileVersionError
)
SHARD_SUFFIX = ".safetensors"
SHARD_PREFIX = "h-"
PASSES = ("cond", "uncond")
STORED_DTYPE = torch.float16
_FLOAT16_MAX = 65504.0

_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "step": int,
    "steps": int,
    "sigma": (int, float),
    "timestep": (int, float),
    "label": str,
    "seed": int,
    "pass": str,
}


def make_record(
    step: int, steps: int, sigma: float, timestep: float, label: str, seed: int, pass_: str = "cond", **extra: Any
) -> dict[str, Any]:
    """A checked record for one captured h (see the module doc); `extra` adds JSON-safe keys."""
    record = dict(extra)
    record.update(
        step=int(step),
        steps=int(steps),
        sigma=float(sigma),
        timestep=float(timestep),
        label=str(label),
        seed=int(seed),
        **{"pass": pass_},
    )
    return check_record(record)


def check_record(record: Mapping[str, Any], index: int = 0) -> dict[str, Any]:
    """`record` as a dict, or DatasetError (reason "records") naming the record and the bad field."""
    if not isinstance(record, Mapping):
        raise DatasetError(f"record {index} is not an object ({type(record).__name__})", reason="records", index=index)
    for key, kind in _REQUIRED.items():
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise DatasetError(
                f"record {index} has no valid {key!r} (got {value!r})", reason="records", index=index, key=key
            )
    if record["pass"] not in PASSES:
        raise DatasetError(
            f"record {index} has pass {record['pass']!r}, not one of {', '.join(PASSES)}",
            reason="records",
            index=index,
            key="pass",
        )
    if record["step"] < 0 or record["steps"] < 1 or record["step"] >= record["steps"]:
        raise DatasetError(
            f"record {index} has step {record['step']} of {record['steps']} steps",
            reason="records",
            index=index,
            key="step",
        )
    if not (math.isfinite(record["sigma"]) and math.isfinite(record["timestep"])) or record["sigma"] < 0:
        raise DatasetError(
            f"record {index} has sigma {record['sigma']} and timestep {record['timestep']}",
            reason="records",
            index=index,
            key="sigma",
        )
    return dict(record)


def _matches(record: Mapping[str, Any], step: int | None, label: str | None, pass_: str | None) -> bool:
    return (
        (step is None or record["step"] == step)
        and (label is None or record["label"] == label)
        and (pass_ is None or record["pass"] == pass_)
    )


@dataclass
class HCollection:
    """Captured h and their records.

    h: `[M, *shape]` (float32 unless read with another dtype); records: M dicts, record i for row i; shards: the
    files used; skipped: (path, reason) of the shards left out; runs: the "run" object of each shard used.
    """

    folder: Path
    h: torch.Tensor
    records: list[dict[str, Any]]
    shards: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    runs: list[Any] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return int(self.h.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.h.shape[1:])

    @property
    def steps(self) -> list[int]:
        """The distinct steps held, ascending."""
        return sorted({int(r["step"]) for r in self.records})

    @property
    def labels(self) -> list[str]:
        """The distinct labels held, in order of first appearance."""
        return list(dict.fromkeys(str(r["label"]) for r in self.records))

    def select(self, *, step: int | None = None, label: str | None = None, pass_: str | None = None) -> HCollection:
        """The rows matching every filter given (None: any); may be empty."""
        keep = [i for i, r in enumerate(self.records) if _matches(r, step, label, pass_)]
        index = torch.tensor(keep, dtype=torch.long, device=self.h.device)
        return HCollection(
            self.folder,
            self.h.index_select(0, index),
            [self.records[i] for i in keep],
            self.shards,
            self.skipped,
            self.runs,
        )

    def summary(self) -> str:
        """One line for a log or a node's STRING output."""
        text = (
            f"h-space collection '{self.folder.name}': {self.samples} h of shape {'x'.join(map(str, self.shape))} at "
            f"{len(self.steps)} step(s), {len(self.labels)} label(s), from {len(self.shards)} shard(s)"
        )
        if self.skipped:
            text += f", {len(self.skipped)} shard(s) skipped"
        return text


def sanitize_collection_name(name: str) -> str:
    """A collection name safe as one folder name; InvalidNameError when nothing usable is left."""
    return sanitize_name(name, "collection")


def collection_folder(root: str | os.PathLike[str], name: str) -> Path:
    """`root/<sanitised name>`: the folder of collection `name` (not created)."""
    return Path(root) / sanitize_collection_name(name)


def _shard_paths(folder: Path) -> list[Path]:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    return sorted(p for p in entries if p.suffix == SHARD_SUFFIX and not p.name.startswith(".") and p.is_file())


def shard_paths(folder: str | os.PathLike[str]) -> list[Path]:
    """The finished shards of a collection folder, in write order (temporary and hidden files left out)."""
    return _shard_paths(Path(folder))


def list_collections(root: str | os.PathLike[str]) -> list[str]:
    """Names of the collections under `root` (sub-folders with at least one shard), sorted; [] for a missing root."""
    base = Path(root)
    if not base.is_dir():
        return []
    names = [e.name for e in base.iterdir() if e.is_dir() and not e.name.startswith(".") and _shard_paths(e)]
    return sorted(names, key=str.lower)


def _shard_name() -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    micro = f"{time.time_ns() // 1000 % 1_000_000:06d}"
    return f"{SHARD_PREFIX}{stamp}{micro}-{os.getpid()}-{secrets.token_hex(4)}{SHARD_SUFFIX}"


def append_h(
    folder: str | os.PathLike[str],
    h: torch.Tensor,
    records: Sequence[Mapping[str, Any]],
    run: Mapping[str, Any] | None = None,
) -> Path:
    """Write one shard: h `[M, *shape]` (any float dtype and device; stored float16 on the CPU) and M records.

    The folder is created if missing. Atomic and safe with concurrent writers; returns the shard's path.
    Raises ShapeMismatchError for a bad h, NonFiniteError for NaN / infinity (or values beyond float16's range),
    DatasetError (reason "records") for records that do not describe the rows.
    """
    check_samples(h, "h")
    check_finite(h, "h")
    if float(h.detach().abs().max()) > _FLOAT16_MAX:
        raise NonFiniteError(
            f"h holds values beyond float16's range (|h| up to {float(h.abs().max()):.4g} > 65504)", what="h"
        )
    rows = [check_record(r, i) for i, r in enumerate(records)]
    if len(rows) != h.shape[0]:
        raise DatasetError(f"{len(rows)} record(s) for {h.shape[0]} h", reason="records", records=len(rows))
    info = {"rows": int(h.shape[0]), "shape": list(h.shape[1:]), "records": rows, "run": dict(run or {})}
    try:
        json.dumps(info, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise DatasetError(f"the records cannot be stored as JSON ({err})", reason="records") from None
    stored = h.detach().to("cpu", STORED_DTYPE).contiguous()
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    while True:
        final = target / _shard_name()
        if not final.exists():
            break
    write_typed_file(final, COLLECTION_KIND, {"h": stored}, info)
    logger.info("wrote %d h to %s", stored.shape[0], final)
    return final


def _expected(info: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    rows, shape = info.get("rows"), info.get("shape")
    if not isinstance(rows, int) or rows < 1 or not isinstance(shape, list) or not shape:
        raise ValueError(f"its metadata has no valid rows / shape ({rows!r}, {shape!r})")
    return {"h": (rows, *shape)}


def _read_shard(path: Path) -> tuple[torch.Tensor, list[dict[str, Any]], Any]:
    try:
        tensors, info = read_typed_file(path, COLLECTION_KIND, _expected, dtypes=(STORED_DTYPE, torch.float32))
    except ValueError as err:  # from _expected
        raise COLLECTION_KIND.refuse(path, str(err)) from None
    records = info.get("records")
    if not isinstance(records, list) or len(records) != tensors["h"].shape[0]:
        raise COLLECTION_KIND.refuse(path, "its records do not match its rows")
    try:
        records = [check_record(r, i) for i, r in enumerate(records)]
    except DatasetError as err:
        raise COLLECTION_KIND.refuse(path, err.facts) from None
    return tensors["h"], records, info.get("run")


def count_samples(folder: str | os.PathLike[str]) -> tuple[int, int]:
    """(shards, h) of a collection folder: usable shards only (reads them; for a display)."""
    shards = rows = 0
    for path in _shard_paths(Path(folder)):
        try:
            h, _, _ = _read_shard(path)
        except Exception:  # counting is informative only; read_collection names broken shards
            continue
        shards += 1
        rows += int(h.shape[0])
    return shards, rows


def read_collection(
    folder: str | os.PathLike[str],
    *,
    step: int | None = None,
    label: str | None = None,
    pass_: str | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> HCollection:
    """The usable h of a collection folder, in shard order, keeping only the rows matching the filters given.

    Unreadable shards and shards of another h shape than most are skipped with a warning (listed in `.skipped`).
    Raises DatasetError: reason "missing" (no folder), "empty" (no shards), "unusable" (no readable shard),
    "no_match" (no row matches the filters).
    """
    base = Path(folder)
    if not base.is_dir():
        raise DatasetError(f"the collection folder {base} does not exist", reason="missing", folder=str(base))
    paths = _shard_paths(base)
    if not paths:
        raise DatasetError(
            f"the collection folder {base} holds no shards (*.safetensors)", reason="empty", folder=str(base)
        )
    loaded: list[tuple[Path, torch.Tensor, list[dict[str, Any]], Any]] = []
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        try:
            loaded.append((path, *_read_shard(path)))
        except Exception as err:  # one broken shard must not cost the whole collection
            reason = getattr(err, "facts", None) or f"{type(err).__name__}: {err}"
            logger.warning("h-space collection: skipping %s (%s)", path, reason)
            skipped.append((path, reason))
    if loaded:
        sizes = Counter(tuple(item[1].shape[1:]) for item in loaded)
        best = max(sizes.values())
        ref = next(tuple(item[1].shape[1:]) for item in loaded if sizes[tuple(item[1].shape[1:])] == best)
        kept = []
        for item in loaded:
            size = tuple(item[1].shape[1:])
            if size == ref:
                kept.append(item)
                continue
            reason = f"h shape {'x'.join(map(str, size))} differs from the collection's {'x'.join(map(str, ref))}"
            logger.warning("h-space collection: skipping %s (%s)", item[0], reason)
            skipped.append((item[0], reason))
        loaded = kept
    if not loaded:
        reasons = "; ".join(f"{p.name}: {r}" for p, r in skipped)
        raise DatasetError(
            f"the collection folder {base} has no usable shard ({reasons})", reason="unusable", folder=str(base)
        )
    parts, records = [], []
    for _, h, shard_records, _ in loaded:
        keep = [i for i, r in enumerate(shard_records) if _matches(r, step, label, pass_)]
        if keep:
            parts.append(h[torch.tensor(keep, dtype=torch.long)].to(dtype))
            records += [shard_records[i] for i in keep]
    if not parts:
        held = sorted({r["step"] for item in loaded for r in item[2]})
        labels = list(dict.fromkeys(r["label"] for item in loaded for r in item[2]))
        wanted = ", ".join(
            f"{k} {v!r}" for k, v in (("step", step), ("label", label), ("pass", pass_)) if v is not None
        )
        raise DatasetError(
            f"the collection {base} holds no h with {wanted} (it holds steps {held}, labels {labels})",
            reason="no_match",
            folder=str(base),
            steps=held,
            labels=labels,
        )
    h = torch.cat(parts)
    if device is not None:
        h = h.to(device)
    skipped.sort(key=lambda item: item[0].name)
    return HCollection(
        folder=base,
        h=h,
        records=records,
        shards=[item[0] for item in loaded],
        skipped=skipped,
        runs=[item[3] for item in loaded],
    )
