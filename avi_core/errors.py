"""Exception types raised by avi_core.

Every error a user can cause has its own type and a message that names the problem and the fix.
Nodes let these reach the user unchanged; ComfyUI shows the message in its error dialog.
"""

from __future__ import annotations


class AVIError(Exception):
    """Base class of every error raised on purpose by the AVI engine."""


class ShapeMismatchError(AVIError, ValueError):
    """Tensors whose shapes cannot be combined (x and z, a latent and a head, bad k)."""


class HeadSizeMismatchError(ShapeMismatchError):
    """A head trained for one latent size was given a latent of another size."""


class HeadFileError(AVIError):
    """A head file that cannot be read: not safetensors, truncated, corrupt, wrong tensors."""


class HeadVersionError(HeadFileError):
    """A head file written by a newer version of the pack than this one."""


class NonFiniteError(AVIError, FloatingPointError):
    """A computation produced NaN or infinity."""


class CaptureRecordError(AVIError, ValueError):
    """A latent without the capture record AVI needs, or two records that do not fit together."""


class UnsupportedModelError(AVIError, ValueError):
    """A model whose noising is not x0 + sigma * eps (flow models such as SD3 or Flux)."""


class DatasetError(AVIError):
    """A dataset folder that holds no usable pairs."""


class LatentFileError(AVIError):
    """A .latent file that cannot be read."""
