"""The `avi` command line (`python -m avi_core`): train, merge, info, demo and bench, without ComfyUI.

    python -m avi_core demo
    python -m avi_core train --original x.latent --target z.latent --sigma-x 6.2 --sigma-z 1.6 \
        --out smile.safetensors
    python -m avi_core train --pairs PAIRS_DIR --sigma-x 6.2 --sigma-z 1.6 --out smile.safetensors
    python -m avi_core train --dataset ComfyUI/models/avi_datasets/smile --out smile.safetensors
    python -m avi_core merge --original x.latent --target z.latent --head smile.safetensors \\
        --sigma-x 6.2 --sigma-z 1.6 --rho-list 0,0.5,1 --out merged.latent
    python -m avi_core info smile.safetensors

`.latent` files are what ComfyUI's SaveLatent node writes (ComfyUI's unscaled convention); they carry no
noise level, so the sigmas they were saved at are options. A folder of pairs (`--pairs`) holds
`NAME.x.latent` (the original-prompt latent(s) at Tx) next to `NAME.z.latent` (the target-prompt latent(s)
at Tz, same seeds), for any number of NAMEs, all at the same two sigmas. Dataset folders (`--dataset`) are
already in paper space.

Errors a user can cause print one line, `error: ...`, and exit with status 2; Ctrl+C exits with 130 and
leaves no partial file (every write is atomic).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..avi.head_files import HEAD_FORMAT_VERSION, load_head, read_head_metadata, save_head
from ..avi.loss import DEFAULT_LAMBDAS, LOSS_NAMES
from ..avi.merge import MERGE_MODES, merge_sweep
from ..avi.training import train_head
from ..errors import AVIError, DatasetError, ShapeMismatchError
from ..files.latent_files import LATENT_SUFFIX, read_latent_file, write_latent_file
from ..latent.capture import dataset_capture_metadata
from ..latent.conventions import SD_SCALE_FACTOR, from_paper_space, to_paper_space
from ..version import __version__
from .demo import cmd_demo
from .progress import TerminalProgress, format_duration

logger = logging.getLogger("avi.cli")

DEFAULT_SCALE_FACTOR = SD_SCALE_FACTOR
HEAD_SUFFIX = ".safetensors"
PAIR_FILE = re.compile(r"^(?P<name>.+)\.(?P<role>[xz])\.latent$")
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


# --------------------------------------------------------------------------------------------- parsing


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text}")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _sigma(text: str) -> float:
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"a sigma is >= 0, got {text}")
    return value


def _add_latent_options(parser: argparse.ArgumentParser, required_sigmas: bool) -> None:
    parser.add_argument(
        "--sigma-x",
        type=_sigma,
        required=required_sigmas,
        metavar="SIGMA",
        help="noise level the original latent(s) were saved at (the sampler's sigma at the step it stopped; "
        "0 for a fully denoised latent). .latent files do not record it.",
    )
    parser.add_argument(
        "--sigma-z",
        type=_sigma,
        required=required_sigmas,
        metavar="SIGMA",
        help="noise level the target latent(s) were saved at.",
    )
    parser.add_argument(
        "--scale-factor",
        type=_finite_float,
        default=None,
        metavar="S",
        help=f"the model's latent scale factor (default: the head's for merge, else {DEFAULT_SCALE_FACTOR}, "
        "SD 1.x/2.x; SDXL: 0.13025).",
    )


def _add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where to compute (default auto: cuda when available, else cpu).",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="avi",
        description="AVI (Attribute Vector Integration): train attribute heads and merge latents outside ComfyUI.",
        epilog="Run 'avi COMMAND --help' for a command's options; 'avi demo' shows the engine at work.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages (and tracebacks).")
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="CPU threads torch may use (default: torch's choice).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser(
        "train",
        help="train an attribute head from .latent files, a folder of pairs or a dataset folder",
        description="Train an attribute head (paper defaults) and save it as a .safetensors head file.",
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
    _add_latent_options(train, required_sigmas=False)
    train.add_argument("--out", type=Path, required=True, metavar="HEAD.safetensors", help="the head file to write")
    hyper = train.add_argument_group("hyperparameters (defaults: the paper's)")
    hyper.add_argument("--epochs", type=_positive_int, default=5, help="epochs (default 5)")
    hyper.add_argument("--batch-size", type=_positive_int, default=256, help="channel samples per step (default 256)")
    hyper.add_argument("--lr", type=_finite_float, default=1e-3, help="Adam learning rate (default 1e-3)")
    hyper.add_argument(
        "--k",
        type=_non_negative_int,
        default=0,
        help="x directions kept whole; 0 means r/2 (the paper: 32 for 64x64 latents)",
    )
    hyper.add_argument("--rho", type=_finite_float, default=1.0, help="rho during training (default 1)")
    hyper.add_argument(
        "--lambdas",
        type=_finite_float,
        nargs=4,
        default=list(DEFAULT_LAMBDAS),
        metavar=("L1", "L2", "L3", "L4"),
        help="loss weights (default 3 10 10 10)",
    )
    hyper.add_argument("--hidden", type=_positive_int, default=4096, help="hidden width of the head (default 4096)")
    hyper.add_argument("--seed", type=int, default=0, help="seed of the head's initialisation and sampling")
    hyper.add_argument(
        "--samples-per-epoch",
        type=_non_negative_int,
        default=5000,
        help="channel samples per epoch when the data hold fewer (default 5000, the paper's)",
    )
    _add_device_option(train)
    about = train.add_argument_group("stored with the head")
    about.add_argument("--half", action="store_true", help="store the weights as float16 (half the file size)")
    about.add_argument("--description", default="", help="free text: what the attribute is, the prompts used")
    about.add_argument(
        "--timestep-x",
        type=_finite_float,
        default=None,
        metavar="T",
        help="model timestep of the original latents (e.g. 795 for 0.8T)",
    )
    about.add_argument(
        "--timestep-z",
        type=_finite_float,
        default=None,
        metavar="T",
        help="model timestep of the target latents (e.g. 489 for 0.5T)",
    )
    about.add_argument("--steps", type=_positive_int, default=None, help="sampling steps the latents were made with")

    merge = sub.add_parser(
        "merge",
        help="merge an original and a target latent with a head (Algorithm 1) into a new .latent",
        description="Merge x (original prompt, at Tx) with z (target prompt, at Tz) using a head; write the "
        "result at x's noise level, ready to resume sampling from x's step.",
    )
    merge.add_argument("--original", type=Path, required=True, metavar="X.latent", help="original latent(s) x")
    merge.add_argument(
        "--target",
        type=Path,
        required=True,
        metavar="Z.latent",
        help="target latent z (one, or one per original)",
    )
    merge.add_argument("--head", type=Path, required=True, metavar="HEAD.safetensors", help="the attribute head")
    _add_latent_options(merge, required_sigmas=True)
    rhos = merge.add_mutually_exclusive_group()
    rhos.add_argument("--rho", type=_finite_float, default=None, help="attribute strength (default 1)")
    rhos.add_argument(
        "--rho-list",
        default=None,
        metavar="LIST",
        help="several strengths, e.g. '0,0.5,1': the output holds one batch per rho, rho-major",
    )
    merge.add_argument("--k", type=_non_negative_int, default=0, help="x directions kept whole; 0: the head's k")
    merge.add_argument(
        "--mode",
        choices=MERGE_MODES,
        default="paper",
        help="paper: y = U^ diag(S) V^ (default); anchored: S blended from x's, rho=0 returns x",
    )
    merge.add_argument("--out", type=Path, required=True, metavar="Y.latent", help="the .latent file to write")
    _add_device_option(merge)

    info = sub.add_parser("info", help="print what a head file is", description="Describe a head file.")
    info.add_argument("head", type=Path, metavar="HEAD.safetensors")
    info.add_argument("--json", action="store_true", help="print the stored metadata as JSON")

    demo = sub.add_parser(
        "demo",
        help="train a small head on synthetic latents and merge with it (about 10 s on a laptop CPU)",
        description="Train a head on a small synthetic pair set, merge with it and check the results.",
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and the training")
    demo.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="keep the demo head and latents here (default: a temporary folder, deleted)",
    )

    sub.add_parser(
        "bench",
        add_help=False,
        help="benchmark the engine (options: avi bench --help)",
        description="Forwarded to avi_core.bench.",
    )
    return parser


# --------------------------------------------------------------------------------------------- helpers


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def _check_suffix(path: Path, suffix: str, what: str) -> None:
    if path.suffix.lower() != suffix:
        raise ValueError(f"{what} {path} must end in {suffix} (ComfyUI lists only {suffix} files)")
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; give a file name ending in {suffix}")


def _mib(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.2f} MiB"


def find_pair_files(folder: Path) -> list[tuple[str, Path, Path]]:
    """(NAME, NAME.x.latent, NAME.z.latent) for every pair in `folder`, sorted by NAME.

    Raises DatasetError when the folder is missing, holds no pair, or an x without its z (or z without x).
    Other files are ignored (named in a warning when they end in .latent).
    """
    if not folder.is_dir():
        raise DatasetError(f"the pairs folder {folder} does not exist")
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
        raise DatasetError(
            f"the pairs folder {folder} lacks the partner file(s) {', '.join(lonely)}: every NAME.x.latent "
            "needs a NAME.z.latent made from the same seed(s)"
        )
    if not found:
        raise DatasetError(
            f"the pairs folder {folder} holds no pairs: name the files NAME.x.latent (original prompt, Tx) "
            "and NAME.z.latent (target prompt, at Tz, same seeds)"
        )
    return [(name, roles["x"], roles["z"]) for name, roles in sorted(found.items())]


def _load_pairs(pairs: Sequence[tuple[str, Path, Path]]) -> tuple[torch.Tensor, torch.Tensor]:
    """ComfyUI-convention x and z [P, C, H, W] from (name, x file, z file) triples, concatenated in order."""
    xs, zs = [], []
    for _name, x_path, z_path in pairs:
        x, z = read_latent_file(x_path), read_latent_file(z_path)
        if x.shape != z.shape:
            raise ShapeMismatchError(
                f"{x_path} holds latents {tuple(x.shape)} but {z_path} holds {tuple(z.shape)}: the "
                "original and target files of a pair must hold the same number of latents of the same size "
                "(one target per original, same seeds)"
            )
        if xs and x.shape[1:] != xs[0].shape[1:]:
            raise ShapeMismatchError(
                f"{x_path} holds latents of size {tuple(x.shape[1:])} but the first pair's are "
                f"{tuple(xs[0].shape[1:])}; train one head per image size"
            )
        xs.append(x)
        zs.append(z)
    return torch.cat(xs), torch.cat(zs)


def _read_dataset(folder: Path):
    try:
        from ..files.datasets import read_dataset
    except ImportError as err:
        raise DatasetError(f"training from a dataset needs avi_core.datasets, which cannot be imported: {err}") from err
    return read_dataset(folder)


def load_training_data(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Paper-space x, z [P, C, H, W] and the metadata describing them, from the train command's options."""
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
    info: dict[str, Any] = {}
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
        data = _read_dataset(args.dataset)
        for path, reason in data.skipped:
            logger.warning("skipped shard %s: %s", path, reason)
        info.update(dataset_capture_metadata(data.records))
        info["source"] = f"dataset '{args.dataset.name}' ({len(data.shards)} shard(s))"
        info["source_files"] = [str(path) for path in data.shards]
        return data.x, data.z, info

    if args.sigma_x is None or args.sigma_z is None:
        raise ValueError(
            "training from .latent files needs --sigma-x and --sigma-z: the noise levels the original "
            "and target latents were saved at (.latent files do not record them; 0 for finished latents)"
        )
    scale = DEFAULT_SCALE_FACTOR if args.scale_factor is None else args.scale_factor
    if args.original is not None:
        pairs = [(args.original.stem, args.original, args.target)]
        info["source"] = f"latent files {args.original.name} / {args.target.name}"
    else:
        pairs = find_pair_files(args.pairs)
        info["source"] = f"pairs folder '{args.pairs.name}' ({len(pairs)} file pair(s))"
    x_comfy, z_comfy = _load_pairs(pairs)
    info.update(x_sigma=args.sigma_x, z_sigma=args.sigma_z, scale_factor=scale)
    info["source_files"] = [str(p) for _, x_path, z_path in pairs for p in (x_path, z_path)]
    return to_paper_space(x_comfy, args.sigma_x, scale), to_paper_space(z_comfy, args.sigma_z, scale), info


