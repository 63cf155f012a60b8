"""What the boundary nodes do with ComfyUI LATENTs and collection folders, host-free (no ComfyUI import).

- A boundary collection is a folder (`models/avi_boundary_collections/<name>/`) in the shard format of
  `avi_core.files.datasets`, written with x = side a (prompt A, the original) and z = side b (prompt B, the
  target) captured at ONE step, one shard per step and queue run (`append_sides`); `collection_sides` reads it
  back per step (`avi_core.boundary.captures.dataset_sides`). An AVI dataset (`models/avi_datasets/`) is read the
  same way, but its x and z were captured at two different steps (Tx and Tz), so `dataset_sides` refuses it
  with the two steps: no AVI dataset made by the pack's capture can serve as a boundary's sides.
- `edit_latent`: a captured LATENT moved to a list of signed distances from a boundary, back at the same noise
  level with its capture record, so a KSamplerAdvanced resumes it at the captured step.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ...avi_core.avi.latent_merge import repeat_latent_keys
from ...avi_core.boundary import (
    Boundary,
    StepSides,
    capture_info,
    check_edit_target,
    dataset_sides,
    signed_distance,
    sweep_distances,
)
from ...avi_core.errors import DatasetError, ParameterError, ShapeMismatchError
from ...avi_core.files.datasets import (
    append_shard,
    dataset_folder,
    iter_shard_paths,
    list_datasets,
    read_dataset,
)
from ...avi_core.latent.capture import CAPTURE_KEY, get_record
from ...avi_core.latent.conventions import from_paper_space, to_paper_space

logger = logging.getLogger("avi.nodes.boundary")

EDIT_ROLE = "input"


def append_sides(
    folder: str | os.PathLike[str],
    a: torch.Tensor,
    b: torch.Tensor,
    record_a: Mapping[str, Any],
    record_b: Mapping[str, Any],
) -> Path:
    """One shard of a boundary collection: paper-space sides a and b `[P, C, H, W]` captured at one step.

    The two records must describe captures at the same step of the same schedule (`capture_info`); written
    atomically (`files.datasets.append_shard`), x = side a, z = side b.
    """
    capture_info(record_a, record_b)
    return append_shard(folder, a, b, {"x": dict(record_a), "z": dict(record_b)})


def find_collection(collection_roots: Sequence[str], dataset_roots: Sequence[str], name: str) -> Path:
    """The folder of collection `name`: in the boundary collection folders first, then in the AVI datasets.

    DatasetError reason "no_collection" (details name, folders, available) when neither has it.
    """
    for root in [*collection_roots, *dataset_roots]:
        folder = dataset_folder(root, name)
        if folder.is_dir():
            return folder
    available = sorted({n for root in collection_roots for n in list_datasets(root)}, key=str.lower)
    folders = ", ".join(str(root) for root in [*collection_roots, *dataset_roots])
    raise DatasetError(
        f"no boundary collection named {name!r} in {folders} (collections there: {', '.join(available) or 'none'})",
        reason="no_collection",
        name=name,
        folders=folders,
        available=", ".join(available) or "none",
    )


def collection_fingerprint(collection_roots: Sequence[str], dataset_roots: Sequence[str], name: str) -> str:
    """What changes when a collection gains or loses a file: its folder and its finished files' names and sizes
    ("" when there is no such collection: the fit then says so)."""
    try:
        folder = find_collection(collection_roots, dataset_roots, (name or "").strip())
    except (DatasetError, ParameterError):
        return ""
    files = []
    for path in iter_shard_paths(folder):
        try:
            files.append(f"{path.name}:{path.stat().st_size}")
        except OSError:
            continue
    return f"{folder}|{'|'.join(files)}"


def collection_sides(folder: str | os.PathLike[str], step: int = -1) -> dict[int, StepSides]:
    """{step: StepSides} of a collection (or dataset) folder; step >= 0 keeps that step only.

    DatasetError reason "no_step" (details step, steps) when the folder holds no capture at `step`.
    """
    data = read_dataset(folder)
    sides = dataset_sides(data.x, data.z, data.records)
    for info in (s.info for s in sides.values()):
        info["collection"] = Path(folder).name
    if step < 0:
        return sides
    if step not in sides:
        held = ", ".join(map(str, sides))
        raise DatasetError(
            f"the collection {Path(folder).name!r} holds captures at step(s) {held}, not at step {step}",
            reason="no_step",
            step=step,
            steps=held,
        )
    return {step: sides[step]}


def latent_sides(side_a: Mapping[str, Any], side_b: Mapping[str, Any]) -> dict[int, StepSides]:
    """{step: StepSides} from two captured LATENTs (prompt A, prompt B) at the same step, in paper space."""
    record_a = get_record(side_a, "side a")
    record_b = get_record(side_b, "side b")
    info = capture_info(record_a, record_b)
    a = to_paper_space(side_a["samples"], record_a["sigma"], record_a["scale_factor"]).float().cpu()
    b = to_paper_space(side_b["samples"], record_b["sigma"], record_b["scale_factor"]).float().cpu()
    if a.shape[1:] != b.shape[1:]:
        raise ShapeMismatchError(
            f"the samples of side a have shape {tuple(a.shape[1:])} but those of side b {tuple(b.shape[1:])}",
            reason="sample_shape",
            a=tuple(a.shape[1:]),
            b=tuple(b.shape[1:]),
        )
    if a.dim() == 4:
        info.update(channels=int(a.shape[1]), height=int(a.shape[2]), width=int(a.shape[3]))
    return {info["step"]: StepSides(step=info["step"], a=a, b=b, info=dict(info, pairs=int(a.shape[0])))}


def choose_sides(
    side_a: Mapping[str, Any] | None,
    side_b: Mapping[str, Any] | None,
    collection: str,
) -> str:
    """Which source a fit uses: "latents" (both LATENTs connected) or "collection" (a name typed), never both.

    ParameterError reason "boundary_sources" (both given), "no_boundary_sides" (neither, or one latent only).
    """
    named = bool((collection or "").strip())
    latents = side_a is not None and side_b is not None
    if latents and named:
        raise ParameterError(
            "both the side latents and a collection name are given", reason="boundary_sources", name="collection"
        )
    if latents:
        return "latents"
    if named and side_a is None and side_b is None:
        return "collection"
    raise ParameterError(
        "the boundary has no sides: connect both side_a and side_b, or type a collection name",
        reason="no_boundary_sides",
        name="collection",
    )


def edit_latent(
    latent: Mapping[str, Any], boundary: Boundary, distances: Sequence[float]
) -> tuple[dict[str, Any], torch.Tensor]:
    """A captured LATENT moved to each signed distance in turn: (LATENT `[L * B, C, H, W]`, distances before).

    The latent must carry a capture record at the boundary's step, schedule and size (`check_edit_target`).
    The move runs in paper space in float64 (x' = x + (d * unit - s(x)) n); only the change is converted back
    and added to the latent as it came, so a distance equal to the latent's own signed distance returns it
    unchanged. The result is distance-major (all B latents at distances[0], then the next), at the latent's
    sigma, dtype and device, with its extra keys (batch_index, noise_mask repeated) and its capture record
    (batch updated, `boundary_edit` added). Returns also s(x) before the move, float64 `[B]`, in units.
    """
    record = get_record(latent, EDIT_ROLE)
    samples: torch.Tensor = latent["samples"]
    check_edit_target(record, boundary, tuple(samples.shape[1:]), role=EDIT_ROLE)
    sigma, scale = record["sigma"], record["scale_factor"]
    work = samples.detach().to(torch.float64)
    paper = to_paper_space(work, sigma, scale)
    before = signed_distance(paper, boundary)
    moved = sweep_distances(paper, boundary, [float(d) for d in distances])
    change = from_paper_space(moved - paper.repeat(len(distances), *([1] * (paper.dim() - 1))), sigma, scale)
    edited = work.repeat(len(distances), *([1] * (work.dim() - 1))) + change
    batch = samples.shape[0]
    out = repeat_latent_keys(latent, len(distances), batch)
    out["samples"] = edited.to(device=samples.device, dtype=samples.dtype)
    out[CAPTURE_KEY] = dict(
        record,
        batch=int(edited.shape[0]),
        boundary_edit={"distances": [float(d) for d in distances], "boundary_step": boundary.step},
    )
    logger.info(
        "AVI boundary edit: %d latent(s) at distance(s) %s moved to %s",
        batch,
        ", ".join(f"{float(v):.3g}" for v in before),
        ", ".join(f"{float(d):g}" for d in distances),
    )
    return out, before


def describe_boundary(boundary: Boundary, name: str = "") -> str:
    """A few lines for the page: what the boundary separates, where it was captured, how well it separates."""
    info = boundary.info
    lines = [f"{name}: {boundary.summary()}" if name else boundary.summary()]
    if info.get("description"):
        lines.append(str(info["description"]))
    if isinstance(info.get("steps"), int):
        where = f"captured at step {info.get('step')} of {info['steps']}"
        if isinstance(info.get("sigma"), (int, float)):
            where += f" (sigma {info['sigma']:.4g}"
            where += f", timestep {info['timestep']})" if "timestep" in info else ")"
        if info.get("sampler"):
            where += f", {info['sampler']} / {info.get('scheduler')}"
        lines.append(where)
    search = info.get("search")
    if isinstance(search, Mapping) and search.get("steps"):
        curve = ", ".join(
            f"{s}: {100 * a:.1f}%" for s, a in zip(search["steps"], search.get("accuracies", []), strict=False)
        )
        lines.append(f"held-out accuracy by step: {curve}; chosen step {search.get('chosen')}")
    lines.append("side a (s < 0): the first prompt; side b (s > 0): the second. Distances in units of a typical |s|.")
    return "\n".join(lines)
