"""Training the attribute head (spec section 5).

The data are pairs of paper-space latents (x_i at Tx, z_i at Tz, same seed), `[P, C, H, W]` each; every
channel matrix is one sample. The SVDs are of the data only, so they run once, batched, on the training
device, and the blended bases U^, V^ (at the training rho and k) are kept there. An epoch shows the head
max(D, samples_per_epoch) channel samples (D = P * C), drawn with replacement when D is smaller, so that a
handful of pairs still trains for the paper's number of steps. Minibatches are gathered on the device; the
only host synchronisation per step is the progress report, when a callback is given.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import NonFiniteError, ParameterError, ShapeMismatchError
from ..latent.svd import channel_svd
from .algorithm import blend_bases
from .head import AttributeHead, resolve_k
from .loss import DEFAULT_LAMBDAS, LOSS_NAMES, check_lambdas, loss_from_bases

logger = logging.getLogger("avi.training")

# Called after every step as progress(step, total_steps, losses); losses maps "L1".."L4" (unweighted batch
# means) and "total" (weighted) to floats, for the newest step the host has (LossReporter; {} before the first
# copy arrives). Returning False stops training after that step; exceptions propagate.
ProgressCallback = Callable[[int, int, dict[str, float]], bool | None]

# Data SVDs are computed in chunks of this many channel matrices to bound the transient memory.
_SVD_CHUNK = 4096


@dataclass
class TrainingResult:
    """What `train_head` returns. history: [steps, 4] unweighted L1..L4 per step (CPU, float32)."""

    head: AttributeHead
    history: torch.Tensor
    total_history: torch.Tensor
    steps: int
    seconds: float
    stopped: bool
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def final_losses(self) -> dict[str, float]:
        if self.steps == 0:
            return {}
        last = dict(zip(LOSS_NAMES, self.history[self.steps - 1].tolist(), strict=True))
        last["total"] = float(self.total_history[self.steps - 1])
        return last


def _as_channel_samples(x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.dim() < 3:
        raise ShapeMismatchError(
            f"training latents must be [pairs, channels, H, W]; got x of shape {tuple(x.shape)}", reason="rank"
        )
    if x.shape != z.shape:
        raise ShapeMismatchError(
            f"x {tuple(x.shape)} and z {tuple(z.shape)} must have the same shape (one target per original)",
            reason="size",
        )
    if x.numel() == 0:
        raise ShapeMismatchError("no training pairs were given", reason="empty")
    for name, t in (("x", x), ("z", z)):
        if not torch.isfinite(t).all():
            raise NonFiniteError(f"the training latents {name} contain NaN or infinity", reason="input", role=name)
    height, width = x.shape[-2:]
    return x.reshape(-1, height, width), z.reshape(-1, height, width)


def _blended_bases(
    x: torch.Tensor, z: torch.Tensor, k: int, rho: float, backend: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """U^, V^, Sx, Sz for every channel sample [D, H, W], chunked to bound memory."""
    parts: list[tuple[torch.Tensor, ...]] = []
    for start in range(0, x.shape[0], _SVD_CHUNK):
        xs, zs = x[start : start + _SVD_CHUNK], z[start : start + _SVD_CHUNK]
        u_x, s_x, vh_x = channel_svd(xs, backend=backend)
        u_z, s_z, vh_z = channel_svd(zs, backend=backend)
        u_hat, v_hat = blend_bases(u_x, vh_x, u_z, vh_z, k, rho)
        parts.append((u_hat, v_hat, s_x, s_z))
    return tuple(torch.cat(column, dim=0) for column in zip(*parts, strict=True))  # type: ignore[return-value]


def _epoch_indices(count: int, per_epoch: int, generator: torch.Generator) -> torch.Tensor:
    if count >= per_epoch:
        return torch.randperm(count, generator=generator)
    return torch.randint(0, count, (per_epoch,), generator=generator)


class LossReporter:
    """The newest training losses the host can read without waiting for the device.

    history `[steps, 4]` and totals `[steps]` live on the training device and are filled step by step. Every
    `every` steps the rows written since the last copy are copied to host memory asynchronously (pinned memory
    and a CUDA event on a GPU; a plain copy on the CPU, which is immediate); `latest` returns the newest copy
    that has completed, so a GPU keeps running while the host reports. On the CPU with every = 1 it returns
    the current step's losses.
    """

    def __init__(self, history: torch.Tensor, totals: torch.Tensor, every: int | None = None) -> None:
        self.history = history
        self.totals = totals
        self.asynchronous = history.device.type == "cuda"
        self.every = max(1, int(every if every is not None else (10 if history.device.type != "cpu" else 1)))
        self._copied_to = 0
        self._pending: tuple[int, torch.Tensor, Any] | None = None
        self._ready: tuple[int, dict[str, float]] = (0, {})

    def _start_copy(self, step: int) -> None:
        rows = torch.cat([self.history[step - 1], self.totals[step - 1 : step]])
        if self.asynchronous:
            host = torch.empty(rows.shape, dtype=rows.dtype, pin_memory=True)
            host.copy_(rows, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        else:
            host, event = rows.to("cpu"), None
        self._pending = (step, host, event)
        self._copied_to = step

    def _collect(self) -> None:
        if self._pending is None:
            return
        step, host, event = self._pending
        if event is not None and not event.query():
            return
        values = host.tolist()
        losses = dict(zip(LOSS_NAMES, values[:4], strict=True))
        losses["total"] = values[4]
        self._ready = (step, losses)
        self._pending = None

    def latest(self, step: int) -> tuple[int, dict[str, float]]:
        """(the step the losses belong to, {"L1".."L4", "total"}) after `step` steps; ({} before any copy)."""
        self._collect()
        if self._pending is None and (step - self._copied_to >= self.every or step == self.history.shape[0]):
            self._start_copy(step)
            self._collect()
        return self._ready


def build_head(height: int, width: int, hidden: int, k: int, seed: int) -> AttributeHead:
    """A freshly initialised head, the same for the same seed on every device (built on CPU)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AttributeHead(height, width, hidden=hidden, k=k)


