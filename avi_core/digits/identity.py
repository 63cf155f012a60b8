"""Identity measures between an edit and its unedited original: pixel SSIM and classifier feature distance."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ShapeMismatchError
from .classifier import DigitClassifier

_C1 = 0.01**2
_C2 = 0.03**2


def _gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).to(torch.float32)[None, None]


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.ndim == 3:
        a = a[:, None]
    if b.ndim == 3:
        b = b[:, None]
    if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 1:
        raise ShapeMismatchError(f"images to compare must both be [N, 1, H, W], got {tuple(a.shape)}, {tuple(b.shape)}")
    return a.to(torch.float32), b.to(torch.float32)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per image pair (Gaussian window 11, sigma 1.5, data range 1): float32 [N], 1 for equal images."""
    a, b = _pair(a, b)
    window = _gaussian()
    pad = window.shape[-1] // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (pad,) * 4, mode="reflect"), window)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + _C1) * (2 * cov + _C2)
    den = (mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2)
    return (num / den).mean(dim=(1, 2, 3))


@torch.no_grad()
def feature_distance(model: DigitClassifier, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance between the classifier's penultimate features, each scaled to unit length: float32 [N] in [0, 2].

    0 for equal images; sqrt(2) for orthogonal features.
    """
    a, b = _pair(a, b)
    fa = F.normalize(model.features(a), dim=1, eps=1e-8)
    fb = F.normalize(model.features(b), dim=1, eps=1e-8)
    return (fa - fb).norm(dim=1)
