"""The pack's ComfyUI nodes: thin V3 adapters (`comfy_api.latest.io.ComfyNode`) from ComfyUI types to avi_core.

Importing this package does not import ComfyUI: the node modules (NODE_MODULES) need the host's comfy_api and
are imported by `load_node_classes()`, which the pack's `comfy_entrypoint` calls inside ComfyUI. Each module
lists its node classes in `NODES`. A module that fails to import is logged with its traceback and listed in
IMPORT_ERRORS, and the other modules' nodes still load (ComfyUI then shows only the broken module's nodes as
missing).
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
    "digits.model",  # digits
    # boundary
    "boundary.collect",
    "boundary.fit",
    "boundary.load",
    "boundary.edit",
    # hspace
    "hspace.capture",
    "hspace.find",
    "hspace.load",
    "hspace.apply",
    "hspace.grid",
)

IMPORT_ERRORS: dict[str, str] = {}


def load_node_classes() -> list[type]:
    """The node classes of every module in NODE_MODULES that imports (needs ComfyUI's comfy_api)."""
    classes: list[type] = []
    for name in NODE_MODULES:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except Exception as err:  # one broken module must not hide the other nodes
            logger.exception("AVI: nodes module %s failed to import", name)
            IMPORT_ERRORS[name] = f"{type(err).__name__}: {err}"
            continue
        IMPORT_ERRORS.pop(name, None)
        classes.extend(module.NODES)
    return classes


__all__ = ["IMPORT_ERRORS", "NODE_MODULES", "load_node_classes"]
