"""The two sides of a boundary from captured latents and their capture records (`latent.capture`).

Both sides of a boundary must be captured at the SAME step of the same schedule: side a from the original
prompt, side b from the target prompt, typically from the same seeds (spec section 9). An SVM fitted on latents
of two different noise levels separates the noise levels, not the prompts.

What this means for datasets (`files.datasets`): an AVI training dataset holds x = the original prompt at Tx and
z = the target prompt at Tz, at two different steps (the capture refuses x no noisier than z), so it cannot
serve as the two sides of a boundary. A boundary dataset uses the same shard format with x = prompt A and
z = prompt B captured at one mixing step, written with `files.datasets.append_shard(folder, a, b,
{"x": record_a, "z": record_b})` (paper space), one shard per capture run and step; the mixing-step search
needs shards at several steps of one schedule. `dataset_sides` reads such a dataset back, per step, and refuses
one whose x and z were captured at different steps.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import CaptureRecordError, DatasetError, StepMismatchError
from ..latent.capture import validate_record

logger = logging.getLogger("avi.boundary.captures")

SIGMA_RTOL = 1e-4
_KEPT = ("step", "steps", "sigma", "timestep", "T", "fraction", "scale_factor", "sampler", "scheduler", "denoise")
_SIZE = ("channels", "height", "width")


@dataclass(frozen=True)
class StepSides:
    """The two sides at one step. a: side a (original prompt) `[N1, *S]`; b: side b (target prompt) `[N2, *S]`;
    info: `capture_info` of the step (what a boundary fitted on them should record)."""

    step: int
    a: torch.Tensor
    b: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)


def capture_info(record_a: Mapping[str, Any], record_b: Mapping[str, Any]) -> dict[str, Any]:
    """What a boundary records about the captures of its sides, after checking that they were made together.

    Both records are validated (`latent.capture.validate_record`, CaptureRecordError). They must share the step
    and number of steps (StepMismatchError reason "step" / "steps"), the sigma (reason "schedule") and the latent
    scale factor (CaptureRecordError reason "scale"). Returns step, steps, sigma, timestep, T, fraction,
    scale_factor, sampler, scheduler, denoise (and channels, height, width when recorded), plus space = "paper".
    """
    a = validate_record(record_a, "side a")
    b = validate_record(record_b, "side b")
    where = (
        f"side a (original prompt) was captured at step {a['step']} of {a['steps']} (sigma {a['sigma']:.6g}) and "
        f"side b (target prompt) at step {b['step']} of {b['steps']} (sigma {b['sigma']:.6g})"
    )
    details = {"step_a": a["step"], "step_b": b["step"], "steps_a": a["steps"], "steps_b": b["steps"]}
    if a["steps"] != b["steps"]:
        raise StepMismatchError(
            f"{where}: both sides must come from the same schedule", reason="steps", role="side b", **details
        )
    if a["step"] != b["step"]:
        raise StepMismatchError(
            f"{where}: both sides of a boundary must be captured at the same step",
            reason="step",
            role="side b",
            **details,
        )
    if not math.isclose(a["sigma"], b["sigma"], rel_tol=SIGMA_RTOL, abs_tol=1e-8):
        raise StepMismatchError(
            f"{where}: the same step at different noise levels (another sampler, scheduler or denoise)",
            reason="schedule",
            role="side b",
            **details,
        )
    if not math.isclose(a["scale_factor"], b["scale_factor"], rel_tol=1e-6):
        raise CaptureRecordError(
            f"side a comes from a model with latent scale factor {a['scale_factor']} but side b from one with "
            f"{b['scale_factor']}",
            reason="scale",
            role="side b",
        )
    info = {key: a[key] for key in _KEPT if key in a}
    if all(key in a for key in _SIZE):
        info.update({key: int(a[key]) for key in _SIZE})
    info["space"] = "paper"
    return info


def _pair_records(records: Sequence[Any]) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """The (record a, record b) of every capture, in write order, from a dataset's per-shard records."""
    pairs = []
    for entry in records:
        for candidate in entry if isinstance(entry, list) else [entry]:
            if not isinstance(candidate, Mapping):
                raise DatasetError(
                    f"a shard's capture records are not records ({type(candidate).__name__})", reason="records"
                )
            for a_key, b_key in (("x", "z"), ("original", "target")):
                if a_key in candidate and b_key in candidate:
                    pairs.append((candidate[a_key], candidate[b_key]))
                    break
            else:
                raise DatasetError(
                    f"a shard's capture record holds {sorted(candidate)}, not the records of its two sides (x and z)",
                    reason="records",
                )
    return pairs


def dataset_sides(x: torch.Tensor, z: torch.Tensor, records: Sequence[Any]) -> dict[int, StepSides]:
    """The sides of a boundary dataset, per step: {step: StepSides}, steps in increasing order.

    x, z: the dataset's paper-space latents `[P, C, H, W]` (`files.datasets.read_dataset`): x = side a (original
    prompt), z = side b (target prompt). records: the dataset's per-shard records, each {"x": record, "z": record}
    (or a list of them), whose `batch` fields count the shard's pairs in order; they must add up to P.
    Every capture must have x and z at the same step (`capture_info`); captures at one step must share its
    schedule (sigma, scale factor), and every step the number of steps (StepMismatchError).
    """
    if x.shape != z.shape or x.dim() < 2:
        raise DatasetError(
            f"the dataset's x {tuple(x.shape)} and z {tuple(z.shape)} are not matching batches", reason="unusable"
        )
    pairs = _pair_records(records)
    if not pairs:
        raise DatasetError(
            "the dataset has no capture records, so the step of its latents is unknown", reason="records"
        )
    groups: dict[int, tuple[dict[str, Any], list[torch.Tensor]]] = {}
    start = 0
    for record_a, record_b in pairs:
        info = capture_info(record_a, record_b)
        count = int(record_a["batch"])
        rows = torch.arange(start, start + count)
        start += count
        known = groups.get(info["step"])
        if known is None:
            groups[info["step"]] = (info, [rows])
            continue
        if not math.isclose(known[0]["sigma"], info["sigma"], rel_tol=SIGMA_RTOL, abs_tol=1e-8) or not math.isclose(
            known[0]["scale_factor"], info["scale_factor"], rel_tol=1e-6
        ):
            raise StepMismatchError(
                f"the dataset holds captures at step {info['step']} at sigma {known[0]['sigma']:.6g} and at sigma "
                f"{info['sigma']:.6g} (or from two models): another sampler, scheduler, denoise or model",
                reason="schedule",
                role="dataset",
                step=info["step"],
            )
        known[1].append(rows)
    if start != x.shape[0]:
        raise DatasetError(
            f"the dataset's capture records count {start} pairs but it holds {x.shape[0]}", reason="records"
        )
    steps_counts = sorted({group[0]["steps"] for group in groups.values()})
    if len(steps_counts) > 1:
        raise StepMismatchError(
            f"the dataset mixes schedules of {', '.join(map(str, steps_counts))} steps; one boundary dataset holds "
            "captures of one schedule",
            reason="steps",
            role="dataset",
        )
    result = {}
    for step in sorted(groups):
        info, chunks = groups[step]
        rows = torch.cat(chunks)
        result[step] = StepSides(step=step, a=x[rows], b=z[rows], info=dict(info, pairs=int(rows.numel())))
        logger.debug("boundary dataset: %d pair(s) at step %d", rows.numel(), step)
    return result
