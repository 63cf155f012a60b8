"""AVI Load Attribute Head: pick a head file from models/avi_heads."""

from __future__ import annotations

import logging
import os

from comfy_api.latest import io

from ...avi_core.avi.describe import describe_head
from ...avi_core.avi.head_files import load_head
from ...avi_core.errors import HeadFileError
from .. import host
from ..common import CATEGORY
from ..fixes import explained, explains_errors
from ..schema_compat import schema
from .types import Head

logger = logging.getLogger("avi.nodes.load_head")


class AVILoadAttributeHead(io.ComfyNode):
    """Loads a head file (safetensors only) and describes it."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVILoadAttributeHead",
            display_name="AVI Load Attribute Head",
            category=CATEGORY,
            search_aliases=["attribute", "slider", "edit", "svd", "load head", "attribute head"],
            description=(
                "Loads an AVI attribute head (.safetensors) from the models/avi_heads folder, for AVI Merge. Also "
                "outputs a description: what it was trained on, k, latent size and timesteps."
            ),
            inputs=[
                io.Combo.Input(
                    "head_name",
                    options=host.head_files(),
                    tooltip="A head file in models/avi_heads (train one with 'AVI Train Attribute Head', or copy a "
                    "shared .safetensors head there and press R to refresh).",
                ),
            ],
            outputs=[
                Head.Output("head", display_name="head", tooltip="The attribute head, for AVI Merge."),
                io.String.Output(
                    "info",
                    display_name="info",
                    tooltip="A description of the head: its description text, pairs, k, sizes and the timesteps of "
                    "x and z.",
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, head_name: str) -> bool | str:
        # This host does not check a V3 combo's value against its options: name a missing head at queue time.
        try:
            host.head_path(head_name)
        except HeadFileError as err:
            return explained(err)
        return True

    @classmethod
    def fingerprint_inputs(cls, head_name: str) -> float:
        # A head retrained under the same name must be reloaded.
        try:
            return os.path.getmtime(host.head_path(head_name))
        except (OSError, HeadFileError):
            return float("nan")

    @classmethod
    @explains_errors
    def execute(cls, head_name: str) -> io.NodeOutput:
        path = host.head_path(head_name)
        head = load_head(path)
        label = os.path.splitext(os.path.basename(head_name))[0]
        logger.info("AVI: loaded head %s", path)
        return io.NodeOutput(head, describe_head(head.metadata, name=label))


NODES: list[type[io.ComfyNode]] = [AVILoadAttributeHead]
