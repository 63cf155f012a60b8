"""Fused batched one-sided Jacobi SVD in Triton: one program per matrix, the matrix on chip for every sweep.

`triton_svd(x)` returns the thin SVD of every matrix of `x [..., H, W]` with `channel_svd`'s contract:
`U [..., H, r]`, `S [..., r]` (descending, >= 0), `Vh [..., r, W]` (right singular vectors as rows),
r = min(H, W), H and W up to `MAX_SIZE` (128). U and V are orthonormal for every input, rank-deficient and
all-zero matrices included, and nothing is NaN. Each singular pair (u, v) is defined up to a common sign;
the kernel picks one, and U and Vh always agree (U diag(S) Vh reproduces x).

Precision: float32 input is decomposed in float32, with each rotation's angle computed in float64 (one per
column pair per round, like `avi_core.jacobi`); float64 input runs the same kernel entirely in float64
(Triton supports float64 on every CUDA GPU, at 1/2 to 1/64 of the float32 rate depending on the GPU). Other
dtypes are refused (`channel_svd` converts them to float32 first).

Availability: Triton is an optional dependency (`pip install triton`, or the `cuda` extra of this package),
imported only when the backend is used, so importing avi_core never needs it. It compiles for CUDA GPUs; on
a machine without one the kernel runs only under Triton's interpreter (`TRITON_INTERPRET=1`, numpy on the
CPU, about a second per 64 x 64 matrix), which is how the tests check it. `is_available()` says whether it
can run here; `triton_svd` raises `BackendUnavailableError`, naming the fix, where it cannot.

Method (Hestenes' one-sided Jacobi, as in `avi_core.jacobi`, but one kernel for the whole iteration). A tall
matrix A [m, n] (m >= n; a wide x is read transposed through its strides, no copy) is held on chip as the
tile `a [N_PAD, M_PAD]` whose row i is column i of A, scaled so that its largest entry is 1, next to
`v [N_PAD, N_PAD]` (row i = column i of V, starting from the identity), both padded with zeros to powers
of two. A round rotates N_PAD / 2 disjoint pairs of rows at once with the round-robin ("circle") schedule:
in round r, row i < K = N_PAD - 1 meets row (r - i) mod K, or row K when that is i itself; every pair
meets exactly once in the K rounds of a sweep. The rows never move: each row fetches its partner's row
(`tl.gather` in registers, or a round trip through the output buffer, see GATHER_MODES), and both rows of a
pair compute the same rotation from the same three numbers (the first row's dot product and both squared
norms, exchanged with 1-D gathers so that the two sides agree bit for bit):

    zeta = (|a_q|^2 - |a_p|^2) / (2 a_p . a_q)   t = sign(zeta) / (|zeta| + sqrt(1 + zeta^2))   (float64)
    c = 1 / sqrt(1 + t^2), s = c t               a_p <- c a_p - s a_q,  a_q <- s a_p + c a_q   (same for v)

A pair is rotated only when |a_p . a_q| > tol |a_p| |a_q|, with tol = sqrt(m) * eps (LAPACK sgesvj's
threshold), and both norms are above `tiny` = sqrt(smallest normal float) * m: below that a column's squares
are subnormal and its dot products rounding noise that would keep it rotating to the sweep cap, so such a
column is frozen (it would carry less than 1e-18 of the largest singular value). The squared norms are
recomputed by a reduction every round rather than updated by formula, so no cancellation can make a pair look
converged when it is not. The sweeps stop as soon as a whole sweep found no pair above the tolerance, or
after `max_sweeps` (per matrix: a matrix that converges early stops early, whatever the rest of the batch
does). The kernel then writes each row normalised (U's columns), its norm times the scale (S, unsorted) and v
(Vh's rows, same order). Rows at or below `tiny` carry no reliable direction: they are written as zero, with
S = 0.

After the kernel, in PyTorch: sort S descending (stable) and reorder U's columns and Vh's rows with it, and
complete the zero columns of U to an orthonormal basis with a Householder QR (`avi_core.jacobi`'s
`_complete_basis`), then transpose back for wide input.

GPU behaviour (expected, NOT measured: no GPU was available when this was written). Per 64 x 64 matrix a
sweep is 63 rounds, each two gathers of a 64 x 64 tile, two row reductions and ~6 flops per element of A and
V; about 10 sweeps (random matrices; up to ~16 for rank-deficient ones). That is ~26 Mflop per matrix, some
5x the 21 n^3 flops of the bench's floor, plus the on-chip traffic of the gathers (shared memory). The two
figures a GPU session must measure: time per matrix at B = 20,000 (target: within 10x of the floor and 50x
faster than torch.linalg.svd) and at B = 4 (target: under 1 ms, dominated by launch and the PyTorch post
step). What to tune: `num_warps` (default by tile size, see `_default_num_warps`; register spills at
128 x 128 are likely), the gather mode ("registers" vs "memory"), and whether several small matrices per
program pay off.
"""

