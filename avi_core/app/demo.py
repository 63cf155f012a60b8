"""`python -m avi_core demo`: the engine at work on synthetic latents, in well under a minute on a laptop CPU.

It trains a small head on synthetic paper-space pairs, merges held-out pairs with it, saves and reloads the
head, and checks each step, printing what it checked. Demo settings, not the paper's (see DEMO_*).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from ..avi.head_files import load_head, save_head
from ..avi.loss import DEFAULT_LAMBDAS, LOSS_NAMES
from ..avi.merge import merge_sweep
from ..avi.training import TrainingResult, train_head
from ..files.latent_files import write_latent_file
from ..latent.conventions import SD_SCALE_FACTOR as DEFAULT_SCALE_FACTOR
from ..latent.conventions import from_paper_space
from ..version import __version__
from .output import check_output, commit_output
from .progress import TerminalProgress

DEMO_PAIRS, DEMO_TEST_PAIRS, DEMO_CHANNELS, DEMO_SIZE = 64, 4, 4, 32
DEMO_HIDDEN, DEMO_EPOCHS, DEMO_SAMPLES_PER_EPOCH = 256, 2, 10240
# The noise levels the demo's .latent files are labelled with: synthetic, but x noisier than z, as `avi merge`
# requires (paper space is the same at any sigma, so the merge is the demo's own).
DEMO_SIGMA_X, DEMO_SIGMA_Z = 3.0, 1.0


def synthetic_pairs(
    pairs: int, seed: int, channels: int = DEMO_CHANNELS, size: int = DEMO_SIZE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paper-space x, z [pairs, channels, size, size] with a learnable 'attribute' (float32, unit scale).

    Every channel c has a fixed pair of orthonormal bases (the 'subject', shared by all pairs; seeded apart
    from `seed` so that train and test pairs share it). A pair's x puts a decaying spectrum, jittered per
    pair, on those bases; its z is the same matrix with the top three singular values raised 1.6x and the
    next three lowered to 0.8x (the 'attribute'), plus independent noise on both. The spectrum keeps its
    order, so the attribute is a change of singular values that a head can learn from x.
    """
    basis = torch.Generator().manual_seed(1234)
    left, _ = torch.linalg.qr(torch.randn(channels, size, size, generator=basis))
    right, _ = torch.linalg.qr(torch.randn(channels, size, size, generator=basis))
    gen = torch.Generator().manual_seed(seed)
    spectrum = 12.0 * 0.75 ** torch.arange(size, dtype=torch.float32) + 0.3
    jitter = (1 + 0.15 * torch.randn(pairs, channels, 1, generator=gen)) * (
        1 + 0.1 * torch.randn(pairs, channels, size, generator=gen)
    )
    values = spectrum * jitter.abs()
    gain = torch.ones(size)
    gain[:3], gain[3:6] = 1.6, 0.8
    x = left @ torch.diag_embed(values) @ right.mT
    z = left @ torch.diag_embed(values * gain) @ right.mT
    x = x + 0.02 * torch.randn(x.shape, generator=gen)
    z = z + 0.02 * torch.randn(z.shape, generator=gen)
    return x, z


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _weighted_windows(result: TrainingResult, lambdas: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted loss terms averaged over the first and the last tenth of the steps ([4] each)."""
    window = max(1, result.steps // 10)
    weights = torch.tensor(list(lambdas), dtype=torch.float32)
    return result.history[:window].mean(0) * weights, result.history[-window:].mean(0) * weights


def run_demo(seed: int, out_dir: Path) -> list[str]:
    """Train, merge, save and reload on synthetic data under `out_dir`; returns the failed checks."""
    failures: list[str] = []

    def check(ok: bool, text: str, failure: str) -> None:
        print(f"  [{'ok' if ok else 'FAILED'}] {text}")
        if not ok:
            failures.append(failure)

    started = time.perf_counter()
    x, z = synthetic_pairs(DEMO_PAIRS, seed)
    x_test, z_test = synthetic_pairs(DEMO_TEST_PAIRS, seed + 1)
    print(
        f"AVI demo (pack {__version__}): synthetic paper-space latents, {DEMO_PAIRS} training pairs of "
        f"{DEMO_CHANNELS}x{DEMO_SIZE}x{DEMO_SIZE}; z = x with its top singular values changed"
    )
    print(
        f"demo settings, not the paper's: hidden {DEMO_HIDDEN} (paper 4096), {DEMO_EPOCHS} epochs of "
        f"{DEMO_SAMPLES_PER_EPOCH} channel samples (paper 5 of 5000, on 64x64 latents)",
        flush=True,  # before the progress bar's stderr, also when stdout is a pipe
    )
    with TerminalProgress("training") as bar:
        result = train_head(
            x,
            z,
            epochs=DEMO_EPOCHS,
            hidden=DEMO_HIDDEN,
            seed=seed,
            samples_per_epoch=DEMO_SAMPLES_PER_EPOCH,
            progress=bar,
        )
    head = result.head
    print(f"trained {result.steps} steps in {result.seconds:.1f} s")
    first, last = _weighted_windows(result, DEFAULT_LAMBDAS)
    print("weighted loss terms, mean of the first and the last tenth of the steps:")
    for index, name in enumerate(LOSS_NAMES):
        weight = DEFAULT_LAMBDAS[index]
        check(
            bool(last[index] < first[index]),
            f"{weight:g}*{name}: {first[index]:10.4g} -> {last[index]:10.4g}",
            f"the weighted {name} did not fall",
        )

    print(f"merging {DEMO_TEST_PAIRS} held-out pairs (not seen in training):")
    y0 = merge_sweep(x_test, z_test, head, [0.0], mode="anchored")
    error0 = _relative(y0, x_test)
    check(
        error0 < 1e-4,
        f"anchored, rho=0 returns x: relative error {error0:.2e}",
        "anchored rho=0 did not return x",
    )
    sweep = merge_sweep(x_test, z_test, head, [0.0, 0.5, 1.0], mode="anchored").reshape(3, *x_test.shape)
    distance = [_relative(sweep[i], z_test) / _relative(x_test, z_test) for i in range(3)]
    check(
        distance[2] < 0.5 and distance[2] < distance[1] < distance[0] + 1e-6,
        "anchored, distance to z relative to x's: rho=0 {:.3f}, rho=0.5 {:.3f}, rho=1 {:.3f}".format(*distance),
        "the merge did not move toward z as rho grew",
    )
    y_paper = merge_sweep(x_test, z_test, head, [1.0], mode="paper")
    paper_distance = _relative(y_paper, z_test) / _relative(x_test, z_test)
    check(
        paper_distance < 0.5,
        f"paper mode, rho=1: distance to z {paper_distance:.3f} of x's",
        "the paper-mode merge did not move toward z",
    )

    metadata = {
        "name": "demo-head",
        "description": "avi demo: synthetic attribute (not a real one)",
        "source": "synthetic demo data",
        "x_sigma": DEMO_SIGMA_X,
        "z_sigma": DEMO_SIGMA_Z,
        "scale_factor": DEFAULT_SCALE_FACTOR,
    }
    path = commit_output(
        out_dir / "demo-head.safetensors", lambda temp: save_head(head, temp, metadata=metadata), last=False
    )
    reloaded = load_head(path)
    y_reloaded = merge_sweep(x_test, z_test, reloaded, [1.0], mode="paper")
    check(
        torch.equal(y_reloaded, y_paper),
        f"saved {path.name} ({path.stat().st_size / 2**20:.1f} MiB), reloaded: same merge, bit for bit",
        "the reloaded head merges differently",
    )
    # The held-out latents as ComfyUI would save them at the demo's sigmas, to try `avi merge` on.
    for name, latent, sigma in (("x", x_test, DEMO_SIGMA_X), ("z", z_test, DEMO_SIGMA_Z)):
        comfy = from_paper_space(latent, sigma, DEFAULT_SCALE_FACTOR)
        commit_output(out_dir / f"{name}.latent", lambda temp, comfy=comfy: write_latent_file(temp, comfy), last=False)
    print(f"demo took {time.perf_counter() - started:.1f} s")
    return failures


def cmd_demo(args: argparse.Namespace) -> int:
    threads = torch.get_num_threads()
    if args.threads is None:
        # The demo's tensors are tiny: one thread is as fast, and several threads on a busy machine (CI, a
        # laptop doing other work) spin-wait for each other and can make it many times slower.
        torch.set_num_threads(1)
    try:
        return _demo(args)
    finally:
        torch.set_num_threads(threads)


def _demo(args: argparse.Namespace) -> int:
    if args.out_dir is not None:
        check_output(args.out_dir / "demo-head.safetensors", option="--out-dir")
        failures = run_demo(args.seed, args.out_dir)
        out = args.out_dir
        print(
            f"kept in {out}: demo-head.safetensors, x.latent, z.latent. Try:\n"
            f"  python -m avi_core info {out / 'demo-head.safetensors'}\n"
            f"  python -m avi_core merge --original {out / 'x.latent'} --target {out / 'z.latent'} "
            f"--head {out / 'demo-head.safetensors'} --sigma-x {DEMO_SIGMA_X:g} --sigma-z {DEMO_SIGMA_Z:g} "
            f"--rho-list 0,0.5,1 "
            f"--out {out / 'y.latent'}"
        )
    else:
        with tempfile.TemporaryDirectory(prefix="avi-demo-") as temp:
            failures = run_demo(args.seed, Path(temp))
    if failures:
        print(f"demo FAILED: {'; '.join(failures)}")
        return 1
    print("demo ok")
    return 0
