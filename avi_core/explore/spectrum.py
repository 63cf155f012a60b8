"""Singular spectra of latents, and one seed's trajectory in paper space (spec 11; paper section 4.2).

Spectra are only comparable across steps in paper space: a ComfyUI latent `(x0 + sigma * eps) / s` grows with
sigma (variance-exploding), so its singular values would mostly show the noise level. `paper_trajectory`
converts the latents a node captured at several steps with `avi_core.latent.conventions.to_paper_space`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from ..errors import NonFiniteError, ParameterError, ShapeMismatchError
from ..latent.conventions import to_paper_space
from ..latent.svd import channel_svd

logger = logging.getLogger("avi.explore")


def singular_spectrum(latents: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """Singular values of every channel matrix: `latents [..., H, W]` -> `S [..., r]`, r = min(H, W).

    Descending, >= 0, float32 (float64 for float64 input), on the input's device. Any space; use paper space
    to compare steps (module doc). Raises NonFiniteError for NaN or infinity in the input.
    """
    _, s, _ = channel_svd(latents, backend=backend)
    return s


def paper_trajectory(
    latents: Sequence[torch.Tensor] | torch.Tensor, sigmas: Sequence[float], scale_factor: float
) -> torch.Tensor:
    """One run's latents captured at several steps -> paper space, stacked: `[S, B, C, H, W]`, float32+.

    latents: S ComfyUI latents `[B, C, H, W]` (or a tensor `[S, B, C, H, W]`), latent j at noise level
    `sigmas[j]` (its capture record's sigma); scale_factor: the model's latent scale factor.
    """
    items = list(latents.unbind(0)) if isinstance(latents, torch.Tensor) else list(latents)
    if not items:
        raise ParameterError("there are no captured latents", reason="empty", name="latents", value=0, low=1)
    if len(items) != len(sigmas):
        raise ParameterError(
            f"got {len(items)} latents but {len(sigmas)} sigmas; each captured latent needs its sigma",
            reason="count",
            name="sigmas",
            value=len(sigmas),
        )
    shape = tuple(items[0].shape)
    for item in items:
        if tuple(item.shape) != shape:
            raise ShapeMismatchError(
                f"the captured latents differ in shape: {shape} and {tuple(item.shape)}",
                reason="shape",
                expected=shape,
                got=tuple(item.shape),
            )
    out = torch.stack(
        [to_paper_space(item, float(sigma), scale_factor) for item, sigma in zip(items, sigmas, strict=True)]
    )
    if not bool(torch.isfinite(out).all()):
        raise NonFiniteError("a captured latent holds NaN or infinity", reason="input")
    return out
