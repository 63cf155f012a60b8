"""From captured h to a DirectionSet with its story: the three methods of spec section 8 as one call each.

- `pca_from_collection`: principal directions of a collection's h at one step, or at every step (per-step
  directions, signs agreeing across steps); scales are the standard deviations ("std").
- `supervised_from_collection`: the mean-difference direction from the h labelled a to those labelled b, at
  one step or every step, optionally disentangled from other directions; its scale is the separation of the two
  sets' means along it ("separation"), so a strength of 1 moves an image by the distance between the sets.
- `jacobian_direction_set`: a set from power-iteration results for one image, at one step or several; scales
  are the norm of that image's h at the step ("h_norm"), so a strength of 0.1 is a change of 10 % of |h|.

Each result's `info` records the method's inputs: step(s), steps, sigma(s), timestep(s), samples (N), labels,
pass, explained variance or singular values, and the keys on which every run of the collection agrees (model,
height, width, sampler, ...).
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import DatasetError, ShapeMismatchError
from .collection import HCollection
from .direction_files import DirectionSet
from .jacobian import PowerIterationResult
from .pca import principal_components, principal_components_per_step
from .signs import align_across_steps
from .supervised import disentangle, mean_difference_direction, separation

logger = logging.getLogger("avi.hspace.recipes")


def common_run_info(runs: Sequence[Any]) -> dict[str, Any]:
    """The keys of the shards' "run" objects on which every run agrees."""
    dicts = [r for r in runs if isinstance(r, dict)]
    if not dicts:
        return {}
    return {k: v for k, v in dicts[0].items() if all(k in d and d[k] == v for d in dicts[1:])}


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def _step_story(collection: HCollection) -> dict[str, Any]:
    """step, steps, sigma, timestep of a collection holding one step (medians over the records)."""
    records = collection.records
    steps = sorted({int(r["steps"]) for r in records})
    return {
        "step": int(records[0]["step"]),
        "steps": steps[0] if len(steps) == 1 else steps,
        "sigma": _median([float(r["sigma"]) for r in records]),
        "timestep": _median([float(r["timestep"]) for r in records]),
    }


def _resolve_step(collection: HCollection, step: int | None) -> int:
    held = collection.steps
    if step is not None:
        if step not in held:
            raise DatasetError(
                f"the collection {collection.folder} holds no h of step {step} (it holds steps {held})",
                reason="no_match",
                step=step,
                steps=held,
            )
        return step
    if len(held) != 1:
        raise DatasetError(
            f"the collection {collection.folder} holds h of {len(held)} steps ({held}) and no step was given",
            reason="steps",
            steps=held,
        )
    return held[0]


def _for_pass(collection: HCollection, pass_: str | None) -> HCollection:
    chosen = collection.select(pass_=pass_) if pass_ is not None else collection
    if chosen.samples == 0:
        raise DatasetError(f"the collection {collection.folder} holds no h of the {pass_} pass", reason="no_match")
    return chosen


def _enough_for_pca(part: HCollection, step: int) -> None:
    if part.samples < 2:
        raise DatasetError(
            f"PCA needs at least 2 samples, the collection holds {part.samples} at step {step}",
            reason="too_few",
            samples=part.samples,
            needed=2,
            step=step,
        )


def _base_info(collection: HCollection, pass_: str | None, extra: dict[str, Any] | None) -> dict[str, Any]:
    info = common_run_info(collection.runs)
    info.update(collection=collection.folder.name, labels=collection.labels, samples=collection.samples)
    info["pass"] = pass_ or "both"
    info.update(extra or {})
    return info