# No `from __future__ import annotations` here: the kernel's `tl.constexpr` annotations must be real objects, not
# strings, for the interpreter of Triton 3.0-3.2 to see them (Python >= 3.10 takes the `X | None` hints as is).
import functools
import importlib.util
import logging
import math
import os
from typing import Any

import torch

from ..errors import BackendUnavailableError
from .jacobi import _complete_basis

logger = logging.getLogger("avi.triton_svd")

# Largest H and W the kernel takes: the tiles of a 128 x 128 matrix (A and V, float32) are 128 KiB per program.
MAX_SIZE = 128
DEFAULT_MAX_SWEEPS = 30
INTERPRET_ENV_VAR = "TRITON_INTERPRET"
# How a row fetches its partner's row each round: "registers" uses tl.gather (Triton >= 3.3; lowered through
# shared memory or warp shuffles); "memory" stores the tiles to the output buffers and loads the partner rows
# back (through L1/L2), with a barrier on each side. The results agree (bit for bit under the interpreter; on a
# GPU the two may round a reduction differently).
GATHER_MODES = ("registers", "memory")

SVDResult = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

# Bound on first use by _kernel(); module globals (not closure variables) so that every Triton version's JIT
# and its interpreter resolve them inside the kernel's source.
triton: Any = None
tl: Any = None