def _loss_line(values: Mapping[str, float]) -> str:
    return "  ".join(f"{name} {values[name]:.4g}" for name in (*LOSS_NAMES, "total") if name in values)


# --------------------------------------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    _check_suffix(args.out, HEAD_SUFFIX, "--out")
    device = resolve_device(args.device)
    x, z, info = load_training_data(args)
    pairs, channels, height, width = x.shape
    print(
        f"training on {pairs} pair(s) of {channels}x{height}x{width} latents ({pairs * channels} channel "
        f"samples) on {device}",
        flush=True,
    )
    with TerminalProgress("training") as bar:
        result = train_head(
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
            progress=bar,
            samples_per_epoch=args.samples_per_epoch,
        )
    for key, value in (
        ("x_timestep", args.timestep_x),
        ("z_timestep", args.timestep_z),
        ("x_steps", args.steps),
        ("z_steps", args.steps),
    ):
        if value is not None:
            info[key] = value
    info.update(name=args.out.stem, description=args.description)
    path = save_head(result.head, args.out, metadata=info, half=args.half)
    print(
        f"trained a {height}x{width} head (hidden {args.hidden}, k {result.head.k}): {result.steps} steps in "
        f"{format_duration(result.seconds)} ({result.seconds:.1f} s)"
    )
    print(f"final losses (unweighted): {_loss_line(result.final_losses)}")
    print(f"saved {path} ({_mib(path)})")
    return 0


