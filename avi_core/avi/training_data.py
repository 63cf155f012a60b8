"""Where a head's training pairs come from: two captured ComfyUI LATENTs, or a dataset folder (host-free).

`training_pairs` is the rule of the Train node: exactly one source, either both captured latents
(x at Tx, z at Tz, same seed) or the name of a dataset under the datasets folders. It returns paper-space
pairs and what the head file should record about them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ParameterError
from ..files.datasets import find_dataset, read_dataset
from ..latent.capture import dataset_capture_metadata, pair_metadata
from ..latent.pairs import latent_pair_to_paper

logger = logging.getLogger("avi.training")

LATENTS_SOURCE = "captured latents"


@dataclass
class TrainingPairs:
    """Paper-space pairs x, z `[P, C, H, W]`, head metadata (timesteps, steps, sigmas, scale, `source`), and
    the dataset shards left out as `(path, reason)`."""

    x: torch.Tensor
    z: torch.Tensor
    info: dict[str, Any]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def pairs_from_latents(original: Mapping[str, Any], target: Mapping[str, Any]) -> TrainingPairs:
    """The pairs of two captured LATENTs of P images each (`latent.pairs.latent_pair_to_paper`)."""
    x, z, records = latent_pair_to_paper(original, target)
    info = pair_metadata(records["x"], records["z"])
    info["source"] = LATENTS_SOURCE
    return TrainingPairs(x, z, info)


def pairs_from_dataset(roots: Sequence[str | os.PathLike[str]], name: str) -> TrainingPairs:
    """The usable pairs of dataset `name` under `roots` (`files.datasets.find_dataset`, `read_dataset`)."""
    data = read_dataset(find_dataset(roots, name))
    for path, reason in data.skipped:
        logger.warning("AVI training: dataset shard %s skipped (%s)", path, reason)
    info = dataset_capture_metadata(data.records)
    info["source"] = f"dataset '{data.folder.name}' ({len(data.shards)} shard(s))"
    return TrainingPairs(data.x, data.z, info, list(data.skipped))


def training_pairs(
    original: Mapping[str, Any] | None,
    target: Mapping[str, Any] | None,
    dataset: str,
    roots: Sequence[str | os.PathLike[str]],
) -> TrainingPairs:
    """The pairs of exactly one source: a dataset name (non-blank `dataset`) or both captured latents.

    ParameterError (name "dataset") when both sources are given (reason "two_sources") or neither is
    complete (reason "no_pairs"; details given: the latents that were given, or "none").
    """
    name = (dataset or "").strip()
    connected = [role for role, latent in (("original", original), ("target", target)) if latent is not None]
    if name:
        if connected:
            raise ParameterError(
                f"training got both latents ({' and '.join(connected)}) and a dataset name ({name!r})",
                reason="two_sources",
                name="dataset",
                value=name,
            )
        return pairs_from_dataset(roots, name)
    if original is None or target is None:
        given = f"only the {connected[0]} latent was given" if connected else "no latent was given"
        raise ParameterError(
            f"training needs pairs: {given}, and no dataset name",
            reason="no_pairs",
            name="dataset",
            value="",
            given=", ".join(connected) or "none",
        )
    return pairs_from_latents(original, target)
