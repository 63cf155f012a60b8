"""Real digits through inversion (spec section 10, issue 11 item 3): invert the 1,000 held-out real digits of the
pack's digit model to 0.8T with the pack's real 'AVI Invert' node and resume them with the same prompt through
ComfyUI's KSamplerAdvanced; report the reconstruction PSNR in pixels. Optionally (--edit) edit held-out real
digits with AVI (invert -> 'AVI Merge' with a head the edit benchmark trains -> resume) and score them as rows
`avi_real` of the edit-quality benchmark.

    COMFYUI_DIR=/path/to/ComfyUI /path/to/ComfyUI/.venv/bin/python tools/inversion_benchmark.py --out inv_out
    ... --quick                # 20 digits, one setting: for tests
    ... --count 200            # the first 200 held-out digits (every digit equally: 20 of each)
    ... --edit                 # also the avi_real edit rows (trains the benchmark's heads)

Everything runs through the nodes, inside the host, as tools/edit_benchmark.py does (its Bench class): the image
(64 x 64 grey digit, ComfyUI IMAGE) goes into 'AVI Invert' with the digit model's VAE ('AVI Load Digit Model'),
the prompt is made by 'AVI Digit Prompt' (the digit's prompt "a handwritten 3", or with --style measured the
digit's measured thickness and slant: "a thick handwritten 3, slanted right"), and the inverted latent (with its
capture record, step = 0.8T) is resumed by KSamplerAdvanced (start_at_step = the step, add_noise disable). PSNR is
in pixels in [0, 1] between the 64 x 64 frame that was inverted and the decoded reconstruction.

Writes DIR/inversion.json (per setting: mean, median, 5th percentile PSNR, per digit means, the per-image values),
DIR/inversion.md (the table), DIR/reconstructions.png (originals above reconstructions) and, with --edit,
DIR/results.json in the edit benchmark's schema (methods `unedited_real` = the real digit's reconstruction,
`prompt_switch_real`, `avi_real` = paper mode rho 1, `avi_real_anchored` over the rho sweep; `original_real`, the
held-out digit itself), DIR/table.md and DIR/side_by_side.png.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
logger = logging.getLogger("inversion_benchmark")

MNIST_CANDIDATES = (ROOT.parent.parent / "shared" / "data" / "mnist", ROOT.parent / "shared" / "data" / "mnist")


def find_mnist(given: Path | None) -> Path:
    for folder in ([given] if given else []) + [Path(p) for p in MNIST_CANDIDATES] + [Path("/work/shared/data/mnist")]:
        if folder and folder.is_dir():
            return folder
    raise SystemExit("MNIST not found: pass --mnist DIR (the folder with t10k-images-idx3-ubyte[.gz])")


def held_out(mnist: Path, count: int) -> tuple[torch.Tensor, np.ndarray]:
    """The first `count` held-out digits taken round-robin over the digits (equal numbers of each when count is a
    multiple of 10): frames [N, 1, 64, 64] in [0, 1] and labels [N]."""
    from avi_pack.avi_core.digits import data

    digits = data.load_mnist(mnist)
    _, held = data.held_out_split(digits.labels)
    labels = digits.labels[held]
    per_digit = [held[labels == d] for d in range(10)]
    order = [int(per_digit[d][i]) for i in range(max(len(p) for p in per_digit)) for d in range(10)]
    chosen = np.array(order[:count], dtype=np.int64)
    subset = digits.subset(chosen)
    return data.to_frame(subset.images), subset.labels


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image PSNR (dB) between pixels in [0, 1], [N, 1, H, W] each -> [N] (capped at 100 dB)."""
    mse = ((a.to(torch.float64) - b.to(torch.float64)) ** 2).flatten(1).mean(1)
    return (10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))).to(torch.float32)


def summary(values: np.ndarray) -> dict:
    return {
        "n": int(values.shape[0]),
        "mean": round(float(values.mean()), 3),
        "median": round(float(np.median(values)), 3),
        "p5": round(float(np.percentile(values, 5)), 3),
        "min": round(float(values.min()), 3),
    }