def triton_installed() -> bool:
    """Whether the `triton` package can be imported (checked without importing it)."""
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """Whether Triton's CPU interpreter is switched on (TRITON_INTERPRET=1, read when the kernel is built)."""
    return os.environ.get(INTERPRET_ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def unavailable_reason(device: torch.device | str | None = None) -> str | None:
    """None if the Triton backend can run here (for `device`, default: any), else why not and the fix."""
    if not triton_installed():
        return (
            "the 'triton' SVD backend needs the triton package, which is not installed: "
            "pip install triton (or pip install 'avi-attribute-vectors[cuda]'); it runs on CUDA GPUs"
        )
    if interpreting():
        return None
    kind = None if device is None else torch.device(device).type
    if kind not in (None, "cuda"):
        return (
            f"the 'triton' SVD backend runs on CUDA tensors only, got a {kind} tensor; move the latent to a CUDA "
            f"GPU, choose another backend (AVI_SVD_BACKEND=auto), or set {INTERPRET_ENV_VAR}=1 to run "
            "Triton's interpreter on the CPU (slow: for tests only)"
        )
    if not torch.cuda.is_available():
        return (
            "the 'triton' SVD backend needs a CUDA GPU, and torch sees none; use AVI_SVD_BACKEND=auto, "
            f"or set {INTERPRET_ENV_VAR}=1 to run Triton's interpreter on the CPU (slow: for tests only)"
        )
    return None


def is_available(device: torch.device | str | None = None) -> bool:
    """Whether `triton_svd` can run here: triton installs, and a CUDA device (or the interpreter) is present."""
    return unavailable_reason(device) is None


def _default_num_warps(n_pad: int, m_pad: int) -> int:
    # One warp per 512 elements of A: at 64 x 64 (8 warps) each thread then holds 16 elements of each of A, V and
    # their gathered partners, 64 registers in all; 128 x 128 is capped at 16 warps (128 registers).
    return max(1, min(16, n_pad * m_pad // 512))


def _next_power_of_two(value: int) -> int:
    return 1 << max(1, math.ceil(math.log2(max(value, 2))))


@functools.cache
def _kernel() -> Any:
    """Import Triton and build the kernel once (a JIT function; it compiles per tile size on first launch)."""
    global triton, tl
    import triton as _triton
    import triton.language as _tl

    triton, tl = _triton, _tl
    if not hasattr(tl, "gather"):
        logger.info("triton %s has no tl.gather: the Triton SVD uses the 'memory' gather mode", triton.__version__)

    @triton.jit
    def one_sided_jacobi_kernel(
        x_ptr,
        u_ptr,
        s_ptr,
        v_ptr,
        sweeps_ptr,
        m,
        n,
        stride_xb,
        stride_am,
        stride_an,
        params_ptr,
        max_sweeps,
        M_PAD: tl.constexpr,
        N_PAD: tl.constexpr,
        IN_REGISTERS: tl.constexpr,
    ):
        # A[j, i] (row j < m, column i < n) of matrix b sits at x_ptr + b*stride_xb + j*stride_am + i*stride_an.
        # Outputs (contiguous): u [B, n, m] (row i = column i of U), s [B, n], v [B, n, n] (row i = row i of Vh).
        # params = [tol, tiny] in the working dtype (a float argument would be float32, and float64's tiny
        # threshold underflows there).
        b = tl.program_id(0).to(tl.int64)
        tol = tl.load(params_ptr)
        tiny = tl.load(params_ptr + 1)
        rows = tl.arange(0, N_PAD)
        cols = tl.arange(0, M_PAD)
        vcols = tl.arange(0, N_PAD)
        a_mask = (rows[:, None] < n) & (cols[None, :] < m)
        v_mask = (rows[:, None] < n) & (vcols[None, :] < n)
        a = tl.load(
            x_ptr + b * stride_xb + cols[None, :] * stride_am + rows[:, None] * stride_an, mask=a_mask, other=0.0
        )
        amax = tl.max(tl.max(tl.abs(a), axis=1), axis=0)
        amax = tl.where(amax > 0, amax, 1.0)
        a = a / amax
        v = tl.where(rows[:, None] == vcols[None, :], 1.0, 0.0).to(a.dtype)
        u_rows = u_ptr + b * n * m + rows[:, None] * m + cols[None, :]
        v_rows = v_ptr + b * n * n + rows[:, None] * n + vcols[None, :]

        K: tl.constexpr = N_PAD - 1
        HALF: tl.constexpr = N_PAD // 2
        is_last = rows == K
        sweep = 0
        busy = 1
        while (sweep < max_sweeps) & (busy != 0):
            worst = tl.zeros([N_PAD], dtype=a.dtype)
            for r in range(K):
                # Round-robin partner of every row in round r (an involution; see the module docstring).
                j = (r - rows + K) % K
                partner = tl.where(j == rows, K, j)
                partner = tl.where(is_last, (r * HALF) % K, partner)
                if IN_REGISTERS:
                    a_other = tl.gather(a, tl.broadcast_to(partner[:, None], (N_PAD, M_PAD)), 0)
                    v_other = tl.gather(v, tl.broadcast_to(partner[:, None], (N_PAD, N_PAD)), 0)
                else:
                    # Padded rows (>= n) are not stored; they load as zero, which is exact: a pair with a padded
                    # (zero) row never rotates, so its partner row is multiplied by s = 0.
                    tl.debug_barrier()
                    tl.store(u_rows, a, mask=a_mask)
                    tl.store(v_rows, v, mask=v_mask)
                    tl.debug_barrier()
                    p_mask = partner[:, None] < n
                    a_other = tl.load(
                        u_ptr + b * n * m + partner[:, None] * m + cols[None, :],
                        mask=p_mask & (cols[None, :] < m),
                        other=0.0,
                    )
                    v_other = tl.load(
                        v_ptr + b * n * n + partner[:, None] * n + vcols[None, :],
                        mask=p_mask & (vcols[None, :] < n),
                        other=0.0,
                    )
                norm = tl.sum(a * a, axis=1)
                dot = tl.sum(a * a_other, axis=1)
                first = rows < partner
                # Both rows of a pair use the first row's dot product and the same two norms, so they compute
                # the same c and s bit for bit whatever order the reductions summed in.
                if IN_REGISTERS:
                    dot_other = tl.gather(dot, partner, 0)
                    norm_other = tl.gather(norm, partner, 0)
                else:
                    norm_other = tl.sum(a_other * a_other, axis=1)
                    dot_other = tl.sum(a_other * a, axis=1)
                gamma = tl.where(first, dot, dot_other)
                alpha = tl.where(first, norm, norm_other)
                beta = tl.where(first, norm_other, norm)
                # sqrt each norm separately: their product can underflow for small but nonzero columns.
                norm_p = tl.sqrt(alpha)
                norm_q = tl.sqrt(beta)
                scale = norm_p * norm_q
                # A column at or below `tiny` is left alone (and completed by QR at the end): its squares are
                # subnormal, so its dot products are rounding noise that would keep it rotating forever.
                rel = tl.where((norm_p > tiny) & (norm_q > tiny), tl.abs(gamma) / tl.where(scale > 0, scale, 1.0), 0.0)
                worst = tl.maximum(worst, rel)
                rotate = rel > tol
                # The angle in float64: float32 rounding of c^2 + s^2 off 1 is biased, and that bias summed over
                # hundreds of rotations would cost V its orthonormality (see avi_core.jacobi).
                gamma64 = tl.where(rotate, gamma, 1.0).to(tl.float64)
                zeta = (beta.to(tl.float64) - alpha.to(tl.float64)) / (2.0 * gamma64)
                t = tl.where(zeta >= 0, 1.0, -1.0) / (tl.abs(zeta) + tl.sqrt(1.0 + zeta * zeta))
                t = tl.where(rotate, t, 0.0)
                c = 1.0 / tl.sqrt(1.0 + t * t)
                s = tl.where(first, -c * t, c * t)
                c_w = c.to(a.dtype)[:, None]
                s_w = s.to(a.dtype)[:, None]
                a = a * c_w + a_other * s_w
                v = v * c_w + v_other * s_w
            sweep += 1
            busy = (tl.max(worst, axis=0) > tol).to(tl.int32)

        norm = tl.sqrt(tl.sum(a * a, axis=1))
        missing = norm <= tiny
        u = tl.where(missing[:, None], 0.0, a / tl.where(missing, 1.0, norm)[:, None])
        if not IN_REGISTERS:
            tl.debug_barrier()
        tl.store(u_rows, u, mask=a_mask)
        tl.store(s_ptr + b * n + rows, tl.where(missing, 0.0, norm * amax), mask=rows < n)
        tl.store(v_rows, v, mask=v_mask)
        tl.store(sweeps_ptr + b, sweep)

    return one_sided_jacobi_kernel


def _default_tol(dtype: torch.dtype, m: int) -> float:
    # sqrt(m) * eps is LAPACK's sgesvj/dgesvj threshold: tighter thresholds chase rounding noise.
    return float(torch.finfo(dtype).eps) * max(m, 1) ** 0.5


def _check_runnable(x: torch.Tensor) -> None:
    reason = unavailable_reason(x.device)
    if reason is not None:
        raise BackendUnavailableError(reason)


def triton_svd_with_sweeps(
    x: torch.Tensor,
    *,
    tol: float | None = None,
    max_sweeps: int = DEFAULT_MAX_SWEEPS,
    num_warps: int | None = None,
    gather: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`triton_svd(x)` and the sweeps each matrix took, `[...]` int32 (for tests and tuning).

    `tol`: relative orthogonality at which a column pair counts as converged (default sqrt(max(H, W)) * eps
    of the dtype); `max_sweeps` caps the sweeps per matrix; `num_warps` and `gather` (one of GATHER_MODES;
    default "registers" where Triton has tl.gather, i.e. 3.3+, else "memory") are launch choices for tuning
    on a GPU, with no effect on the result's meaning.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"triton_svd needs a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"triton_svd needs a tensor of at least 2 dimensions, got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"triton_svd works in float32 or float64, got {x.dtype}; convert the input first")
    if max_sweeps < 1:
        raise ValueError(f"max_sweeps must be at least 1, got {max_sweeps}")
    if gather is not None and gather not in GATHER_MODES:
        raise ValueError(f"unknown gather mode {gather!r}; choose one of {', '.join(GATHER_MODES)}")
    *lead, h, w = x.shape
    if max(h, w) > MAX_SIZE:
        raise ValueError(
            f"the 'triton' SVD backend takes matrices up to {MAX_SIZE} x {MAX_SIZE}, got {h} x {w}; "
            "use AVI_SVD_BACKEND=auto (or jacobi) for larger latents"
        )
    _check_runnable(x)
    r = min(h, w)
    wide = h < w
    m, n = (w, h) if wide else (h, w)
    flat = x.reshape(-1, h, w)
    batch = flat.shape[0]
    if batch == 0 or r == 0:
        return (
            x.new_zeros(*lead, h, r),
            x.new_zeros(*lead, r),
            x.new_zeros(*lead, r, w),
            torch.zeros(lead, dtype=torch.int32, device=x.device),
        )
    kernel = _kernel()
    if gather is None:
        gather = "registers" if hasattr(tl, "gather") else "memory"
    elif gather == "registers" and not hasattr(tl, "gather"):
        raise BackendUnavailableError(
            f"gather='registers' needs tl.gather, which triton {triton.__version__} lacks (it came in 3.3): "
            "pip install 'triton>=3.3', or leave gather at its default"
        )
    n_pad, m_pad = _next_power_of_two(n), _next_power_of_two(m)
    # A = x (tall) or x^T (wide): A[j, i] at j * stride_am + i * stride_an.
    stride_row, stride_col = flat.stride(1), flat.stride(2)
    stride_am, stride_an = (stride_col, stride_row) if wide else (stride_row, stride_col)
    ut = torch.empty(batch, n, m, dtype=x.dtype, device=x.device)
    s = torch.empty(batch, n, dtype=x.dtype, device=x.device)
    vt = torch.empty(batch, n, n, dtype=x.dtype, device=x.device)
    sweeps = torch.empty(batch, dtype=torch.int32, device=x.device)
    tol = _default_tol(x.dtype, m) if tol is None else float(tol)
    params = torch.tensor([tol, torch.finfo(x.dtype).tiny ** 0.5 * m], dtype=x.dtype).to(x.device)
    kernel[(batch,)](
        flat,
        ut,
        s,
        vt,
        sweeps,
        m,
        n,
        flat.stride(0),
        stride_am,
        stride_an,
        params,
        int(max_sweeps),
        M_PAD=m_pad,
        N_PAD=n_pad,
        IN_REGISTERS=gather == "registers",
        num_warps=num_warps or _default_num_warps(n_pad, m_pad),
    )
    if logger.isEnabledFor(logging.DEBUG):
        capped = int((sweeps >= max_sweeps).sum())
        if capped:
            logger.debug("triton_svd: %d of %d matrices hit the sweep cap (%d)", capped, batch, max_sweeps)

    s, order = torch.sort(s, dim=-1, descending=True, stable=True)
    ut = ut.gather(-2, order.unsqueeze(-1).expand(-1, -1, m))
    vh = vt.gather(-2, order.unsqueeze(-1).expand(-1, -1, n))
    u = ut.transpose(-1, -2)
    missing = s == 0  # the kernel zeroes S exactly where the column had no direction
    if bool(missing.any()):
        rows = missing.any(dim=-1).nonzero().squeeze(-1)
        u = u.clone()
        u[rows] = _complete_basis(u[rows], missing[rows])
    if wide:
        # x^T = U S Vh  =>  x = Vh^T S U^T
        u, vh = vh.transpose(-1, -2), u.transpose(-1, -2)
    return u.reshape(*lead, h, r), s.reshape(*lead, r), vh.reshape(*lead, r, w), sweeps.reshape(lead)


def triton_svd(x: torch.Tensor, **options: Any) -> SVDResult:
    """Thin SVD of `x [..., H, W]` (float32 or float64, finite, H and W <= 128) by the fused Triton kernel.

    Returns U [..., H, r], S [..., r] (descending, >= 0), Vh [..., r, W] with x's dtype and device, r = min(H, W);
    see the module docstring. `options` are those of `triton_svd_with_sweeps`. The input must be finite (the
    caller checks: `avi_core.latent.svd.channel_svd` does). Raises BackendUnavailableError where triton or a CUDA
    device is missing (unless TRITON_INTERPRET=1), ValueError for a matrix over 128 in either dimension.
    """
    u, s, vh, _ = triton_svd_with_sweeps(x, **options)
    return u, s, vh
