"""Extra rows of the edit-quality benchmark (tools/edit_benchmark.py): the methods of issues 9 and 10.

    ... tools/edit_benchmark.py --out DIR --methods hspace,boundary

Each row function takes (bench, pair, x, step, seed, batch): the benchmark's Bench, the PromptPair, the LATENT
captured with the original prompt at the pair's capture step (with its record), that step, the held-out noise
seed and the batch size, and returns runs `(method, strength_or_distance, images [B, 1, 64, 64])` that
run_pair scores beside AVI's. Everything a row learns it learns from training seeds (edit_benchmark.TRAIN_SEED
and up), never from the test seeds; all of it goes through the pack's real nodes.

Methods (results.json key of the swept value in brackets):
  hspace_supervised  [strength]  h-space direction from prompt A's to prompt B's h (tools/bench_rows_hspace.py)
  hspace_pca         [strength]  the PCA direction of the pooled h that separates A and B best on the training h
  boundary           [distance]  BoundaryDiffusion: the linear boundary at the mixing step the search picks
                                 (tools/bench_rows_boundary.py)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

VALUE_KEYS = {"hspace_supervised": "strength", "hspace_pca": "strength", "boundary": "distance"}
"""results.json key of each extra method's swept value (AVI's rows use "rho")."""
GROUPS = {"hspace": ("hspace_supervised", "hspace_pca"), "boundary": ("boundary",)}


def value_key(method: str) -> str:
    """The results.json key for a method's swept value: strength / distance / rho."""
    return VALUE_KEYS.get(method, "rho")


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the extra rows (all off unless --methods names them)."""
    parser.add_argument(
        "--methods",
        default="",
        help="extra rows, comma separated: hspace (= hspace_supervised,hspace_pca), hspace_supervised, "
        "hspace_pca, boundary, all. Default: none (AVI and the baselines only)",
    )
    parser.add_argument("--hspace-strengths", default="0.5,1,2", help="supervised h-space strength sweep")
    parser.add_argument("--pca-strengths", default="1,2,4", help="PCA h-space strength sweep (standard deviations)")
    parser.add_argument("--pca-count", type=int, default=8, help="PCA directions the best one is chosen from")
    parser.add_argument("--boundary-distances", default="1,5,10,20", help="boundary distance sweep")
    parser.add_argument(
        "--boundary-steps",
        default="",
        help="candidate mixing steps for the boundary search (default: every other step from 1 to steps - 2)",
    )


def chosen_methods(text: str) -> list[str]:
    """'hspace,boundary' -> ['hspace_supervised', 'hspace_pca', 'boundary'] (ValueError on an unknown name)."""
    out: list[str] = []
    for name in (t.strip() for t in text.split(",")):
        if not name:
            continue
        names = [m for g in GROUPS.values() for m in g] if name == "all" else GROUPS.get(name, (name,))
        for method in names:
            if method not in VALUE_KEYS:
                raise ValueError(f"--methods: unknown method {method!r} (known: {', '.join(VALUE_KEYS)}, all)")
            if method not in out:
                out.append(method)
    return out


def selected(args: argparse.Namespace) -> list[Callable]:
    """The row functions --methods asks for; sets the sweeps (smaller in --quick mode) on args."""
    methods = chosen_methods(args.methods)
    args.extra_methods = methods
    args.hspace_strengths = _floats(args.hspace_strengths) if isinstance(args.hspace_strengths, str) else None
    args.pca_strengths = _floats(args.pca_strengths) if isinstance(args.pca_strengths, str) else None
    args.boundary_distances = _floats(args.boundary_distances) if isinstance(args.boundary_distances, str) else None
    if args.quick:
        args.hspace_strengths, args.pca_strengths = [1.0, 2.0], [2.0]
        args.boundary_distances, args.pca_count = [5.0, 20.0], 4
    rows: list[Callable] = []
    wanted_h = [m for m in methods if m.startswith("hspace_")]
    if wanted_h:
        import bench_rows_hspace

        rows.append(bench_rows_hspace.make_rows(wanted_h))
    if "boundary" in methods:
        import bench_rows_boundary

        rows.append(bench_rows_boundary.boundary_rows)
    return rows
