"""Train the digit model: ComfyUI's own SD2 UNet class (comfy.supported_models.SD20, small unet_config) on
the 9,000 training images of the MNIST test set (spec section 12, issue 12).

Run with the host's python (it builds the UNet with ComfyUI's code, so the weights load into ComfyUI's SD20):

    COMFYUI_DIR=/path/to/ComfyUI /path/to/ComfyUI/.venv/bin/python tools/train_digit_model.py \
        --steps 3000 --out avi_core/digits/weights/digit_unet.safetensors

Seeded and reproducible on one machine (same seed, threads and torch: the same weights). Eps prediction on
SD's discrete schedule (T = 1000, uniform timesteps), prompts built from each image's digit and measured
style with each part dropped at random (so CFG works and any part may be left out), Adam with warmup and
cosine decay, an exponential moving average of the weights (what is saved). A snapshot of the EMA weights is
written atomically every --snapshot-every steps, so a usable model exists if the run is stopped.
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
sys.path.insert(0, str(ROOT))

from avi_core.digits import data, latent_map, prompts, style  # noqa: E402
from avi_core.digits.model_config import NUM_HEAD_CHANNELS, alphas_cumprod, unet_config  # noqa: E402

logger = logging.getLogger("train_digit_model")


def host_unet(config: dict) -> torch.nn.Module:
    """ComfyUI's UNet of SD20 class for `config` (fp32, CPU), default-initialised from torch's global RNG."""
    host = os.environ.get("COMFYUI_DIR")
    if not host:
        raise SystemExit("set COMFYUI_DIR to a ComfyUI checkout and run with its python")
    sys.path.insert(0, host)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.model_base
    import comfy.supported_models

    sd20 = comfy.supported_models.SD20(dict(config))
    sd20.unet_config["num_head_channels"] = NUM_HEAD_CHANNELS
    sd20.set_inference_dtype(torch.float32, None)
    model = comfy.model_base.BaseModel(sd20, model_type=comfy.model_base.ModelType.EPS, device=torch.device("cpu"))
    unet = model.diffusion_model
    # ComfyUI's layers skip initialisation (weights come from a file); give them torch's defaults.
    for module in unet.modules():
        for base in (torch.nn.Linear, torch.nn.Conv2d, torch.nn.GroupNorm, torch.nn.LayerNorm):
            if isinstance(module, base):
                base.reset_parameters(module)
                break
    # Start the output at zero, as SD's zero_module does.
    with torch.no_grad():
        unet.out[-1].weight.zero_()
        unet.out[-1].bias.zero_()
    return unet.float().train()


def training_set(mnist: Path):
    """(x0 [N, 4, 32, 32] in model space, token ids [N, 3], thickness/slant edges) of the 9,000 training images."""
    digits = data.load_mnist(mnist)
    train_index, _ = data.held_out_split(digits.labels)
    train = digits.subset(train_index)
    frames = data.to_frame(train.images)
    t = style.thickness(frames)
    s = style.slant(frames)
    try:
        edges = style.load_edges()
    except Exception:  # noqa: BLE001 - first run: compute and store them
        edges = {"thickness": style.tercile_edges(t), "slant": style.tercile_edges(s)}
        style.save_edges(style.EDGES_FILE, edges["thickness"], edges["slant"])
    tc = style.classify(t, edges["thickness"], style.THICKNESS)
    sc = style.classify(s, edges["slant"], style.SLANT)
    ids = torch.tensor(
        [prompts.token_ids(prompts.DigitPrompt(int(d), a, b)) for d, a, b in zip(train.labels, tc, sc, strict=True)],
        dtype=torch.int64,
    )
    x0 = latent_map.encode(frames) * latent_map.SCALE_FACTOR
    return x0, ids, edges


def drop_parts(ids: torch.Tensor, generator: torch.Generator, p_part: float, p_all: float) -> torch.Tensor:
    """Replace each part by its "not named" row with probability p_part, and all of them with p_all."""
    none = torch.tensor([10, len(style.THICKNESS), len(style.SLANT)], dtype=torch.int64)
    drop = torch.rand(ids.shape, generator=generator) < p_part
    drop |= torch.rand((ids.shape[0], 1), generator=generator) < p_all
    return torch.where(drop, none.expand_as(ids), ids)


def save(unet_ema: dict, path: Path, meta: dict) -> None:
    """Write the EMA weights as safetensors (fp16 where that keeps the file small), atomically."""
    from safetensors.torch import save_file

    dtype = torch.float16 if meta.get("dtype") == "float16" else torch.float32
    tensors = {k: v.detach().to(dtype).contiguous() for k, v in unet_ema.items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={k: json.dumps(v) for k, v in meta.items()})
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", type=Path, default=ROOT.parent.parent / "shared" / "data" / "mnist")
    parser.add_argument("--out", type=Path, default=ROOT / "avi_core" / "digits" / "weights" / "digit_unet.safetensors")
    parser.add_argument("--steps", type=int, default=1800)
    parser.add_argument(
        "--stop-at",
        type=int,
        default=0,
        help="end after this many steps of the --steps schedule (0 = all); equals that run's snapshot at the step",
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--ema", type=float, default=0.995)
    parser.add_argument("--p-part", type=float, default=0.2, help="drop probability of each prompt part")
    parser.add_argument("--p-all", type=float, default=0.1, help="drop probability of the whole prompt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--snapshot-every", type=int, default=200)
    parser.add_argument("--dtype", choices=["float16", "float32"], default="float32")
    parser.add_argument("--channels", type=int, default=None, help="model_channels (default: the config's)")
    args = parser.parse_args(argv)
    if not args.mnist.is_dir():
        args.mnist = Path("/work/shared/data/mnist")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    overrides = {} if args.channels is None else {"model_channels": args.channels}
    config = unet_config(**overrides)
    unet = host_unet(config)
    n_params = sum(p.numel() for p in unet.parameters())
    logger.info("UNet: %d parameters", n_params)
    x0_all, ids_all, edges = training_set(args.mnist)
    logger.info("training images: %d; edges %s", x0_all.shape[0], edges)

    abar = alphas_cumprod().to(torch.float32)
    generator = torch.Generator().manual_seed(args.seed)
    opt = torch.optim.Adam(unet.parameters(), lr=args.lr)
    ema = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    start = time.time()
    window: list[float] = []
    history: list[tuple[int, float]] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def snapshot(step: int, final: bool = False) -> None:
        meta = {
            "format": "avi_digit_unet",
            "version": 1,
            "unet_config": config,
            "num_head_channels": NUM_HEAD_CHANNELS,
            "steps": step,
            "final": final,
            "loss_last_500": float(np.mean([h[1] for h in history[-10:]])) if history else None,
            "loss_history": history,
            "batch": args.batch,
            "lr": args.lr,
            "seed": args.seed,
            "ema": args.ema,
            "p_part": args.p_part,
            "p_all": args.p_all,
            "split_seed": data.SPLIT_SEED,
            "wall_s": round(time.time() - start, 1),
            "threads": args.threads,
            "dtype": args.dtype,
            "style_edges": edges,
        }
        save(ema, args.out, meta)
        logger.info("snapshot at step %d -> %s", step, args.out)

    last = args.stop_at if 0 < args.stop_at < args.steps else args.steps
    for step in range(1, last + 1):
        lr = args.lr * min(1.0, step / args.warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / args.steps)))
        lr = max(lr, args.lr * 0.02) if step > args.warmup else lr
        for group in opt.param_groups:
            group["lr"] = lr
        index = torch.randint(0, x0_all.shape[0], (args.batch,), generator=generator)
        x0 = x0_all[index]
        ids = drop_parts(ids_all[index], generator, args.p_part, args.p_all)
        context = prompts.encode_ids(ids)
        t = torch.randint(0, 1000, (args.batch,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        a = abar[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        pred = unet(xt, timesteps=t.to(torch.float32), context=context)
        loss = torch.nn.functional.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for k, v in unet.state_dict().items():
                if v.dtype.is_floating_point:
                    ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay)
                else:
                    ema[k].copy_(v)
        window.append(float(loss.detach()))
        if step % 50 == 0 or step == args.steps:
            mean = float(np.mean(window))
            history.append((step, round(mean, 5)))
            window.clear()
            elapsed = time.time() - start
            logger.info(
                "step %d/%d loss %.5f lr %.2e %.2f steps/s elapsed %.0fs",
                step,
                args.steps,
                mean,
                lr,
                step / elapsed,
                elapsed,
            )
        if step % args.snapshot_every == 0 and step < args.steps:
            snapshot(step)
    snapshot(last, final=True)
    logger.info("done: %d steps in %.0fs", last, time.time() - start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