class Inverter:
    """The edit benchmark's Bench plus 'AVI Invert' on real digits."""

    def __init__(self, bench) -> None:
        self.bench = bench
        self.node = bench.nodes["AVIInvert"]

    def cond(self, prompt: str | list[str]):
        """'AVI Digit Prompt' for one prompt, or for a list (one per batch item: the node's conditioning tensors
        [1, tokens, dim] stacked to [B, tokens, dim], which ComfyUI pairs with the latent batch item by item)."""
        if isinstance(prompt, str):
            return self.bench.cond(prompt)
        tensors = [self.bench.cond(p)[0][0] for p in prompt]
        return [[torch.cat(tensors, dim=0), {"pooled_output": None}]]

    def invert(self, frames: torch.Tensor, prompt: str | list[str], refine: int, cfg: float, stop_at: float = 0.8):
        """frames [B, 1, 64, 64] -> (x at the stop step with its record, step, noise at step 0, seed)."""
        image = frames[:, 0, :, :, None].expand(-1, -1, -1, 3).contiguous()  # ComfyUI IMAGE [B, H, W, 3]
        args = self.bench.args
        with torch.inference_mode():
            x, step, noise, seed = self.node.execute(
                model=self.bench.model,
                positive=self.cond(prompt),
                negative=self.bench.negative,
                steps=args.steps,
                cfg=cfg,
                sampler_name=args.sampler,
                scheduler=args.scheduler,
                stop_at=stop_at,
                stop_step=0,
                refine=refine,
                image=image,
                vae=self.bench.vae,
            ).args
        return x, step, noise, seed

    def resume(self, latent: dict, prompt: str | list[str], start: int, cfg: float) -> torch.Tensor:
        """KSamplerAdvanced from `start` (add_noise disable) -> pixels [B, 1, 64, 64]."""
        bench = self.bench
        with torch.inference_mode():
            out = bench.tiny.ksampler_advanced(
                bench.model,
                self.cond(prompt),
                bench.negative,
                latent,
                seed=0,
                steps=bench.args.steps,
                start=start,
                add_noise=False,
                cfg=cfg,
                sampler_name=bench.args.sampler,
                scheduler=bench.args.scheduler,
            )
        return bench.pixels(out["samples"])


def prompts_for(frames: torch.Tensor, labels: np.ndarray, style_mode: str, edges) -> list[str]:
    from avi_pack.avi_core.digits import prompts, style

    if style_mode == "none":
        return [prompts.build_prompt(int(d)) for d in labels]
    measured = style.styles(frames, edges)
    return [
        prompts.build_prompt(int(d), m["thickness_class"], m["slant_class"])
        for d, m in zip(labels, measured, strict=True)
    ]


def reconstruct(inv: Inverter, frames, labels, texts, refine: int, cfg: float, batch: int, tag: str, t0: float):
    """Invert and resume every frame, `batch` at a time (each with its own prompt).

    Returns (reconstructions [N, 1, 64, 64], the stop step)."""
    out = torch.zeros_like(frames)
    step = None
    for s in range(0, frames.shape[0], batch):
        part = list(range(s, min(s + batch, frames.shape[0])))
        texts_part = [texts[i] for i in part]
        x, step, _, _ = inv.invert(frames[part], texts_part, refine, cfg)
        out[part] = inv.resume(x, texts_part, step, cfg)
        logger.info("  %s: %d/%d digits (%.0fs)", tag, part[-1] + 1, frames.shape[0], time.time() - t0)
    return out, step


