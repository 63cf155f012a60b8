"""The training data of `avi train`: two .latent files, a folder of pairs, or a dataset folder."""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ...errors import DatasetError, ShapeMismatchError
from ...files.datasets import read_dataset
from ...files.latent_files import LATENT_SUFFIX, read_latent_file
from ...latent.capture import dataset_capture_metadata
from ...latent.conventions import to_paper_space
from .fixes import about
from .options import DEFAULT_SCALE_FACTOR, check_sigma_order

logger = logging.getLogger("avi.cli.train")

PAIR_FILE = re.compile(r"^(?P<name>.+)\.(?P<role>[xz])\.latent$")


def _check_folder(folder: Path, option: str) -> None:
    if folder.exists() and not folder.is_dir():
        raise DatasetError(f"{option} {folder} is a file, not a folder", reason="not_folder", option=option)


def find_pair_files(folder: Path) -> list[tuple[str, Path, Path]]:
    """(NAME, NAME.x.latent, NAME.z.latent) for every pair in `folder`, sorted by NAME.

    Raises DatasetError when the folder is missing or a file, holds no pair, or an x without its z (or z without
    x). Other files are ignored (named in a warning when they end in .latent).
    """
    _check_folder(folder, "--pairs")
    if not folder.is_dir():
        raise DatasetError(f"the pairs folder {folder} does not exist", reason="no_pairs_folder", folder=str(folder))
    found: dict[str, dict[str, Path]] = {}
    ignored = []
    for path in sorted(folder.iterdir()):
        match = PAIR_FILE.match(path.name)
        if match and path.is_file():
            found.setdefault(match["name"], {})[match["role"]] = path
        elif path.name.endswith(LATENT_SUFFIX):
            ignored.append(path.name)
    if ignored:
        logger.warning(
            "ignoring %d .latent file(s) not named NAME.x.latent / NAME.z.latent in %s: %s",
            len(ignored),
            folder,
            ", ".join(ignored[:5]) + (" ..." if len(ignored) > 5 else ""),
        )
    lonely = sorted(f"{name}.{'z' if 'x' in roles else 'x'}.latent" for name, roles in found.items() if len(roles) < 2)
    if lonely:
        raise DatasetError(f"the pairs folder {folder} lacks the partner file(s) {', '.join(lonely)}", reason="partner")
    if not found:
        raise DatasetError(
            f"the pairs folder {folder} holds no pairs (no files named NAME.x.latent and NAME.z.latent)",
            reason="no_pairs",
        )
    return [(name, roles["x"], roles["z"]) for name, roles in sorted(found.items())]


def load_pairs(pairs: Sequence[tuple[str, Path, Path]]) -> tuple[torch.Tensor, torch.Tensor]:
    """ComfyUI-convention x and z [P, C, H, W] from (name, x file, z file) triples, concatenated in order."""
    xs, zs = [], []
    for _name, x_path, z_path in pairs:
        x, z = read_latent_file(x_path), read_latent_file(z_path)
        if x.shape != z.shape:
            raise ShapeMismatchError(
                f"{x_path} holds latents {tuple(x.shape)} but {z_path} holds {tuple(z.shape)}", reason="pair"
            )
        if xs and x.shape[1:] != xs[0].shape[1:]:
            raise ShapeMismatchError(
                f"{x_path} holds latents of size {tuple(x.shape[1:])} but the first pair's are "
                f"{tuple(xs[0].shape[1:])}",
                reason="sizes",
            )
        xs.append(x)
        zs.append(z)
    return torch.cat(xs), torch.cat(zs)


def check_sources(args: argparse.Namespace) -> None:
    """Refuse a wrong choice of training data options (before anything is read)."""
    chosen = [name for name in ("original", "pairs", "dataset") if getattr(args, name) is not None]
    if args.target is not None and "original" not in chosen:
        raise ValueError("--target needs --original (the original-prompt latents the targets pair with)")
    if args.original is not None and args.target is None:
        raise ValueError("--original needs --target (the target-prompt latents from the same seeds)")
    if len(chosen) != 1:
        raise ValueError(
            "give exactly one source of training data: --original X.latent --target Z.latent, --pairs DIR, "
            f"or --dataset DIR (got {', '.join('--' + c for c in chosen) or 'none'})"
        )
    if args.dataset is not None:
        given = [
            flag
            for flag, value in (
                ("--sigma-x", args.sigma_x),
                ("--sigma-z", args.sigma_z),
                ("--scale-factor", args.scale_factor),
            )
            if value is not None
        ]
        if given:
            raise ValueError(
                f"{', '.join(given)} do(es) not apply to --dataset: its shards are stored in paper space, "
                "converted with the sigmas and scale factor recorded when they were captured"
            )
        return
    if args.sigma_x is None or args.sigma_z is None:
        raise ValueError(
            "training from .latent files needs --sigma-x and --sigma-z: the noise levels the original "
            "and target latents were saved at (.latent files do not record them; 0 for finished latents)"
        )
    check_sigma_order(args.sigma_x, args.sigma_z)


def load_training_data(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Paper-space x, z [P, C, H, W] and the metadata describing them, from the train command's options.

    A dataset's unreadable shards are named once, in the dataset reader's warning.
    """
    check_sources(args)
    info: dict[str, Any] = {}
    if args.dataset is not None:
        _check_folder(args.dataset, "--dataset")
        data = read_dataset(args.dataset)
        info.update(dataset_capture_metadata(data.records))
        info["source"] = f"dataset '{args.dataset.name}' ({len(data.shards)} shard(s))"
        info["source_files"] = [str(path) for path in data.shards]
        return data.x, data.z, info

    scale = DEFAULT_SCALE_FACTOR if args.scale_factor is None else args.scale_factor
    if args.original is not None:
        pairs = [(args.original.stem, args.original, args.target)]
        info["source"] = f"latent files {args.original.name} / {args.target.name}"
    else:
        pairs = find_pair_files(args.pairs)
        info["source"] = f"pairs folder '{args.pairs.name}' ({len(pairs)} file pair(s))"
    with about("--original / --target" if args.pairs is None else "--pairs"):
        x_comfy, z_comfy = load_pairs(pairs)
    info.update(x_sigma=args.sigma_x, z_sigma=args.sigma_z, scale_factor=scale)
    info["source_files"] = [str(p) for _, x_path, z_path in pairs for p in (x_path, z_path)]
    return to_paper_space(x_comfy, args.sigma_x, scale), to_paper_space(z_comfy, args.sigma_z, scale), info
