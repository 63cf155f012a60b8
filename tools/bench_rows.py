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
from pathlib import Path

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
    parser.add_argument(
        "--hspace-strengths", default="1,4,16", help="supervised h-space strength sweep (the node allows -20..20)"
    )
    parser.add_argument(
        "--pca-strengths",
        default="2,6,20",
        help="PCA h-space strength sweep (standard deviations; the node allows -20..20)",
    )
    parser.add_argument("--pca-count", type=int, default=8, help="PCA directions the best one is chosen from")
    parser.add_argument("--boundary-distances", default="2,5,10,20", help="boundary distance sweep")
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
        args.hspace_strengths, args.pca_strengths = [4.0, 16.0], [6.0]
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


def side_by_side_rows(
    results_dir: Path, path: Path, columns: list[tuple[str, float | None]], per_pair: int = 2
) -> None:
    """A grid from DIR/results.json: a row per (pair, test image), the given (method, value) columns."""
    import json

    from PIL import Image, ImageDraw

    entries = json.loads((results_dir / "results.json").read_text())["images"]

    def value(e: dict) -> float | None:
        return e.get("rho", e.get("strength", e.get("distance")))

    by_key = {(e["pair"], e["batch_index"], e["method"], value(e)): e for e in entries}
    pairs = list(dict.fromkeys(e["pair"] for e in entries))
    cell, label_w, head_h = 64, 110, 30
    rows = [(p, i) for p in pairs for i in range(per_pair) if (p, i, "unedited", None) in by_key]
    canvas = Image.new("L", (label_w + cell * len(columns), head_h + cell * len(rows)), 40)
    draw = ImageDraw.Draw(canvas)
    short = {"hspace_supervised": "h sup", "hspace_pca": "h PCA", "avi_anchored": "AVI anch", "avi_paper": "AVI paper"}
    for c, (method, v) in enumerate(columns):
        title = short.get(method, method.replace("_", " "))
        draw.text((label_w + c * cell + 2, 2), title[:10], fill=255)
        if v is not None:
            draw.text((label_w + c * cell + 2, 15), f"{v:g}", fill=255)
    for r, (p, i) in enumerate(rows):
        draw.text((4, head_h + r * cell + 26), f"{p} #{i}", fill=255)
        for c, (method, v) in enumerate(columns):
            e = by_key.get((p, i, method, v))
            if e is not None:
                canvas.paste(Image.open(results_dir / e["path"]), (label_w + c * cell, head_h + r * cell))
    tmp = path.with_name(path.name + ".tmp.png")
    canvas.save(tmp)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    """python tools/bench_rows.py DIR OUT.png "method=value,..." : the side-by-side picture of chosen columns."""
    parser = argparse.ArgumentParser(description="side-by-side picture of a benchmark run's rows")
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "columns",
        help="comma list of method or method=value, e.g. "
        "'unedited,avi_anchored=1,hspace_supervised=4,hspace_pca=8,boundary=10,prompt_switch,target_prompt'",
    )
    parser.add_argument("--per-pair", type=int, default=2)
    args = parser.parse_args(argv)
    columns = []
    for part in (p.strip() for p in args.columns.split(",") if p.strip()):
        method, _, v = part.partition("=")
        columns.append((method, float(v) if v else None))
    side_by_side_rows(args.results_dir, args.out, columns, args.per_pair)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
