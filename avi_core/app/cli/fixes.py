"""What to do about an error, in a terminal user's words: which option to change, which command to run.

The engine's errors state facts (`avi_core.errors`); `CLI_FIXES` holds the advice the command line adds to
them, keyed by (exception type, reason) as `add_fix` reads it (reason "" is the type's general case; subtypes
inherit their base types' advice). `advise(err)` also gives the fix the option behind a parameter
(`{option}`: "--rho" for the engine's "rho"), so the table can name it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ...errors import (
    AVIError,
    BackendUnavailableError,
    CaptureRecordError,
    DatasetError,
    FileFormatError,
    FileVersionError,
    FixTable,
    HeadFileError,
    HeadSizeMismatchError,
    LatentFileError,
    NonFiniteError,
    OutputPathError,
    PairMismatchError,
    ParameterError,
    ShapeMismatchError,
    add_fix,
)

APPEND = "'AVI Append To Dataset'"

# The engine's parameter names -> the options that set them.
OPTIONS: dict[str, str] = {
    "rho": "--rho",
    "k": "--k",
    "learning_rate": "--lr",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "samples_per_epoch": "--samples-per-epoch",
    "hidden": "--hidden",
    "lambdas": "--lambdas",
    "mode": "--mode",
    "size": "--original / --target",
}

CLI_FIXES: FixTable = {
    # Settings given as options.
    (ParameterError, ""): "Check {option}; 'avi COMMAND --help' gives its range.",
    (ParameterError, "range"): "Give {option} between {low:g} and {high:g}.",
    (ParameterError, "type"): "Give {option} a whole number.",
    (ParameterError, "list"): "Write {option} as numbers separated by commas, e.g. '0,0.5,1'.",
    (ParameterError, "empty"): "Give at least one value in {option}.",
    # Training data.
    (DatasetError, ""): "Check --dataset or --pairs.",
    (DatasetError, "missing"): f"Check --dataset; build one in ComfyUI with {APPEND}.",
    (DatasetError, "not_folder"): "Give {option} a folder, not a file.",
    (DatasetError, "empty"): f"Check --dataset; add pairs to it in ComfyUI with {APPEND} (queue it at least once).",
    (DatasetError, "unusable"): "Delete or move the shards named above, and collect again.",
    (DatasetError, "no_pairs_folder"): "Check --pairs.",
    (DatasetError, "no_pairs"): (
        "Name the files NAME.x.latent (original prompt, at Tx) and NAME.z.latent (target prompt, at Tz, same seeds)."
    ),
    (DatasetError, "partner"): "Every NAME.x.latent needs a NAME.z.latent made from the same seed(s).",
    (ShapeMismatchError, ""): (
        "Give --original and --target latents of the same size and number (one target per original, same seeds)."
    ),
    (ShapeMismatchError, "pair"): (
        "The original and target files of a pair must hold the same number of latents of the same size "
        "(one target per original, same seeds)."
    ),
    (ShapeMismatchError, "sizes"): "Train one head per image size: move the other pairs to another folder.",
    (ShapeMismatchError, "batch"): "Give --target one latent, or one per original latent.",
    (HeadSizeMismatchError, ""): "Generate at the head's size, or train a head at this size with 'avi train'.",
    (PairMismatchError, "order"): "Swap --original and --target, or check --sigma-x / --sigma-z.",
    (CaptureRecordError, ""): "Capture the latents again with 'AVI Capture Latent at Step'.",
    (NonFiniteError, ""): "Check the model and sampler that made the latents, and save them again.",
    (NonFiniteError, "diverged"): "Lower --lr (for example 0.0003).",
    (NonFiniteError, "output"): "The head file may be damaged: try another head, or train it again.",
    (NonFiniteError, "backend"): "Set the environment variable AVI_SVD_BACKEND=torch, and please report it.",
    # Files read.
    (FileFormatError, ""): "Check the file name, or make the file again.",
    (FileFormatError, "missing"): "Check {option}.",
    (FileFormatError, "pickle"): "Save latents with ComfyUI's SaveLatent node; heads with 'avi train'.",
    (HeadFileError, ""): "Download or train the head again ('avi train').",
    (HeadFileError, "missing"): "Check {option}.",
    (HeadFileError, "foreign"): "Give a head made by 'avi train' or 'AVI Train Attribute Head'.",
    (HeadFileError, "half_overflow"): "Save it without --half.",
    (HeadFileError, "nonfinite"): "Train it again with a lower --lr.",
    (LatentFileError, ""): "Give a .latent file saved by ComfyUI's SaveLatent node.",
    (LatentFileError, "missing"): "Check {option}.",
    (FileVersionError, ""): "Update the pack (pip install -U, or git pull).",
    # Files written.
    (OutputPathError, ""): "Check {option}.",
    (OutputPathError, "suffix"): "Give {option} a file name ending in {suffix}.",
    (OutputPathError, "no_folder"): "Check {option}, or create the folder first (mkdir -p {folder}).",
    (OutputPathError, "not_folder"): "Check {option}: a part of its folder path is a file.",
    (OutputPathError, "is_folder"): "Give {option} a file name inside that folder.",
    (OutputPathError, "permission"): "Give {option} a folder you can write to.",
    (OutputPathError, "refused"): "Give {option} a folder on a real disk.",
    (OutputPathError, "full"): "Free some disk space, or give {option} a path on another disk.",
    (BackendUnavailableError, ""): "Choose another backend, or run on a machine that has it.",
}


@contextlib.contextmanager
def about(option: str) -> Iterator[None]:
    """Errors raised inside are about `option` (e.g. "--head"): the advice names it."""
    try:
        yield
    except AVIError as err:
        err.details.setdefault("option", option)
        raise


def advise(err: AVIError) -> AVIError:
    """Add the command line's advice to `err` (in place); returns it."""
    if isinstance(err, OutputPathError):
        err.details.setdefault("option", "--out")
        if "path" in err.details:
            err.details.setdefault("folder", str(Path(err.details["path"]).parent))
    elif "option" not in err.details:
        name = str(err.details.get("name", ""))
        err.details["option"] = OPTIONS.get(name, name if name.startswith("--") else f"the {name or 'setting'}")
    return add_fix(err, CLI_FIXES)


def error_line(err: AVIError) -> str:
    """`err` as the command line prints it after 'error: ': its facts, then the advice (`advise`) as a sentence."""
    advise(err)
    facts = err.facts.rstrip()
    if not err.fix:
        return facts
    return f"{facts}{'' if facts.endswith(('.', '!', '?')) else '.'} {err.fix}"
