"""The ComfyUI types and category of the h-space nodes (V3 `io` types)."""

from __future__ import annotations

from comfy_api.latest import io

from ..common import CATEGORY

HSPACE_CATEGORY = f"{CATEGORY}/h-space"
DIRECTIONS_TYPE = "AVI_H_DIRECTIONS"

Directions = io.Custom(DIRECTIONS_TYPE)
"""h-space directions (avi_core.hspace.DirectionSet): from a Find node or 'AVI Load h-space Direction'."""
