"""Everything the nodes take from the ComfyUI host's internals (comfy.*, folder_paths, the host's nodes.py),
imported lazily.

The pack's root must import without ComfyUI (host-free tests, the CLI). The node modules (nodes/avi/*.py)
import the host's public node API, comfy_api, and are imported only by `comfy_entrypoint`; everything else of
the host is reached through these functions, when a node runs.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ..avi_core.errors import FileFormatError, HeadFileError

logger = logging.getLogger("avi.nodes")

HEADS_FOLDER = "avi_heads"
DATASETS_FOLDER = "avi_datasets"
HEAD_EXTENSIONS = {".safetensors"}
BOUNDARIES_FOLDER = "avi_boundaries"  # boundary
BOUNDARY_COLLECTIONS_FOLDER = "avi_boundary_collections"  # boundary


class HostMissingError(RuntimeError):
    """A node that needs ComfyUI was run outside it."""


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise HostMissingError(f"this AVI node runs inside ComfyUI ({module} cannot be imported: {err})") from err


def register_model_folders() -> bool:
    """Register the `avi_heads`, `avi_datasets`, `avi_boundaries` and `avi_boundary_collections` model folders
    (and h-space's `avi_directions` and `avi_hspace_collections`) by appending to folder_paths.

    A user's extra_model_paths.yaml may already name them: those stay first, models/<name> is appended.
    Heads and boundaries are `.safetensors` only. Returns False when ComfyUI is absent.
    """
    try:
        import folder_paths
    except ImportError:
        return False
    for name in (HEADS_FOLDER, DATASETS_FOLDER):
        folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))
    paths, _ = folder_paths.folder_names_and_paths[HEADS_FOLDER]
    folder_paths.folder_names_and_paths[HEADS_FOLDER] = (paths, set(HEAD_EXTENSIONS))
    for name in (BOUNDARIES_FOLDER, BOUNDARY_COLLECTIONS_FOLDER):  # boundary
        folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))
    paths, _ = folder_paths.folder_names_and_paths[BOUNDARIES_FOLDER]
    folder_paths.folder_names_and_paths[BOUNDARIES_FOLDER] = (paths, set(HEAD_EXTENSIONS))
    register_hspace_folders(folder_paths)  # hspace
    return True


def sampler_names() -> list[str]:
    """The host's sampler names (KSampler's list)."""
    return list(_require("comfy.samplers").KSampler.SAMPLERS)


def scheduler_names() -> list[str]:
    """The host's scheduler names (KSampler's list)."""
    return list(_require("comfy.samplers").KSampler.SCHEDULERS)


def _listed_file_path(folder_name: str, filename: str, kind: str, error: type[FileFormatError]) -> str:
    """Full path of a file ComfyUI listed in model folder `folder_name`; `error` (reason "missing") naming the
    folders searched when it is gone."""
    folder_paths = _require("folder_paths")
    path = folder_paths.get_full_path(folder_name, filename)
    if path is None:
        folders = ", ".join(folder_paths.get_folder_paths(folder_name))
        raise error(
            f"{kind} {filename!r} is not in the {folder_name} folders ({folders})",
            reason="missing",
            path=filename,
            kind=kind,
        )
    return path


def _save_folder(folder_name: str) -> str:
    """The first folder of model folder `folder_name`, where new files go (created if missing)."""
    folder = _require("folder_paths").get_folder_paths(folder_name)[0]
    os.makedirs(folder, exist_ok=True)
    return folder


def head_files() -> list[str]:
    """The files of the avi_heads folders (ComfyUI's cached list)."""
    return _require("folder_paths").get_filename_list(HEADS_FOLDER)


def head_path(filename: str) -> str:
    """Full path of a listed head file; HeadFileError (reason "missing") naming the folders searched when gone."""
    return _listed_file_path(HEADS_FOLDER, filename, "attribute head", HeadFileError)


def heads_save_folder() -> str:
    """The folder new heads are written to: the first avi_heads folder (created if missing)."""
    return _save_folder(HEADS_FOLDER)


def dataset_roots() -> list[str]:
    """The avi_datasets folders, in ComfyUI's order."""
    folder_paths = _require("folder_paths")
    return folder_paths.get_folder_paths(DATASETS_FOLDER)


def boundary_files() -> list[str]:
    """The files of the avi_boundaries folders (ComfyUI's cached list)."""
    return _require("folder_paths").get_filename_list(BOUNDARIES_FOLDER)


def boundary_path(filename: str) -> str:
    """Full path of a listed boundary file; FileFormatError (reason "missing") naming the folders searched."""
    return _listed_file_path(BOUNDARIES_FOLDER, filename, "semantic boundary", FileFormatError)


def boundaries_save_folder() -> str:
    """The folder new boundaries are written to: the first avi_boundaries folder (created if missing)."""
    return _save_folder(BOUNDARIES_FOLDER)


def boundary_collection_roots() -> list[str]:
    """The avi_boundary_collections folders, in ComfyUI's order (new collections go to the first)."""
    return _require("folder_paths").get_folder_paths(BOUNDARY_COLLECTIONS_FOLDER)


def torch_device():
    """The device ComfyUI computes on."""
    return _require("comfy.model_management").get_torch_device()


def throw_if_interrupted() -> None:
    """Raises comfy's InterruptProcessingException when the user pressed Cancel."""
    _require("comfy.model_management").throw_exception_if_processing_interrupted()


def progress_bar(total: int):
    """A comfy.utils.ProgressBar (the node's progress in the page)."""
    return _require("comfy.utils").ProgressBar(total)


def host_nodes():
    """The host's nodes.py (common_ksampler); never the pack's own nodes/ package."""
    return _require("nodes")


def ksampler_sigmas(model, steps: int, sampler_name: str, scheduler: str, denoise: float = 1.0):
    """The sigma schedule KSamplerAdvanced uses for these settings (incl. samplers that drop a sigma)."""
    samplers = _require("comfy.samplers")
    sampler = samplers.KSampler(
        model,
        steps=steps,
        device=model.load_device,
        sampler=sampler_name,
        scheduler=scheduler,
        denoise=denoise,
        model_options=model.model_options,
    )
    return sampler.sigmas.detach().float().cpu()


# --- h-space (issue 9) -------------------------------------------------------------------------------------------

DIRECTIONS_FOLDER = "avi_directions"
"""h-space direction files (.safetensors), as heads are in avi_heads."""
HSPACE_COLLECTIONS_FOLDER = "avi_hspace_collections"
"""Folders of captured h (one sub-folder per collection, one shard per queue run)."""


def register_hspace_folders(folder_paths) -> None:
    """Append models/avi_directions (.safetensors only) and models/avi_hspace_collections to folder_paths."""
    for name in (DIRECTIONS_FOLDER, HSPACE_COLLECTIONS_FOLDER):
        folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))
    paths, _ = folder_paths.folder_names_and_paths[DIRECTIONS_FOLDER]
    folder_paths.folder_names_and_paths[DIRECTIONS_FOLDER] = (paths, set(HEAD_EXTENSIONS))


def direction_files() -> list[str]:
    """The files of the avi_directions folders (ComfyUI's cached list)."""
    return _require("folder_paths").get_filename_list(DIRECTIONS_FOLDER)


def direction_path(filename: str) -> str:
    """Full path of a listed direction file; FileFormatError (reason "missing") naming the folders searched."""
    return _listed_file_path(DIRECTIONS_FOLDER, filename, "h-space direction file", FileFormatError)


def directions_save_folder() -> str:
    """The folder new direction files are written to: the first avi_directions folder (created if missing)."""
    return _save_folder(DIRECTIONS_FOLDER)


def hspace_collection_roots() -> list[str]:
    """The avi_hspace_collections folders, in ComfyUI's order (new collections go into the first)."""
    return _require("folder_paths").get_folder_paths(HSPACE_COLLECTIONS_FOLDER)


def model_family(model) -> str | None:
    """The model's ComfyUI family (its model_config class name: "SD15", "SD20", "SDXL", ...), None if unknown."""
    config = getattr(getattr(model, "model", None), "model_config", None)
    return type(config).__name__ if config is not None else None
