"""`python -m avi_core bench`: how fast the engine runs on this machine, printed and optionally as JSON.

One run measures, on one device (`--device`, default cuda when available, else cpu):
- SVD of [B, n, n] channel matrices (B = 4, 256, 20000 at n = 64; B = 4096 at n = 96 and 128): the
  project's backend (`channel_svd(backend="auto")`, or whatever AVI_SVD_BACKEND forces), against
  `torch.linalg.svd` on the same tensors, and on CUDA against the hardware floor
  max(B * bytes / memory bandwidth, B * 21 n^3 / fp32 peak) for a GPU of known (or given) specifications;
- Merge (`avi_core.merge`, the head's forward and both SVDs included) of a [1, 4, 64, 64] and a
  [16, 4, 64, 64] latent with a paper-size head (hidden 4096), against the 6.2 s of 50-step SD 2.1 sampling
  that the paper's edit accompanies;
- with `--also NAME` (repeatable), the same SVD cases with another backend, e.g. `--also jacobi --also triton`
  on a GPU; a backend that cannot run here (triton without CUDA) is skipped with a message;
- paper-default training (`avi_core.train_head`: 5 epochs, batch 256, Adam 1e-3, hidden 4096) on 5000
  synthetic [4, 64, 64] pairs: seconds, samples per second and peak memory.

Timings: one warm-up call, then repeats until `--repeats` or the per-case time budget is reached; the median
is reported. On CUDA every timed call is bracketed by torch.cuda.synchronize().
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm

from ..avi.head import AttributeHead
from ..avi.merge import merge
from ..avi.training import train_head
from ..errors import AVIError
from ..latent.svd import BACKENDS, ENV_VAR, backend_unavailable_reason, channel_svd, resolve_backend
from ..latent.triton_svd import interpreting, triton_svd_with_sweeps
from ..version import __version__
from .cli.fixes import error_line
from .interrupt import EXIT_INTERRUPTED, GUARD
from .output import check_output, commit_output
from .progress import TerminalProgress

logger = logging.getLogger("avi.bench")

SCHEMA = "avi-bench/1"
PAPER_SAMPLING_SECONDS = 6.2  # SD 2.1, 50 steps, paper Table 1 ("SD" row); AVI's edit: 6.7 s
PAPER_EDIT_SECONDS = 6.7
PAPER_TRAINING_SECONDS = 300.0  # "around 5 mins in one single RTX 3090", 5 epochs

# (matrix size n, batch B) of the SVD table.
FULL_SVD_CASES: tuple[tuple[int, int], ...] = (
    (64, 1),
    (64, 2),
    (64, 4),
    (64, 256),
    (64, 20000),
    (96, 4096),
    (128, 4096),
)
QUICK_SVD_CASES: tuple[tuple[int, int], ...] = ((16, 4), (16, 64), (24, 16))

# name fragment -> (memory bandwidth GB/s, fp32 non-tensor-core TFLOP/s); vendor datasheet figures.
KNOWN_GPUS: tuple[tuple[str, float, float], ...] = (
    ("H200", 4800.0, 67.0),
    ("H100 PCIe", 2000.0, 51.0),
    ("H100", 3350.0, 67.0),
    ("A100-SXM4-80GB", 2039.0, 19.5),
    ("A100 80GB", 1935.0, 19.5),
    ("A100", 1555.0, 19.5),
    ("L40S", 864.0, 91.6),
    ("RTX 4090", 1008.0, 82.6),
    ("RTX 3090", 936.0, 35.6),
    ("A10", 600.0, 31.2),
    ("V100", 900.0, 15.7),
    ("T4", 320.0, 8.1),
)

MEANINGS: dict[str, str] = {
    "svd.auto_ms": "median wall time of channel_svd(backend='auto') on the whole [B, n, n] batch, ms",
    "svd.torch_ms": "median wall time of torch.linalg.svd(full_matrices=False) on the same batch",
    "svd.speedup": "torch_ms / auto_ms: how many times faster the project's backend is (1 = same)",
    "svd.floor_ms": "CUDA only: max(B * bytes moved / memory bandwidth, B * 21 n^3 / fp32 peak), the least "
    "time any SVD could take on this GPU",
    "svd.auto_vs_floor": "auto_ms / floor_ms: how many times the hardware floor the backend takes",
    "svd.max_rel_error": "largest ||U S Vh - X||_F / ||X||_F of the auto backend over the batch",
    "svd.<name>_ms": "--also NAME: median wall time of channel_svd(backend=NAME) on the same batch",
    "svd.<name>_max_rel_error": "--also NAME: largest ||U S Vh - X||_F / ||X||_F of that backend",
    "svd.triton_sweeps_mean": "--also triton: Jacobi sweeps per matrix, mean over the batch (max: "
    "svd.triton_sweeps_max); the kernel's time is about proportional to it",
    "also_skipped": "--also backends that cannot run here (triton without a CUDA GPU), with the reason",
    "merge.ms": "median wall time of avi_core.merge (head forward, both SVDs, blend, compose), milliseconds",
    "merge.percent_of_sampling": "merge time as a percentage of the paper's 6.2 s 50-step SD 2.1 sampling",
    "training.seconds": "wall time of train_head, data SVDs included, 5 epochs",
    "training.samples_per_second": "channel samples trained on (epochs x samples per epoch) per second",
    "training.peak_memory_mb": "CUDA: torch.cuda.max_memory_allocated during training; CPU: the process's "
    "peak resident set size (ru_maxrss) after training, which includes everything the process held before",
}


# ----------------------------------------------------------------------------------------------- timing


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, repeats: int, budget_s: float) -> tuple[float, int]:
    """Median seconds of `fn()` after one warm-up call, and how many timed calls were made (>= 1).

    Repeats stop early once the timed calls (warm-up included) have used `budget_s`; a warm-up that alone
    takes longer than the budget is itself the single measurement, so a very slow case runs only once.
    """
    _synchronize(device)
    start = time.perf_counter()
    fn()
    _synchronize(device)
    warm = time.perf_counter() - start
    if warm >= budget_s:
        return warm, 1
    times: list[float] = []
    spent = warm
    while len(times) < max(1, repeats) and (not times or spent < budget_s):
        start = time.perf_counter()
        fn()
        _synchronize(device)
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        spent += elapsed
    return statistics.median(times), len(times)


# ------------------------------------------------------------------------------------------- machine


def gpu_spec(name: str, bandwidth_gbs: float | None, fp32_tflops: float | None) -> dict[str, Any]:
    """Memory bandwidth and fp32 peak for a GPU name: options win, then KNOWN_GPUS, else 'unknown'."""
    table = next(((bw, tf) for fragment, bw, tf in KNOWN_GPUS if fragment.lower() in name.lower()), None)
    bw = bandwidth_gbs if bandwidth_gbs is not None else (table[0] if table else None)
    tf = fp32_tflops if fp32_tflops is not None else (table[1] if table else None)
    given = (bandwidth_gbs is not None) + (fp32_tflops is not None)
    if given == 2:
        source = "options"
    elif given == 1:
        source = "options and table" if table else "options (partial)"
    else:
        source = "table" if table else "unknown"
    return {"bandwidth_gbs": bw, "fp32_tflops": tf, "source": source}


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": str(device),
        "torch_version": torch.__version__,
        "avi_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "processor": _cpu_name(),
    }
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu_name"] = props.name
        info["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
        info["cuda_version"] = torch.version.cuda
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# -------------------------------------------------------------------------------------------- figures


def _structured_matrices(batch: int, n: int, seed: int, device: torch.device) -> torch.Tensor:
    """[batch, n, n] float32 like latent channels: a decaying spectrum on random bases, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    rank = max(1, n // 4)
    left = torch.randn(batch, n, rank, generator=gen)
    right = torch.randn(batch, rank, n, generator=gen)
    decay = 0.8 ** torch.arange(rank, dtype=torch.float32)
    x = (left * decay) @ right / math.sqrt(rank) + 0.1 * torch.randn(batch, n, n, generator=gen)
    return x.to(device)


def svd_figures(
    cases: Sequence[tuple[int, int]],
    device: torch.device,
    repeats: int,
    budget_s: float,
    spec: dict[str, Any] | None,
    also: Sequence[str] = (),
    on_row: RowCallback | None = None,
) -> list[dict[str, Any]]:
    """One row of SVD figures per (n, B) case; `on_row(row)` is called as soon as each row is measured."""
    rows = []
    for n, batch in cases:
        if on_row is not None:
            on_row.start(f"svd n={n} B={batch}")
        x = _structured_matrices(batch, n, seed=n * 100003 + batch, device=device)
        backend = resolve_backend("auto", device, n, n, batch)
        auto_s, auto_runs = time_call(lambda x=x: channel_svd(x), device, repeats, budget_s)
        torch_s, torch_runs = time_call(lambda x=x: torch.linalg.svd(x, full_matrices=False), device, repeats, budget_s)
        u, s, vh = channel_svd(x)
        error = ((u * s.unsqueeze(-2)) @ vh - x).norm(dim=(-2, -1)) / x.norm(dim=(-2, -1))
        row: dict[str, Any] = {
            "n": n,
            "batch": batch,
            "auto_backend": backend,
            "auto_ms": auto_s * 1e3,
            "auto_runs": auto_runs,
            "torch_ms": torch_s * 1e3,
            "torch_runs": torch_runs,
            "speedup": torch_s / auto_s if auto_s > 0 else None,
            "max_rel_error": float(error.max()),
            "floor_ms": None,
            "auto_vs_floor": None,
            "torch_vs_floor": None,
        }
        if spec is not None and spec["bandwidth_gbs"] and spec["fp32_tflops"]:
            moved = batch * 4 * (n * n + n * n + n + n * n)  # read X, write U, S, Vh (float32)
            floor = max(moved / (spec["bandwidth_gbs"] * 1e9), batch * 21 * n**3 / (spec["fp32_tflops"] * 1e12))
            row["floor_ms"] = floor * 1e3
            row["auto_vs_floor"] = auto_s / floor
            row["torch_vs_floor"] = torch_s / floor
        for name in also:
            other_s, other_runs = time_call(
                lambda x=x, name=name: channel_svd(x, backend=name), device, repeats, budget_s
            )
            row[f"{name}_ms"] = other_s * 1e3
            row[f"{name}_runs"] = other_runs
            ou, os_, ovh = channel_svd(x, backend=name)
            other_error = ((ou * os_.unsqueeze(-2)) @ ovh - x).norm(dim=(-2, -1)) / x.norm(dim=(-2, -1))
            row[f"{name}_max_rel_error"] = float(other_error.max())
            if name == "triton":
                sweeps = triton_svd_with_sweeps(x)[3].double()
                row["triton_sweeps_mean"] = float(sweeps.mean())
                row["triton_sweeps_max"] = int(sweeps.max())
            del ou, os_, ovh
        rows.append(row)
        logger.info("svd n=%d B=%d: %s", n, batch, row)
        del x, u, s, vh
        if on_row is not None:
            on_row(row)
    return rows


def merge_figures(
    device: torch.device,
    hidden: int,
    size: int,
    batches: Sequence[int],
    repeats: int,
    budget_s: float,
    on_row: RowCallback | None = None,
) -> list[dict[str, Any]]:
    """One row of merge figures per batch size; `on_row(row)` is called as soon as each row is measured."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        head = AttributeHead(size, size, hidden=hidden).to(device).eval()
    rows = []
    gen = torch.Generator().manual_seed(7)
    for batch in batches:
        if on_row is not None:
            on_row.start(f"merge [{batch}, 4, {size}, {size}]")
        x = torch.randn(batch, 4, size, size, generator=gen).to(device)
        z = torch.randn(batch, 4, size, size, generator=gen).to(device)
        seconds, runs = time_call(lambda x=x, z=z: merge(x, z, head, rho=1.0), device, repeats, budget_s)
        rows.append(
            {
                "batch": batch,
                "shape": [batch, 4, size, size],
                "hidden": hidden,
                "ms": seconds * 1e3,
                "runs": runs,
                "percent_of_sampling": 100.0 * seconds / PAPER_SAMPLING_SECONDS,
            }
        )
        if on_row is not None:
            on_row(rows[-1])
    return rows


def synthetic_training_pairs(pairs: int, channels: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Paper-space x, z [pairs, channels, size, size]: structured latents and an 'attribute' edit of them.

    x: a decaying spectrum on per-channel bases shared by all pairs, jittered per pair, plus noise; z: the
    same with the leading singular values raised and the next ones lowered, plus its own noise.
    """
    gen = torch.Generator().manual_seed(seed)
    left, _ = torch.linalg.qr(torch.randn(channels, size, size, generator=gen))
    right, _ = torch.linalg.qr(torch.randn(channels, size, size, generator=gen))
    spectrum = 8.0 * 0.85 ** torch.arange(size, dtype=torch.float32) + 0.2
    values = spectrum * (1 + 0.1 * torch.randn(pairs, channels, size, generator=gen)).abs()
    gain = torch.ones(size)
    gain[:3], gain[3:6] = 1.5, 0.8
    x = (left * values.unsqueeze(-2)) @ right.mT
    z = (left * (values * gain).unsqueeze(-2)) @ right.mT
    x += 0.05 * torch.randn(x.shape, generator=gen)
    z += 0.05 * torch.randn(z.shape, generator=gen)
    return x, z


def training_figures(
    device: torch.device, pairs: int, size: int, hidden: int, epochs: int, show_progress: bool
) -> dict[str, Any]:
    x, z = synthetic_training_pairs(pairs, 4, size, seed=11)
    rss_before = _max_rss_mb()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    first_step: list[float] = []
    bar = _step_bar(show_progress)

    def progress(step: int, total: int, losses: dict[str, float]) -> None:
        if not first_step:
            first_step.append(time.perf_counter())
        bar(step, total, losses)

    _synchronize(device)
    started = time.perf_counter()
    try:
        result = train_head(x, z, epochs=epochs, hidden=hidden, device=device, progress=progress)
    finally:
        bar.close()
    _synchronize(device)
    seconds = time.perf_counter() - started
    samples = result.metadata["samples_per_epoch"] * result.metadata["epochs"]
    figures: dict[str, Any] = {
        "pairs": pairs,
        "shape": [pairs, 4, size, size],
        "hidden": hidden,
        "epochs": epochs,
        "batch_size": result.metadata["batch_size"],
        "channel_samples": result.metadata["channel_samples"],
        "samples_per_epoch": result.metadata["samples_per_epoch"],
        "steps": result.steps,
        "seconds": seconds,
        "seconds_to_first_step": (first_step[0] - started) if first_step else None,
        "samples_per_second": samples / seconds if seconds > 0 else None,
        "final_losses": result.final_losses,
        "progress_callback": True,
    }
    if device.type == "cuda":
        figures["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        figures["peak_memory_kind"] = "torch.cuda.max_memory_allocated"
    else:
        figures["peak_memory_mb"] = _max_rss_mb()
        figures["peak_memory_kind"] = "process ru_maxrss (includes what ran before)"
        figures["rss_peak_before_training_mb"] = rss_before
    return figures


class _TqdmSteps:
    """Training steps as a second tqdm bar, under the bar of cases (on a terminal)."""

    def __init__(self) -> None:
        self.bar = tqdm(desc="training", unit="step", file=sys.stderr, leave=False, position=1)

    def __call__(self, step: int, total: int, losses: dict[str, float]) -> None:
        self.bar.total = total
        self.bar.set_postfix_str(f"loss {losses['total']:.3g}", refresh=False)
        self.bar.update(step - self.bar.n)

    def close(self) -> None:
        self.bar.close()


class _NoSteps:
    def __call__(self, step: int, total: int, losses: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


def _step_bar(show_progress: bool) -> _TqdmSteps | TerminalProgress | _NoSteps:
    """The training steps' progress: a tqdm bar on a terminal, a line every 5 % in a log, or nothing."""
    if not show_progress:
        return _NoSteps()
    return _TqdmSteps() if _is_tty() else TerminalProgress("bench training")


def _max_rss_mb() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / 1024 if sys.platform != "darwin" else usage / 2**20  # Linux: KiB, macOS: bytes


# -------------------------------------------------------------------------------------------- report


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def render_header(report: dict[str, Any]) -> list[str]:
    """The lines naming the run and the machine."""
    m = report["machine"]
    lines = [f"AVI benchmark ({report['date']}, avi_core {m['avi_version']}, torch {m['torch_version']})"]
    if m["device"].startswith("cuda"):
        spec = report["gpu_spec"]
        lines.append(f"device: {m['device']} = {m['gpu_name']} ({m['gpu_memory_gb']} GiB), CUDA {m['cuda_version']}")
        if spec["bandwidth_gbs"] and spec["fp32_tflops"]:
            lines.append(
                f"  GPU figures for the floor: {spec['bandwidth_gbs']:g} GB/s, "
                f"{spec['fp32_tflops']:g} fp32 TFLOP/s ({spec['source']})"
            )
        else:
            lines.append("  GPU figures for the floor: unknown (give --bandwidth-gbs and --fp32-tflops)")
    else:
        load = m.get("load_average")
        lines.append(
            f"device: cpu = {m['processor']}, {m['cpu_cores']} cores, torch threads {m['torch_threads']}"
            + (f", load average {load[0]} at start" if load else "")
        )
    forced = report.get("forced_backend")
    if forced:
        lines.append(f"{ENV_VAR}={forced} forces the 'auto' column")
    for name, reason in report.get("also_skipped", {}).items():
        lines.append(f"--also {name} skipped: {reason}")
    return lines


def render_svd_header(report: dict[str, Any]) -> list[str]:
    """The title and column heads of the SVD table."""
    header = f"  {'n':>4} {'B':>6} {'auto backend':>12} {'auto ms':>10} {'torch ms':>10} {'speedup':>8} {'max err':>8}"
    for name in report.get("also", []):
        header += f" {name + ' ms':>10}"
    if report["machine"]["device"].startswith("cuda"):
        header += f" {'floor ms':>9} {'auto/floor':>10}"
    return ["", "SVD of [B, n, n] float32 (median ms; speedup = torch / auto)", header]


def render_svd_row(report: dict[str, Any], row: dict[str, Any]) -> str:
    """One line of the SVD table."""
    line = (
        f"  {row['n']:>4} {row['batch']:>6} {row['auto_backend']:>12} {_fmt(row['auto_ms']):>10} "
        f"{_fmt(row['torch_ms']):>10} {_fmt(row['speedup']):>8} {row['max_rel_error']:>8.1e}"
    )
    for name in report.get("also", []):
        line += f" {_fmt(row.get(name + '_ms')):>10}"
    if report["machine"]["device"].startswith("cuda"):
        line += f" {_fmt(row['floor_ms']):>9} {_fmt(row['auto_vs_floor']):>10}"
    return line


def render_merge_header(hidden: int | str) -> list[str]:
    """The title of the merge figures."""
    return ["", f"Merge (head hidden {hidden}, both SVDs; vs {PAPER_SAMPLING_SECONDS} s 50-step SD 2.1 sampling)"]


def render_merge_row(row: dict[str, Any]) -> str:
    """One line of merge figures."""
    return (
        f"  x {row['shape']}: {_fmt(row['ms'])} ms = {row['percent_of_sampling']:.2g}% of sampling"
        f" (paper: AVI adds {PAPER_EDIT_SECONDS - PAPER_SAMPLING_SECONDS:.1f} s = "
        f"{100 * (PAPER_EDIT_SECONDS - PAPER_SAMPLING_SECONDS) / PAPER_SAMPLING_SECONDS:.0f}%)"
    )


def render_training(t: dict[str, Any] | None) -> list[str]:
    """The training figures (or that they were skipped)."""
    if t is None:
        return ["", "Training: skipped (--skip-training)"]
    return [
        "",
        f"Training: {t['pairs']} pairs {t['shape']}, hidden {t['hidden']}, {t['epochs']} epochs x "
        f"{t['samples_per_epoch']} samples, batch {t['batch_size']} ({t['steps']} steps)",
        f"  {t['seconds']:.1f} s total ({_fmt(t['seconds_to_first_step'])} s to the first step, "
        f"data SVDs included), {_fmt(t['samples_per_second'])} samples/s, "
        f"peak memory {t['peak_memory_mb']:.0f} MB ({t['peak_memory_kind']})",
        f"  paper: about {PAPER_TRAINING_SECONDS / 60:.0f} minutes for 5 epochs on one RTX 3090",
    ]


def render_meanings() -> list[str]:
    """What each figure means."""
    return ["", "What the figures mean:", *(f"  {key}: {text}" for key, text in MEANINGS.items())]


def render(report: dict[str, Any]) -> str:
    """The whole printed report of a finished run (what `main` prints piece by piece as it measures)."""
    lines = render_header(report) + render_svd_header(report)
    lines += [render_svd_row(report, row) for row in report["svd"]]
    lines += render_merge_header(report["merge"][0]["hidden"] if report["merge"] else "-")
    lines += [render_merge_row(row) for row in report["merge"]]
    lines += render_training(report.get("training"))
    lines += render_meanings()
    return "\n".join(lines)


def _is_tty() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


class RowCallback(Protocol):
    """Told when a case starts (`start(label)`) and given its figures when measured (`row`)."""

    def start(self, label: str) -> None: ...

    def __call__(self, row: dict[str, Any]) -> None: ...


class LiveReport:
    """Shows a run as it goes: a progress bar of cases on stderr (tqdm), each figure printed on stdout as soon as
    it is measured, and the --json file rewritten (atomically) after every case, so a killed run keeps
    everything it measured. The JSON's `complete` is false until the last case is in.

    json_path: the --json file (None: nothing is saved). show_progress: draw the bar. echo: print the figures.
    """

    def __init__(self, json_path: Path | None = None, *, show_progress: bool = False, echo: bool = False) -> None:
        self.report: dict[str, Any] = {}
        self.json_path = json_path
        self.show_progress = show_progress
        self.echo = echo
        self.cases = self.done = 0
        self.bar = tqdm(disable=True)  # replaced by `begin`, once the options are checked
        self.write_row: Callable[[dict[str, Any]], str] = str

    def begin(self, report: dict[str, Any], cases: int) -> None:
        """Start showing `report`, which will have `cases` cases: a bar on a terminal, else a line per case."""
        self.report = report
        self.cases = cases
        self.bar = tqdm(
            total=cases, desc="bench", unit="case", file=sys.stderr, disable=not (self.show_progress and _is_tty())
        )

    def print(self, lines: Sequence[str]) -> None:
        """Print `lines` on stdout now, above the progress bar."""
        if not self.echo:
            return
        for line in lines:
            self.bar.write(line, file=sys.stdout)
        sys.stdout.flush()

    def save(self) -> None:
        """Rewrite the --json file with the figures so far."""
        if self.json_path is not None:
            _write_json(self.json_path, self.report)

    def start(self, label: str) -> None:
        """A case begins: name it on the bar (or, in a log, on a line of its own)."""
        if not self.bar.disable:
            self.bar.set_description_str(f"bench: {label}")
        elif self.show_progress:
            print(f"bench [{self.done + 1}/{self.cases}] {label} ...", file=sys.stderr, flush=True)

    def __call__(self, row: dict[str, Any]) -> None:
        self.print([self.write_row(row)])
        self.case_done()

    def case_done(self) -> None:
        """One more case measured: save the figures and move the bar."""
        self.save()
        self.bar.update(1)
        self.done += 1

    def close(self) -> None:
        """Remove the bar."""
        self.bar.close()


# ---------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m avi_core bench",
        description="Time the SVD backends, the merge and paper-default training on one device.",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda if available, else cpu)")
    parser.add_argument("--quick", action="store_true", help="small sizes only (seconds; for tests and CI)")
    parser.add_argument("--skip-training", action="store_true", help="leave out the training figure")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures here")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per case after the warm-up")
    parser.add_argument(
        "--budget",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="time budget per timed case (default 20)",
    )
    parser.add_argument("--train-pairs", type=int, default=None, help="training pairs (default 5000; quick 32)")
    parser.add_argument("--bandwidth-gbs", type=float, default=None, help="GPU memory bandwidth for the floor")
    parser.add_argument("--fp32-tflops", type=float, default=None, help="GPU fp32 peak for the floor")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        choices=[b for b in BACKENDS if b != "auto"],
        help="also time this SVD backend (repeatable), e.g. --also jacobi --also triton; one that cannot run "
        "here (triton without a CUDA GPU) is skipped with a message",
    )
    parser.add_argument("--no-progress", action="store_true", help="no training progress lines on stderr")
    return parser