def grid(frames: torch.Tensor, rows: list[torch.Tensor], path: Path, columns: int = 20) -> None:
    """Originals and reconstructions, one strip each, `columns` digits wide."""
    from PIL import Image

    n = min(columns, frames.shape[0])
    strips = [frames[:n]] + [r[:n] for r in rows]
    canvas = Image.new("L", (64 * n, 64 * len(strips)), 0)
    for r, strip in enumerate(strips):
        for c in range(n):
            a = (strip[c, 0].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
            canvas.paste(Image.fromarray(a, mode="L"), (64 * c, 64 * r))
    canvas.save(path)


# --- (b) real digits edited with AVI --------------------------------------------------------------------------


def edit_real(bench, inv: Inverter, frames, labels, edges, out: Path, args) -> list[dict]:
    """For the benchmark's pairs: held-out real digits of the source digit (and, for a style edit, of the source
    style) inverted to x with the original prompt; z = the target prompt captured from the fully inverted
    latent (add_noise disable, noise_seed = the inversion's seed, as the 'edit a photo' workflow does); 'AVI Merge'
    paper mode rho = 1 and anchored over the rho sweep, resumed with the original prompt. The unedited image is
    the reconstruction (x resumed with the original prompt); prompt_switch (x resumed with the target prompt)
    beside it as the real-image baseline."""
    import edit_benchmark as eb
    from avi_pack.avi_core.digits import style

    pairs = [eb.style_pair(d, *edit) for edit in eb.STYLE_EDITS for d in eb.STYLE_TEST_DIGITS]
    pairs += [eb.digit_pair(a, b) for a, b in eb.DIGIT_CHANGES]
    if args.quick:
        pairs = [eb.style_pair(3, "thickness", "thin", "thick"), eb.digit_pair(3, 8)]
    measured = style.styles(frames, edges)
    heads: dict[str, tuple] = {}
    entries: list[dict] = []
    (out / "images").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for index, pair in enumerate(pairs):
        from avi_pack.avi_core.digits.prompts import parse_prompt

        src = parse_prompt(pair.original)
        pick = [
            i
            for i in range(frames.shape[0])
            if int(labels[i]) == pair.source_digit
            and (
                pair.kind == "digit"
                or measured[i][f"{next(iter(pair.attribute))}_class"] == getattr(src, next(iter(pair.attribute)))
            )
        ][: args.edit_images]
        if not pick:
            logger.info("[%d/%d] %s: no held-out digit of that kind, skipped", index + 1, len(pairs), pair.name)
            continue
        key = pair.name.split(":")[-1] if pair.kind == "style" else pair.name
        if key not in heads:
            heads[key] = bench.train_head(pair, f"real_{index}")
        head = heads[key][0]
        logger.info("[%d/%d] %s: %d real digits (%.0fs)", index + 1, len(pairs), pair.name, len(pick), time.time() - t0)
        x, step, noise, seed = inv.invert(frames[pick], pair.original, args.refine_edit, bench.args.cfg, args.tx)
        z, _ = capture_from(bench, noise, pair.target, seed, args.tz)
        runs = [("original_real", None, frames[pick])]
        runs.append(("unedited_real", None, inv.resume(x, pair.original, step, bench.args.cfg)))
        runs.append(("prompt_switch_real", None, inv.resume(x, pair.target, step, bench.args.cfg)))
        paper = bench.merge(x, z, head, "paper", [1.0])
        runs.append(("avi_real", 1.0, inv.resume(paper, pair.original, step, bench.args.cfg)))
        anchored = bench.merge(x, z, head, "anchored", bench.args.rhos)
        swept = inv.resume(anchored, pair.original, step, bench.args.cfg)
        b = len(pick)
        for j, rho in enumerate(bench.args.rhos):
            runs.append(("avi_real_anchored", rho, swept[j * b : (j + 1) * b]))
        unedited = runs[1][2]
        safe = pair.name.replace("->", "-to-").replace(":", "_").replace(" ", "_")
        for method, rho, images in runs:
            scores = eb.score(bench, pair, images, unedited, edges)
            for i in range(b):
                tag = method if rho is None else f"{method}_rho{rho:g}"
                rel = Path("images") / f"real_{safe}_{i}_{tag}.png"
                eb.save_png(images[i], out / rel)
                entry = {"path": str(rel), "method": method, "pair": pair.name, "seed": int(seed), "batch_index": i}
                if rho is not None:
                    entry["rho"] = rho
                references = ("original_real", "unedited_real")
                entry["digit"] = pair.source_digit if method in references else pair.digit
                if pair.kind == "style":
                    entry["attribute"] = dict(pair.attribute)
                entry["kind"] = pair.kind
                entry["real"] = {"held_out_position": int(pick[i]), "label": int(labels[pick[i]])}
                entry["scores"] = scores[i]
                entries.append(entry)
    return entries


def side_by_side(entries: list[dict], out: Path, path: Path, per_pair: int = 2) -> None:
    """Rows (pair, real digit); columns: the real digit | its reconstruction | AVI paper | AVI anchored rho 1 |
    prompt switch."""
    from PIL import Image, ImageDraw

    columns = [
        ("original_real", None, "real digit"),
        ("unedited_real", None, "inverted"),
        ("avi_real", 1.0, "AVI paper"),
        ("avi_real_anchored", 1.0, "anchored 1"),
        ("prompt_switch_real", None, "switch"),
    ]
    by_key = {(e["pair"], e["batch_index"], e["method"], e.get("rho")): e for e in entries}
    pairs = list(dict.fromkeys(e["pair"] for e in entries))
    cell, label_w, head_h = 64, 120, 18
    rows = [(p, i) for p in pairs for i in range(per_pair) if (p, i, "original_real", None) in by_key]
    canvas = Image.new("L", (label_w + cell * len(columns), head_h + cell * len(rows)), 40)
    draw = ImageDraw.Draw(canvas)
    for c, (_, _, title) in enumerate(columns):
        draw.text((label_w + c * cell + 2, 3), title[:11], fill=255)
    for r, (p, i) in enumerate(rows):
        draw.text((4, head_h + r * cell + 26), f"{p} #{i}", fill=255)
        for c, (method, rho, _) in enumerate(columns):
            e = by_key.get((p, i, method, rho))
            if e is not None:
                canvas.paste(Image.open(out / e["path"]), (label_w + c * cell, head_h + r * cell))
    canvas.save(path)


def capture_from(bench, noise: dict, prompt: str, seed: int, stop_at: float):
    """'AVI Capture Latent at Step' from the inverted noise (add_noise disable): z of a real image."""
    with torch.inference_mode():
        return (
            bench.nodes["AVICaptureLatentAtStep"]
            .execute(
                model=bench.model,
                add_noise="disable",
                noise_seed=seed,
                steps=bench.args.steps,
                cfg=bench.args.cfg,
                sampler_name=bench.args.sampler,
                scheduler=bench.args.scheduler,
                positive=bench.cond(prompt),
                negative=bench.negative,
                latent_image=noise,
                stop_at=stop_at,
                stop_step=0,
            )
            .args
        )


def write_json(data: dict, path: Path) -> None:
    """`data` as JSON at `path`, written to a temporary name and renamed."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--quick", action="store_true", help="20 digits, one setting (tests)")
    parser.add_argument("--count", type=int, default=1000, help="held-out digits to invert (at most 1000)")
    parser.add_argument("--steps", type=int, default=20, help="sampling steps (the edit benchmark's)")
    parser.add_argument("--cfg", type=float, default=3.0, help="CFG of the edit rows (3: BENCHMARKS.md)")
    parser.add_argument("--cfgs", default="3,1", help="CFGs to measure the reconstruction at (invert and resume)")
    parser.add_argument("--refines", default="0,2", help="AVI Invert refine values to measure (0 = plain DDIM)")
    parser.add_argument("--style", default="measured", choices=("measured", "none", "both"), help="prompt style")
    parser.add_argument("--sampler", default="euler", choices=("euler", "ddim"))
    parser.add_argument("--scheduler", default="normal")
    parser.add_argument("--batch", type=int, default=100, help="digits per node call")
    parser.add_argument("--mnist", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--edit", action="store_true", help="also edit real digits with AVI (rows avi_real)")
    parser.add_argument("--edit-images", type=int, default=6, help="real digits per edit pair")
    parser.add_argument("--refine-edit", type=int, default=0, help="refine of the edit's inversion")
    # the edit benchmark's head settings (edit_benchmark.Bench reads them)
    parser.add_argument("--train-pairs", type=int, default=40)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--k", type=int, default=0)
    parser.add_argument("--rhos", default="0.5,1,1.5")
    parser.add_argument("--tx", type=float, default=0.8, help="where x is (inversion stop and head training), of T")
    parser.add_argument("--tz", type=float, default=0.5, help="where z is captured (edit rows), a fraction of T")
    args = parser.parse_args(argv)
    args.rhos = [float(r) for r in args.rhos.split(",") if r.strip()]
    cfgs = [float(c) for c in args.cfgs.split(",") if c.strip()]
    refines = [int(r) for r in args.refines.split(",") if r.strip()]
    styles = ["measured", "none"] if args.style == "both" else [args.style]
    if args.quick:
        args.count, cfgs, refines, styles = min(args.count, 20), [args.cfg], [0], [styles[0]]
        args.train_pairs, args.edit_images, args.epochs, args.rhos = 10, 2, 2, [1.0]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not os.environ.get("COMFYUI_DIR"):
        parser.error("set COMFYUI_DIR to a ComfyUI checkout and run with its python")
    torch.set_num_threads(args.threads)
    t0 = time.time()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    import edit_benchmark as eb

    bench = eb.Bench(args)
    inv = Inverter(bench)
    from avi_pack.avi_core.digits import style

    edges = style.load_edges()
    frames, labels = held_out(find_mnist(args.mnist), min(args.count, 1000))
    logger.info("%d held-out real digits; settings: cfg %s, refine %s, style %s", len(labels), cfgs, refines, styles)
    settings = []
    shown = []
    for style_mode in styles:
        texts = prompts_for(frames, labels, style_mode, edges)
        for cfg in cfgs:
            for refine in refines:
                tag = f"style={style_mode} cfg={cfg:g} refine={refine}"
                start = time.time()
                rec, step = reconstruct(inv, frames, labels, texts, refine, cfg, args.batch, tag, t0)
                values = psnr(frames, rec).numpy()
                if not np.isfinite(values).all() or not torch.isfinite(rec).all():
                    raise SystemExit(f"non-finite reconstruction at {tag}")
                row = {
                    "style": style_mode,
                    "cfg": cfg,
                    "refine": refine,
                    "sampler": args.sampler,
                    "scheduler": args.scheduler,
                    "steps": args.steps,
                    "stop_at": 0.8,
                    "step": step,
                    "seconds": round(time.time() - start, 1),
                    **summary(values),
                    "per_digit_mean": [round(float(values[labels == d].mean()), 3) for d in range(10)],
                    "psnr": [round(float(v), 3) for v in values],
                }
                settings.append(row)
                shown.append(rec)
                logger.info("%s: PSNR mean %.2f median %.2f p5 %.2f dB", tag, row["mean"], row["median"], row["p5"])
    grid(frames, shown, out / "reconstructions.png")
    result = {
        "settings": settings,
        "config": {
            "count": int(len(labels)),
            "labels": [int(v) for v in labels],
            "model": "digit_unet.safetensors",
            "node": "AVIInvert (image + AVI Load Digit Model's VAE) -> KSamplerAdvanced (add_noise disable)",
            "wall_s": round(time.time() - t0, 1),
        },
    }
    lines = [
        "| prompt | sampler | steps | CFG | refine | x step | digits | PSNR mean | median | 5th pct | min |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in settings:
        lines.append(
            f"| {'digit + measured style' if r['style'] == 'measured' else 'digit only'} | {r['sampler']} | "
            f"{r['steps']} | {r['cfg']:g} | {r['refine']} | {r['step']} (0.8T) | {r['n']} | {r['mean']:.2f} | "
            f"{r['median']:.2f} | {r['p5']:.2f} | {r['min']:.2f} |"
        )
    (out / "inversion.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    write_json(result, out / "inversion.json")  # again at the end, with the total wall time
    if args.edit:
        entries = edit_real(bench, inv, frames, labels, edges, out, args)
        rows = eb.summarise(entries)
        results = {"images": entries, "summary": rows, "config": {**result["config"], "edit": True}}
        tmp = out / "results.json.tmp"
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(out / "results.json")
        (out / "table.md").write_text(eb.table(rows))
        side_by_side(entries, out, out / "side_by_side.png")
        print(eb.table(rows))
    result["config"]["wall_s"] = round(time.time() - t0, 1)
    write_json(result, out / "inversion.json")
    logger.info("done in %.0fs: %s", time.time() - t0, out / "inversion.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