def pca_from_collection(
    collection: HCollection,
    count: int,
    *,
    step: int | None = None,
    per_step: bool = False,
    pass_: str | None = "cond",
    info: dict[str, Any] | None = None,
) -> DirectionSet:
    """PCA directions of the collection's h of `pass_` (None: both passes) at `step`, or at every step held.

    step None: the collection's only step (DatasetError reason "steps" when it holds several). Each step needs at
    least 2 samples (DatasetError reason "too_few": "PCA needs at least 2 samples, the collection holds 1 ...").
    """
    chosen = _for_pass(collection, pass_)
    if per_step:
        parts = [chosen.select(step=s) for s in chosen.steps]
        for s, part in zip(chosen.steps, parts, strict=True):
            _enough_for_pca(part, s)
        result = principal_components_per_step([p.h for p in parts], count)
        stories = [_step_story(p) for p in parts]
        story = {
            "steps_stored": [s["step"] for s in stories],
            "timesteps": [s["timestep"] for s in stories],
            "samples_per_step": result.samples,
            "explained_variance": result.explained_variance_ratio.tolist(),
            "total_variance": result.total_variance.tolist(),
        }
        return DirectionSet(
            result.directions,
            result.stds,
            "pca",
            "std",
            [s["sigma"] for s in stories],
            {**_base_info(chosen, pass_, info), **story},
        )
    chosen_step = _resolve_step(chosen, step)
    part = chosen.select(step=chosen_step)
    _enough_for_pca(part, chosen_step)
    result = principal_components(part.h, count)
    story = {
        **_step_story(part),
        "explained_variance": result.explained_variance_ratio.tolist(),
        "total_variance": float(result.total_variance),
    }
    return DirectionSet(result.directions, result.stds, "pca", "std", None, {**_base_info(part, pass_, info), **story})


def _labelled(part: HCollection, label: str, step: int) -> torch.Tensor:
    chosen = part.select(label=label)
    if chosen.samples == 0:
        raise DatasetError(
            f"the collection {part.folder} holds no h labelled {label!r} at step {step} (labels there: {part.labels})",
            reason="no_match",
            label=label,
            step=step,
        )
    return chosen.h


def _others_tensor(others: DirectionSet | torch.Tensor | None) -> torch.Tensor | None:
    if isinstance(others, DirectionSet):
        if others.per_step:
            raise ShapeMismatchError("directions to disentangle from must not be per-step", reason="steps")
        return others.directions
    return others


def _supervised_at(part: HCollection, label_a: str, label_b: str, step: int, others: torch.Tensor | None):
    h_a, h_b = _labelled(part, label_a, step), _labelled(part, label_b, step)
    direction = mean_difference_direction(h_a, h_b)
    if others is not None:
        direction = disentangle(direction, others.to(direction.device))
    return direction, separation(h_a, h_b, direction), int(h_a.shape[0]), int(h_b.shape[0])


def supervised_from_collection(
    collection: HCollection,
    label_a: str,
    label_b: str,
    *,
    step: int | None = None,
    per_step: bool = False,
    others: DirectionSet | torch.Tensor | None = None,
    pass_: str | None = "cond",
    info: dict[str, Any] | None = None,
) -> DirectionSet:
    """The direction from the h labelled `label_a` towards those labelled `label_b` (one per step with per_step),
    disentangled from `others` (`[M, *shape]` or a DirectionSet) when given."""
    chosen = _for_pass(collection, pass_)
    other_rows = _others_tensor(others)
    extra = {"label_a": label_a, "label_b": label_b, "disentangled_from": 0 if other_rows is None else len(other_rows)}
    if per_step:
        steps = chosen.steps
        made = [_supervised_at(chosen.select(step=s), label_a, label_b, s, other_rows) for s in steps]
        stories = [_step_story(chosen.select(step=s)) for s in steps]
        directions = torch.stack([m[0] for m in made]).unsqueeze(1)
        scales = torch.tensor([[m[1]] for m in made], dtype=torch.float32)
        extra.update(
            steps_stored=steps,
            timesteps=[s["timestep"] for s in stories],
            samples_a=[m[2] for m in made],
            samples_b=[m[3] for m in made],
        )
        return DirectionSet(
            directions,
            scales,
            "supervised",
            "separation",
            [s["sigma"] for s in stories],
            {**_base_info(chosen, pass_, info), **extra},
        )
    chosen_step = _resolve_step(chosen, step)
    part = chosen.select(step=chosen_step)
    direction, gap, n_a, n_b = _supervised_at(part, label_a, label_b, chosen_step, other_rows)
    extra.update(_step_story(part), samples_a=n_a, samples_b=n_b)
    return DirectionSet(
        direction.unsqueeze(0),
        torch.tensor([gap], dtype=torch.float32),
        "supervised",
        "separation",
        None,
        {**_base_info(part, pass_, info), **extra},
    )


def _one_image(h: torch.Tensor) -> torch.Tensor:
    return h[0] if h.dim() >= 2 and h.shape[0] == 1 else h


