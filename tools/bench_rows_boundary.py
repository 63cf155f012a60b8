"""Boundary rows of the edit-quality benchmark (issue 10, item 4), through the pack's real boundary nodes.

For a prompt pair (original P -> target Q):
  1. 'AVI Collect Boundary Samples' samples P (side a) and Q (side b) from the same training seeds
     (edit_benchmark.TRAIN_SEED and up, the AVI heads' seeds; never the test seeds) and keeps both latents at the
     candidate mixing steps (--boundary-steps; default every other step from 1 to steps - 2). Style edits learn
     from every digit, as the benchmark's AVI style heads do.
  2. 'AVI Fit Boundary' fits a linear SVM at every candidate step with the pair-wise hold-out (the images of one
     seed held out together), and picks the mixing step by section 9's rule (the noisiest step within 2 points
     of the best held-out accuracy). Its accuracy-curve IMAGE is saved as DIR/boundary_accuracy_<pair>.png.
  3. The test seed's latent is taken at the chosen step: the benchmark's x when the step is x's, else 'AVI
     Capture Latent at Step' (stop_step = the chosen step) from the same test seed and P; 'AVI Boundary Edit'
     moves it to each distance of the sweep, and KSamplerAdvanced resumes it with P from that step.

Distances are the node's: units of the median |s| of the training latents, > 0 on Q's side (+1 = where a
typical Q latent sits).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from avi_pack.avi_core.digits.latent_map import blank  # where the digit model's sampling starts

logger = logging.getLogger("edit_benchmark.boundary")


def candidate_steps(args) -> list[int]:
    """--boundary-steps, or every other step from 1 to steps - 2."""
    if args.boundary_steps:
        return sorted({int(s) for s in str(args.boundary_steps).split(",") if s.strip()})
    return list(range(1, args.steps - 1, 2))


def _cache_key(pair) -> str:
    return pair.name if pair.kind != "style" else pair.name.split(":", 1)[1]


def _safe(name: str) -> str:
    return name.replace("->", "-to-").replace(":", "_").replace(" ", "_")


def save_image(image: torch.Tensor, path: Path) -> None:
    """IMAGE [1, H, W, 3] in 0..1 -> PNG."""
    from PIL import Image

    array = (image[0].clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def learn(bench, pair) -> dict:
    """Collect the training latents and fit the boundary (cached per pair, or per style edit)."""
    from bench_rows_hspace import _train_prompts

    cache = bench.__dict__.setdefault("boundary_cache", {})
    key = _cache_key(pair)
    if key in cache:
        return cache[key]
    args = bench.args
    start = time.time()
    name = f"bench_b{len(cache)}"
    prompts = _train_prompts(pair)
    per = max(1, args.train_pairs // len(prompts))
    steps_text = ", ".join(str(s) for s in candidate_steps(args))
    for prompt_a, prompt_b, seed in prompts:
        with torch.inference_mode():
            bench.nodes["AVICollectBoundarySamples"].execute(
                model=bench.model,
                noise_seed=seed,
                steps=args.steps,
                cfg=args.cfg,
                sampler_name=args.sampler,
                scheduler=args.scheduler,
                positive_a=bench.cond(prompt_a),
                positive_b=bench.cond(prompt_b),
                negative=bench.negative,
                latent_image={"samples": blank(per)},
                capture_steps=steps_text,
                collection=name,
            )
    with torch.inference_mode():
        boundary, plot, chosen, summary = (
            bench.nodes["AVIFitBoundary"]
            .execute(
                collection=name,
                name=name,
                description=f"{pair.original} -> {pair.target}",
                step=-1,
                tolerance=0.02,
                holdout=0.2,
                C=1.0,
                seed=0,
            )
            .args
        )
    plot_path = Path(args.out) / f"boundary_accuracy_{_safe(key)}.png"
    save_image(plot, plot_path)
    search = boundary.info.get("search", {})
    notes = {
        "train_images_per_side": per * len(prompts),
        "candidate_steps": candidate_steps(args),
        "accuracy_by_step": [round(float(a), 4) for a in search.get("accuracies", [])],
        "chosen_step": int(chosen),
        "held_out_accuracy": round(float(boundary.accuracy), 4),
        "plot": plot_path.name,
        "learn_s": round(time.time() - start, 1),
    }
    logger.info("  %s: boundary %s in %.0fs", pair.name, summary.replace("\n", "; "), time.time() - start)
    cache[key] = {"boundary": boundary, "step": int(chosen), "notes": notes}
    return cache[key]


def capture_at(bench, prompt: str, seed: int, batch: int, step: int) -> dict:
    """'AVI Capture Latent at Step' stopping at `step` (P from the test seed, as the benchmark's x)."""
    args = bench.args
    with torch.inference_mode():
        out, got = (
            bench.nodes["AVICaptureLatentAtStep"]
            .execute(
                model=bench.model,
                add_noise="enable",
                noise_seed=seed,
                steps=args.steps,
                cfg=args.cfg,
                sampler_name=args.sampler,
                scheduler=args.scheduler,
                positive=bench.cond(prompt),
                negative=bench.negative,
                latent_image={"samples": blank(batch)},
                stop_at=0.5,
                stop_step=step,
            )
            .args
        )
    assert int(got) == step, (got, step)
    return out


def boundary_rows(bench, pair, x: dict, step: int, seed: int, batch: int) -> list[tuple[str, float, torch.Tensor]]:
    """The boundary edit of the test latents at every distance of --boundary-distances, resumed with P."""
    learned = learn(bench, pair)
    at = learned["step"]
    latent = x if at == step else capture_at(bench, pair.original, seed, batch, at)
    distances = bench.args.boundary_distances
    with torch.inference_mode():
        edited, info = (
            bench.nodes["AVIBoundaryEdit"]
            .execute(
                captured=latent,
                boundary=learned["boundary"],
                distance=distances[0],
                distance_list=", ".join(f"{d:g}" for d in distances),
            )
            .args
        )
    notes = dict(learned["notes"], edit=info)
    bench.__dict__.setdefault("row_notes", {}).setdefault(pair.name, {})["boundary"] = notes
    images = bench.pixels(bench.resume(edited, pair.original, at, seed))
    return [("boundary", d, images[j * batch : (j + 1) * batch]) for j, d in enumerate(distances)]
