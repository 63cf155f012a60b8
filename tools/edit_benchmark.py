"""The edit-quality benchmark on the pack's small digit model (spec section 12, issue 12): the analogue of
the paper's Table 1, run through the pack's real nodes inside the host's ComfyUI.

    COMFYUI_DIR=/path/to/ComfyUI /path/to/ComfyUI/.venv/bin/python tools/edit_benchmark.py --out bench_out
    ... --quick                       # one style edit, one digit change, a few images: for tests

For every prompt pair (original prompt P -> target prompt Q) it
  1. captures training pairs with 'AVI Capture Latent at Step' (x: P at 0.8T, z: Q at 0.5T, same seeds), collects
     them with 'AVI Append To Dataset' and trains a head with 'AVI Train Attribute Head' (noise seeds from
     TRAIN_SEED up: never the test seeds);
  2. for held-out test seeds, captures x and z and makes, all finished by ComfyUI's KSamplerAdvanced:
       unedited       x resumed with P (the image an edit should keep the identity of)
       target_prompt  Q sampled from the same seed from the start (regenerate with the target prompt)
       prompt_switch  x resumed with Q (switch the prompt at x's step)
       avi_paper      'AVI Merge' paper mode, rho = 1, resumed with P
       avi_anchored   'AVI Merge' anchored mode over the rho sweep, resumed with P
  3. scores every image with the classifier and the style measures (avi_core/digits): attribute success (style:
     the edit's thickness or slant lands in the target tercile and the classifier still reads the original digit;
     digit change: the classifier reads the target digit) and identity to the unedited image of the same seed
     (pixel SSIM; distance of the classifier's penultimate features, unit-normalised).

Writes DIR/images/*.png (64 x 64 grey digits on black), DIR/results.json ({"images": [...], "summary": [...],
"config": {...}}; see write_results), DIR/table.md and DIR/side_by_side.png.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_rows  # noqa: E402  (the rows of issues 9 and 10)

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("edit_benchmark")

TRAIN_SEED = 100000
"""Noise seeds of head training captures start here; test seeds are 0, 1, ... (never the same)."""
STYLE_TRAIN_DIGITS = tuple(range(10))


@dataclass(frozen=True)
class PromptPair:
    """One edit: name as in results.json ("3->8", "3:thin->thick"), the two prompts, and what success means."""

    name: str
    kind: str  # "style" or "digit"
    original: str
    target: str
    digit: int  # the digit the edit should show
    source_digit: int
    attribute: dict = field(default_factory=dict)  # style: {"thickness": "thick"} (the target tercile)


def style_pair(digit: int, part: str, src: str, dst: str) -> PromptPair:
    from avi_pack.avi_core.digits.prompts import build_prompt

    kw_src = {part: src}
    kw_dst = {part: dst}
    return PromptPair(
        f"{digit}:{src}->{dst}"
        if part == "thickness"
        else f"{digit}:{src}->{'slanted ' + dst if dst != 'upright' else dst}",
        "style",
        build_prompt(digit, **kw_src),
        build_prompt(digit, **kw_dst),
        digit,
        digit,
        {part: dst},
    )


def digit_pair(src: int, dst: int) -> PromptPair:
    from avi_pack.avi_core.digits.prompts import build_prompt

    return PromptPair(f"{src}->{dst}", "digit", build_prompt(src), build_prompt(dst), dst, src)


STYLE_EDITS = (("thickness", "thin", "thick"), ("thickness", "thick", "thin"), ("slant", "upright", "right"))
STYLE_TEST_DIGITS = (3, 4, 7)
DIGIT_CHANGES = ((1, 7), (3, 8), (4, 9), (7, 1))


class Bench:
    """The host, the pack's nodes and the digit model, with the sampling settings of one run."""

    def __init__(self, args: argparse.Namespace) -> None:
        sys.path.insert(0, str(ROOT / "tests" / "host"))
        sys.path.insert(0, str(ROOT / "tests"))
        import tiny_sd2  # the pack's host helpers: host on sys.path, CPU, folders in a temporary directory
        from conftest import load_pack

        self.base = tiny_sd2.require_host()
        self.pack = load_pack()
        assert self.pack.nodes.host.register_model_folders()
        self.tiny = tiny_sd2
        self.nodes = tiny_sd2.avi_node_classes(self.pack)
        self.args = args
        with torch.inference_mode():
            self.model, self.vae = self.nodes["AVILoadDigitModel"].execute(weights="digit_unet.safetensors").args
        self.negative = self.cond("")
        from avi_pack.avi_core.digits import classifier

        self.classifier = classifier.load_classifier()

    def cond(self, text: str):
        with torch.inference_mode():
            return self.nodes["AVIDigitPrompt"].execute(text=text).args[0]

    def capture(self, prompt: str, seed: int, batch: int, stop_at: float):
        latent = {"samples": blank_latent(batch)}
        with torch.inference_mode():
            out, step = (
                self.nodes["AVICaptureLatentAtStep"]
                .execute(
                    model=self.model,
                    add_noise="enable",
                    noise_seed=seed,
                    steps=self.args.steps,
                    cfg=self.args.cfg,
                    sampler_name=self.args.sampler,
                    scheduler=self.args.scheduler,
                    positive=self.cond(prompt),
                    negative=self.negative,
                    latent_image=latent,
                    stop_at=stop_at,
                    stop_step=0,
                )
                .args
            )
        return out, step

    def resume(self, latent: dict, prompt: str, start: int, seed: int) -> torch.Tensor:
        with torch.inference_mode():
            out = self.tiny.ksampler_advanced(
                self.model,
                self.cond(prompt),
                self.negative,
                latent,
                seed=seed,
                steps=self.args.steps,
                start=start,
                add_noise=False,
                cfg=self.args.cfg,
                sampler_name=self.args.sampler,
                scheduler=self.args.scheduler,
            )
        return out["samples"]

    def sample(self, prompt: str, seed: int, batch: int) -> torch.Tensor:
        with torch.inference_mode():
            out = self.tiny.ksampler_advanced(
                self.model,
                self.cond(prompt),
                self.negative,
                {"samples": blank_latent(batch)},
                seed=seed,
                steps=self.args.steps,
                cfg=self.args.cfg,
                sampler_name=self.args.sampler,
                scheduler=self.args.scheduler,
            )
        return out["samples"]

    def pixels(self, samples: torch.Tensor) -> torch.Tensor:
        """Latent [B, 4, 32, 32] -> [B, 1, 64, 64] through the VAE output (VAEDecode's call)."""
        return self.vae.decode(samples)[..., 0][:, None].contiguous()

    def merge(self, x: dict, z: dict, head, mode: str, rhos: list[float]) -> dict:
        text = ", ".join(f"{r:g}" for r in rhos)
        with torch.inference_mode():
            (out,) = (
                self.nodes["AVIMerge"]
                .execute(original=x, target=z, head=head, rho=rhos[0], k=self.args.k, mode=mode, rho_list=text)
                .args
            )
        return out

    def train_head(self, pair: PromptPair, name: str):
        """Capture the training pairs and train the head through the nodes; returns (head, file size, seconds)."""
        start = time.time()
        n = self.args.train_pairs
        if pair.kind == "style":
            # One head per style edit, from pairs of every digit (the attribute, not one digit's version of it).
            dataset = f"bench_{name}"
            per = max(1, n // len(STYLE_TRAIN_DIGITS))
            part = next(iter(pair.attribute))
            src = pair.original.split()[1] if part == "thickness" else pair.original.split(", ")[-1]
            from avi_pack.avi_core.digits.prompts import build_prompt, parse_prompt

            p_src = parse_prompt(pair.original)
            p_dst = parse_prompt(pair.target)
            del src
            for i, d in enumerate(STYLE_TRAIN_DIGITS):
                orig = build_prompt(d, p_src.thickness, p_src.slant)
                targ = build_prompt(d, p_dst.thickness, p_dst.slant)
                seed = TRAIN_SEED + 1000 * i
                x, _ = self.capture(orig, seed, per, self.args.tx)
                z, _ = self.capture(targ, seed, per, self.args.tz)
                with torch.inference_mode():
                    self.nodes["AVIAppendToDataset"].execute(original=x, target=z, dataset=dataset)
            kwargs = {"dataset": dataset}
        else:
            x, _ = self.capture(pair.original, TRAIN_SEED, n, self.args.tx)
            z, _ = self.capture(pair.target, TRAIN_SEED, n, self.args.tz)
            kwargs = {"original": x, "target": z}
        with torch.inference_mode():
            head, _ = (
                self.nodes["AVITrainAttributeHead"]
                .execute(
                    name=name,
                    description=f"{pair.original} -> {pair.target}",
                    epochs=self.args.epochs,
                    batch_size=256,
                    learning_rate=1e-3,
                    k=self.args.k,
                    lambda1=3.0,
                    lambda2=10.0,
                    lambda3=10.0,
                    lambda4=10.0,
                    hidden=self.args.hidden,
                    seed=0,
                    **kwargs,
                )
                .args
            )
        path = self.base / "models" / "avi_heads" / f"{name}.safetensors"
        return head, path.stat().st_size, time.time() - start


def blank_latent(batch: int) -> torch.Tensor:
    """Where the digit model's sampling starts: the latent of a black image (avi_core.digits.latent_map.blank)."""
    from avi_pack.avi_core.digits.latent_map import blank

    return blank(batch)


def save_png(pixels: torch.Tensor, path: Path) -> None:
    """[1, 64, 64] in [0, 1] -> an 8-bit grey PNG."""
    from PIL import Image

    array = (pixels[0].clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
    Image.fromarray(array, mode="L").save(path)


def score(bench: Bench, pair: PromptPair, images: torch.Tensor, unedited: torch.Tensor, edges) -> list[dict]:
    """Per image: read digit, style measures, success, SSIM and feature distance to the unedited image."""
    from avi_pack.avi_core.digits import classifier, identity, style

    read = classifier.predict(bench.classifier, images).tolist()
    measured = style.styles(images, edges)
    ssim = identity.ssim(images, unedited).tolist()
    dist = identity.feature_distance(bench.classifier, images, unedited).tolist()
    out = []
    for i in range(images.shape[0]):
        if pair.kind == "digit":
            success = read[i] == pair.digit
        else:
            part, value = next(iter(pair.attribute.items()))
            success = read[i] == pair.digit and measured[i][f"{part}_class"] == value
        out.append(
            {
                "read_digit": int(read[i]),
                "thickness": round(measured[i]["thickness"], 4),
                "slant": round(measured[i]["slant"], 4),
                "thickness_class": measured[i]["thickness_class"],
                "slant_class": measured[i]["slant_class"],
                "success": bool(success),
                "ssim": round(float(ssim[i]), 5),
                "feature_distance": round(float(dist[i]), 5),
            }
        )
    return out


def run_pair(bench: Bench, pair: PromptPair, out: Path, edges, index: int) -> tuple[list[dict], dict]:
    """Train the pair's head, make and score every method's images for the test seeds."""
    args = bench.args
    name = f"bench_{index}"
    head, size, train_s = bench.train_head(pair, name)
    logger.info("  %s: head trained (%d bytes, %.0fs)", pair.name, size, train_s)
    seed, batch = index, args.test_images  # test noise seeds 0, 1, ...: below TRAIN_SEED
    x, step = bench.capture(pair.original, seed, batch, args.tx)
    z, _ = bench.capture(pair.target, seed, batch, args.tz)
    runs: list[tuple[str, float | None, torch.Tensor]] = []
    unedited = bench.pixels(bench.resume(x, pair.original, step, seed))
    runs.append(("unedited", None, unedited))
    runs.append(("target_prompt", None, bench.pixels(bench.sample(pair.target, seed, batch))))
    runs.append(("prompt_switch", None, bench.pixels(bench.resume(x, pair.target, step, seed))))
    paper = bench.merge(x, z, head, "paper", [1.0])
    runs.append(("avi_paper", 1.0, bench.pixels(bench.resume(paper, pair.original, step, seed))))
    anchored = bench.merge(x, z, head, "anchored", args.rhos)
    swept = bench.pixels(bench.resume(anchored, pair.original, step, seed))
    for j, rho in enumerate(args.rhos):
        runs.append(("avi_anchored", rho, swept[j * batch : (j + 1) * batch]))
    for rows in getattr(bench, "extra_rows", ()):  # --methods: tools/bench_rows_*.py (issues 9, 10)
        runs.extend(rows(bench, pair, x, step, seed, batch))
    entries = []
    safe = pair.name.replace("->", "-to-").replace(":", "_").replace(" ", "_")
    for method, rho, images in runs:
        scores = score(bench, pair, images, unedited, edges)
        for i in range(batch):
            tag = method if rho is None else f"{method}_{bench_rows.value_key(method)}{rho:g}"
            rel = Path("images") / f"{safe}_s{seed}_{i}_{tag}.png"
            save_png(images[i], out / rel)
            digit = pair.source_digit if method == "unedited" else pair.digit
            entry = {"path": str(rel), "method": method, "pair": pair.name, "seed": seed, "batch_index": i}
            if rho is not None:
                entry[bench_rows.value_key(method)] = rho  # rho, or strength / distance (bench_rows.py)
            entry["digit"] = digit
            if pair.kind == "style":
                entry["attribute"] = dict(pair.attribute)
            entry["kind"] = pair.kind
            entry["scores"] = scores[i]
            entries.append(entry)
    info = {
        "pair": pair.name,
        "kind": pair.kind,
        "original": pair.original,
        "target": pair.target,
        "head_bytes": size,
        "head_train_s": round(train_s, 1),
        "capture_step": step,
    }
    info.update(getattr(bench, "row_notes", {}).get(pair.name, {}))  # what the extra rows learned
    return entries, info


def summarise(entries: list[dict]) -> list[dict]:
    """Mean success / SSIM / feature distance per (kind, method, rho)."""
    groups: dict[tuple, list[dict]] = {}
    for e in entries:
        value = e.get("rho", e.get("strength", e.get("distance")))  # bench_rows.VALUE_KEYS
        groups.setdefault((e["kind"], e["method"], value), []).append(e["scores"])
    order = {"unedited": 0, "target_prompt": 1, "prompt_switch": 2, "avi_paper": 3, "avi_anchored": 4}
    order.update({m: 5 + i for i, m in enumerate(bench_rows.VALUE_KEYS)})  # then the extra rows
    rows = []
    for (kind, method, rho), scores in sorted(
        groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 9), kv[0][2] or 0)
    ):
        rows.append(
            {
                "kind": kind,
                "method": method,
                "rho": rho,
                "n": len(scores),
                "success": round(float(np.mean([s["success"] for s in scores])), 4),
                "ssim": round(float(np.mean([s["ssim"] for s in scores])), 4),
                "feature_distance": round(float(np.mean([s["feature_distance"] for s in scores])), 4),
            }
        )
    return rows


