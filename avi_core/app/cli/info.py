"""`avi info`: what a head file is, from its metadata (the same describer as the Load node's `info`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ...avi.describe import describe_head
from ...avi.head_files import read_head_metadata
from .fixes import about


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the `info` subcommand to `sub`."""
    info = sub.add_parser("info", help="print what a head file is", description="Describe a head file.")
    info.add_argument("head", type=Path, metavar="HEAD.safetensors")
    info.add_argument("--json", action="store_true", help="print the stored metadata as JSON")
    info.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the head's description (or its metadata as JSON); returns the exit status."""
    with about("the head file's name"):
        meta = read_head_metadata(args.head)
    if args.json:
        print(json.dumps(meta, indent=2, sort_keys=True))
    else:
        print(f"{args.head}:")
        print(describe_head(meta, full=True, file_size=args.head.stat().st_size))
    return 0