def _parse_rhos(args: argparse.Namespace) -> list[float]:
    if args.rho_list is None:
        return [1.0 if args.rho is None else args.rho]
    parts = [p for p in re.split(r"[,;\s]+", args.rho_list.strip()) if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"--rho-list {args.rho_list!r}: write numbers separated by commas, e.g. '0,0.5,1'") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"--rho-list {args.rho_list!r} holds no finite numbers; write e.g. '0,0.5,1'")
    return values


def cmd_merge(args: argparse.Namespace) -> int:
    _check_suffix(args.out, LATENT_SUFFIX, "--out")
    rhos = _parse_rhos(args)
    device = resolve_device(args.device)
    head = load_head(args.head, device=device)
    stored = head.metadata.get("scale_factor")
    stored = float(stored) if isinstance(stored, (int, float)) and stored > 0 else None
    # The head records the scale factor of the model it was trained for; an explicit option wins.
    scale = args.scale_factor if args.scale_factor is not None else stored or DEFAULT_SCALE_FACTOR
    if stored is not None and not math.isclose(stored, scale, rel_tol=1e-6):
        logger.warning(
            "the head was trained with scale factor %s but --scale-factor is %s; check the model",
            stored,
            scale,
        )
    x_comfy = read_latent_file(args.original)
    z_comfy = read_latent_file(args.target)
    x = to_paper_space(x_comfy, args.sigma_x, scale)
    z = to_paper_space(z_comfy, args.sigma_z, scale)
    y = merge_sweep(x, z, head, rhos, k=args.k or None, mode=args.mode)
    y_comfy = from_paper_space(y, args.sigma_x, scale)
    record = {
        "head": str(args.head),
        "rhos": rhos,
        "mode": args.mode,
        "k": args.k or head.k,
        "x_sigma": args.sigma_x,
        "z_sigma": args.sigma_z,
        "scale_factor": scale,
        "original": str(args.original),
        "target": str(args.target),
        "pack_version": __version__,
    }
    path = write_latent_file(args.out, y_comfy, metadata={"avi_merge": record})
    batch = x.shape[0]
    print(f"merged {batch} latent(s) at rho {', '.join(f'{r:g}' for r in rhos)} ({args.mode} mode, k {record['k']})")
    print(
        f"wrote {path}: {y_comfy.shape[0]} latent(s) {'x'.join(map(str, y_comfy.shape[1:]))} at x's sigma "
        f"{args.sigma_x:g}" + (", rho-major" if len(rhos) > 1 else "")
    )
    return 0


