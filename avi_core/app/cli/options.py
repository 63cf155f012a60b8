"""Option types and option groups shared by the subcommands, and the checks they share."""

from __future__ import annotations

import argparse
import math

import torch

from ...avi.merge import RHO_RANGE
from ...errors import PairMismatchError
from ...latent.conventions import SD_SCALE_FACTOR

DEFAULT_SCALE_FACTOR = SD_SCALE_FACTOR
RHO_LOW, RHO_HIGH = RHO_RANGE
RHO_TEXT = f"{RHO_LOW:g} to {RHO_HIGH:g}"
OUT_FOLDER_RULE = "The folder must exist: it is never created."


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text}")
    return value


def finite_float(text: str) -> float:
    """argparse type: a finite number."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def sigma(text: str) -> float:
    """argparse type: a noise level, finite and >= 0."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"a sigma is >= 0, got {text}")
    return value


def add_latent_options(parser: argparse.ArgumentParser, required_sigmas: bool) -> None:
    """--sigma-x, --sigma-z and --scale-factor: what .latent files do not record."""
    parser.add_argument(
        "--sigma-x",
        type=sigma,
        required=required_sigmas,
        metavar="SIGMA",
        help="noise level the original latent(s) were saved at (the sampler's sigma at the step it stopped). "
        ".latent files do not record it. It must be above --sigma-z: x is captured earlier, at more noise.",
    )
    parser.add_argument(
        "--sigma-z",
        type=sigma,
        required=required_sigmas,
        metavar="SIGMA",
        help="noise level the target latent(s) were saved at (0 for a fully denoised latent).",
    )
    parser.add_argument(
        "--scale-factor",
        type=finite_float,
        default=None,
        metavar="S",
        help=f"the model's latent scale factor (default: the head's for merge, else {DEFAULT_SCALE_FACTOR}, "
        "SD 1.x/2.x; SDXL: 0.13025).",
    )


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """--device auto|cpu|cuda."""
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where to compute (default auto: cuda when available, else cpu).",
    )


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def check_sigma_order(sigma_x: float, sigma_z: float) -> None:
    """Refuse x not captured earlier, at more noise, than z (what the nodes refuse: `capture.check_pair`)."""
    if not sigma_x > sigma_z:
        raise PairMismatchError(
            f"the original latent (x) must be captured earlier, at more noise, than the target (z): --sigma-x "
            f"{sigma_x:g} is not above --sigma-z {sigma_z:g}",
            reason="order",
            x_sigma=sigma_x,
            z_sigma=sigma_z,
        )
