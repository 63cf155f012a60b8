"""`avi merge`: merge an original and a target .latent with a head (Algorithm 1) into a new .latent."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from ...avi.head_files import load_head
from ...avi.merge import MERGE_MODES, RHO_RANGE, check_rho, merge_sweep
from ...errors import ParameterError
from ...files.latent_files import LATENT_SUFFIX, read_latent_file, write_latent_file
from ...latent.conventions import from_paper_space, to_paper_space
from ...values import format_values, parse_number_list
from ...version import __version__
from ..interrupt import GUARD
from ..output import check_output, commit_output
from .fixes import about
from .options import (
    DEFAULT_SCALE_FACTOR,
    OUT_FOLDER_RULE,
    RHO_TEXT,
    add_device_option,
    add_latent_options,
    check_sigma_order,
    finite_float,
    non_negative_int,
    resolve_device,
)

logger = logging.getLogger("avi.cli.merge")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the `merge` subcommand and its options to `sub`."""
    merge = sub.add_parser(
        "merge",
        help="merge an original and a target latent with a head (Algorithm 1) into a new .latent",
        description="Merge x (original prompt, at Tx) with z (target prompt, at Tz, same seed) using a head; write "
        "the result at x's noise level, ready to resume sampling from x's step. x must be the noisier latent "
        f"(--sigma-x above --sigma-z). {OUT_FOLDER_RULE}",
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
    add_latent_options(merge, required_sigmas=True)
    rhos = merge.add_mutually_exclusive_group()
    rhos.add_argument(
        "--rho",
        type=finite_float,
        default=None,
        help=f"attribute strength, {RHO_TEXT}: 0 keeps x's directions, 1 is the paper's edit (default), "
        "outside 0..1 extrapolates",
    )
    rhos.add_argument(
        "--rho-list",
        default=None,
        metavar="LIST",
        help=f"several strengths, each {RHO_TEXT}, e.g. '0,0.5,1': the output holds one batch per rho, rho-major",
    )
    merge.add_argument(
        "--k", type=non_negative_int, default=0, help="x directions kept whole, 1 to r-1; 0 (default): the head's"
    )
    merge.add_argument(
        "--mode",
        choices=MERGE_MODES,
        default="paper",
        help="paper: y = U^ diag(S) V^ (default); anchored: S blended from x's, rho=0 returns x",
    )
    merge.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="Y.latent",
        help=f"the .latent file to write (replaced if it exists). {OUT_FOLDER_RULE}",
    )
    add_device_option(merge)
    merge.set_defaults(run=run)


def parse_rhos(args: argparse.Namespace) -> list[float]:
    """The strengths asked for: --rho-list, else [--rho], else [1]; each within RHO_RANGE."""
    if args.rho_list is None:
        return [check_rho(1.0 if args.rho is None else args.rho)]
    values = parse_number_list(args.rho_list, "--rho-list", *RHO_RANGE)
    if not values:
        raise ParameterError(
            f"--rho-list {args.rho_list!r} holds no numbers", reason="list", name="--rho-list", value=args.rho_list
        )
    return values


def _scale_factor(args: argparse.Namespace, stored: object) -> float:
    """The head records the scale factor of the model it was trained for; an explicit option wins."""
    known = float(stored) if isinstance(stored, (int, float)) and stored > 0 else None
    scale = args.scale_factor if args.scale_factor is not None else known or DEFAULT_SCALE_FACTOR
    if known is not None and not math.isclose(known, scale, rel_tol=1e-6):
        logger.warning(
            "the head was trained with scale factor %s but --scale-factor is %s; check the model", known, scale
        )
    return scale


def run(args: argparse.Namespace) -> int:
    """Check the options and --out, merge, write atomically; returns the exit status."""
    rhos = parse_rhos(args)
    check_sigma_order(args.sigma_x, args.sigma_z)
    check_output(args.out, LATENT_SUFFIX)
    device = resolve_device(args.device)
    with about("--head"):
        head = load_head(args.head, device=device)
    scale = _scale_factor(args, head.metadata.get("scale_factor"))
    with about("--original"):
        x_comfy = read_latent_file(args.original)
    with about("--target"):
        z_comfy = read_latent_file(args.target)
    GUARD.check()
    x = to_paper_space(x_comfy, args.sigma_x, scale)
    z = to_paper_space(z_comfy, args.sigma_z, scale)
    y = merge_sweep(x, z, head, rhos, k=args.k or None, mode=args.mode)
    y_comfy = from_paper_space(y, args.sigma_x, scale)
    GUARD.check()
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
    path = commit_output(args.out, lambda temp: write_latent_file(temp, y_comfy, metadata={"avi_merge": record}))
    print(f"merged {x.shape[0]} latent(s) at rho {format_values(rhos)} ({args.mode} mode, k {record['k']})")
    print(
        f"wrote {path}: {y_comfy.shape[0]} latent(s) {'x'.join(map(str, y_comfy.shape[1:]))} at x's sigma "
        f"{args.sigma_x:g}" + (", rho-major" if len(rhos) > 1 else "")
    )
    return 0
