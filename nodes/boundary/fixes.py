"""Node advice for the semantic-boundary errors (engine: avi_core/boundary; nodes: nodes/boundary), host-free.

Merged into `nodes.fixes.NODE_FIXES` by one line at the end of that module. Keys are (exception type, reason) as
`avi_core.errors.add_fix` reads them; the reasons here are raised by the boundary engine and nodes only, except
"records" and "too_few", whose advice is worded for any collection.
"""

from __future__ import annotations

from ...avi_core.errors import (
    BackendUnavailableError,
    CaptureRecordError,
    DatasetError,
    FixTable,
    ParameterError,
    ShapeMismatchError,
    StepMismatchError,
)

COLLECT = "'AVI Collect Boundary Samples'"
FIT = "'AVI Fit Boundary'"
LOAD = "'AVI Load Boundary'"
CAPTURE = "'AVI Capture Latent at Step'"
SAME_STEP = (
    f"A boundary's two sides, and every latent edited with it, must be captured at the same step of the same "
    f"schedule. To fit: collect both sides with {COLLECT}, which captures them together (an AVI dataset holds x and "
    f"z at two different steps and cannot be used). To edit: capture the latent with {CAPTURE} with stop_step wired "
    f"from {LOAD}'s step output and the collection's steps, sampler and scheduler."
)

BOUNDARY_FIXES: FixTable = {
    (StepMismatchError, "step"): SAME_STEP,
    (StepMismatchError, "steps"): SAME_STEP,
    (StepMismatchError, "schedule"): (
        "Use the sampler, scheduler, steps and denoise the collection was made with (" + LOAD[1:-1] + " shows them), "
        f"and keep one schedule per collection: start a new collection name in {COLLECT} after changing them."
    ),
    (CaptureRecordError, "scale"): f"Use the checkpoint the boundary was collected with, in {COLLECT} and {CAPTURE}.",
    (ShapeMismatchError, "size"): (
        "Generate at the size the boundary was collected at (the Empty Latent Image's width and height; "
        f"{LOAD} shows it), or collect and fit a boundary at this size."
    ),
    (ShapeMismatchError, "sample_shape"): (
        "Capture both sides from the same Empty Latent Image and checkpoint, or keep one size per collection in "
        f"{COLLECT}."
    ),
    (ShapeMismatchError, "dtype"): f"Connect the LATENT outputs of {CAPTURE} or collect the sides with {COLLECT}.",
    (ShapeMismatchError, "distances"): "Give one distance, or a list in distance_list.",
    (DatasetError, "degenerate"): (
        f"The two sides cannot be told apart at this step: use two prompts that differ, collect more images with "
        f"{COLLECT} (seed set to increment), or pick another step."
    ),
    (DatasetError, "too_few"): (
        "Collect more samples: queue the collecting workflow a few more times with the seed set to increment."
    ),
    (DatasetError, "records"): (
        "The collection's files lack the records of their captures: collect it again under a new name with the "
        "pack's collecting node, and delete the files named above."
    ),
    (DatasetError, "no_collection"): (
        f"Type the name of a collection there ({{available}}) into collection, or fill one first: queue the "
        f"'boundary collect' workflow ({COLLECT[1:-1]}) several times."
    ),
    (
        DatasetError,
        "no_step",
    ): "Set step to one of the steps the collection holds ({steps}), or to -1 to search them all.",
    (ParameterError, "paired"): (
        f"Collect both sides with {COLLECT}, which samples prompt A and prompt B from the same seeds, or connect "
        "side_a and side_b from two captures of one Empty Latent Image and one seed."
    ),
    (ParameterError, "boundary_sources"): (
        "Disconnect side_a and side_b to fit from the collection, or clear collection to fit from the latents."
    ),
    (ParameterError, "no_boundary_sides"): (
        f"Type the name of a collection filled by {COLLECT} into collection, or connect both side_a and side_b "
        f"(two {CAPTURE} nodes at the same stop_step)."
    ),
    (BackendUnavailableError, "sklearn"): (
        "Install the pack's requirements into ComfyUI's Python (pip install -r requirements.txt in the pack's folder) "
        "and restart ComfyUI."
    ),
}
