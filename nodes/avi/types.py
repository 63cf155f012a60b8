"""The ComfyUI types the AVI nodes pass between them (V3 `io` types)."""

from __future__ import annotations

from comfy_api.latest import io

from ..common import HEAD_TYPE

Head = io.Custom(HEAD_TYPE)
"""An attribute head (avi_core AttributeHead): from 'AVI Load Attribute Head' or training, into 'AVI Merge'."""
