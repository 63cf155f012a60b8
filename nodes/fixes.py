"""What to do about an engine error, in a ComfyUI user's words: which node to add, which widget to change.

The engine (`avi_core`) raises errors that state facts with their numbers; `NODE_FIXES` holds the advice the
nodes add to them, keyed by (exception type, reason) as `avi_core.errors.add_fix` reads it (reason "" is the
type's general case; subtypes inherit their base types' advice). A fix is whole sentences and may quote the
error's details (`{role}`, `{low}`, ...). Every node's `execute` runs under `user_errors`, so ComfyUI's error
dialog shows "facts. Fix." and the exception keeps its type.

Host-free: no ComfyUI import here.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ..avi_core.errors import (
    AVIError,
    BackendUnavailableError,
    CaptureRecordError,
    DatasetError,
    FileFormatError,
    FileVersionError,
    FixTable,
    HeadFileError,
    HeadSizeMismatchError,
    InvalidNameError,
    NonFiniteError,
    OperationStoppedError,
    OutputPathError,
    PairMismatchError,
    ParameterError,
    ShapeMismatchError,
    StepMismatchError,
    UnsupportedModelError,
    UnsupportedSamplerError,
    add_fix,
)

CAPTURE = "'AVI Capture Latent at Step'"
TRAIN = "'AVI Train Attribute Head'"
LOAD = "'AVI Load Attribute Head'"
APPEND = "'AVI Append To Dataset'"
BUILD_DATASET = f"queue the 'build a dataset' workflow ({APPEND[1:-1]})"
SD_MODELS = "Use a Stable Diffusion 1.x, 2.x or SDXL checkpoint"
UPDATE_PACK = (
    "Update the pack (ComfyUI-Manager > Update, or git pull in custom_nodes/avi-attribute-vectors) and restart ComfyUI."
)
FOLDERS = "the avi_heads / avi_datasets entries of extra_model_paths.yaml"

NODE_FIXES: FixTable = {
    # Settings typed into a widget.
    (ParameterError, ""): "Change that setting on the node; its tooltip gives the range.",
    (ParameterError, "range"): "Change {name} on the node to a value within that range.",
    (ParameterError, "type"): "Type a whole number into {name}.",
    (ParameterError, "list"): (
        "Write {name} as numbers separated by commas, for example '0, 0.25, 0.5, 0.75, 1', or clear it to use "
        "the single value."
    ),
    (ParameterError, "empty"): "Give at least one value in {name}.",
    (ParameterError, "no_noise"): "Lower stop_step to {high} or less, or set it to 0 to stop at stop_at.",
    (ParameterError, "no_pairs"): (
        f"Connect both the original (x, stop_at 0.8) and the target (z, stop_at 0.5) latents from two {CAPTURE} "
        "nodes, or type a dataset name into dataset."
    ),
    (ParameterError, "two_sources"): (
        "Disconnect the original and target inputs to train from the dataset, or clear dataset to train from "
        "the latents."
    ),
    (InvalidNameError, ""): "Type a {name} name made of letters, digits, '-' or '_' (for example 'smile').",
    # Latents that do not fit together.
    (ShapeMismatchError, ""): (
        f"Feed both {CAPTURE} nodes from the same Empty Latent Image (same size and batch size) and the same "
        "checkpoint."
    ),
    (ShapeMismatchError, "rank"): f"Connect the LATENT outputs of {CAPTURE} (batches of image latents).",
    (ShapeMismatchError, "empty"): (
        "Give at least one pair: set the Empty Latent Image's batch_size to 1 or more, or pick a dataset that "
        "holds pairs."
    ),
    (HeadSizeMismatchError, ""): (
        "Generate at {head_px} px (the Empty Latent Image's width and height), or train a head at this size "
        f"with {TRAIN}."
    ),
    (NonFiniteError, ""): (
        f"Queue the captures ({CAPTURE}) again; if it happens again, check the checkpoint and the sampler settings."
    ),
    (NonFiniteError, "input"): (
        f"Queue the capture ({CAPTURE}) that made that latent again; if it happens again, check the "
        "checkpoint and the sampler settings."
    ),
    (NonFiniteError, "output"): f"The head file may be damaged: pick another head in {LOAD}, or train it again.",
    (NonFiniteError, "diverged"): (
        f"Lower learning_rate on {TRAIN} (for example to 0.0003) and queue again; the other settings can stay."
    ),
    (NonFiniteError, "backend"): (
        "Set the environment variable AVI_SVD_BACKEND=torch, restart ComfyUI, and please report it."
    ),
    # Capture records.
    (CaptureRecordError, ""): f"Capture the latent again with {CAPTURE} and connect its LATENT output directly.",
    (CaptureRecordError, "not_latent"): f"Connect the LATENT output of {CAPTURE} to the {{role}} input.",
    (CaptureRecordError, "missing"): (
        f"Produce it with {CAPTURE} (not KSampler / KSamplerAdvanced / Empty Latent Image) and connect that "
        "node's LATENT output directly or through nodes that keep the latent's extra keys."
    ),
    (CaptureRecordError, "invalid"): (
        f"Capture the {{role}} latent again with {CAPTURE} and connect its LATENT output directly."
    ),
    (CaptureRecordError, "batch"): (
        f"Connect the LATENT output of {CAPTURE} directly, without batching, splitting or repeating it."
    ),
    (PairMismatchError, "seed"): (
        f"Give both {CAPTURE} nodes the same noise_seed: connect one seed (an Int node, as the workflows do) to "
        "both noise_seed inputs."
    ),
    (PairMismatchError, "batch"): (
        f"Feed both {CAPTURE} nodes from the same Empty Latent Image, so they capture the same batch."
    ),
    (PairMismatchError, "scale"): f"Feed both {CAPTURE} nodes from the same Load Checkpoint.",
    (PairMismatchError, "order"): (
        "Set the original's stop_at higher (paper: 0.8) than the target's (paper: 0.5), or swap the two inputs."
    ),
    (PairMismatchError, "shape"): (
        f"Feed both {CAPTURE} nodes from the same Empty Latent Image and the same checkpoint."
    ),
    (StepMismatchError, ""): (
        f"Capture the latent with {CAPTURE} at the step the file was made for (same steps, sampler and scheduler)."
    ),
    # Models and samplers.
    (UnsupportedModelError, ""): f"{SD_MODELS}.",
    (UnsupportedModelError, "flow"): f"{SD_MODELS}: AVI's maths needs noise added as x0 + sigma * eps.",
    (UnsupportedModelError, "continuous"): f"Remove the model-sampling patch node before {CAPTURE}. {SD_MODELS}.",
    (UnsupportedModelError, "numbering"): f"Remove the model-sampling patch node before {CAPTURE}. {SD_MODELS}.",
    (UnsupportedSamplerError, ""): "Pick another sampler_name on the node; its tooltip lists the ones that work.",
    (OperationStoppedError, ""): "Queue the prompt again to run it to the end.",
    (BackendUnavailableError, ""): "Unset the environment variable AVI_SVD_BACKEND (or set it to torch) and "
    "restart ComfyUI.",
    # Datasets.
    (DatasetError, ""): f"Capture the pairs again with {CAPTURE} and {APPEND}.",
    (DatasetError, "missing"): f"Check the dataset name, or build the dataset first: {BUILD_DATASET} a few times.",
    (DatasetError, "unknown"): (
        "Type the name of one of the datasets there are ({available}) into dataset, or build one: "
        f"{BUILD_DATASET} a few times."
    ),
    (DatasetError, "empty"): f"To fill it, {BUILD_DATASET} at least once before training from it.",
    (DatasetError, "unusable"): (
        f"Delete the broken shards named above, then {BUILD_DATASET} again; keep one image size per dataset."
    ),
    # Files.
    (FileFormatError, ""): "The file is damaged or incomplete: download it again, or make it again.",
    (FileFormatError, "missing"): "Press R to refresh the page's lists and pick a file that exists.",
    (FileFormatError, "pickle"): (
        "Use a .safetensors file made by the pack (a pickle file is never loaded, so opening a shared file "
        "cannot run code)."
    ),
    (FileFormatError, "foreign"): "Pick a file made by the AVI pack; keep other models out of the pack's folders.",
    (HeadFileError, ""): f"The head file is damaged or incomplete: download it again, or train it again with {TRAIN}.",
    (HeadFileError, "missing"): (
        f"Press R to refresh the list and pick a head in {LOAD}, or train one with {TRAIN} (the 'learn an "
        "attribute' workflow)."
    ),
    (HeadFileError, "pickle"): (
        f"Use a .safetensors head made by {TRAIN} or `python -m avi_core train` (a pickle file is never loaded, "
        "so opening a shared head cannot run code)."
    ),
    (HeadFileError, "foreign"): (
        f"Pick a head made by {TRAIN} or `python -m avi_core train`, and keep other models out of models/avi_heads."
    ),
    (HeadFileError, "half_overflow"): "Save the head in float32 (full precision).",
    (HeadFileError, "nonfinite"): (
        f"The head holds NaN or infinity: train it again with {TRAIN}, with a lower learning_rate if training diverged."
    ),
    (FileVersionError, "newer"): UPDATE_PACK,
    (HeadFileError, "newer"): UPDATE_PACK,
    # Writing files.
    (OutputPathError, ""): f"Check that ComfyUI can write to that folder (see {FOLDERS}).",
    (OutputPathError, "full"): "Free some space on that disk and queue again.",
    (OutputPathError, "permission"): (
        f"Give ComfyUI write access to that folder, or point {FOLDERS} at a folder it can write."
    ),
}

_Execute = TypeVar("_Execute", bound=Callable[..., Any])


@contextlib.contextmanager
def user_errors(table: FixTable = NODE_FIXES) -> Iterator[None]:
    """Add `table`'s advice to any AVIError raised inside, and re-raise the same object.

    Anything else (comfy's InterruptProcessingException when the user pressed Cancel, KeyboardInterrupt, a
    programming error) passes through untouched.
    """
    try:
        yield
    except AVIError as err:
        add_fix(err, table)
        raise


def explains_errors(execute: _Execute) -> _Execute:
    """Decorator for a node's execute: runs it under `user_errors` (put it below @classmethod)."""

    @functools.wraps(execute)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with user_errors():
            return execute(*args, **kwargs)

    wrapper.__avi_explains_errors__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def explained(err: AVIError, table: FixTable = NODE_FIXES) -> str:
    """`str(err)` with its advice: the message ComfyUI shows for it (used by validate_inputs)."""
    return str(add_fix(err, table))


from .boundary.fixes import BOUNDARY_FIXES  # noqa: E402  (boundary)

NODE_FIXES.update(BOUNDARY_FIXES)
