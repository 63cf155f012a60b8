"""Describing a head to a person: the one describer behind the Load node's `info` and `avi info`.

`describe_head(metadata)` gives a few lines an artist reads (what it is, what it was trained on, k and sizes,
timesteps, final losses); `full=True` adds everything else the file records (storage, hyperparameters, source
files, any other key), which is what `avi info` prints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .head import describe_latent_size
from .loss import LOSS_NAMES


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def loss_line(values: Mapping[str, float]) -> str:
    """'L1 1.23  L2 4.5  L3 0.1  L4 0.2  weighted total 98.7' from a head's final_losses (unweighted terms)."""
    parts = [f"{name} {_fmt(float(values[name]))}" for name in LOSS_NAMES if name in values]
    if "total" in values:
        parts.append(f"weighted total {_fmt(float(values['total']))}")
    return "  ".join(parts)


def _capture_line(meta: Mapping[str, Any]) -> str | None:
    parts = []
    for role in ("x", "z"):
        bits = []
        if meta.get(f"{role}_timestep") is not None:
            bits.append(f"timestep {_fmt(meta[f'{role}_timestep'])}")
        if meta.get(f"{role}_step") is not None:
            bits.append(f"step {meta[f'{role}_step']}")
        if meta.get(f"{role}_steps") is not None:
            bits.append(f"of {meta[f'{role}_steps']} steps")
        if meta.get(f"{role}_sigma") is not None:
            bits.append(f"sigma {_fmt(meta[f'{role}_sigma'])}")
        if bits:
            parts.append(f"{role} at {' '.join(bits)}")
    if meta.get("T") is not None:
        parts.append(f"T = {meta['T']}")
    return "; ".join(parts) if parts else None


_SHORT_KEYS = {
    "name", "description", "height", "width", "rank", "k", "hidden", "pairs", "source", "epochs", "steps",
    "x_timestep", "z_timestep", "x_step", "z_step", "x_steps", "z_steps", "x_sigma", "z_sigma", "T",
    "final_losses", "created", "pack_version",
}  # fmt: skip
_HYPER = (
    ("epochs", "epochs"),
    ("batch_size", "batch"),
    ("learning_rate", "lr"),
    ("rho_train", "rho"),
    ("seed", "seed"),
    ("samples_per_epoch", "samples/epoch"),
    ("steps", "steps"),
)


def describe_head(
    metadata: Mapping[str, Any], name: str | None = None, *, full: bool = False, file_size: int | None = None
) -> str:
    """Lines describing a head from its metadata (`read_head_metadata` or `head.metadata`).

    name: the title (default: the metadata's name). full: add storage, hyperparameters, source files and every
    other recorded key. file_size: the file's size in bytes, shown with `full`.
    """
    meta = dict(metadata)
    title = name or meta.get("name") or "attribute head"
    lines = [f"AVI head '{title}'"]
    lines.append(f"description: {meta.get('description') or '(none)'}")
    h, w = meta.get("height"), meta.get("width")
    size_known = isinstance(h, int) and isinstance(w, int)
    lines.append(f"latent size {describe_latent_size(h, w)}" if size_known else "latent size unknown")
    lines.append(
        f"rank r = {meta.get('rank', '?')}, k = {meta.get('k', '?')} x directions kept whole, hidden width "
        f"{meta.get('hidden', '?')}"
    )
    trained = []
    if meta.get("pairs") is not None:
        trained.append(f"{meta['pairs']} pair(s)")
    if meta.get("source"):
        trained.append(f"from {meta['source']}")
    if meta.get("epochs") is not None:
        trained.append(f"{meta['epochs']} epochs")
    if meta.get("steps") is not None:
        trained.append(f"{meta['steps']} steps")
    if trained:
        lines.append("trained on " + ", ".join(trained))
    capture = _capture_line(meta)
    if capture:
        lines.append(f"captures: {capture}")
    final = meta.get("final_losses")
    if isinstance(final, Mapping) and final:
        lines.append(f"final losses (unweighted terms): {loss_line(final)}")
    if meta.get("created"):
        lines.append(f"created {meta['created']} with pack {meta.get('pack_version', '?')}")
    if not full:
        return "\n".join(lines)

    shown = set(_SHORT_KEYS)
    storage = f"weights stored as {meta.get('storage_dtype', 'float32')}"
    if file_size is not None:
        storage = f"{file_size / 2**20:.2f} MiB, {storage}"
    lines.append(f"file: {storage}")
    shown.add("storage_dtype")
    extra_capture = [f"{key} {meta[key]}" for key in ("scale_factor", "sampler", "scheduler") if meta.get(key)]
    shown.update(("scale_factor", "sampler", "scheduler"))
    if extra_capture:
        lines.append("captured with " + ", ".join(extra_capture))
    hyper = [f"{label} {_fmt(meta[key])}" for key, label in _HYPER if meta.get(key) is not None]
    shown.update(key for key, _ in _HYPER)
    if isinstance(meta.get("lambdas"), list):
        hyper.append("lambdas " + "/".join(_fmt(v) for v in meta["lambdas"]))
    if meta.get("train_seconds") is not None:
        hyper.append(f"{_fmt(meta['train_seconds'])} s")
    if meta.get("stopped_early"):
        hyper.append("STOPPED EARLY")
    shown.update(("lambdas", "train_seconds", "stopped_early", "channels"))
    if hyper:
        lines.append("training: " + ", ".join(hyper))
    if meta.get("channel_samples") is not None:
        lines.append(f"channel samples: {meta['channel_samples']}")
    shown.add("channel_samples")
    files = meta.get("source_files")
    shown.add("source_files")
    if isinstance(files, list) and files:
        more = f" (+{len(files) - 4} more)" if len(files) > 4 else ""
        lines.append(f"source files: {', '.join(map(str, files[:4]))}{more}")
    for key in sorted(set(meta) - shown):
        value = meta[key]
        lines.append(f"{key}: {value if isinstance(value, str) else json.dumps(value)}")
    return "\n".join(lines)
