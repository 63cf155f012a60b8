"""h-space rows of the edit-quality benchmark (issue 9, item 4), through the pack's real h-space nodes.

For a prompt pair (original P -> target Q):
  1. 'AVI Capture h' records the cond pass's h of P and of Q (labels "a" and "b" of one collection) while the
     host's KSamplerAdvanced samples training seeds (edit_benchmark.TRAIN_SEED and up, never the test seeds),
     at the steps the edit covers (the pair's capture step to the last). Style edits learn from every digit, as
     the benchmark's AVI style heads do; digit changes from P and Q themselves.
  2. 'AVI Find h-space Direction (Supervised)' (A = P's h, B = Q's h, one direction per step) and 'AVI Find
     h-space Directions (PCA)' on the pooled h (per step). The PCA direction used is the one, among the first
     --pca-count, whose projection separates the training h of P and Q most (mean of B minus mean of A, in
     standard deviations, averaged over the steps), signed to point from P towards Q: chosen on training h only.
  3. 'AVI Apply h-space Direction' (strength list, the whole of the resumed sampling, both guidance passes)
     patches the model, and the test latent x (P captured at the pair's step) is resumed with P by
     KSamplerAdvanced, as AVI's merged latent is. Strength 0 would be the unedited image bit for bit.

Strength units are the nodes' own: supervised 1 = the distance between the two sets' means (at each step),
PCA 1 = one standard deviation of the pooled images along the direction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
from avi_pack.avi_core.digits.latent_map import blank  # where the digit model's sampling starts

logger = logging.getLogger("edit_benchmark.hspace")

PASS = {"pass": "cond"}


def _train_prompts(pair) -> list[tuple[str, str, int]]:
    """(prompt A, prompt B, noise seed) of the training captures; seeds from TRAIN_SEED, as the AVI heads' are."""
    from avi_pack.avi_core.digits.prompts import build_prompt, parse_prompt
    from edit_benchmark import STYLE_TRAIN_DIGITS, TRAIN_SEED

    if pair.kind != "style":
        return [(pair.original, pair.target, TRAIN_SEED)]
    src, dst = parse_prompt(pair.original), parse_prompt(pair.target)
    return [
        (build_prompt(d, src.thickness, src.slant), build_prompt(d, dst.thickness, dst.slant), TRAIN_SEED + 1000 * i)
        for i, d in enumerate(STYLE_TRAIN_DIGITS)
    ]


def _cache_key(pair) -> str:
    """Style directions are shared by the test digits of one style edit (learned from every digit)."""
    if pair.kind != "style":
        return pair.name
    return pair.name.split(":", 1)[1]


