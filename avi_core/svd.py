"""Thin SVD of every channel matrix of a batch of latents.

`channel_svd(x)` decomposes the last two dimensions of `x` ([..., H, W]) and returns
`U [..., H, r]`, `S [..., r]` (descending) and `Vh [..., r, W]` (right singular vectors as rows),
r = min(H, W). The arithmetic is float32, or float64 when `x` is float64; the result stays on `x`'s device.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger("avi.svd")

BACKENDS = ("auto", "torch")


def _working_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def torch_svd(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LAPACK / cuSOLVER through `torch.linalg.svd(full_matrices=False)`."""
    return torch.linalg.svd(x, full_matrices=False)


def channel_svd(x: torch.Tensor, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD of `x [..., H, W]` in float32 or better; see the module docstring for shapes."""
    if x.dim() < 2:
        raise ValueError(f"channel_svd needs a tensor of at least 2 dimensions, got shape {tuple(x.shape)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown SVD backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return torch_svd(x.to(_working_dtype(x)))
