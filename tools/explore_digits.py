"""The latent explorer on the pack's digit model (spec section 11, issue 11 item 3): the three plots of the paper's
section 3.1 / Figures 2-5, made by the pack's real explorer nodes inside the host, and the numbers behind them.

    COMFYUI_DIR=/path/to/ComfyUI /path/to/ComfyUI/.venv/bin/python tools/explore_digits.py --out explore_out
    ... --docs                 # also write the three plots to docs/images/digits_*.png
    ... --quick                # 2 seeds, 10 steps, small grid: for tests

Nodes: 'AVI Load Digit Model' and 'AVI Digit Prompt' (the model), 'AVI Capture Trajectory' (a batch of seeds of one
prompt, kept at 1, 0.9, ..., 0.1, 0 T), 'AVI Plot Singular Spectrum', 'AVI Plot Subspace Distance' (averaged over
the batch), 'AVI Capture Latent at Step' (x at 0.8T, as AVI's) and 'AVI Rank-One Views' (one singular pair of
every channel scaled at 0.8T, then sampled to the end by the node).

Numbers (DIR/explore.json, DIR/explore.md), from the same trajectory through the engine the plot nodes call
(avi_core.explore, paper space):
- spectrum per step: mean over seeds and channels of sigma_1, sigma_4, sigma_16, sigma_32 and the share of the
  energy (sum of sigma^2) in the top 1, 4 and 16 pairs;
- subspace distance (geodesic, radians) between consecutive captured steps and to the finished latent, for
  k = 4 (the paper's p) and k = 16 (AVI's k), beside the distance between two independent Gaussian matrices'
  subspaces (what "no relation" measures) and the largest possible, sqrt(k) * pi / 2;
- rank-one views at 0.8T: per singular pair and scale, the pixel PSNR of the finished image against the
  unchanged one (scale 1) and how often the classifier still reads the prompted digit, over every seed.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
logger = logging.getLogger("explore_digits")

DOC_NAMES = {
    "spectrum": "digits_singular_spectrum.png",
    "views": "digits_rank_one_views.png",
    "distance": "digits_subspace_distance.png",
}


def save_image(image: torch.Tensor, path: Path) -> None:
    """ComfyUI IMAGE [1, H, W, 3] (or [H, W, 3]) in [0, 1] -> PNG, written to a temporary name and renamed."""
    from PIL import Image

    array = image.reshape(-1, *image.shape[-3:])[0].clamp(0, 1).numpy()
    if not np.isfinite(array).all():
        raise SystemExit(f"non-finite plot for {path.name}")
    tmp = path.with_name(path.name + ".tmp.png")
    Image.fromarray((array * 255.0 + 0.5).astype(np.uint8)).save(tmp)
    tmp.replace(path)


def random_baseline(k: int, size: int = 32, count: int = 256) -> float:
    """Mean geodesic distance between the top-k left singular subspaces of two independent Gaussian matrices."""
    from avi_pack.avi_core.explore import subspace_distance

    g = torch.Generator().manual_seed(0)
    a = torch.randn((count, size, size), generator=g, dtype=torch.float64)
    b = torch.randn((count, size, size), generator=g, dtype=torch.float64)
    return float(subspace_distance(a, b, k, "left").mean())


def spectrum_numbers(paper: torch.Tensor, labels: list[str]) -> list[dict]:
    from avi_pack.avi_core.explore import singular_spectrum

    s = singular_spectrum(paper.to(torch.float64))  # [S, B, C, r]
    energy = s * s
    share = energy.cumsum(-1) / energy.sum(-1, keepdim=True)
    rows = []
    for j, label in enumerate(labels):
        mean = s[j].mean(dim=(0, 1))
        rows.append(
            {
                "step": label,
                "sigma": {str(i + 1): round(float(mean[i]), 4) for i in (0, 3, 15, s.shape[-1] - 1)},
                "energy_top": {str(n): round(float(share[j, ..., n - 1].mean()), 4) for n in (1, 4, 16)},
            }
        )
    return rows


def distance_numbers(paper: torch.Tensor, labels: list[str], ks: tuple[int, ...]) -> dict:
    from avi_pack.avi_core.explore import trajectory_distances

    out = {}
    for k in ks:
        d = trajectory_distances(paper.to(torch.float64), k, "left")  # [S, S, B, C]
        mean = d.mean(dim=(2, 3))
        steps = len(labels)
        out[str(k)] = {
            "consecutive": [
                {"from": labels[i], "to": labels[i + 1], "mean": round(float(mean[i, i + 1]), 4)}
                for i in range(steps - 1)
            ],
            "to_final": [{"from": labels[i], "mean": round(float(mean[i, -1]), 4)} for i in range(steps - 1)],
            "random_pair": round(random_baseline(k), 4),
            "largest": round(math.sqrt(k) * math.pi / 2, 4),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (created): plots and numbers")
    parser.add_argument("--docs", action="store_true", help="also write the three plots to docs/images/")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 10 steps, a small grid (tests)")
    parser.add_argument("--prompt", default="a handwritten 3")
    parser.add_argument("--seed", type=int, default=0, help="noise seed of the batch")
    parser.add_argument("--batch", type=int, default=8, help="seeds averaged over")
    parser.add_argument("--steps", type=int, default=50, help="sampling steps (the paper: 50)")
    parser.add_argument("--cfg", type=float, default=3.0)
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--scheduler", default="normal")
    parser.add_argument("--pairs", default="0, 1, 2, 3, 7, 15", help="rank-one views: singular pairs (rows)")
    parser.add_argument("--scales", default="0, 0.5, 1, 1.5, 2", help="rank-one views: factors (columns)")
    parser.add_argument("--views-at", type=float, default=0.8, help="rank-one views: capture at this fraction of T")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.pairs, args.scales = 2, 10, "0, 1", "0, 1, 2"
    # edit_benchmark.Bench reads these
    args.k, args.train_pairs, args.hidden, args.epochs, args.tx, args.tz = 0, 0, 256, 0, 0.8, 0.5
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not os.environ.get("COMFYUI_DIR"):
        parser.error("set COMFYUI_DIR to a ComfyUI checkout and run with its python")
    torch.set_num_threads(args.threads)
    t0 = time.time()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    import edit_benchmark as eb

    bench = eb.Bench(args)
    nodes = bench.nodes
    positive = bench.cond(args.prompt)
    logger.info("[1/4] AVI Capture Trajectory: %r, %d seeds, %d steps", args.prompt, args.batch, args.steps)
    with torch.inference_mode():
        trajectory, final = (
            nodes["AVICaptureTrajectory"]
            .execute(
                model=bench.model,
                add_noise="enable",
                noise_seed=args.seed,
                steps=args.steps,
                cfg=args.cfg,
                sampler_name=args.sampler,
                scheduler=args.scheduler,
                positive=positive,
                negative=bench.negative,
                latent_image={"samples": eb.blank_latent(args.batch)},  # a black image, as the benchmark
                at="1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0",
            )
            .args
        )
        logger.info("[2/4] AVI Plot Singular Spectrum, AVI Plot Subspace Distance (%.0fs)", time.time() - t0)
        (spectrum_plot,) = (
            nodes["AVIPlotSingularSpectrum"]
            .execute(trajectory=trajectory, mode="index", top=0, log_scale=True, width=1024, height=640)
            .args
        )
        (distance_plot,) = (
            nodes["AVIPlotSubspaceDistance"]
            .execute(trajectory=trajectory, k=16, side="left", kind="both", width=1024, height=448)
            .args
        )
        logger.info(
            "[3/4] AVI Capture Latent at Step (%.2fT) + AVI Rank-One Views (%.0fs)", args.views_at, time.time() - t0
        )
        x, step = bench.capture(args.prompt, args.seed, args.batch, args.views_at)
        views_plot = None
        view_rows = []
        from avi_pack.avi_core.digits import classifier

        prompted = next((i for i, w in enumerate(args.prompt.split()) if w.isdigit()), None)
        prompted = int(args.prompt.split()[prompted]) if prompted is not None else None
        pair_names = [p.strip() for p in args.pairs.split(",")]
        scales = [float(s) for s in args.scales.split(",")]
        unchanged = scales.index(1.0) if 1.0 in scales else None
        for b in range(args.batch):
            grid, images, _ = (
                nodes["AVIRankOneViews"]
                .execute(
                    latent=x,
                    vae=bench.vae,
                    pairs=args.pairs,
                    scales=args.scales,
                    alone=False,
                    batch_index=b,
                    cell=96,
                    cfg=args.cfg,
                    model=bench.model,
                    positive=positive,
                    negative=bench.negative,
                )
                .args
            )
            if views_plot is None:
                views_plot = grid
            pixels = images[..., 0][:, None].reshape(len(pair_names), len(scales), 1, *images.shape[1:3])
            read = classifier.predict(bench.classifier, pixels.flatten(0, 1)).reshape(len(pair_names), len(scales))
            for g, name in enumerate(pair_names):
                for c, scale in enumerate(scales):
                    psnr = None
                    if unchanged is not None and c != unchanged:
                        mse = float(((pixels[g, c] - pixels[g, unchanged]) ** 2).mean())
                        psnr = 10 * math.log10(1 / max(mse, 1e-10))
                    view_rows.append(
                        {
                            "seed_index": b,
                            "pair": name,
                            "scale": scale,
                            "psnr_to_unchanged": psnr,
                            "reads_prompted": None if prompted is None else bool(read[g, c] == prompted),
                        }
                    )
            logger.info("  rank-one views: seed %d/%d (%.0fs)", b + 1, args.batch, time.time() - t0)
    logger.info("[4/4] numbers (%.0fs)", time.time() - t0)
    from avi_pack.nodes.explore.plots import _paper

    paper = _paper(trajectory)
    labels = list(trajectory["labels"])
    views = []
    for name in pair_names:
        for scale in scales:
            rows = [r for r in view_rows if r["pair"] == name and r["scale"] == scale]
            ps = [r["psnr_to_unchanged"] for r in rows if r["psnr_to_unchanged"] is not None]
            reads = [r["reads_prompted"] for r in rows if r["reads_prompted"] is not None]
            views.append(
                {
                    "pair": name,
                    "scale": scale,
                    "psnr_mean": round(float(np.mean(ps)), 2) if ps else None,
                    "reads_prompted": round(float(np.mean(reads)), 3) if reads else None,
                }
            )
    numbers = {
        "config": {
            "prompt": args.prompt,
            "seed": args.seed,
            "batch": args.batch,
            "steps": args.steps,
            "cfg": args.cfg,
            "sampler": args.sampler,
            "scheduler": args.scheduler,
            "views_step": int(step),
            "labels": labels,
            "model": "digit_unet.safetensors",
            "wall_s": round(time.time() - t0, 1),
        },
        "spectrum": spectrum_numbers(paper, labels),
        "distance": distance_numbers(paper, labels, (4, 16)),
        "rank_one_views": views,
    }
    plots = {"spectrum": spectrum_plot, "views": views_plot, "distance": distance_plot}
    for key, image in plots.items():
        save_image(image, out / DOC_NAMES[key])
        if args.docs:
            save_image(image, ROOT / "docs" / "images" / DOC_NAMES[key])
    tmp = out / "explore.json.tmp"
    tmp.write_text(json.dumps(numbers, indent=1))
    tmp.replace(out / "explore.json")
    (out / "explore.md").write_text(markdown(numbers))
    print(markdown(numbers))
    logger.info("done in %.0fs: %s", time.time() - t0, out)
    return 0


def markdown(n: dict) -> str:
    lines = [
        "| step | sigma_1 | sigma_4 | sigma_16 | sigma_32 | energy top 1 | top 4 | top 16 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in n["spectrum"]:
        s, e = r["sigma"], r["energy_top"]
        sig = list(s.values())
        lines.append(
            f"| {r['step']} | {sig[0]:.3f} | {sig[1]:.3f} | {sig[2]:.3f} | {sig[3]:.3f} | {e['1']:.1%} | "
            f"{e['4']:.1%} | {e['16']:.1%} |"
        )
    lines += ["", "| k | from | to | distance (rad) | to finished |", "|---|---|---|---|---|"]
    for k, d in n["distance"].items():
        for c, f in zip(d["consecutive"], d["to_final"], strict=True):
            lines.append(f"| {k} | {c['from']} | {c['to']} | {c['mean']:.3f} | {f['mean']:.3f} |")
        lines.append(f"| {k} | two random matrices | | {d['random_pair']:.3f} | (largest {d['largest']:.3f}) |")
    lines += [
        "",
        "| pair | scale | PSNR to unchanged (dB) | classifier reads the prompted digit |",
        "|---|---|---|---|",
    ]
    for v in n["rank_one_views"]:
        p = "" if v["psnr_mean"] is None else f"{v['psnr_mean']:.1f}"
        r = "" if v["reads_prompted"] is None else f"{v['reads_prompted']:.0%}"
        lines.append(f"| {v['pair']} | {v['scale']:g} | {p} | {r} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
