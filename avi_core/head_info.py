"""Naming head files safely and describing a head to an artist (host-free helpers for the nodes)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

HEAD_SUFFIX = ".safetensors"
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
_MAX_NAME = 100


def sanitize_head_name(name: str) -> str:
    """A head name safe as one file name in the heads folder, without the suffix.

    Path separators, '..', leading dots and characters other than letters, digits, '.', '_', '-' and space
    become '_' (so 'a/../../b' cannot leave the folder); a trailing '.safetensors' is dropped. Raises
    ValueError when nothing usable is left.
    """
    if not isinstance(name, str):
        raise ValueError(f"the head name must be text, got {type(name).__name__}")
    cleaned = name.strip()
    if cleaned.lower().endswith(HEAD_SUFFIX):
        cleaned = cleaned[: -len(HEAD_SUFFIX)]
    cleaned = _UNSAFE.sub("_", cleaned).replace("..", "_")
    cleaned = re.sub(r"_+", "_", cleaned).strip(" ._")
    if not cleaned:
        raise ValueError(
            f"the head name {name!r} has no usable characters; type a name made of letters, digits, '-' or '_' (for "
            "example 'smiling')"
        )
    return cleaned[:_MAX_NAME].rstrip(" .")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def describe_head(metadata: Mapping[str, Any], name: str | None = None) -> str:
    """A few lines saying what a head is: its description, what it was trained on, k and sizes, timesteps."""
    lines = []
    title = name or metadata.get("name") or "attribute head"
    lines.append(f"AVI head '{title}'")
    if metadata.get("description"):
        lines.append(f"description: {metadata['description']}")
    h, w = metadata.get("height"), metadata.get("width")
    lines.append(
        f"latent size {h}x{w} (images of {h * 8}x{w * 8} px for Stable Diffusion)"
        if isinstance(h, int) and isinstance(w, int)
        else "latent size unknown"
    )
    lines.append(
        f"rank r = {metadata.get('rank', '?')}, k = {metadata.get('k', '?')} x directions kept, hidden width "
        f"{metadata.get('hidden', '?')}"
    )
    trained = []
    if metadata.get("pairs") is not None:
        trained.append(f"{metadata['pairs']} pairs")
    if metadata.get("source"):
        trained.append(f"from {metadata['source']}")
    if metadata.get("epochs") is not None:
        trained.append(f"{metadata['epochs']} epochs")
    if metadata.get("steps") is not None:
        trained.append(f"{metadata['steps']} steps")
    if trained:
        lines.append("trained on " + ", ".join(trained))
    if metadata.get("x_timestep") is not None and metadata.get("z_timestep") is not None:
        total = metadata.get("T", "?")
        lines.append(
            f"x at timestep {metadata['x_timestep']} (step {metadata.get('x_step', '?')} of "
            f"{metadata.get('x_steps', '?')}), z at timestep {metadata['z_timestep']} (step "
            f"{metadata.get('z_step', '?')} of {metadata.get('z_steps', '?')}), T = {total}"
        )
    final = metadata.get("final_losses")
    if isinstance(final, Mapping) and final:
        lines.append("final losses: " + ", ".join(f"{k} {_fmt(v)}" for k, v in final.items()))
    if metadata.get("created"):
        lines.append(f"created {metadata['created']} with pack {metadata.get('pack_version', '?')}")
    return "\n".join(lines)
