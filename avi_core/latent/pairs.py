"""Captured pairs: two ComfyUI LATENT dicts (x at Tx, z at Tz, same seed) -> paper-space tensors.

The one place where a captured pair is checked and converted; the nodes (merge, train, datasets) and the
dataset writer all go through `latent_pair_to_paper`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..errors import PairMismatchError
from .capture import check_pair, get_record
from .conventions import to_paper_space


def latent_to_paper(latent: Mapping[str, Any], role: str) -> tuple[torch.Tensor, dict[str, Any]]:
    """One captured ComfyUI LATENT -> (paper-space float32 `[B, C, H, W]` on its device, its checked record)."""
    record = get_record(latent, role)
    samples = latent["samples"]
    return to_paper_space(samples, record["sigma"], record["scale_factor"]).float(), record


def latent_pair_to_paper(
    original: Mapping[str, Any], target: Mapping[str, Any]
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Captured LATENTs x (original prompt, at Tx) and z (target prompt, at Tz) -> (x, z, records).

    Both must carry a capture record, and the records must make a pair (`capture.check_pair`: same seed, batch
    and scale factor, x noisier than z); the latents must have the same shape. Returns paper-space float32
    x, z `[P, C, H, W]` on the latents' device and `{"x": x_record, "z": z_record}`.
    """
    x, x_record = latent_to_paper(original, "original")
    z, z_record = latent_to_paper(target, "target")
    check_pair(x_record, z_record)
    if x.shape != z.shape:
        raise PairMismatchError(
            f"the original latent is {tuple(x.shape)} but the target is {tuple(z.shape)} (batch, channels, H, W)",
            reason="shape",
        )
    return x, z, {"x": x_record, "z": z_record}
