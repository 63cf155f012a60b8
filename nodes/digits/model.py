"""AVI Load Digit Model and AVI Digit Prompt: the pack's small trained model of ComfyUI's SD2 class.

The model is ComfyUI's own `comfy.supported_models.SD20` with a small unet_config, trained on handwritten
digits (tools/train_digit_model.py). The loader gives a MODEL for ComfyUI's samplers and a VAE that
VAEDecode / VAEEncode accept: the exact pixel <-> latent map (pixel unshuffle; 64 x 64 pixels <-> 4 x 32 x 32
latents; sample from "AVI Empty Digit Latent", a black image). The prompt node turns text such as
"a thick handwritten 3, slanted right" into the model's CONDITIONING with the tiny text encoder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from comfy_api.latest import io

from ...avi_core.digits import latent_map, prompts
from ...avi_core.digits.unet_file import WEIGHTS_FILE, read_digit_unet
from ..common import CATEGORY
from ..fixes import explains_errors
from ..schema_compat import schema

logger = logging.getLogger("avi.nodes.digits")

BUNDLED = WEIGHTS_FILE.name
_CACHE: dict[tuple[str, float], tuple[object, object]] = {}


class DigitVAE:
    """The exact digit map as a ComfyUI VAE: decode(latent [B, 4, h, w]) -> IMAGE [B, 2h, 2w, 3] in [0, 1];
    encode(IMAGE [B, H, W, C]) -> latent [B, 4, H/2, W/2] (the mean of the colour channels is the grey level)."""

    latent_channels = latent_map.CHANNELS
    downscale_ratio = 2
    upscale_ratio = 2

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        pixels = latent_map.decode(samples.to("cpu", torch.float32))
        return pixels[:, 0, :, :, None].expand(-1, -1, -1, 3).contiguous()

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        grey = pixels.to("cpu", torch.float32).mean(dim=-1)
        return latent_map.encode(grey[:, None])

    def spacial_compression_decode(self) -> int:
        return 2

    def spacial_compression_encode(self) -> int:
        return 2


def build_model(path: Path):
    """A ComfyUI MODEL (ModelPatcher) of SD20 class with the digit weights from `path` (read and checked)."""
    import comfy.model_base
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    file = read_digit_unet(path)
    config = comfy.supported_models.SD20(dict(file.unet_config))
    config.unet_config["num_head_channels"] = file.num_head_channels
    config.set_inference_dtype(torch.float32, None)
    load_device = comfy.model_management.get_torch_device()
    offload = comfy.model_management.unet_offload_device()
    with torch.inference_mode(False):
        model = comfy.model_base.BaseModel(config, model_type=comfy.model_base.ModelType.EPS, device=offload)
        missing, unexpected = model.diffusion_model.load_state_dict(file.state_dict, strict=False)
    if missing or unexpected:
        from ...avi_core.errors import FileFormatError

        raise FileFormatError(
            f"{path} does not fit the UNet its config describes ({len(missing)} missing, {len(unexpected)} "
            "unexpected tensors)",
            reason="foreign",
            path=str(path),
        )
    model.eval()
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload)


def load(path: Path = WEIGHTS_FILE):
    """(MODEL, VAE) for the file at `path`, cached by path and modification time."""
    key = (str(path), path.stat().st_mtime if path.is_file() else 0.0)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = (build_model(path), DigitVAE())
        logger.info("AVI: loaded the digit model %s", path)
    return _CACHE[key]


class AVILoadDigitModel(io.ComfyNode):
    """Loads the pack's small trained digit model: MODEL + VAE."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVILoadDigitModel",
            display_name="AVI Load Digit Model",
            category=CATEGORY,
            search_aliases=["digit", "mnist", "test model", "small model", "benchmark"],
            description=(
                "Loads the pack's small digit model: ComfyUI's SD2 UNet class trained on handwritten digits (MNIST), "
                "to try AVI edits on a real trained model. Sample it from 'AVI Empty Digit Latent' (a 4 x 32 x 32 "
                "latent; the image is 64 x 64), prompts from 'AVI Digit Prompt', CFG about 5, and decode with the "
                "VAE output."
            ),
            inputs=[
                io.Combo.Input(
                    "weights",
                    options=[BUNDLED],
                    tooltip="The bundled digit model weights (avi_core/digits/weights in the pack).",
                ),
            ],
            outputs=[
                io.Model.Output("model", display_name="MODEL", tooltip="The digit model, for any ComfyUI sampler."),
                io.Vae.Output(
                    "vae",
                    display_name="VAE",
                    tooltip="The exact pixel <-> latent map of the digit model, for VAE Decode and VAE Encode.",
                ),
            ],
        )

    @classmethod
    @explains_errors
    def execute(cls, weights: str) -> io.NodeOutput:
        model, vae = load(WEIGHTS_FILE.parent / Path(weights).name)
        return io.NodeOutput(model, vae)


class AVIDigitPrompt(io.ComfyNode):
    """Encodes a digit prompt with the digit model's tiny text encoder."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVIDigitPrompt",
            display_name="AVI Digit Prompt",
            category=CATEGORY,
            search_aliases=["digit", "mnist", "prompt", "text encode"],
            description=(
                "The digit model's text encoder: a prompt naming a digit, a stroke thickness (thin, medium, thick) and "
                "a slant (slanted left, upright, slanted right), each optional, e.g. 'a thick handwritten 3, slanted "
                "right'. An empty prompt is the unconditional one, for the negative input."
            ),
            inputs=[
                io.String.Input(
                    "text",
                    default="a handwritten 3",
                    multiline=False,
                    tooltip="The prompt: a digit 0-9, optionally thin/medium/thick and slanted left/upright/slanted "
                    "right. Other words are ignored; leave empty for the negative prompt.",
                ),
            ],
            outputs=[
                io.Conditioning.Output(
                    "conditioning", display_name="CONDITIONING", tooltip="The prompt, for the digit model's samplers."
                ),
            ],
        )

    @classmethod
    @explains_errors
    def execute(cls, text: str) -> io.NodeOutput:
        cond = prompts.encode(text)
        return io.NodeOutput([[cond, {"pooled_output": None}]])


class AVIEmptyDigitLatent(io.ComfyNode):
    """The digit model's empty latent: an all-black 64 x 64 image (4 x 32 x 32 latent) to sample from."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVIEmptyDigitLatent",
            display_name="AVI Empty Digit Latent",
            category=CATEGORY,
            search_aliases=["digit", "mnist", "empty latent", "black"],
            description=(
                "The starting latent for the digit model: a black 64 x 64 image (a 4 x 32 x 32 latent). Use it where "
                "SD uses Empty Latent Image: the model learned digits on black, and SD's noise schedule lets the "
                "starting latent's mean brightness through, so sampling from a zero latent gives grey backgrounds."
            ),
            inputs=[
                io.Int.Input(
                    "batch_size", default=1, min=1, max=4096, tooltip="How many latents (images) in the batch."
                ),
            ],
            outputs=[
                io.Latent.Output("latent", display_name="LATENT", tooltip="Black digit latents, [batch, 4, 32, 32]."),
            ],
        )

    @classmethod
    @explains_errors
    def execute(cls, batch_size: int) -> io.NodeOutput:
        return io.NodeOutput({"samples": latent_map.blank(batch_size)})


NODES: list[type[io.ComfyNode]] = [AVILoadDigitModel, AVIDigitPrompt, AVIEmptyDigitLatent]
