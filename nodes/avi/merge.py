"""AVI Merge: replace the original latent x by the merge of x and the target latent z (Algorithm 1)."""

from __future__ import annotations

import logging
from typing import Any

import torch

from ...avi_core.latent.capture import CAPTURE_KEY, check_pair, get_record
from ...avi_core.values import parse_number_list as _parse


def parse_rho_list(text):
    return _parse(text, "rho_list")


from ...avi_core.avi.merge import MERGE_MODES, merge_sweep
from ...avi_core.errors import ShapeMismatchError
from ...avi_core.latent.conventions import from_paper_space, to_paper_space
from ..common import CATEGORY, HEAD_TYPE

logger = logging.getLogger("avi.nodes.merge")


def repeat_latent_keys(latent: dict[str, Any], repeats: int, batch: int) -> dict[str, Any]:
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


class AVIMerge:
    DESCRIPTION = (
        "Attribute Vector Integration: merges the original latent x (captured at 0.8T) with the target latent z "
        "(captured at 0.5T from the same seed) using an attribute head, in the paper's latent space, and returns a "
        "latent at x's noise level. Resume it with KSamplerAdvanced (start_at_step = x's step, add_noise disable, "
        "the ORIGINAL prompt). A rho list returns the whole sweep as one batch."
    )
    CATEGORY = CATEGORY
    FUNCTION = "merge"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = (
        "The merged latent in ComfyUI's convention at x's sigma, with x's capture record and other keys; for a rho "
        "list, all rhos as one batch, rho-major (all images of the first rho, then the next).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "original": (
                    "LATENT",
                    {"tooltip": "x: the original-prompt latent from 'AVI Capture Latent at Step' (stop_at 0.8)."},
                ),
                "target": (
                    "LATENT",
                    {
                        "tooltip": "z: the target-prompt latent from 'AVI Capture Latent at Step' (stop_at 0.5), "
                        "same seed and batch size as x."
                    },
                ),
                "head": (
                    HEAD_TYPE,
                    {"tooltip": "The attribute head, from 'AVI Load Attribute Head' or training."},
                ),
                "rho": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 2.0,
                        "step": 0.05,
                        "display": "slider",
                        "tooltip": "Strength of the attribute: 0 keeps x's directions, 1 is the paper's edit, above "
                        "1 extrapolates.",
                    },
                ),
                "k": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 4096,
                        "tooltip": "How many of x's leading singular directions are kept whole; 0 = the head's (the "
                        "paper: r/2, 32 for 512 px).",
                    },
                ),
                "mode": (
                    list(MERGE_MODES),
                    {
                        "default": "paper",
                        "tooltip": "paper: singular values from the head (Algorithm 1). anchored: blend x's "
                        "singular values with the head's by rho, so rho = 0 returns x exactly.",
                    },
                ),
                "rho_list": (
                    "STRING",
                    {
                        "default": "",
                        "multiline": False,
                        "tooltip": "Optional comma-separated rho values, e.g. '0, 0.25, 0.5, 0.75, 1': returns the "
                        "sweep as one batch (rho-major) and ignores rho. Empty = use rho.",
                    },
                ),
            }
        }

    def merge(self, original, target, head, rho, k, mode, rho_list=""):
        x_record = get_record(original, "original")
        z_record = get_record(target, "target")
        x_latent: torch.Tensor = original["samples"]
        z_latent: torch.Tensor = target["samples"]
        head.check_latent_size(x_latent.shape[-2], x_latent.shape[-1])
        head.check_latent_size(z_latent.shape[-2], z_latent.shape[-1])
        check_pair(x_record, z_record)
        if x_latent.shape != z_latent.shape:
            raise ShapeMismatchError(
                f"the original latent is {tuple(x_latent.shape)} but the target is {tuple(z_latent.shape)}: capture "
                "both from the same Empty Latent Image and model"
            )
        rhos = parse_rho_list(rho_list) or [float(rho)]
        x = to_paper_space(x_latent, x_record["sigma"], x_record["scale_factor"])
        z = to_paper_space(z_latent, z_record["sigma"], z_record["scale_factor"])
        y = merge_sweep(x, z, head, rhos, k=int(k) or None, mode=mode)
        merged = from_paper_space(y, x_record["sigma"], x_record["scale_factor"])
        batch = x_latent.shape[0]
        out = repeat_latent_keys(original, len(rhos), batch)
        out["samples"] = merged.to(device=x_latent.device, dtype=x_latent.dtype)
        record = dict(x_record)
        record.update(batch=int(merged.shape[0]), merged={"rhos": rhos, "mode": mode, "k": int(k) or head.k})
        out[CAPTURE_KEY] = record
        logger.info("AVI merge: %d latent(s), rho %s, mode %s, k %d", batch, rhos, mode, int(k) or head.k)
        return (out,)


NODE_CLASS_MAPPINGS = {"AVIMerge": AVIMerge}
NODE_DISPLAY_NAME_MAPPINGS = {"AVIMerge": "AVI Merge"}
