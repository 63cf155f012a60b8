"""The argument parser of `avi`: the global options, and one subparser per subcommand module."""

from __future__ import annotations

import argparse

from ...version import __version__
from . import bench, demo, info, merge, train
from .options import RHO_TEXT, positive_int

EPILOG = (
    "Run 'avi COMMAND --help' for a command's options; 'avi demo' shows the engine at work. "
    f"rho runs from {RHO_TEXT}. Output files are written whole or not at all, into a folder that must exist "
    "(it is never created). Exit status: 0 done, 1 a demo check failed, 2 an error (one 'error:' line), "
    "130 interrupted by Ctrl+C (one line, no file written)."
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand; each subparser sets `run`, the function that runs it."""
    parser = argparse.ArgumentParser(
        prog="avi",
        description="AVI (Attribute Vector Integration): train attribute heads and merge latents outside ComfyUI.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages (and tracebacks).")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads torch may use (default: torch's choice).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (train, merge, info, demo, bench):
        module.add_parser(sub)
    return parser
