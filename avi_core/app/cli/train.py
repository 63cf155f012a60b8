"""`avi train`: train an attribute head from .latent files, a folder of pairs or a dataset folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ...avi.describe import loss_line
from ...avi.head_files import save_head
from ...avi.loss import DEFAULT_LAMBDAS
from ...avi.merge import check_rho
from ...avi.training import TrainingResult, train_head
from ..interrupt import GUARD
from ..output import check_output, commit_output
from ..progress import TerminalProgress, format_duration
from .options import (
    OUT_FOLDER_RULE,
    RHO_TEXT,
    add_device_option,
    add_latent_options,
    finite_float,
    non_negative_int,
    positive_int,
    resolve_device,
)
from .train_data import check_sources, load_training_data

HEAD_SUFFIX = ".safetensors"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand and its options to `sub`."""
    train = sub.add_parser(
        "train",
        help="train an attribute head from .latent files, a folder of pairs or a dataset folder",
        description="Train an attribute head (paper defaults) and save it as a .safetensors head file. --out is "
        f"checked before training starts. {OUT_FOLDER_RULE}",
    )
    source = train.add_argument_group("training data (choose one)")
    source.add_argument(
        "--original",
        type=Path,
        metavar="X.latent",
        help="original-prompt latent(s) at Tx, a ComfyUI .latent file (with --target)",
    )
    source.add_argument(
        "--target",
        type=Path,
        metavar="Z.latent",
        help="target-prompt latent(s) at Tz from the same seeds, a .latent file (with --original)",
    )
    source.add_argument(
        "--pairs",
        type=Path,
        metavar="DIR",
        help="a folder of NAME.x.latent / NAME.z.latent files (all at the same two sigmas)",
    )
    source.add_argument(
        "--dataset",
        type=Path,
        metavar="DIR",
        help="an AVI dataset folder (shards written by 'AVI Append To Dataset'; paper space, so no sigmas are needed)",
    )
    add_latent_options(train, required_sigmas=False)
    train.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="HEAD.safetensors",
        help=f"the head file to write (replaced if it exists). {OUT_FOLDER_RULE}",
    )
    hyper = train.add_argument_group("hyperparameters (defaults: the paper's)")
    hyper.add_argument("--epochs", type=positive_int, default=5, help="epochs (default 5)")
    hyper.add_argument("--batch-size", type=positive_int, default=256, help="channel samples per step (default 256)")
    hyper.add_argument("--lr", type=finite_float, default=1e-3, help="Adam learning rate (default 1e-3)")
    hyper.add_argument(
        "--k",
        type=non_negative_int,
        default=0,
        help="x directions kept whole, 1 to r-1; 0 means r/2 (the paper: 32 for 64x64 latents)",
    )
    hyper.add_argument(
        "--rho", type=finite_float, default=1.0, help=f"rho during training, {RHO_TEXT} (default 1, the paper's)"
    )
    hyper.add_argument(
        "--lambdas",
        type=finite_float,
        nargs=4,
        default=list(DEFAULT_LAMBDAS),
        metavar=("L1", "L2", "L3", "L4"),
        help="loss weights (default 3 10 10 10)",
    )
    hyper.add_argument("--hidden", type=positive_int, default=4096, help="hidden width of the head (default 4096)")
    hyper.add_argument("--seed", type=int, default=0, help="seed of the head's initialisation and sampling")
    hyper.add_argument(
        "--samples-per-epoch",
        type=non_negative_int,
        default=5000,
        help="channel samples per epoch when the data hold fewer (default 5000, the paper's)",
    )
    add_device_option(train)
    about = train.add_argument_group("stored with the head")
    about.add_argument("--half", action="store_true", help="store the weights as float16 (half the file size)")
    about.add_argument("--description", default="", help="free text: what the attribute is, the prompts used")
    about.add_argument(
        "--timestep-x",
        type=finite_float,
        default=None,
        metavar="T",
        help="model timestep of the original latents (e.g. 795 for 0.8T: step 10 of 50 'normal' steps)",
    )
    about.add_argument(
        "--timestep-z",
        type=finite_float,
        default=None,
        metavar="T",
        help="model timestep of the target latents (e.g. 510 for 0.5T: step 24 of 50 'normal' steps)",
    )
    about.add_argument("--steps", type=positive_int, default=None, help="sampling steps the latents were made with")
    train.set_defaults(run=run)


def _metadata(args: argparse.Namespace, info: dict[str, Any]) -> dict[str, Any]:
    for key, value in (
        ("x_timestep", args.timestep_x),
        ("z_timestep", args.timestep_z),
        ("x_steps", args.steps),
        ("z_steps", args.steps),
    ):
        if value is not None:
            info[key] = value
    info.update(name=args.out.stem, description=args.description)
    return info


def _train(args: argparse.Namespace, x: Any, z: Any, device: Any) -> TrainingResult:
    def progress(step: int, total: int, losses: dict[str, float]) -> None:
        bar(step, total, losses)
        GUARD.check()  # a checkpoint per step: an interrupt swallowed somewhere is acted on here

    with TerminalProgress("training") as bar:
        return train_head(
            x,
            z,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            k=args.k or None,
            rho=args.rho,
            lambdas=args.lambdas,
            hidden=args.hidden,
            seed=args.seed,
            device=device,
            progress=progress,
            samples_per_epoch=args.samples_per_epoch,
        )


def run(args: argparse.Namespace) -> int:
    """Check every option and --out, load the data, train, save atomically; returns the exit status."""
    check_rho(args.rho)
    check_sources(args)
    check_output(args.out, HEAD_SUFFIX)
    device = resolve_device(args.device)
    GUARD.check()
    x, z, info = load_training_data(args)
    GUARD.check()
    pairs, channels, height, width = x.shape
    print(
        f"training on {pairs} pair(s) of {channels}x{height}x{width} latents ({pairs * channels} channel "
        f"samples) on {device}",
        flush=True,
    )
    result = _train(args, x, z, device)
    GUARD.check()
    print(
        f"trained a {height}x{width} head (hidden {args.hidden}, k {result.head.k}): {result.steps} steps in "
        f"{format_duration(result.seconds)} ({result.seconds:.1f} s)"
    )
    print(f"final losses (unweighted terms): {loss_line(result.final_losses)}", flush=True)
    metadata = _metadata(args, info)
    path = commit_output(args.out, lambda temp: save_head(result.head, temp, metadata=metadata, half=args.half))
    print(f"saved {path} ({path.stat().st_size / 2**20:.2f} MiB)")
    return 0
