"""`avi bench ...`: forwarded, options and all, to the benchmark (`avi_core.app.bench`)."""

from __future__ import annotations

import argparse
import importlib

from ...errors import AVIError

BENCH_MODULE = "avi_core.app.bench"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add `bench` to `sub`: its options are the benchmark's own (`avi bench --help`)."""
    sub.add_parser(
        "bench",
        add_help=False,
        help="benchmark the engine, figure by figure (options: avi bench --help)",
        description="Forwarded to avi_core.app.bench.",
    )


def run(argv: list[str]) -> int:
    """Run the benchmark with `argv`; returns its exit status."""
    try:
        bench = importlib.import_module(BENCH_MODULE)
    except ModuleNotFoundError as err:
        if err.name not in (BENCH_MODULE, None):
            raise
        raise AVIError("the benchmark (avi_core/app/bench.py) is not part of this installation") from None
    code = bench.main(argv)
    return 0 if code is None else int(code)
