"""avi_core: the Attribute Vector Integration engine (Wang et al., Algorithm 1), host-free.

Pure PyTorch, numpy and safetensors; nothing here imports ComfyUI. Tensors in "paper space" are the
variance-preserving DDPM latents of the paper (see `conventions`). Shapes are `[..., H, W]`: every
leading dimension (batch, channel) is a separate channel matrix.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .algorithm import attribute_vectors, blend_bases, compose
from .conventions import from_paper_space, to_paper_space
from .errors import (
    AVIError,
    CaptureRecordError,
    DatasetError,
    HeadFileError,
    HeadSizeMismatchError,
    HeadVersionError,
    LatentFileError,
    NonFiniteError,
    ShapeMismatchError,
    UnsupportedModelError,
)
from .head import AttributeHead
from .head_files import HEAD_FORMAT, HEAD_FORMAT_VERSION, load_head, read_head_metadata, save_head
from .loss import DEFAULT_LAMBDAS, avi_loss
from .merge import MERGE_MODES, merge, merge_sweep
from .svd import channel_svd
from .training import TrainingResult, train_head

__all__ = [
    "__version__",
    "AVIError",
    "AttributeHead",
    "CaptureRecordError",
    "DEFAULT_LAMBDAS",
    "DatasetError",
    "HEAD_FORMAT",
    "HEAD_FORMAT_VERSION",
    "HeadFileError",
    "HeadSizeMismatchError",
    "HeadVersionError",
    "LatentFileError",
    "MERGE_MODES",
    "NonFiniteError",
    "ShapeMismatchError",
    "TrainingResult",
    "UnsupportedModelError",
    "attribute_vectors",
    "avi_loss",
    "blend_bases",
    "channel_svd",
    "compose",
    "from_paper_space",
    "load_head",
    "merge",
    "merge_sweep",
    "read_head_metadata",
    "save_head",
    "to_paper_space",
    "train_head",
]
