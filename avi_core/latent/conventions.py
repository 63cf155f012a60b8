"""Conversion between ComfyUI latents and the paper's latent space (spec section 1).

ComfyUI passes latents unscaled and variance-exploding: a latent left at noise level sigma is
`(x0 + sigma * eps) / s`, s being the model's latent scale factor. The paper works on variance-preserving
DDPM latents `sqrt(abar) x0 + sqrt(1 - abar) eps` with `abar = 1 / (1 + sigma^2)`, hence

    paper = s * comfy / sqrt(1 + sigma^2)          comfy = paper * sqrt(1 + sigma^2) / s

Every SVD, head input and merge runs in paper space.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..errors import ParameterError

SigmaLike = float | Sequence[float] | torch.Tensor

# The latent scale factor of SD 1.x/2.x (SDXL: 0.13025). Nodes read it from the model; this is the CLI default.
SD_SCALE_FACTOR = 0.18215


def _work_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _check_scale_factor(scale_factor: float) -> float:
    scale = float(scale_factor)
    if not math.isfinite(scale) or scale <= 0:
        raise ParameterError(
            f"scale_factor must be a positive finite number (0.18215 for SD 1.x/2.x), got {scale_factor}",
            name="scale_factor",
            value=scale_factor,
        )
    return scale


def _variance_factor(sigma: SigmaLike, like: torch.Tensor) -> torch.Tensor:
    """sqrt(1 + sigma^2), shaped to broadcast over `like` [B, ...] (one sigma, or one per batch item)."""
    sig = torch.as_tensor(sigma, dtype=torch.float64, device=like.device)
    if not torch.isfinite(sig).all() or (sig < 0).any():
        raise ParameterError(f"sigma must be finite and >= 0, got {sig.tolist()}", name="sigma", value=sig.tolist())
    if sig.dim() > 1:
        raise ParameterError(
            f"sigma must be a number or one value per batch item, got shape {tuple(sig.shape)}", name="sigma"
        )
    if sig.dim() == 1:
        if like.dim() == 0 or sig.shape[0] not in (1, like.shape[0]):
            raise ParameterError(
                f"got {sig.shape[0]} sigmas for a batch of {like.shape[0] if like.dim() else 0} latents; "
                "give one sigma, or one per batch item"
            )
        sig = sig.reshape(-1, *([1] * (like.dim() - 1)))
    return torch.sqrt(1.0 + sig * sig).to(_work_dtype(like))


def to_paper_space(latent: torch.Tensor, sigma: SigmaLike, scale_factor: float) -> torch.Tensor:
    """ComfyUI latent `[B, C, H, W]` at noise level sigma -> paper-space latent, same shape, float32+."""
    scale = _check_scale_factor(scale_factor)
    work = latent.to(_work_dtype(latent))
    return work * scale / _variance_factor(sigma, work)


def from_paper_space(x: torch.Tensor, sigma: SigmaLike, scale_factor: float) -> torch.Tensor:
    """Paper-space latent `[B, C, H, W]` -> ComfyUI latent at noise level sigma, same shape, float32+."""
    scale = _check_scale_factor(scale_factor)
    work = x.to(_work_dtype(x))
    return work * _variance_factor(sigma, work) / scale
