"""Shared fixtures.

The pack's root folder is a Python package (ComfyUI imports it from custom_nodes/). Its own `nodes/` must
never be imported as a top-level `nodes` (the host has one), so tests load the root folder under the fixed
package name `avi_pack` and reach the nodes as `avi_pack.nodes`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACK_NAME = "avi_pack"


def load_pack():
    """Import the repository root as the package `avi_pack` (once) and return it."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_NAME, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[PACK_NAME]
        raise
    return module


@pytest.fixture(scope="session")
def pack():
    return load_pack()
