"""avi_core: the engine of the AVI node pack, host-free (PyTorch, numpy, safetensors; never ComfyUI).

Subpackages, one job each (imports point down this list, never up; `app` imports the engine, never back):

- `latent`: ComfyUI <-> paper-space conventions, the channel SVD and its backends, capture records, pairs.
- `files`: atomic writes, the safe safetensors reader shared by every file kind, .latent files, datasets.
- `plots`: matplotlib (Agg) figures as IMAGE tensors.
- `avi`: Attribute Vector Integration (Algorithm 1): head, loss, training, merge, head files.
- `hspace`: h-space directions (Haas et al.): PCA, supervised, Jacobian; applying them; direction files.
- `explore`: the latent explorer (the paper's Figures 2-5): singular spectra, rank-one views, subspace distances.
- `inversion`: deterministic inversion of a clean latent (a real photo) to a sampling step.
- `app`: the `avi` command line, the benchmark, the demo.

Tensors in "paper space" are the variance-preserving DDPM latents of the paper (see `latent.conventions`).
Shapes are `[..., H, W]`: every leading dimension (batch, channel) is a separate channel matrix.
"""

from __future__ import annotations

from .avi.algorithm import attribute_vectors, blend_bases, compose
from .avi.head import AttributeHead
from .avi.head_files import HEAD_FORMAT, HEAD_FORMAT_VERSION, load_head, read_head_metadata, save_head
from .avi.loss import DEFAULT_LAMBDAS, avi_loss
from .avi.merge import MERGE_MODES, RHO_RANGE, merge, merge_sweep
from .avi.training import TrainingResult, train_head
from .errors import (
    AVIError,
    CaptureRecordError,
    DatasetError,
    FileFormatError,
    FileVersionError,
    HeadFileError,
    HeadSizeMismatchError,
    HeadVersionError,
    LatentFileError,
    NonFiniteError,
    OutputPathError,
    PairMismatchError,
    ParameterError,
    ShapeMismatchError,
    UnsupportedModelError,
)
from .latent.conventions import from_paper_space, to_paper_space
from .latent.svd import channel_svd
from .version import __version__

__all__ = [
    "__version__",
    "AVIError",
    "AttributeHead",
    "CaptureRecordError",
    "DEFAULT_LAMBDAS",
    "DatasetError",
    "FileFormatError",
    "FileVersionError",
    "HEAD_FORMAT",
    "HEAD_FORMAT_VERSION",
    "HeadFileError",
    "HeadSizeMismatchError",
    "HeadVersionError",
    "LatentFileError",
    "MERGE_MODES",
    "NonFiniteError",
    "OutputPathError",
    "PairMismatchError",
    "ParameterError",
    "RHO_RANGE",
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