def edit_name(entry: dict) -> str:
    """The edit an entry belongs to, across test digits: "thin->thick", "upright->slanted right", or "3->8"."""
    return entry["pair"].split(":", 1)[1] if ":" in entry["pair"] else entry["pair"]


def summarise_edits(entries: list[dict]) -> list[dict]:
    """summarise() per edit (style edits pooled over their test digits; each digit change on its own)."""
    rows = []
    for edit in dict.fromkeys(edit_name(e) for e in entries):
        for row in summarise([e for e in entries if edit_name(e) == edit]):
            row["kind"] = edit
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| edits | method | rho | images | attribute success | SSIM to unedited | feature distance |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rho = "" if r["rho"] is None else f"{r['rho']:g}"
        lines.append(
            f"| {r['kind']} | {r['method']} | {rho} | {r['n']} | {r['success']:.0%} | {r['ssim']:.3f} | "
            f"{r['feature_distance']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def side_by_side(entries: list[dict], out: Path, path: Path, per_pair: int = 2, rho_shown: float = 1.0) -> None:
    """A grid: one row per (pair, seed image); columns unedited | avi_paper | avi_anchored (rho) | prompt_switch |
    target_prompt."""
    from PIL import Image, ImageDraw

    columns = [
        ("unedited", None),
        ("avi_paper", 1.0),
        ("avi_anchored", rho_shown),
        ("prompt_switch", None),
        ("target_prompt", None),
    ]
    by_key = {(e["pair"], e["batch_index"], e["method"], e.get("rho")): e for e in entries}
    pairs = list(dict.fromkeys(e["pair"] for e in entries))
    cell, label_w, head_h = 64, 120, 18
    rows = [(p, i) for p in pairs for i in range(per_pair) if (p, i, "unedited", None) in by_key]
    canvas = Image.new("L", (label_w + cell * len(columns), head_h + cell * len(rows)), 40)
    draw = ImageDraw.Draw(canvas)
    for c, (method, rho) in enumerate(columns):
        title = f"anchored {rho:g}" if method == "avi_anchored" else "AVI paper" if method == "avi_paper" else method
        draw.text((label_w + c * cell + 2, 3), title[:11], fill=255)
    for r, (p, i) in enumerate(rows):
        draw.text((4, head_h + r * cell + 26), f"{p} #{i}", fill=255)
        for c, (method, rho) in enumerate(columns):
            e = by_key.get((p, i, method, rho))
            if e is not None:
                canvas.paste(Image.open(out / e["path"]), (label_w + c * cell, head_h + r * cell))
    canvas.save(path)


def write_tables(out: Path, entries: list[dict], summary: list[dict]) -> None:
    """DIR/table.md (per kind, then per edit) and DIR/side_by_side.png; prints the tables."""
    text = table(summary) + "\n" + table(summarise_edits(entries))
    (out / "table.md").write_text(text)
    side_by_side(entries, out, out / "side_by_side.png")
    print(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--quick", action="store_true", help="one style edit, one digit change, few images (tests)")
    parser.add_argument("--steps", type=int, default=20, help="sampling steps (x at 0.8T, z at 0.5T of these)")
    parser.add_argument("--cfg", type=float, default=5.0)
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--scheduler", default="normal")
    parser.add_argument("--train-pairs", type=int, default=60, help="pairs each head is trained on")
    parser.add_argument("--test-images", type=int, default=8, help="held-out images per pair")
    parser.add_argument("--hidden", type=int, default=256, help="head width")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--k", type=int, default=0, help="0 = r/2 = 16")
    parser.add_argument("--tx", type=float, default=0.8, help="x's capture, a fraction of T (paper: 0.8)")
    parser.add_argument("--tz", type=float, default=0.5, help="z's capture, a fraction of T (paper: 0.5)")
    parser.add_argument("--rhos", default="0.25,0.5,1,1.5", help="anchored rho sweep")
    parser.add_argument("--pairs", default="", help="comma list of pair names to run (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    bench_rows.add_arguments(parser)  # --methods and the sweeps of the extra rows
    parser.add_argument(
        "--tables-only", action="store_true", help="only rewrite table.md and the picture from DIR/results.json"
    )
    args = parser.parse_args(argv)
    args.rhos = [float(r) for r in args.rhos.split(",") if r.strip()]
    if args.tables_only:
        results = json.loads((args.out / "results.json").read_text())
        write_tables(args.out, results["images"], summarise(results["images"]))
        return 0
    if args.quick:
        args.train_pairs, args.test_images, args.hidden, args.epochs = 10, 2, 256, 2
        args.steps, args.rhos = min(args.steps, 12), [0.5, 1.0]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not os.environ.get("COMFYUI_DIR"):
        parser.error("set COMFYUI_DIR to a ComfyUI checkout and run with its python")
    torch.set_num_threads(args.threads)
    start = time.time()
    out = args.out
    (out / "images").mkdir(parents=True, exist_ok=True)
    bench = Bench(args)
    bench.extra_rows = bench_rows.selected(args)
    from avi_pack.avi_core.digits import style

    edges = style.load_edges()
    pairs = [style_pair(d, *edit) for edit in STYLE_EDITS for d in STYLE_TEST_DIGITS]
    pairs += [digit_pair(a, b) for a, b in DIGIT_CHANGES]
    if args.quick:
        pairs = [style_pair(3, "thickness", "thin", "thick"), digit_pair(3, 8)]
    if args.pairs:
        wanted = {p.strip() for p in args.pairs.split(",")}
        pairs = [p for p in pairs if p.name in wanted]
    entries: list[dict] = []
    infos = []
    heads: dict[str, tuple] = {}
    for index, pair in enumerate(pairs):
        logger.info(
            "[%d/%d] %s: %r -> %r (%.0fs so far)",
            index + 1,
            len(pairs),
            pair.name,
            pair.original,
            pair.target,
            time.time() - start,
        )
        got, info = run_pair_cached(bench, pair, out, edges, index, heads)
        entries.extend(got)
        infos.append(info)
    summary = summarise(entries)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config.update(
        train_seed=TRAIN_SEED,
        wall_s=round(time.time() - start, 1),
        model="digit_unet.safetensors",
        classifier="digit_classifier.safetensors",
        style_edges=edges,
    )
    results = {"images": entries, "summary": summary, "pairs": infos, "config": config}
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(out / "results.json")
    write_tables(out, entries, summary)
    logger.info("done in %.0fs: %s", time.time() - start, out / "results.json")
    return 0


def run_pair_cached(bench, pair, out, edges, index, heads):
    """run_pair, training a style head once per style edit (shared by the test digits of that edit)."""
    if pair.kind == "style":
        key = pair.name.split(":", 1)[1]  # the edit ("thin->thick"), whatever the test digit
        original_train = bench.train_head
        if key in heads:
            bench.train_head = lambda p, n: heads[key]  # noqa: E731
        else:

            def train_once(p, n):
                heads[key] = original_train(p, n)
                return heads[key]

            bench.train_head = train_once
        try:
            return run_pair(bench, pair, out, edges, index)
        finally:
            bench.train_head = original_train
    return run_pair(bench, pair, out, edges, index)


if __name__ == "__main__":
    raise SystemExit(main())
