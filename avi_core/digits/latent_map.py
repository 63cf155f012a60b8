"""The exact, invertible map between the 64 x 64 digit images and the model's 4 x 32 x 32 latents.

encode: pixels p in [0, 1], [N, 1, 64, 64] -> pixel_unshuffle(2 p - 1, 2) / SCALE_FACTOR, [N, 4, 32, 32].
decode: the inverse, clamped to [0, 1]. Each latent channel holds one of the four pixels of every 2 x 2 block.

The latent is in ComfyUI's convention (unscaled "VAE space"): the model multiplies it by its latent format's
scale factor, which for ComfyUI's SD20 class is SD's 0.18215 = SCALE_FACTOR, so the UNet sees 2 p - 1, values
in [-1, 1], as an SD UNet sees latents of about unit size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ShapeMismatchError

SCALE_FACTOR = 0.18215
"""SD's latent scale factor (ComfyUI's SD20 latent format): model input = latent * SCALE_FACTOR."""
PIXELS = 64
LATENT = 32
CHANNELS = 4


def encode(pixels: torch.Tensor) -> torch.Tensor:
    """[N, 1, 64, 64] (or [N, 64, 64]) in [0, 1] -> latent [N, 4, 32, 32] (ComfyUI convention)."""
    if pixels.ndim == 3:
        pixels = pixels[:, None]
    if pixels.ndim != 4 or pixels.shape[1] != 1 or pixels.shape[2] % 2 or pixels.shape[3] % 2:
        raise ShapeMismatchError(f"digit pixels must be [N, 1, H, W] with even H, W, got {tuple(pixels.shape)}")
    return F.pixel_unshuffle(pixels.to(torch.float32) * 2.0 - 1.0, 2) / SCALE_FACTOR


def decode(latent: torch.Tensor) -> torch.Tensor:
    """Latent [N, 4, h, w] -> pixels [N, 1, 2h, 2w] in [0, 1]."""
    if latent.ndim != 4 or latent.shape[1] != CHANNELS:
        raise ShapeMismatchError(f"digit latents must be [N, 4, h, w], got {tuple(latent.shape)}")
    return ((F.pixel_shuffle(latent.to(torch.float32) * SCALE_FACTOR, 2) + 1.0) * 0.5).clamp(0.0, 1.0)


def blank(batch: int = 1, size: int = LATENT) -> torch.Tensor:
    """The latent of an all-black image, [batch, 4, size, size]: where the digit model's sampling starts.

    SD's schedule leaves signal in its noisiest step (abar_T = 0.0047), so the model reads the mean of the
    starting noise as the image's brightness. Noise added to a zero latent has the mean of a mid-grey image, and
    the digits come out on grey; noise added to this latent has the mean the model saw in training (digits on
    black). KSampler adds its noise to the latent it is given, so this is the digit model's Empty Latent Image.
    """
    return torch.full((batch, CHANNELS, size, size), -1.0 / SCALE_FACTOR)