def train_head(
    x: torch.Tensor,
    z: torch.Tensor,
    *,
    epochs: int = 5,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    k: int | None = None,
    rho: float = 1.0,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    hidden: int = 4096,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: ProgressCallback | None = None,
    samples_per_epoch: int = 5000,
    svd_backend: str = "auto",
    report_every: int | None = None,
) -> TrainingResult:
    """Train an AttributeHead on paired paper-space latents x, z `[P, C, H, W]` (paper defaults).

    Same data, same seed, same device: the same head, bit for bit (on CPU). Runs with autograd enabled even
    when called under `torch.inference_mode()` (ComfyUI's executor), on clones of the data.

    progress(step, total, losses) is called after every step (so a Cancel raised in it stops training within a
    step); `losses` are those of the newest step whose values have reached the host (see LossReporter):
    the current step on CPU, a few steps back on a GPU, so that reporting never makes the host wait for the
    device. report_every: how many steps apart the device's losses are copied to the host (default: 1 on CPU,
    10 elsewhere).
    """
    for name, value, low in (
        ("epochs", epochs, 1),
        ("batch_size", batch_size, 1),
        ("samples_per_epoch", samples_per_epoch, 0),
    ):
        if value < low:
            raise ParameterError(f"{name} must be >= {low}, got {value}", name=name, value=value, low=low)
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise ParameterError(
            f"learning_rate must be a positive number, got {learning_rate}", name="learning_rate", value=learning_rate
        )
    check_lambdas(lambdas)
    device = torch.device(device) if device is not None else torch.device("cpu")
    started = time.perf_counter()
    with torch.inference_mode(False), torch.enable_grad():
        x_s, z_s = _as_channel_samples(x, z)
        height, width = x_s.shape[-2:]
        rank = min(height, width)
        k = resolve_k(k, rank // 2, rank)
        x_s = x_s.to(device=device, dtype=torch.float32).clone()
        z_s = z_s.to(device=device, dtype=torch.float32).clone()
        count = x_s.shape[0]
        with torch.no_grad():
            u_hat, v_hat, s_x, s_z = _blended_bases(x_s, z_s, k, rho, svd_backend)

        head = build_head(height, width, hidden, k, seed).to(device)
        head.train()
        optimizer = torch.optim.Adam(head.parameters(), lr=learning_rate)
        per_epoch = max(count, samples_per_epoch)
        steps_per_epoch = math.ceil(per_epoch / batch_size)
        total_steps = epochs * steps_per_epoch
        generator = torch.Generator().manual_seed(seed)
        history = torch.zeros(total_steps, 4, device=device)
        totals = torch.zeros(total_steps, device=device)
        lambdas = tuple(float(v) for v in lambdas)
        weights = torch.tensor(lambdas, device=device)  # once, so steps copy nothing from the host
        logger.info(
            "training a %dx%d head (hidden %d, k %d) on %d channel samples: %d epochs of %d steps on %s",
            height,
            width,
            hidden,
            k,
            count,
            epochs,
            steps_per_epoch,
            device,
        )
        reporter = None if progress is None else LossReporter(history, totals, report_every)
        step = 0
        stopped = False
        for _epoch in range(epochs):
            order = _epoch_indices(count, per_epoch, generator).to(device, non_blocking=True)
            for first in range(0, per_epoch, batch_size):
                idx = order[first : first + batch_size]
                x_batch = x_s[idx]
                s_pred, ds_pred = head(x_batch)
                total, terms = loss_from_bases(
                    x_batch, z_s[idx], u_hat[idx], v_hat[idx], s_x[idx], s_z[idx], s_pred, ds_pred, weights
                )
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
                history[step] = terms.detach()
                totals[step] = total.detach()
                step += 1
                if reporter is not None:
                    reported_step, losses = reporter.latest(step)
                    if losses and not math.isfinite(losses["total"]):
                        raise NonFiniteError(
                            f"training diverged at step {reported_step} (loss {losses['total']})",
                            reason="diverged",
                            step=reported_step,
                        )
                    if progress(step, total_steps, losses) is False:
                        stopped = True
                        break
            if stopped:
                break
        head.eval()
    history_cpu = history[:step].float().cpu()
    totals_cpu = totals[:step].float().cpu()
    if not torch.isfinite(totals_cpu).all():
        raise NonFiniteError("training diverged (the loss became NaN or infinite)", reason="diverged", step=step)
    seconds = time.perf_counter() - started
    result = TrainingResult(
        head=head, history=history_cpu, total_history=totals_cpu, steps=step, seconds=seconds, stopped=stopped
    )
    result.metadata = {
        "height": height,
        "width": width,
        "rank": rank,
        "k": k,
        "hidden": hidden,
        "rho_train": float(rho),
        "lambdas": list(lambdas),
        "learning_rate": float(learning_rate),
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "pairs": int(x.shape[0]),
        "channels": int(x.shape[1]) if x.dim() == 4 else 1,
        "channel_samples": count,
        "samples_per_epoch": per_epoch,
        "steps": step,
        "stopped_early": stopped,
        "train_seconds": round(seconds, 3),
        "final_losses": result.final_losses,
    }
    head.metadata.update(result.metadata)
    logger.info("trained in %.1f s (%d steps); final losses %s", seconds, step, result.final_losses)
    return result
