"""AVI Attribute Vectors: a ComfyUI custom node pack (Attribute Vector Integration, Wang et al.).

ComfyUI (0.3.64 or newer) imports this folder from custom_nodes/ and calls `comfy_entrypoint`, which returns
the pack's V3 extension; its nodes are imported then, from nodes/avi/. There is deliberately no
NODE_CLASS_MAPPINGS here: ComfyUI would take that (V1) path and never call comfy_entrypoint.
Importing the folder also registers the `avi_heads` and `avi_datasets` model folders (appended to
folder_paths). Without ComfyUI (tests, tools, the command line) it imports all the same and does nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .nodes.host import register_model_folders

if TYPE_CHECKING:
    from comfy_api.latest import ComfyExtension

register_model_folders()


async def comfy_entrypoint() -> ComfyExtension:
    """The pack's ComfyUI extension (called by ComfyUI's custom-node loader)."""
    from .nodes.extension import AVIExtension

    return AVIExtension()


__all__ = ["comfy_entrypoint"]
