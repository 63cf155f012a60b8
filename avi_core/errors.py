"""Exception types raised by avi_core: one type per kind of problem, used by every method.

Engine errors state facts: what is wrong, with the numbers. They do not say which node to add or which
option to pass, because the engine does not know who called it. The two front ends add that advice in their
user's words: the nodes (`nodes/fixes.py`) name the node or widget to change, the command line
(`avi_core/app/cli/fixes.py`) names the option. They do it with `add_fix`, which finds the advice for an
error in a table keyed by exception type and `reason`, and stores it on the error:

    try:
        ...
    except AVIError as err:
        add_fix(err, NODE_FIXES)
        raise

`str(err)` is then the facts, a full stop, and the fix (whole sentences). `err.details` holds the numbers a
fix may quote (`{role}`, `{low}`, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class AVIError(Exception):
    """Base class of every error raised on purpose by the engine.

    facts: what is wrong, in the engine's words. reason: a short code that picks the fix (e.g. "missing",
    "seed"); "" for the type's general case. details: values a fix may quote. fix: advice added by a front
    end with `add_fix` ("" until then).
    """

    def __init__(self, facts: str, *, reason: str = "", **details: Any) -> None:
        super().__init__(facts)
        self.facts = facts
        self.reason = reason
        self.details = details
        self.fix = ""

    def __str__(self) -> str:
        if not self.fix:
            return self.facts
        # The facts are a clause without a full stop; the fix is one or more sentences.
        stop = "" if self.facts.rstrip().endswith((".", "!", "?")) else "."
        return f"{self.facts}{stop} {self.fix}"


class ParameterError(AVIError, ValueError):
    """A setting outside its range or of the wrong kind (k, rho, lambdas, stop_at, a name, a list of values).

    details: name (the parameter), value, and low / high where the range is an interval.
    """


class InvalidNameError(ParameterError):
    """A name (head, dataset, direction, boundary) that leaves no usable file or folder name."""


class ShapeMismatchError(AVIError, ValueError):
    """Tensors whose shapes cannot be combined (x and z, a latent and a head, a direction and h)."""


class HeadSizeMismatchError(ShapeMismatchError):
    """A head trained for one latent size was given a latent of another size. details: head, latent (H, W)."""


class NonFiniteError(AVIError, FloatingPointError):
    """A computation or an input holds NaN or infinity."""


class CaptureRecordError(AVIError, ValueError):
    """A latent without the capture record a method needs, or with a record that does not describe it.

    reason: "not_latent", "missing", "invalid" (a bad field: details key), "batch" (the batch changed).
    details: role (how the latent is named: "original", "target", ...).
    """


class PairMismatchError(CaptureRecordError):
    """Two captured latents that do not make a pair. reason: "seed", "batch", "scale", "order", "shape"."""


class StepMismatchError(CaptureRecordError):
    """A latent captured at another step or schedule than the file (boundary, direction) was made for."""


class UnsupportedModelError(AVIError, ValueError):
    """A model whose noising is not x0 + sigma * eps (flow models such as SD3 or Flux), or with no discrete T."""


class UnsupportedSamplerError(AVIError, ValueError):
    """A sampler for which an operation (inversion) has no meaning. details: sampler, supported."""


class OperationStoppedError(AVIError, RuntimeError):
    """A long operation (inversion) whose progress callback asked it to stop before it had a usable result.

    details: done (steps finished), total (steps it needed).
    """


class DatasetError(AVIError):
    """A dataset or collection that holds no usable samples. reason: "missing", "empty", "unusable", "unknown"."""


class FileFormatError(AVIError):
    """A file the pack cannot read: missing, not safetensors (pickle is never read), truncated, foreign,
    damaged (NaN, wrong tensors). details: path, kind (what the file should be: "attribute head", ...)."""


class FileVersionError(FileFormatError):
    """A file written by a newer version of the pack. details: version (the file's), supported (ours)."""


class HeadFileError(FileFormatError):
    """An attribute head file that cannot be read."""


class HeadVersionError(HeadFileError, FileVersionError):
    """A head file written by a newer version of the pack."""


class LatentFileError(FileFormatError):
    """A ComfyUI .latent file that cannot be read or written."""


class OutputPathError(AVIError, OSError):
    """A file cannot be written where it was asked for (missing folder, no permission, disk full)."""


class BackendUnavailableError(AVIError, RuntimeError):
    """A compute backend that was asked for but cannot run here (e.g. Triton without a GPU)."""


# Advice tables of the front ends: {(exception type, reason): text}. The text may quote `{detail}` fields;
# reason "" matches any reason of that type. Subtypes inherit their base types' advice.
FixTable = Mapping[tuple[type[AVIError], str], str]


def find_fix(err: AVIError, table: FixTable) -> str:
    """The advice `table` gives for `err` ("" if none): the most specific type first, its reason before ""."""
    for cls in type(err).__mro__:
        if not (isinstance(cls, type) and issubclass(cls, AVIError)):
            continue
        for reason in (err.reason, ""):
            text = table.get((cls, reason))
            if text is not None:
                try:
                    return text.format(**err.details)
                except (KeyError, IndexError, ValueError):
                    return text
    return ""


def add_fix(err: AVIError, table: FixTable) -> AVIError:
    """Store `table`'s advice for `err` on it (kept as is when the table has none); returns `err`."""
    fix = find_fix(err, table)
    if fix:
        err.fix = fix
    return err