def also_skip_reason(name: str, device: torch.device) -> str | None:
    """None if `--also name` can be timed on `device`, else why it is skipped (e.g. triton without CUDA)."""
    reason = backend_unavailable_reason(name, device)
    if reason is None and name == "triton" and interpreting():
        reason = "TRITON_INTERPRET=1 runs Triton's CPU interpreter, which is for tests and far too slow to time"
    return reason


def _check_options(args: argparse.Namespace) -> torch.device:
    """The device to measure on; ValueError for options that cannot run (before anything is measured)."""
    if args.device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU here; use --device cpu")
    if args.repeats < 1 or args.budget <= 0:
        raise ValueError("--repeats must be >= 1 and --budget > 0")
    if args.train_pairs is not None and args.train_pairs < 1:
        raise ValueError(f"--train-pairs must be >= 1, got {args.train_pairs}")
    if args.json is not None:
        check_output(args.json, None, "--json")
    return device


def run(args: argparse.Namespace, argv: Sequence[str], live: LiveReport | None = None) -> dict[str, Any]:
    """Measure everything `args` asks for and return the report (the JSON document).

    live: shown and saved case by case (`LiveReport`); by default nothing is printed and nothing is saved.
    """
    device = _check_options(args)
    also, also_skipped = [], {}
    for name in args.also:
        reason = also_skip_reason(name, device)
        if reason is None:
            also.append(name)
        else:
            also_skipped[name] = reason
            print(f"--also {name} skipped: {reason}", file=sys.stderr)
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m avi_core bench " + " ".join(argv),
        "quick": bool(args.quick),
        "complete": False,
        "machine": machine_info(device),
        "forced_backend": os.environ.get(ENV_VAR, "").strip() or None,
        "also": also,
        "also_skipped": also_skipped,
        "gpu_spec": None,
        "paper": {
            "sampling_seconds": PAPER_SAMPLING_SECONDS,
            "edit_seconds": PAPER_EDIT_SECONDS,
            "training_seconds": PAPER_TRAINING_SECONDS,
            "training_gpu": "RTX 3090",
        },
        "meanings": MEANINGS,
        "svd": [],
        "merge": [],
        "training": None,
    }
    spec = None
    if device.type == "cuda":
        spec = gpu_spec(report["machine"]["gpu_name"], args.bandwidth_gbs, args.fp32_tflops)
        report["gpu_spec"] = spec
    cases = QUICK_SVD_CASES if args.quick else FULL_SVD_CASES
    budget = min(args.budget, 2.0) if args.quick else args.budget
    merge_hidden, merge_size, merge_batches = (32, 16, (1, 4)) if args.quick else (4096, 64, (1, 16))
    live = live if live is not None else LiveReport()
    live.begin(report, len(cases) + len(merge_batches) + (0 if args.skip_training else 1))
    live.print(render_header(report) + render_svd_header(report))
    live.save()
    live.write_row = lambda row: render_svd_row(report, row)
    svd_figures(cases, device, args.repeats, budget, spec, also=also, on_row=_Collect(report["svd"], live))
    live.print(render_merge_header(merge_hidden))
    live.write_row = render_merge_row
    merge_figures(
        device, merge_hidden, merge_size, merge_batches, args.repeats, budget, on_row=_Collect(report["merge"], live)
    )
    if not args.skip_training:
        pairs = args.train_pairs if args.train_pairs is not None else (32 if args.quick else 5000)
        size, hidden, epochs = (16, 32, 1) if args.quick else (64, 4096, 5)
        live.start(f"training {pairs} pairs of 4x{size}x{size}")
        report["training"] = training_figures(device, pairs, size, hidden, epochs, live.show_progress)
        live.case_done()
    live.print(render_training(report["training"]))
    report["complete"] = True
    live.save()
    live.print(render_meanings())
    return report


