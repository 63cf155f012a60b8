"""Sample the digit model through ComfyUI and measure it for its model card (docs/digit_model/README.md).

    COMFYUI_DIR=/path/to/ComfyUI /path/to/ComfyUI/.venv/bin/python tools/digit_model_card.py --out docs/digit_model

Writes OUT/samples.png (rows: digits 0-9; columns: the prompt "a handwritten d" and the six one-style prompts, a few
seeds each), OUT/accuracy.json: the classifier's reading of `--per-digit` samples of "a handwritten d" for every
digit at each CFG in --cfgs (the rate of samples read as the prompted digit), and how often a style prompt's samples
land in the prompted tercile. Uses the pack's loader and prompt nodes and the host's KSamplerAdvanced.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

logger = logging.getLogger("digit_model_card")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "digit_model")
    parser.add_argument("--cfgs", default="3")
    parser.add_argument("--per-digit", type=int, default=10)
    parser.add_argument("--grid-seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    import edit_benchmark

    bench_args = argparse.Namespace(steps=args.steps, cfg=3.0, sampler="euler", scheduler="normal", k=0)
    bench = edit_benchmark.Bench(bench_args)
    from avi_pack.avi_core.digits import classifier, style
    from avi_pack.avi_core.digits.prompts import build_prompt

    edges = style.load_edges()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    report: dict = {
        "steps": args.steps,
        "sampler": "euler",
        "scheduler": "normal",
        "per_digit": args.per_digit,
        "accuracy": {},
        "style": {},
    }
    for cfg in [float(c) for c in args.cfgs.split(",")]:
        bench.args.cfg = cfg
        right = 0
        per = {}
        for d in range(10):
            pixels = bench.pixels(bench.sample(build_prompt(d), seed=500 + d, batch=args.per_digit))
            read = classifier.predict(bench.classifier, pixels)
            per[d] = float((read == d).float().mean())
            right += int((read == d).sum())
            logger.info("cfg %g digit %d: %.0f%% read right (%.0fs)", cfg, d, 100 * per[d], time.time() - start)
        report["accuracy"][f"{cfg:g}"] = {"overall": right / (10 * args.per_digit), "per_digit": per}
    # Grid and style adherence at the last CFG.
    from PIL import Image

    columns = [(None, None)] + [("thickness", t) for t in style.THICKNESS] + [("slant", s) for s in style.SLANT]
    cell = 64
    grid = Image.new("L", (cell * len(columns) * args.grid_seeds, cell * 10), 0)
    hits: dict[str, list[int]] = {}
    for d in range(10):
        for c, (part, value) in enumerate(columns):
            prompt = build_prompt(d, **({part: value} if part else {}))
            pixels = bench.pixels(bench.sample(prompt, seed=900 + d, batch=args.grid_seeds))
            for s in range(args.grid_seeds):
                array = (pixels[s, 0].clamp(0, 1).numpy() * 255 + 0.5).astype("uint8")
                grid.paste(Image.fromarray(array, mode="L"), ((c * args.grid_seeds + s) * cell, d * cell))
            if part:
                got = style.styles(pixels, edges)
                hits.setdefault(f"{part}={value}", []).extend(int(g[f"{part}_class"] == value) for g in got)
        logger.info("grid row %d done (%.0fs)", d, time.time() - start)
    report["style"] = {k: sum(v) / len(v) for k, v in hits.items()}
    report["grid_columns"] = ["a handwritten d"] + [f"{p}={v}" for p, v in columns[1:]]
    report["wall_s"] = round(time.time() - start, 1)
    grid.save(args.out / "samples.png")
    (args.out / "accuracy.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
