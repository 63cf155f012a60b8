"""The pack as a ComfyUI extension (V3): what the root's `comfy_entrypoint` returns. Needs the host."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from . import load_node_classes


class AVIExtension(ComfyExtension):
    """Lists the AVI nodes (nodes.NODE_MODULES) for ComfyUI's custom-node loader."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return load_node_classes()
