"""Everything the nodes take from the ComfyUI host, imported lazily.

The pack must import without ComfyUI (host-free tests, the CLI), so no module of the pack imports comfy,
folder_paths or the host's nodes.py at import time; the nodes call these functions when they run.
Tests without a host replace them (monkeypatch) with small fakes.
"""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger("avi.nodes")

HEADS_FOLDER = "avi_heads"
DATASETS_FOLDER = "avi_datasets"
HEAD_EXTENSIONS = {".safetensors"}

# Used only to describe the node's inputs when ComfyUI is absent (schema checks in host-free tests).
_FALLBACK_SAMPLERS = ["euler", "ddim"]
_FALLBACK_SCHEDULERS = ["normal", "simple", "ddim_uniform"]


class HostMissingError(RuntimeError):
    """A node that needs ComfyUI was run outside it."""


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise HostMissingError(f"this AVI node runs inside ComfyUI ({module} cannot be imported: {err})") from err


def register_model_folders() -> bool:
    """Register the `avi_heads` and `avi_datasets` model folders by appending to folder_paths.

    A user's extra_model_paths.yaml may already name them: those stay first, models/<name> is appended.
    Heads are `.safetensors` only. Returns False when ComfyUI is absent.
    """
    try:
        import folder_paths
    except ImportError:
        return False
    for name in (HEADS_FOLDER, DATASETS_FOLDER):
        folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))
    paths, _ = folder_paths.folder_names_and_paths[HEADS_FOLDER]
    folder_paths.folder_names_and_paths[HEADS_FOLDER] = (paths, set(HEAD_EXTENSIONS))
    return True


def sampler_names() -> list[str]:
    try:
        import comfy.samplers
    except ImportError:
        return list(_FALLBACK_SAMPLERS)
    return list(comfy.samplers.KSampler.SAMPLERS)


def scheduler_names() -> list[str]:
    try:
        import comfy.samplers
    except ImportError:
        return list(_FALLBACK_SCHEDULERS)
    return list(comfy.samplers.KSampler.SCHEDULERS)


def head_files() -> list[str]:
    """The files of the avi_heads folders (ComfyUI's cached list), [] without ComfyUI."""
    try:
        import folder_paths
    except ImportError:
        return []
    return folder_paths.get_filename_list(HEADS_FOLDER)


def head_path(filename: str) -> str:
    """Full path of a listed head file; raises with the folders searched when it is gone."""
    folder_paths = _require("folder_paths")
    path = folder_paths.get_full_path(HEADS_FOLDER, filename)
    if path is None:
        raise FileNotFoundError(
            f"attribute head {filename!r} is not in the avi_heads folders "
            f"({', '.join(folder_paths.get_folder_paths(HEADS_FOLDER))}); refresh the page (press R) and pick one "
            "from the list, or train one with 'AVI Train Attribute Head'"
        )
    return path


def heads_save_folder() -> str:
    """The folder new heads are written to: the first avi_heads folder (created if missing)."""
    folder_paths = _require("folder_paths")
    folder = folder_paths.get_folder_paths(HEADS_FOLDER)[0]
    os.makedirs(folder, exist_ok=True)
    return folder


def dataset_roots() -> list[str]:
    """The avi_datasets folders, in ComfyUI's order."""
    folder_paths = _require("folder_paths")
    return folder_paths.get_folder_paths(DATASETS_FOLDER)


def torch_device():
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
