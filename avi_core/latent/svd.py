"""Thin SVD of every channel matrix of a batch of latents, with a choice of backends.

`channel_svd(x)` decomposes the last two dimensions of `x` ([..., H, W], any leading dims, H != W allowed)
and returns `U [..., H, r]`, `S [..., r]` (descending, >= 0) and `Vh [..., r, W]` (right singular vectors
as rows, like `torch.linalg.svd`'s Vh), r = min(H, W). The arithmetic is float32, or float64 when `x` is
float64 (other dtypes are computed in float32); the result is on `x`'s device. Each singular pair (u, v) is
defined up to a common sign, and backends may choose differently (the merge is sign-invariant).

Backends:
- "torch": `torch.linalg.svd(full_matrices=False)` (LAPACK on CPU, cuSOLVER on CUDA) in one call.
- "threads": the same LAPACK calls, with the batch cut into chunks that a pool of threads decomposes at the
  same time (torch releases the GIL; each worker runs its LAPACK single-threaded). On CPU this uses every
  core where `torch.linalg.svd` loops over the batch on one. Per matrix it is the same computation, so its
  results are bit-identical to "torch" on CPU.
- "jacobi": `avi_core.jacobi.jacobi_svd`, a batched one-sided Jacobi made of plain tensor operations, meant
  for CUDA, where `torch.linalg.svd` of matrices larger than 32 x 32 issues one cuSOLVER call per matrix.
- "triton": `avi_core.latent.triton_svd.triton_svd`, a fused Triton kernel running the whole one-sided Jacobi of each
  matrix in one program (H, W <= 128). Optional (`pip install triton`, CUDA GPUs only; Triton's CPU
  interpreter with TRITON_INTERPRET=1 is for tests) and opt-in only: "auto" never picks it until GPU
  measurements say where it wins; asked for where it cannot run, it raises BackendUnavailableError.
- "auto" picks, per call, by device and size. The rule is deterministic (never a timing taken at run time),
  so the same input always takes the same backend and training stays bit-reproducible:
  * CPU: "threads" when torch has more than one thread and the batch holds enough work to pay for the
    hand-off to the pool (batch * min(H, W)^2 * max(H, W) >= THREADS_MIN_WORK, i.e. 8 matrices of
    64 x 64, 64 of 32 x 32, 512 of 16 x 16), else "torch", which here runs LAPACK with one thread
    (`torch_svd`): `torch.linalg.svd` with its default OpenMP threads is slower on such small matrices, so
    "auto" is never slower than it at any batch (BENCHMARKS.md). Measured on a 2-core CPU: the hand-off
    costs about 0.2 ms on a quiet machine and much more when another process holds a core, so small
    batches stay in the calling thread; from a few dozen matrices on, "threads" is 1.5-3x faster.
    "jacobi" on CPU is 25-50x slower than LAPACK (its tensor operations
    stream the whole batch through memory in each of its ~600 rounds per SVD) and is never chosen there.
  * CUDA: "jacobi" when min(H, W) > 32 and the batch has at least `CUDA_JACOBI_MIN_BATCH` matrices, else
    "torch" (cuSOLVER batches matrices up to 32 x 32 itself, and a tiny batch is cheaper as a few cuSOLVER
    calls than as Jacobi's hundreds of small kernel launches). This rule was set from torch's documented
    CUDA behaviour and has NOT been measured on a GPU yet: run `python -m avi_core bench --device cuda`
    and adjust it where the figures say otherwise.
  * any other device: "torch".
Forcing: a `backend` argument other than "auto" is used as given; otherwise the environment variable
`AVI_SVD_BACKEND` (one of the names above) replaces the automatic rule.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from ..errors import NonFiniteError
from .jacobi import jacobi_svd
from .triton_svd import triton_svd, unavailable_reason

logger = logging.getLogger("avi.svd")

BACKENDS = ("auto", "torch", "threads", "jacobi", "triton")
ENV_VAR = "AVI_SVD_BACKEND"
CUDA_JACOBI_MIN_BATCH = 64
# Largest Jacobi work tensor (bytes) built at once; a bigger batch is decomposed in chunks.
JACOBI_CHUNK_BYTES = 1 << 30
# A chunk of fewer matrices than this is not worth a thread hand-off.
MIN_THREAD_CHUNK = 8
# Least batch * min(H, W)^2 * max(H, W) for which "auto" uses the thread pool on CPU: 8 matrices of 64 x 64.
THREADS_MIN_WORK = 1 << 21
# Largest matrix side that "torch" decomposes with a single LAPACK thread on the CPU (see torch_svd).
SINGLE_THREAD_MAX_SIZE = 256

SVDResult = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

_pool: ThreadPoolExecutor | None = None
_pool_workers = 0
_pool_lock = threading.Lock()


def _working_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def torch_svd(x: torch.Tensor) -> SVDResult:
    """LAPACK / cuSOLVER through `torch.linalg.svd(full_matrices=False)`.

    On the CPU, matrices up to SINGLE_THREAD_MAX_SIZE are decomposed with one LAPACK thread: MKL's OpenMP
    threads only wait on each other over a 64 x 64 SVD (more so when another process holds a core), and the
    results are bit-identical (checked by the tests).
    """
    if x.device.type != "cpu" or max(x.shape[-2:]) > SINGLE_THREAD_MAX_SIZE or torch.get_num_threads() == 1:
        return torch.linalg.svd(x, full_matrices=False)
    count = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.svd(x, full_matrices=False)
    finally:
        torch.set_num_threads(count)


@functools.cache
def _openmp_build() -> bool:
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


def _single_threaded_worker() -> None:
    # The pool's threads already use every core between them; LAPACK threads nested inside each would only
    # fight over the same cores. In torch's OpenMP build the thread count is per thread, but
    # torch.set_num_threads also stores a process-wide default that threads created later start from;
    # threaded_svd puts that default back after each call (see _restore_default_threads).
    if _openmp_build():
        torch.get_num_threads()  # finish this thread's lazy initialisation first, or it would undo the 1
        torch.set_num_threads(1)


def _restore_default_threads(count: int) -> None:
    if _openmp_build() and torch.get_num_threads() == count:
        torch.set_num_threads(count)  # same count for the caller; resets the process-wide default


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is None or _pool_workers != workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="avi-svd", initializer=_single_threaded_worker
            )
            _pool_workers = workers
        return _pool


def _forget_pool_after_fork() -> None:
    global _pool, _pool_workers
    _pool, _pool_workers = None, 0  # a forked child has none of the parent's threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _cpu_workers() -> int:
    return max(1, torch.get_num_threads())


def threaded_svd(x: torch.Tensor, workers: int | None = None) -> SVDResult:
    """`torch.linalg.svd` of `x [..., H, W]`, the flattened batch split over a pool of `workers` threads.

    `workers` defaults to `torch.get_num_threads()`. A batch too small to split runs in the calling thread.
    """
    workers = _cpu_workers() if workers is None else max(1, int(workers))
    *lead, h, w = x.shape
    flat = x.reshape(-1, h, w)
    batch = flat.shape[0]
    if batch < 2 or workers < 2:
        return torch_svd(x)
    # At least one chunk per worker; up to 4 per worker when the batch is large, so that a worker slowed
    # down by another process does not hold up the whole call.
    n_chunks = min(batch, max(workers, min(batch // MIN_THREAD_CHUNK, workers * 4)))
    chunks = flat.tensor_split(n_chunks)
    caller_threads = torch.get_num_threads()
    try:
        parts = list(_thread_pool(workers).map(torch_svd, chunks))
    finally:
        _restore_default_threads(caller_threads)
    u = torch.cat([p[0] for p in parts])
    s = torch.cat([p[1] for p in parts])
    vh = torch.cat([p[2] for p in parts])
    r = s.shape[-1]
    return u.reshape(*lead, h, r), s.reshape(*lead, r), vh.reshape(*lead, r, w)


def chunked_jacobi_svd(x: torch.Tensor) -> SVDResult:
    """`jacobi_svd` of `x [..., H, W]` in batch chunks whose work tensor stays under JACOBI_CHUNK_BYTES."""
    *lead, h, w = x.shape
    m, n = max(h, w), min(h, w)
    per_matrix = (n + 1) * (m + n + 1) * x.element_size() * 2  # work tensor and its spare
    flat = x.reshape(-1, h, w)
    step = max(1, JACOBI_CHUNK_BYTES // max(per_matrix, 1))
    if flat.shape[0] <= step:
        return jacobi_svd(x)
    parts = [jacobi_svd(chunk) for chunk in flat.split(step)]
    u = torch.cat([p[0] for p in parts])
    s = torch.cat([p[1] for p in parts])
    vh = torch.cat([p[2] for p in parts])
    r = s.shape[-1]
    return u.reshape(*lead, h, r), s.reshape(*lead, r), vh.reshape(*lead, r, w)


_IMPLEMENTATIONS: dict[str, Callable[[torch.Tensor], SVDResult]] = {
    "torch": torch_svd,
    "threads": threaded_svd,
    "jacobi": chunked_jacobi_svd,
    "triton": triton_svd,
}


def backend_unavailable_reason(name: str, device: torch.device | str) -> str | None:
    """None if backend `name` can run on `device` here, else why not and the fix (only "triton" can fail)."""
    _check_name(name, "backend name")
    return unavailable_reason(device) if name == "triton" else None


def _check_name(name: str, where: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown SVD backend {name!r} ({where}); choose one of {', '.join(BACKENDS)}")
    return name


def auto_backend(device: torch.device | str, height: int, width: int, batch: int) -> str:
    """The backend "auto" picks for `batch` matrices of `height x width` on `device` (rule: module doc)."""
    kind = torch.device(device).type
    if kind == "cpu":
        work = batch * min(height, width) ** 2 * max(height, width)
        return "threads" if batch >= 2 and _cpu_workers() > 1 and work >= THREADS_MIN_WORK else "torch"
    if kind == "cuda":
        return "jacobi" if min(height, width) > 32 and batch >= CUDA_JACOBI_MIN_BATCH else "torch"
    return "torch"


def resolve_backend(backend: str, device: torch.device | str, height: int, width: int, batch: int) -> str:
    """The concrete backend `channel_svd` will run: the argument, else $AVI_SVD_BACKEND, else the rule."""
    _check_name(backend, "backend argument")
    if backend == "auto":
        forced = os.environ.get(ENV_VAR, "").strip()
        if forced:
            backend = _check_name(forced, f"environment variable {ENV_VAR}")
    if backend == "auto":
        backend = auto_backend(device, height, width, batch)
    return backend


def channel_svd(x: torch.Tensor, backend: str = "auto") -> SVDResult:
    """Thin SVD of `x [..., H, W]` in float32 or better; see the module docstring for shapes and backends.

    Raises NonFiniteError if `x` holds NaN or infinity (or, which should never happen, if the backend
    returns any), ValueError for an unknown backend or a tensor of fewer than 2 dimensions, and
    BackendUnavailableError (avi_core.latent.triton_svd) for the "triton" backend where it cannot run.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"channel_svd needs a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"channel_svd needs a tensor of at least 2 dimensions, got shape {tuple(x.shape)}")
    if x.is_complex():
        raise TypeError(f"channel_svd works on real latents, got {x.dtype}")
    *lead, h, w = x.shape
    batch = 1
    for size in lead:
        batch *= size
    name = resolve_backend(backend, x.device, h, w, batch)
    work = x.to(_working_dtype(x))
    if work.numel() == 0:
        return _IMPLEMENTATIONS[name](work)
    try:
        u, s, vh = _IMPLEMENTATIONS[name](work)
    except RuntimeError:  # LAPACK refuses some non-finite inputs outright
        if not bool(torch.isfinite(work).all()):
            raise _non_finite_input(x) from None
        raise
    # One host synchronisation for both checks (input and output), not one each: it matters on a GPU. A NaN or
    # infinity anywhere makes the sum of the sums non-finite; summing is ~5x cheaper than isfinite().all() per
    # tensor, which at B = 1 cost a quarter of the SVD. Only a non-finite sum (a bad value, or a finite sum that
    # overflowed) pays for the exact per-tensor checks.
    if math.isfinite(float(work.sum() + u.sum() + s.sum() + vh.sum())):
        return u, s, vh
    checks = torch.stack([torch.isfinite(t).all() for t in (work, u, s, vh)])
    if not bool(checks.all()):
        if not bool(checks[0]):
            raise _non_finite_input(x)
        raise NonFiniteError(
            f"the {name!r} SVD backend returned NaN or infinity for a finite input of shape {tuple(x.shape)} "
            f"(another backend can be forced with {ENV_VAR}=torch)",
            reason="backend",
        )
    return u, s, vh


def _non_finite_input(x: torch.Tensor) -> NonFiniteError:
    return NonFiniteError(
        f"the latent contains NaN or infinity (shape {tuple(x.shape)}), so it has no SVD", reason="input"
    )
