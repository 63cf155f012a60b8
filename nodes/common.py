"""Constants shared by the AVI nodes."""

from __future__ import annotations

CATEGORY = "latent/avi"
HEAD_TYPE = "AVI_HEAD"