def capture_collection(bench, pair, name: str, first_step: int) -> int:
    """Sample the training seeds of P (label a) and Q (label b) through 'AVI Capture h' into collection `name`.

    Records the cond pass at steps first_step .. steps - 1. Returns the number of images per side.
    """
    args = bench.args
    steps_text = ", ".join(str(s) for s in range(first_step, args.steps))
    prompts = _train_prompts(pair)
    per = max(1, args.train_pairs // len(prompts))
    capture = bench.nodes["AVIHSpaceCapture"]
    for label, index in (("a", 0), ("b", 1)):
        with torch.inference_mode():
            (model,) = capture.execute(model=bench.model, collection=name, label=label, steps=steps_text, **PASS).args
        for prompt_pair in prompts:
            prompt, seed = prompt_pair[index], prompt_pair[2]
            with torch.inference_mode():
                bench.tiny.ksampler_advanced(
                    model,
                    bench.cond(prompt),
                    bench.negative,
                    {"samples": blank(per)},
                    seed=seed,
                    steps=args.steps,
                    cfg=args.cfg,
                    sampler_name=args.sampler,
                    scheduler=args.scheduler,
                )
    return per * len(prompts)


def best_pca_direction(name: str, directions) -> tuple[int, float, list[float]]:
    """(index, sign, separation per direction) of the PCA direction that separates labels a and b most.

    Separation of direction k: mean over the stored steps of (mean_b - mean_a) of h . d_k / std_k (training h).
    """
    from avi_pack.avi_core.hspace.collection import read_collection
    from avi_pack.nodes.hspace.find import find_collection

    data = read_collection(find_collection(name)).select(pass_="cond")
    steps = directions.info.get("steps_stored") or [None]
    dirs = directions.directions if directions.per_step else directions.directions[None]
    scales = directions.scales if directions.per_step else directions.scales[None]
    count = dirs.shape[1]
    sep = torch.zeros(count, dtype=torch.float64)
    for s_index, step in enumerate(steps):
        part = data.select(step=step) if step is not None else data
        means = []
        for label in ("a", "b"):
            h = part.select(label=label).h
            means.append(h.reshape(h.shape[0], -1).to(torch.float64).mean(0))
        diff = means[1] - means[0]
        d = dirs[s_index].reshape(count, -1).to(torch.float64)
        sep += (d @ diff) / scales[s_index].to(torch.float64).clamp_min(1e-12)
    sep /= len(steps)
    best = int(sep.abs().argmax())
    return best, (1.0 if sep[best] >= 0 else -1.0), [round(float(v), 4) for v in sep]


def apply_and_resume(bench, pair, x: dict, step: int, seed: int, directions, index: int, strengths: list[float]):
    """x resumed with P through 'AVI Apply h-space Direction' at every strength: [V * B, 1, 64, 64] pixels."""
    args = bench.args
    text = ", ".join(f"{s:g}" for s in strengths)
    with torch.inference_mode():
        model, latent = (
            bench.nodes["AVIHSpaceApplyDirection"]
            .execute(
                model=bench.model,
                directions=directions,
                strength=strengths[0],
                direction=index + 1,
                start=0.0,
                end=1.0,
                target="both",
                strength_list=text,
                direction_list="",
                latent=x,
            )
            .args
        )
        out = bench.tiny.ksampler_advanced(
            model,
            bench.cond(pair.original),
            bench.negative,
            latent,
            seed=seed,
            steps=args.steps,
            start=step,
            add_noise=False,
            cfg=args.cfg,
            sampler_name=args.sampler,
            scheduler=args.scheduler,
        )
    return bench.pixels(out["samples"])


def learn(bench, pair, step: int) -> dict:
    """Capture the training h and find both kinds of directions (cached per pair, or per style edit)."""
    cache = bench.__dict__.setdefault("hspace_cache", {})
    key = (_cache_key(pair), step)
    if key in cache:
        return cache[key]
    start = time.time()
    name = f"bench_h{len(cache)}"
    n = capture_collection(bench, pair, name, step)
    with torch.inference_mode():
        supervised, _, sup_info = (
            bench.nodes["AVIHSpaceFindSupervised"]
            .execute(
                collection_a=name,
                collection_b=name,
                name=f"{name}_supervised",
                step=-1,
                label_a="a",
                label_b="b",
                description=f"{pair.original} -> {pair.target}",
                **PASS,
            )
            .args
        )
        count = min(bench.args.pca_count, 2 * n - 1)
        pca, _, pca_info = (
            bench.nodes["AVIHSpaceFindPCA"]
            .execute(collection=name, name=f"{name}_pca", count=count, step=-1, description=pair.original, **PASS)
            .args
        )
    best, sign, separation = best_pca_direction(name, pca)
    learned = {
        "supervised": supervised,
        "pca": pca,
        "pca_index": best,
        "pca_sign": sign,
        "notes": {
            "train_images_per_side": n,
            "steps": f"{step}..{bench.args.steps - 1}",
            "pca_separation": separation,
            "pca_chosen": best + 1,
            "pca_sign": sign,
            "learn_s": round(time.time() - start, 1),
        },
    }
    logger.info(
        "  %s: h-space directions from %d images per side (PCA direction %d chosen, separation %s) in %.0fs",
        pair.name,
        n,
        best + 1,
        separation,
        time.time() - start,
    )
    cache[key] = learned
    return learned


def make_rows(methods: list[str]) -> Callable:
    """The row function for the h-space methods asked for (hspace_supervised and / or hspace_pca)."""

    def hspace_rows(bench, pair, x: dict, step: int, seed: int, batch: int) -> list[tuple[str, float, torch.Tensor]]:
        learned = learn(bench, pair, step)
        bench.__dict__.setdefault("row_notes", {}).setdefault(pair.name, {})["hspace"] = learned["notes"]
        runs = []
        if "hspace_supervised" in methods:
            strengths = bench.args.hspace_strengths
            images = apply_and_resume(bench, pair, x, step, seed, learned["supervised"], 0, strengths)
            runs += [("hspace_supervised", s, images[j * batch : (j + 1) * batch]) for j, s in enumerate(strengths)]
        if "hspace_pca" in methods:
            strengths = bench.args.pca_strengths
            signed = [learned["pca_sign"] * s for s in strengths]
            images = apply_and_resume(bench, pair, x, step, seed, learned["pca"], learned["pca_index"], signed)
            runs += [("hspace_pca", s, images[j * batch : (j + 1) * batch]) for j, s in enumerate(strengths)]
        return runs

    return hspace_rows
