"""Synthetic paper-space data for host-free tests."""

from __future__ import annotations

import torch


def synthetic_pairs(pairs: int, channels: int = 4, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Paired latents [P, C, size, size]: x is low-rank structure plus noise, z is x with an added attribute
    (a fixed low-rank pattern), roughly unit scale like paper-space latents."""
    g = torch.Generator().manual_seed(seed)
    basis_u = torch.randn(channels, size, 3, generator=g)
    basis_v = torch.randn(channels, 3, size, generator=g)
    coeff = torch.randn(pairs, channels, 3, generator=g)
    x = torch.einsum("chr,pcr,crw->pchw", basis_u, coeff, basis_v) / size + 0.5 * torch.randn(
        pairs, channels, size, size, generator=g
    )
    attribute = torch.randn(channels, size, 1, generator=g) @ torch.randn(channels, 1, size, generator=g)
    z = 0.8 * x + 0.6 * attribute / attribute.norm(dim=(-2, -1), keepdim=True) * size**0.5
    return x, z
