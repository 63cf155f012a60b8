"""`avi demo`: the engine at work on synthetic latents (the demo itself is `avi_core.app.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..demo import cmd_demo
from .options import OUT_FOLDER_RULE


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand to `sub`."""
    demo = sub.add_parser(
        "demo",
        help="train a small head on synthetic latents and merge with it (about 10 s on a laptop CPU)",
        description="Train a head on a small synthetic pair set, merge with it and check the results. "
        "Exit status 1 when a check fails.",
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and the training")
    demo.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help=f"keep the demo head and latents in this folder (default: a temporary folder, deleted). {OUT_FOLDER_RULE}",
    )
    demo.set_defaults(run=cmd_demo)
