"""What to do about an h-space engine error, in a ComfyUI user's words (issue 9).

`HSPACE_FIXES` is keyed like nodes/fixes.py's NODE_FIXES ((exception type, reason) -> sentences). The keys
collide with other methods' (a DatasetError "empty" is an empty AVI dataset there, an empty h collection here;
"too_few" is also the boundary engine's), so this table is NOT merged into NODE_FIXES: the h-space nodes look
their advice up in `HSPACE_TABLE`, this table first and NODE_FIXES after it (for what every method shares:
names, output folders, newer files). `hspace_errors()` / `explains_hspace_errors` are nodes/fixes.py's
`user_errors` / `explains_errors` with that table; comfy's interrupt and anything that is not an AVIError pass
through untouched. tests/test_hspace_node_fixes.py checks that every error the h-space engine raises gets
h-space advice.

Host-free: no ComfyUI import here.
"""

from __future__ import annotations

import contextlib
import functools
from collections import ChainMap
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ...avi_core.errors import (
    AVIError,
    DatasetError,
    FileFormatError,
    FixTable,
    NonFiniteError,
    ParameterError,
    ShapeMismatchError,
    add_fix,
)
from ..fixes import NODE_FIXES

CAPTURE_H = "'AVI Capture h'"
FIND_PCA = "'AVI Find h-space Directions (PCA)'"
FIND_SUPERVISED = "'AVI Find h-space Direction (Supervised)'"
FIND_JACOBIAN = "'AVI Find h-space Directions (Jacobian)'"
LOAD_DIRECTION = "'AVI Load h-space Direction'"
APPLY_DIRECTION = "'AVI Apply h-space Direction'"
COLLECT = (
    f"Queue a workflow whose sampler uses the MODEL of {CAPTURE_H} (the 'learn an h-space direction' workflow "
    "does), with that collection name"
)

