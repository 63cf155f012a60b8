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

The names below are imported on first use (PEP 562), so that `import avi_core` does not import torch: the
command line installs its Ctrl+C handler before torch's import, which takes seconds (`app.interrupt`).
`from avi_core import merge` and `avi_core.merge` work as before.
"""

from __future__ import annotations

import importlib

from .version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (this module is on the start-up path)

# public name -> the module (relative to this package) that defines it
_EXPORTS: dict[str, str] = {
    "attribute_vectors": ".avi.algorithm",
    "blend_bases": ".avi.algorithm",
    "compose": ".avi.algorithm",
    "AttributeHead": ".avi.head",
    "HEAD_FORMAT": ".avi.head_files",
    "HEAD_FORMAT_VERSION": ".avi.head_files",
    "load_head": ".avi.head_files",
    "read_head_metadata": ".avi.head_files",
    "save_head": ".avi.head_files",
    "DEFAULT_LAMBDAS": ".avi.loss",
    "avi_loss": ".avi.loss",
    "MERGE_MODES": ".avi.merge",
    "RHO_RANGE": ".avi.merge",
    "merge": ".avi.merge",
    "merge_sweep": ".avi.merge",
    "TrainingResult": ".avi.training",
    "train_head": ".avi.training",
    "AVIError": ".errors",
    "CaptureRecordError": ".errors",
    "DatasetError": ".errors",
    "FileFormatError": ".errors",
    "FileVersionError": ".errors",
    "HeadFileError": ".errors",
    "HeadSizeMismatchError": ".errors",
    "HeadVersionError": ".errors",
    "LatentFileError": ".errors",
    "NonFiniteError": ".errors",
    "OutputPathError": ".errors",
    "PairMismatchError": ".errors",
    "ParameterError": ".errors",
    "ShapeMismatchError": ".errors",
    "UnsupportedModelError": ".errors",
    "from_paper_space": ".latent.conventions",
    "to_paper_space": ".latent.conventions",
    "channel_svd": ".latent.svd",
}

__all__ = ["__version__", *sorted(_EXPORTS, key=str.lower)]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from .avi.algorithm import attribute_vectors, blend_bases, compose  # noqa: F401
    from .avi.head import AttributeHead  # noqa: F401
    from .avi.head_files import (  # noqa: F401
        HEAD_FORMAT,
        HEAD_FORMAT_VERSION,
        load_head,
        read_head_metadata,
        save_head,
    )
    from .avi.loss import DEFAULT_LAMBDAS, avi_loss  # noqa: F401
    from .avi.merge import MERGE_MODES, RHO_RANGE, merge, merge_sweep  # noqa: F401
    from .avi.training import TrainingResult, train_head  # noqa: F401
    from .errors import (  # noqa: F401
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
    from .latent.conventions import from_paper_space, to_paper_space  # noqa: F401
    from .latent.svd import channel_svd  # noqa: F401
