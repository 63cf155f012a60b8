"""The attribute head Phi (spec section 4).

Phi maps one paper-space channel matrix of x, flattened to H*W values, to two vectors of length r = min(H, W):
the singular values S and the correction ds. Architecture (paper section 5): three Linear layers of width
`hidden`, each followed by ReLU, then two branches of one Linear layer each. One head serves every channel,
and is tied to the H x W it was trained on.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import HeadSizeMismatchError, ParameterError

# Stable Diffusion's VAE downsamples by 8; used only to phrase sizes in pixels an artist recognises.
PIXELS_PER_LATENT = 8


def describe_latent_size(height: int, width: int) -> str:
    """'64x64 (a 512x512 px image for Stable Diffusion)'."""
    return (
        f"{height}x{width} (a {height * PIXELS_PER_LATENT}x{width * PIXELS_PER_LATENT} px image for Stable Diffusion)"
    )


def check_k(k: int, rank: int) -> int:
    """k (x directions kept whole) as an int when 1 <= k <= rank - 1, else ParameterError naming the range."""
    if isinstance(k, bool) or int(k) != k:
        raise ParameterError(f"k must be a whole number, got {k!r}", reason="type", name="k", value=k)
    k = int(k)
    if not 1 <= k <= rank - 1:
        raise ParameterError(
            f"k = {k} is out of range for latents of rank {rank}: k runs from 1 to {rank - 1} (the paper uses r/2 = "
            f"{rank // 2})",
            reason="range",
            name="k",
            value=k,
            low=1,
            high=rank - 1,
        )
    return k


def resolve_k(k: int | None, default: int, rank: int) -> int:
    """The k to use: `default` (the head's, or r/2) when k is None or 0 ("0 means the head's"), else checked k."""
    return check_k(default if k is None or k == 0 else k, rank)


class AttributeHead(nn.Module):
    """Phi: `[..., H, W]` paper-space channel matrices -> `(S [..., r], ds [..., r])`.

    Attributes: height, width, hidden, rank (r = min(H, W)), k (x directions kept whole; r // 2 unless given),
    metadata (a dict describing how the head was made; filled by training and by `load_head`).
    """

    def __init__(self, height: int, width: int, hidden: int = 4096, k: int | None = None) -> None:
        super().__init__()
        if height < 2 or width < 2 or hidden < 1:
            raise ParameterError(
                f"a head needs H, W >= 2 and hidden >= 1, got H={height}, W={width}, hidden={hidden}",
                name="hidden" if hidden < 1 else "size",
                value=hidden if hidden < 1 else (height, width),
            )
        self.height = int(height)
        self.width = int(width)
        self.hidden = int(hidden)
        self.rank = min(self.height, self.width)
        self.k = self.rank // 2 if k is None else check_k(k, self.rank)
        self.metadata: dict[str, Any] = {}
        inputs = self.height * self.width
        self.trunk = nn.Sequential(
            nn.Linear(inputs, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.singular_values = nn.Linear(hidden, self.rank)
        self.correction = nn.Linear(hidden, self.rank)

    @staticmethod
    def parameter_shapes(height: int, width: int, hidden: int) -> dict[str, tuple[int, ...]]:
        """The state-dict names and shapes of a head of this size, without building one."""
        inputs, rank = height * width, min(height, width)
        return {
            "trunk.0.weight": (hidden, inputs),
            "trunk.0.bias": (hidden,),
            "trunk.2.weight": (hidden, hidden),
            "trunk.2.bias": (hidden,),
            "trunk.4.weight": (hidden, hidden),
            "trunk.4.bias": (hidden,),
            "singular_values.weight": (rank, hidden),
            "singular_values.bias": (rank,),
            "correction.weight": (rank, hidden),
            "correction.bias": (rank,),
        }

    def check_latent_size(self, height: int, width: int) -> None:
        """Raise HeadSizeMismatchError, naming both sizes, unless the latent is H x W of this head."""
        if (int(height), int(width)) != (self.height, self.width):
            raise HeadSizeMismatchError(
                f"this attribute head was trained on {describe_latent_size(self.height, self.width)} latents, "
                f"but the latent given is {describe_latent_size(int(height), int(width))}",
                head=(self.height, self.width),
                latent=(int(height), int(width)),
                head_px=f"{self.width * PIXELS_PER_LATENT}x{self.height * PIXELS_PER_LATENT}",
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_latent_size(x.shape[-2], x.shape[-1])
        lead = x.shape[:-2]
        weight = self.singular_values.weight
        features = self.trunk(x.reshape(*lead, self.height * self.width).to(device=weight.device, dtype=weight.dtype))
        return self.singular_values(features), self.correction(features)

    def extra_repr(self) -> str:
        return f"height={self.height}, width={self.width}, hidden={self.hidden}, rank={self.rank}, k={self.k}"