def describe_head_file(path: Path, meta: Mapping[str, Any]) -> list[str]:
    """The lines `avi info` prints for a head file with metadata `meta`."""
    shown: set[str] = set()

    def get(key: str, default: Any = None) -> Any:
        shown.add(key)
        return meta.get(key, default)

    def fmt(value: Any) -> str:
        return f"{value:.6g}" if isinstance(value, float) else str(value)

    h, w = get("height"), get("width")
    lines = [f"AVI attribute head {path}"]
    lines.append(
        f"  file          {_mib(path)}, weights stored as {get('storage_dtype', 'float32')}, "
        f"head format {HEAD_FORMAT_VERSION}, made by pack {get('pack_version', '?')}"
    )
    if get("name"):
        lines.append(f"  name          {meta['name']}")
    lines.append(f"  description   {get('description') or '(none)'}")
    lines.append(f"  latent size   {h}x{w} (a {h * 8}x{w * 8} px image for Stable Diffusion), rank r = {get('rank')}")
    lines.append(f"  head          k = {get('k')} x directions kept whole, hidden width {get('hidden')}")
    trained = []
    if get("source"):
        trained.append(str(meta["source"]))
    if get("pairs") is not None:
        trained.append(f"{meta['pairs']} pair(s)")
    if get("channel_samples") is not None:
        trained.append(f"{meta['channel_samples']} channel samples")
    if trained:
        lines.append(f"  trained on    {', '.join(trained)}")
    capture = []
    for role in ("x", "z"):
        parts = []
        if get(f"{role}_timestep") is not None:
            parts.append(f"timestep {fmt(meta[f'{role}_timestep'])}")
        if get(f"{role}_step") is not None:
            parts.append(f"step {meta[f'{role}_step']}")
        if get(f"{role}_steps") is not None:
            parts.append(f"of {meta[f'{role}_steps']} steps")
        if get(f"{role}_sigma") is not None:
            parts.append(f"sigma {fmt(meta[f'{role}_sigma'])}")
        if parts:
            capture.append(f"{role}: {' '.join(parts)}")
    if get("T") is not None:
        capture.append(f"T = {meta['T']}")
    if get("scale_factor") is not None:
        capture.append(f"scale factor {fmt(meta['scale_factor'])}")
    for key in ("sampler", "scheduler"):
        if get(key):
            capture.append(f"{key} {meta[key]}")
    if capture:
        lines.append(f"  captures      {'; '.join(capture)}")
    hyper = []
    for key, label in (
        ("epochs", "epochs"),
        ("batch_size", "batch"),
        ("learning_rate", "lr"),
        ("rho_train", "rho"),
        ("seed", "seed"),
        ("samples_per_epoch", "samples/epoch"),
        ("steps", "steps"),
    ):
        if get(key) is not None:
            hyper.append(f"{label} {fmt(meta[key])}")
    if isinstance(get("lambdas"), list):
        hyper.append("lambdas " + "/".join(fmt(v) for v in meta["lambdas"]))
    if get("train_seconds") is not None:
        hyper.append(f"{fmt(meta['train_seconds'])} s")
    if get("stopped_early"):
        hyper.append("STOPPED EARLY")
    if hyper:
        lines.append(f"  training      {', '.join(hyper)}")
    final = get("final_losses")
    if isinstance(final, Mapping) and final:
        lines.append(f"  final losses  {_loss_line(final)} (unweighted)")
    lines.append(f"  created       {get('created', '?')}")
    shown.add("channels")  # implied by the training line
    if isinstance(get("source_files"), list) and meta["source_files"]:
        files = meta["source_files"]
        lines.append(
            f"  source files  {', '.join(files[:4])}" + (f" (+{len(files) - 4} more)" if len(files) > 4 else "")
        )
    others = {key: value for key, value in meta.items() if key not in shown}
    for key in sorted(others):
        lines.append(f"  {key:<13} {json.dumps(others[key]) if not isinstance(others[key], str) else others[key]}")
    return lines


