"""AVI Attribute Vectors: a ComfyUI custom node pack (Attribute Vector Integration, Wang et al.).

ComfyUI imports this folder from custom_nodes/ and reads NODE_CLASS_MAPPINGS and NODE_DISPLAY_NAME_MAPPINGS.
Importing it also registers the `avi_heads` and `avi_datasets` model folders (appended to folder_paths).
Without ComfyUI (tests, tools) it imports all the same; the nodes then need their host only when run.
"""

from __future__ import annotations

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .nodes.host import register_model_folders

register_model_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
