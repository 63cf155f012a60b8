"""The digit model's UNet configuration: ComfyUI's SD20 class (comfy.supported_models.SD20) with a small
unet_config. Host-free: a plain dict that the training script and the loader node hand to ComfyUI.

Like SD 2.1: eps prediction, the SD discrete schedule (scaled-linear betas 0.00085..0.012, T = 1000), linear
transformers with cross-attention to the prompt, SD's latent format (scale factor 0.18215). Smaller: 4 x 32 x 32
latents (as SD at 256 px), 32 base channels, levels 32/32/64 at 32/16/8 px with one res block each, linear
transformers (self- and cross-attention) at the 8 x 8 level and in the middle block, a context of
TOKENS x CONTEXT_DIM = 4 x 64 from the tiny text encoder. 1.1 M parameters.
"""

from __future__ import annotations

from typing import Any

from .prompts import CONTEXT_DIM

UNET_CONFIG: dict[str, Any] = {
    "use_checkpoint": False,
    "image_size": 32,
    "use_spatial_transformer": True,
    "legacy": False,
    "adm_in_channels": None,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 32,
    "num_res_blocks": [1, 1, 1],
    "transformer_depth": [0, 0, 1],
    "transformer_depth_output": [0, 0, 0, 0, 1, 1],
    "channel_mult": [1, 1, 2],
    "transformer_depth_middle": 1,
    "use_linear_in_transformer": True,
    "context_dim": CONTEXT_DIM,
    "use_temporal_resblock": False,
    "use_temporal_attention": False,
}
NUM_HEAD_CHANNELS = 32
"""Attention head width (set on the config after SD20 is built, as SD20 sets SD 2.x's 64)."""
TIMESTEPS = 1000
BETA_START = 0.00085
BETA_END = 0.012


def unet_config(**overrides: Any) -> dict[str, Any]:
    """A copy of UNET_CONFIG with overrides (the training script's --channels etc.)."""
    config = dict(UNET_CONFIG)
    config.update(overrides)
    return config


def alphas_cumprod():
    """SD's abar_t for t = 0..T-1 (float64 torch tensor [T]): scaled-linear betas, as ComfyUI's SD20 uses."""
    import torch

    betas = torch.linspace(BETA_START**0.5, BETA_END**0.5, TIMESTEPS, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)
