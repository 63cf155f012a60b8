"""Constants shared by the AVI nodes (host-free)."""

from __future__ import annotations

CATEGORY = "latent/avi"
HEAD_TYPE = "AVI_HEAD"
"""The ComfyUI type name of an attribute head (an avi_core AttributeHead) between nodes."""
