"""The pack's ComfyUI nodes: thin adapters from ComfyUI types to avi_core.

Each module in NODE_MODULES defines NODE_CLASS_MAPPINGS and NODE_DISPLAY_NAME_MAPPINGS; this package merges
them. A module that fails to import is logged with its traceback and listed in IMPORT_ERRORS, and the
other modules' nodes still load (ComfyUI then shows only the broken module's nodes as missing).
"""

from __future__ import annotations

import importlib
import logging

logger = logging.getLogger("avi.nodes")

NODE_MODULES: tuple[str, ...] = (
    "avi.capture",
    "avi.merge",
    "avi.train",
    "avi.load_head",
    "avi.datasets",
)

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
IMPORT_ERRORS: dict[str, str] = {}


def _load(name: str) -> None:
    try:
        module = importlib.import_module(f".{name}", __name__)
    except Exception as err:  # one broken module must not hide the other nodes
        logger.exception("AVI: nodes module %s failed to import", name)
        IMPORT_ERRORS[name] = f"{type(err).__name__}: {err}"
        return
    NODE_CLASS_MAPPINGS.update(module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(module.NODE_DISPLAY_NAME_MAPPINGS)


for _name in NODE_MODULES:
    _load(_name)

__all__ = ["IMPORT_ERRORS", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "NODE_MODULES"]
