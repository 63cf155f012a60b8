"""The ComfyUI type of a semantic boundary between nodes (V3 `io` type)."""

from __future__ import annotations

from comfy_api.latest import io

BOUNDARY_TYPE = "AVI_BOUNDARY"

BoundaryType = io.Custom(BOUNDARY_TYPE)
"""A semantic boundary (avi_core.boundary.Boundary): from 'AVI Fit Boundary' or 'AVI Load Boundary'."""