def cmd_info(args: argparse.Namespace) -> int:
    meta = read_head_metadata(args.head)
    if args.json:
        print(json.dumps(meta, indent=2, sort_keys=True))
    else:
        print("\n".join(describe_head_file(args.head, meta)))
    return 0


def cmd_bench(argv: list[str]) -> int:
    try:
        from . import bench
    except ModuleNotFoundError as err:
        if err.name != f"{__package__}.bench":
            raise
        raise AVIError("the benchmark (avi_core/bench.py) is not part of this installation") from None
    code = bench.main(argv)
    return 0 if code is None else int(code)


# --------------------------------------------------------------------------------------------- main

COMMANDS = {"train": cmd_train, "merge": cmd_merge, "info": cmd_info, "demo": cmd_demo}


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("avi").setLevel(logging.DEBUG if verbose else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 demo check failed, 2 error, 130 interrupted)."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
        if extra and args.command != "bench":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exit_:  # argparse: --help, --version, or a usage error (already printed)
        return exit_.code if isinstance(exit_.code, int) else EXIT_ERROR
    _configure_logging(args.verbose)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        if args.command == "bench":
            return cmd_bench(extra)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(
            "\ninterrupted (Ctrl+C); files are written atomically, so no partial file was left",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except (AVIError, ValueError, OSError) as err:
        logger.debug("%s failed", args.command, exc_info=True)
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