def jacobian_direction_set(
    results: PowerIterationResult | Sequence[PowerIterationResult],
    h: torch.Tensor | Sequence[torch.Tensor],
    *,
    sigmas: Sequence[float] | None = None,
    info: dict[str, Any] | None = None,
) -> DirectionSet:
    """A set from the power iteration of one image: one result and its h (`[*item]` or `[1, *item]`), or one
    result per step with the h and sigma of each step (a per-step set, signs agreeing across steps)."""
    if isinstance(results, PowerIterationResult):
        image_h = _one_image(h if isinstance(h, torch.Tensor) else h[0])
        directions = results.directions.reshape(results.directions.shape[0], *image_h.shape)
        scales = torch.full((directions.shape[0],), float(image_h.double().norm()), dtype=torch.float32)
        story = {"singular_values": results.singular_values.tolist(), "converged": list(results.converged)}
        return DirectionSet(directions, scales, "jacobian", "h_norm", None, {**(info or {}), **story})
    results = list(results)
    hs = [_one_image(x) for x in h]
    if sigmas is None or len(sigmas) != len(results) or len(hs) != len(results):
        raise ShapeMismatchError(
            f"{len(results)} power-iteration result(s), {len(hs)} h and "
            f"{'no' if sigmas is None else len(sigmas)} sigma(s): one of each per step",
            reason="steps",
        )
    counts = {int(r.directions.shape[0]) for r in results}
    if len(counts) != 1:
        raise ShapeMismatchError(f"the steps hold different numbers of directions {sorted(counts)}", reason="count")
    stacked = torch.stack(
        [r.directions.reshape(r.directions.shape[0], *x.shape) for r, x in zip(results, hs, strict=True)]
    )
    directions, _ = align_across_steps(stacked)
    scales = torch.stack([torch.full((stacked.shape[1],), float(x.double().norm()), dtype=torch.float32) for x in hs])
    story = {
        "singular_values": [r.singular_values.tolist() for r in results],
        "converged": [list(r.converged) for r in results],
    }
    return DirectionSet(directions, scales, "jacobian", "h_norm", list(sigmas), {**(info or {}), **story})


def pair_collections(
    first: HCollection, second: HCollection, label_a: str | None = None, label_b: str | None = None
) -> tuple[HCollection, str, str]:
    """Two sets for `supervised_from_collection` from two collections (say one per prompt).

    Set a is the rows of `first` labelled `label_a` (None or "": all its rows), set b those of `second`
    labelled `label_b`. Returns (one collection holding both sets, relabelled, key a, key b): the keys are the
    labels when given, else the collections' names ("<name> (a)" / "<name> (b)" when they coincide). Raises
    DatasetError (reason "no_match") when a set is empty, ShapeMismatchError when the h shapes differ.
    """
    part_a = first.select(label=label_a) if label_a else first
    part_b = second.select(label=label_b) if label_b else second
    key_a = label_a or first.folder.name
    key_b = label_b or second.folder.name
    if key_a == key_b:
        key_a, key_b = f"{key_a} (a)", f"{key_b} (b)"
    for part, source, label in ((part_a, first, label_a), (part_b, second, label_b)):
        if part.samples == 0:
            raise DatasetError(
                f"the collection {source.folder} holds no h labelled {label!r} (labels there: {source.labels})",
                reason="no_match",
                label=label,
                folder=str(source.folder),
            )
    if part_a.shape != part_b.shape:
        raise ShapeMismatchError(
            f"the two collections hold h of different shapes: {first.folder.name} {list(part_a.shape)}, "
            f"{second.folder.name} {list(part_b.shape)}",
            reason="shape",
            first=first.folder.name,
            first_shape=part_a.shape,
            second=second.folder.name,
            second_shape=part_b.shape,
        )
    records = [dict(r, label=key_a) for r in part_a.records] + [dict(r, label=key_b) for r in part_b.records]
    folder = (
        first.folder
        if first.folder == second.folder
        else first.folder.parent / f"{first.folder.name}+{second.folder.name}"
    )
    joined = HCollection(
        folder=folder,
        h=torch.cat([part_a.h, part_b.h.to(part_a.h.device, part_a.h.dtype)]),
        records=records,
        shards=list(dict.fromkeys([*first.shards, *second.shards])),
        skipped=list(first.skipped) + [s for s in second.skipped if s not in first.skipped],
        runs=list(first.runs) + (list(second.runs) if first.folder != second.folder else []),
    )
    return joined, key_a, key_b