HSPACE_FIXES: FixTable = {
    # Collections of captured h.
    (DatasetError, ""): f"{COLLECT}, then queue this node again.",
    (DatasetError, "missing"): (
        f"Check the collection name (a folder in models/avi_hspace_collections), or fill it first: {COLLECT[0].lower()}"
        f"{COLLECT[1:]}."
    ),
    (DatasetError, "empty"): f"{COLLECT} at least once before finding directions in it.",
    (DatasetError, "unusable"): (
        f"Delete the broken shards named above, then {COLLECT[0].lower()}{COLLECT[1:]} again; keep one image size "
        "and one checkpoint per collection."
    ),
    (DatasetError, "too_few"): (
        f"PCA compares images: queue {CAPTURE_H}'s workflow again with more seeds (a larger batch_size, or several "
        "queue runs with the seed set to increment) until the collection holds at least {needed} images per step."
    ),
    (DatasetError, "no_match"): (
        f"Type a step, label or pass the collection holds (listed above) on the node, or capture it: set {CAPTURE_H}'s "
        "steps, label or pass to include it."
    ),
    (DatasetError, "steps"): (
        "Set step on the node to one of the steps listed, or to -1 to make one direction per step (per-step)."
    ),
    (DatasetError, "same_mean"): (
        "Capture two different prompts (or labels): the two sets must differ for a direction between them."
    ),
    (DatasetError, "records"): (
        f"Delete the shard named above and capture it again with {CAPTURE_H}; if it came from your own code, give "
        "every row a record with step, steps, sigma, timestep, label, seed and pass."
    ),
    # Settings.
    (ParameterError, ""): "Change that setting on the node; its tooltip gives the range.",
    (ParameterError, "list"): (
        "Write {name} as numbers separated by commas, for example '-2, -1, 0, 1, 2', or clear it to use the "
        "single value."
    ),
    (ParameterError, "choice"): "Pick one of the values listed in the node's menu.",
    (ParameterError, "empty"): "Give at least one value.",
    (ParameterError, "not_unit"): "The direction file is damaged: find the directions again.",
    (ParameterError, "output"): (
        "The model's prediction is not a tensor of numbers: use a UNet checkpoint (Stable Diffusion 1.x, 2.x or "
        "SDXL) without nodes that replace its output."
    ),
    (ParameterError, "samples"): (
        "Lower count on the node to {high} or less, or capture more images into the collection (each image adds "
        "one possible direction)."
    ),
    (ParameterError, "rank"): (
        "Lower count on the node to {high} or less, or capture images of other seeds into the collection (copies "
        "of one image add no direction)."
    ),
    (ParameterError, "in_span"): (
        "Disconnect the directions to disentangle from, or use fewer of them: this direction is made of them."
    ),
    (ParameterError, "sweep_latent"): (
        f"Connect the Empty Latent Image to {APPLY_DIRECTION}'s latent input and its latent output to the sampler's "
        "latent_image, or clear strength_list and direction_list."
    ),
    (ParameterError, "order"): "Set start at or below end on the node (both are fractions of the sampling, 0 to 1).",
    (ParameterError, "range"): "Change {name} on the node to a value within that range.",
    (ParameterError, "no_grad"): (
        "The model's bottleneck does not reach its output: use a UNet checkpoint (Stable Diffusion 1.x, 2.x or "
        "SDXL) without nodes that replace its middle or output blocks."
    ),
    (ParameterError, "zero"): "Capture two different prompts (or labels): the direction between them is zero.",
    # Shapes.
    (ShapeMismatchError, ""): (
        "Use directions found with the same checkpoint at the same image size (the Empty Latent Image's width and "
        "height) as the model and latent you sample with."
    ),
    (ShapeMismatchError, "shape"): (
        "Use directions found with the same checkpoint at the same image size as this sampling (the Empty Latent "
        "Image's width and height), or find directions again at this size."
    ),
    (ShapeMismatchError, "rank"): "Connect a batch of images (VAE Decode's IMAGE output).",
    (ShapeMismatchError, "model"): (
        f"Load directions made with a {{model}} checkpoint in {LOAD_DIRECTION}, or load a {{made_for}} checkpoint "
        "to use these."
    ),
    (ShapeMismatchError, "sweep"): (
        f"Connect the Empty Latent Image through {APPLY_DIRECTION}'s latent input and its latent output into the "
        "sampler, so the batch holds one copy of the images per sweep value."
    ),
    (ShapeMismatchError, "steps"): "The direction file is damaged: find the directions again.",
    # Files.
    (FileFormatError, ""): (
        "The direction file is damaged or incomplete: download it again, or find the directions again."
    ),
    (FileFormatError, "missing"): (
        f"Press R to refresh the list and pick a file in {LOAD_DIRECTION}, or make one with {FIND_PCA}, "
        f"{FIND_SUPERVISED} or {FIND_JACOBIAN}."
    ),
    (FileFormatError, "pickle"): (
        "Use a .safetensors direction file made by the pack (a pickle file is never loaded, so opening a shared "
        "file cannot run code)."
    ),
    (FileFormatError, "foreign"): (
        "Pick a direction file made by the pack's Find nodes, and keep other models out of models/avi_directions."
    ),
    (FileFormatError, "nonfinite"): "The file holds NaN or infinity: find the directions again.",
    (NonFiniteError, ""): (
        "Queue again; if it happens again, check the checkpoint and the sampler settings (a model in float16 may "
        "overflow: try --force-fp32)."
    ),
}

HSPACE_TABLE: FixTable = ChainMap(dict(HSPACE_FIXES), NODE_FIXES)  # type: ignore[arg-type]
"""The h-space nodes' advice: HSPACE_FIXES first, then the pack's NODE_FIXES."""


_Execute = TypeVar("_Execute", bound=Callable[..., Any])


@contextlib.contextmanager
def hspace_errors() -> Iterator[None]:
    """Add the h-space advice to any AVIError raised inside and re-raise the same object; nothing else is caught."""
    try:
        yield
    except AVIError as err:
        add_fix(err, HSPACE_TABLE)
        raise


def explained_hspace(err: AVIError) -> str:
    """`str(err)` with its h-space advice (for validate_inputs)."""
    return str(add_fix(err, HSPACE_TABLE))


def explains_hspace_errors(execute: _Execute) -> _Execute:
    """Decorator for an h-space node's execute (below @classmethod): runs it under `hspace_errors`."""

    @functools.wraps(execute)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with hspace_errors():
            return execute(*args, **kwargs)

    wrapper.__avi_explains_errors__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
