"""AVI Load Attribute Head: pick a head file from models/avi_heads."""

from __future__ import annotations

import logging
import os

from ...avi_core.avi.describe import describe_head
from ...avi_core.avi.head_files import load_head
from .. import host
from ..common import CATEGORY, HEAD_TYPE

logger = logging.getLogger("avi.nodes.load_head")


class AVILoadAttributeHead:
    DESCRIPTION = (
        "Loads an AVI attribute head (.safetensors) from the models/avi_heads folder, for AVI Merge. Also outputs a "
        "description: what it was trained on, k, latent size and timesteps."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (HEAD_TYPE, "STRING")
    RETURN_NAMES = ("head", "info")
    OUTPUT_TOOLTIPS = (
        "The attribute head, for AVI Merge.",
        "A description of the head: its description text, pairs, k, sizes and the timesteps of x and z.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "head_name": (
                    host.head_files(),
                    {
                        "tooltip": "A head file in models/avi_heads (train one with 'AVI Train Attribute Head', or "
                        "copy a shared .safetensors head there and press R to refresh)."
                    },
                ),
            }
        }

    @classmethod
    def IS_CHANGED(cls, head_name):
        # A head retrained under the same name must be reloaded.
        try:
            return os.path.getmtime(host.head_path(head_name))
        except (OSError, FileNotFoundError):
            return float("nan")

    def load(self, head_name):
        path = host.head_path(head_name)
        head = load_head(path)
        label = os.path.splitext(os.path.basename(head_name))[0]
        info = describe_head(head.metadata, name=label)
        logger.info("AVI: loaded head %s", path)
        return (head, info)


NODE_CLASS_MAPPINGS = {"AVILoadAttributeHead": AVILoadAttributeHead}
NODE_DISPLAY_NAME_MAPPINGS = {"AVILoadAttributeHead": "AVI Load Attribute Head"}
