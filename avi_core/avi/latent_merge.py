"""Merging two captured ComfyUI LATENTs with a head: the whole of what 'AVI Merge' does, host-free.

x (original prompt, at Tx) and z (target prompt, at Tz, same seed) go to paper space with their own sigmas,
are merged (`merge.merge_sweep`, Algorithm 1) at one or several rho, and come back to ComfyUI's convention
at x's sigma, because sampling resumes at x's step (spec section 1). The result keeps x's extra keys and
capture record; a sweep of several rho is one batch, rho-major.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..latent.capture import CAPTURE_KEY
from ..latent.conventions import from_paper_space
from ..latent.pairs import latent_pair_to_paper
from .head import AttributeHead, resolve_k
from .merge import merge_sweep

logger = logging.getLogger("avi.merge")


def repeat_latent_keys(latent: Mapping[str, Any], repeats: int, batch: int) -> dict[str, Any]:
    """Copy of a LATENT dict's extra keys for a rho-major sweep of `repeats` copies of a batch of `batch`.

    batch_index repeats x's indices (each rho's item i keeps item i's noise index); a per-item noise_mask is
    repeated along the batch, a single mask is kept.
    """
    out = dict(latent)
    if repeats == 1:
        return out
    if "batch_index" in latent:
        out["batch_index"] = list(latent["batch_index"]) * repeats
    else:
        out["batch_index"] = list(range(batch)) * repeats
    mask = latent.get("noise_mask")
    if isinstance(mask, torch.Tensor) and mask.dim() >= 3 and mask.shape[0] == batch and batch > 1:
        out["noise_mask"] = mask.repeat(repeats, *([1] * (mask.dim() - 1)))
    return out


def merge_latents(
    original: Mapping[str, Any],
    target: Mapping[str, Any],
    head: AttributeHead,
    rhos: Sequence[float],
    *,
    k: int = 0,
    mode: str = "paper",
) -> dict[str, Any]:
    """The merged LATENT of x = `original` and z = `target`: `len(rhos)` merges of the batch, rho-major.

    Both latents must carry capture records that make a pair (`latent.pairs.latent_pair_to_paper`, which
    converts them to paper space) and be of the head's size. k = 0 uses the head's k. The result is x's LATENT
    dict (extra keys repeated for a sweep) with "samples" replaced, on x's device and dtype, and x's record
    with `batch` and `merged` (rhos, mode, k) updated.
    """
    x, z, records = latent_pair_to_paper(original, target)
    head.check_latent_size(x.shape[-2], x.shape[-1])
    x_record = records["x"]
    rhos = [float(r) for r in rhos]
    y = merge_sweep(x, z, head, rhos, k=int(k) or None, mode=mode)
    used_k = resolve_k(k, head.k, head.rank)
    merged = from_paper_space(y, x_record["sigma"], x_record["scale_factor"])
    x_latent: torch.Tensor = original["samples"]
    batch = x_latent.shape[0]
    out = repeat_latent_keys(original, len(rhos), batch)
    out["samples"] = merged.to(device=x_latent.device, dtype=x_latent.dtype)
    record = dict(x_record)
    record.update(batch=int(merged.shape[0]), merged={"rhos": rhos, "mode": mode, "k": used_k})
    out[CAPTURE_KEY] = record
    logger.info("AVI merge: %d latent(s), rho %s, mode %s, k %d", batch, rhos, mode, used_k)
    return out