class _Collect:
    """A RowCallback that appends each row to the report's list before `live` shows and saves it."""

    def __init__(self, rows: list[dict[str, Any]], live: LiveReport) -> None:
        self.rows = rows
        self.live = live

    def start(self, label: str) -> None:
        self.live.start(label)

    def __call__(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.live(row)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints the figures (stdout) as they are measured and returns 0; 2 on bad options or
    an unwritable --json; 130 on Ctrl+C (the --json file then holds every figure measured before it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    live = LiveReport(args.json, show_progress=not args.no_progress, echo=True)
    try:
        run(args, argv, live)
    except KeyboardInterrupt:
        GUARD.finish()
        live.close()
        kept = f"; the figures measured so far are in {args.json}" if args.json and GUARD.committed else ""
        print(f"interrupted (Ctrl+C){kept}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except AVIError as err:
        live.close()
        print(f"error: {error_line(err)}", file=sys.stderr)
        return 2
    except ValueError as err:
        live.close()
        print(f"error: {err}", file=sys.stderr)
        return 2
    live.close()
    if args.json is not None:
        print(f"\nfigures written to {args.json}")
    return 0


def _write_json(path: Path, report: dict[str, Any]) -> None:
    text = json.dumps(report, indent=2) + "\n"
    commit_output(path, lambda temp: temp.write_text(text, encoding="utf-8"), last=False)
