"""Batched one-sided Jacobi SVD expressed as plain tensor operations (runs on CPU and CUDA alike).

`jacobi_svd(x)` returns the thin SVD of every matrix of `x [..., H, W]`:
`U [..., H, r]`, `S [..., r]` (descending, >= 0), `Vh [..., r, W]` (right singular vectors as rows),
r = min(H, W), like `torch.linalg.svd(x, full_matrices=False)` up to the sign of each singular pair.

Method (Hestenes' one-sided Jacobi). For a tall matrix A [m, n] (m >= n; a wide one is transposed first),
plane rotations J are applied on the right, A <- A J and V <- V J, until every pair of columns of A is
orthogonal; then the column norms are the singular values, the normalised columns are U, and V holds the
right singular vectors. All n/2 disjoint column pairs of a round are rotated at once, for every matrix of the
batch, with a round-robin (tournament) ordering: n - 1 rounds make a sweep in which every pair meets once.
The columns of A and of V are kept together as the rows of one work tensor `[B, n, m + n]`, so the same
elementwise updates rotate both; pair k of a round is (row k, row k + n/2), and between rounds the rows
are permuted by the tournament schedule. The loop stops when, over a whole sweep, no pair of any matrix of
the batch needed a rotation (|a_p . a_q| <= tol |a_p| |a_q|), or after `max_sweeps` sweeps (one host
synchronisation per sweep). Random 64 x 64 float32 matrices take about 10 sweeps, latent-like ones about 12,
rank-deficient ones up to 16. The data stay in the input's dtype; only the rotation angles (one per pair)
are computed in float64, which keeps float32 results as accurate as LAPACK's (about 1e-6 relative).

Columns whose norm is zero (or too small to carry a direction: rank-deficient and zero matrices) give no
direction for U; those columns of U are completed to an orthonormal basis with a Householder QR, so U and V
are orthonormal for every input and nothing is NaN.
"""

from __future__ import annotations

import functools
import logging

import torch

logger = logging.getLogger("avi.jacobi")

DEFAULT_MAX_SWEEPS = 20


@functools.lru_cache(maxsize=64)
def tournament_schedule(n: int) -> tuple[tuple[int, ...], ...]:
    """Row permutations of the round-robin ordering for an even `n`.

    Round i rotates the pairs (row k, row k + n/2) of the work tensor; after it, the rows are gathered with
    `schedule[i]` so that the next round meets new partners. Row 0 stays put, the others circle around
    (the classic chess-tournament scheme). After n - 1 rounds the rows are back in their original order,
    and every pair of rows has met exactly once.
    """
    if n < 2 or n % 2:
        raise ValueError(f"tournament_schedule needs an even n >= 2, got {n}")
    half = n // 2
    labels = list(range(n))  # labels[pos] = which original row sits at position pos
    schedule = []
    for _ in range(n - 1):
        top, bottom = labels[:half], labels[half:]
        new_top = [top[0]] + ([bottom[0]] + top[1:-1] if half > 1 else [])
        new_bottom = (bottom[1:] + [top[-1]]) if half > 1 else bottom
        new_labels = new_top + new_bottom
        position = {label: pos for pos, label in enumerate(labels)}
        schedule.append(tuple(position[label] for label in new_labels))
        labels = new_labels
    return tuple(schedule)


def _default_tol(dtype: torch.dtype, m: int) -> float:
    # sqrt(m) * eps is LAPACK's sgesvj/dgesvj threshold: tighter thresholds chase rounding noise.
    return float(torch.finfo(dtype).eps) * max(m, 1) ** 0.5


def _rotate_round(work: torch.Tensor, out: torch.Tensor, norms: torch.Tensor, m: int, tol: float) -> torch.Tensor:
    """One parallel round: rotate the pairs (row k, row k + n/2) of `work [B, n, m + n]` into `out`.

    `norms [B, n]` holds the squared norms of the A part of the rows; it is updated in place with the exact
    post-rotation values (a_p'^2 = a_p^2 - t g, a_q'^2 = a_q^2 + t g), which saves two reductions per round.
    Returns the largest relative |a_p . a_q| of each matrix before the round, [B].
    """
    half = work.shape[-2] // 2
    top, bottom = work[:, :half], work[:, half:]
    alpha, beta = norms[:, :half], norms[:, half:]
    gamma = torch.linalg.vecdot(top[..., :m], bottom[..., :m])
    # sqrt each norm separately: alpha * beta can underflow where the columns are small but not zero.
    scale = alpha.clamp_min(0).sqrt() * beta.clamp_min(0).sqrt()
    off = gamma.abs()
    rotate = off > tol * scale
    relative = torch.where(scale > 0, off / torch.where(scale > 0, scale, 1.0), 0.0)
    # Rutishauser's stable formulas: the smaller root t of t^2 + 2 zeta t - 1 = 0 (|angle| <= pi/4).
    # The angles are computed in float64 (cheap: one per pair): float32 rsqrt rounds c^2 + s^2 off 1 in a
    # biased way, and that bias, summed over hundreds of rotations, would cost V its orthonormality.
    zeta = (beta - alpha).double() / (2.0 * torch.where(rotate, gamma, 1.0).double())
    sign = torch.where(zeta >= 0, 1.0, -1.0).to(zeta.dtype)
    t = sign / (zeta.abs() + torch.hypot(torch.ones_like(zeta), zeta))
    t = torch.where(rotate, t, 0.0)
    c = torch.rsqrt(1.0 + t * t)
    s = c * t
    tg = (t * gamma.double()).to(norms.dtype)
    alpha.sub_(tg)
    beta.add_(tg)
    c = c.to(work.dtype).unsqueeze(-1)
    s = s.to(work.dtype).unsqueeze(-1)
    out_top, out_bottom = out[:, :half], out[:, half:]
    torch.mul(top, c, out=out_top)
    out_top.addcmul_(bottom, s, value=-1.0)
    torch.mul(bottom, c, out=out_bottom)
    out_bottom.addcmul_(top, s)
    return relative.amax(dim=-1)


def _complete_basis(u: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
    """Replace the columns of `u [B, m, n]` flagged in `missing [B, n]` by an orthonormal completion.

    The flagged columns are set to standard basis vectors and the whole matrix goes through a Householder QR
    (whose Q is orthonormal even when those vectors are linearly dependent on the others). The unflagged
    columns, already orthonormal and sorted first, come back from the QR up to sign, which is restored from
    diag(R); only the flagged ones are taken from Q.
    """
    m, n = u.shape[-2], u.shape[-1]
    eye = torch.eye(m, n, dtype=u.dtype, device=u.device).expand_as(u)
    flags = missing.unsqueeze(-2)
    filled = torch.where(flags, eye, u)
    q, r = torch.linalg.qr(filled, mode="reduced")
    diag = torch.diagonal(r, dim1=-2, dim2=-1)
    q = q * torch.where(diag < 0, -1.0, 1.0).to(q.dtype).unsqueeze(-2)
    return torch.where(flags, q, u)


def _jacobi_tall(a: torch.Tensor, tol: float, max_sweeps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """SVD of `a [B, m, n]` with m >= n >= 1; returns U [B, m, n], S [B, n], Vh [B, n, n], sweeps used."""
    batch, m, n = a.shape
    n_even = n + (n % 2)  # an odd n gets a zero column: it never rotates, so it drops out exactly
    work = a.new_zeros(batch, n_even, m + n_even)
    work[:, :n, :m] = a.transpose(-1, -2)
    work[:, :, m:] = torch.eye(n_even, dtype=a.dtype, device=a.device)
    # One host-to-device copy for the whole schedule (one per round would each wait for the device).
    schedule = torch.tensor(tournament_schedule(n_even), dtype=torch.long).to(a.device).unbind(0)
    spare = torch.empty_like(work)
    sweeps = 0
    converged = False
    while not converged and sweeps < max_sweeps:
        sweeps += 1
        # Fresh norms each sweep, so the cheap in-round updates never drift far.
        norms = torch.linalg.vecdot(work[..., :m], work[..., :m])
        worst = a.new_zeros(batch)
        for perm in schedule:
            worst = torch.maximum(worst, _rotate_round(work, spare, norms, m, tol))
            torch.index_select(spare, -2, perm, out=work)
            norms = norms.index_select(-1, perm)
        converged = not bool((worst > tol).any())  # one host sync per sweep
    if not converged:
        logger.debug("jacobi_svd hit the sweep cap (%d) before every pair met the tolerance", max_sweeps)

    cols = work[:, :n, :m]
    v_rows = work[:, :n, m : m + n]
    s = torch.linalg.vector_norm(cols, dim=-1)
    s, order = torch.sort(s, dim=-1, descending=True)
    cols = cols.gather(-2, order.unsqueeze(-1).expand(-1, -1, m))
    vh = v_rows.gather(-2, order.unsqueeze(-1).expand(-1, -1, n))
    # A column too small to square without underflow carries no reliable direction.
    tiny = torch.finfo(a.dtype).tiny ** 0.5 * m
    missing = s <= tiny
    u = (cols / torch.where(missing, 1.0, s).unsqueeze(-1)).transpose(-1, -2)
    if bool(missing.any()):
        rows = missing.any(dim=-1).nonzero().squeeze(-1)
        u = u.clone()
        u[rows] = _complete_basis(u[rows], missing[rows])
        s = torch.where(missing, 0.0, s)
    return u, s, vh, sweeps


def jacobi_svd(
    x: torch.Tensor, *, tol: float | None = None, max_sweeps: int = DEFAULT_MAX_SWEEPS
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD of `x [..., H, W]` by batched one-sided Jacobi; see the module docstring.

    `x` must be float32 or float64 and finite (the caller checks: `avi_core.svd.channel_svd` does); the
    result has its dtype and device. `tol` is the relative orthogonality at which a column pair counts as
    converged (default sqrt(max(H, W)) * eps of the dtype); `max_sweeps` caps the sweeps.
    """
    if x.dim() < 2:
        raise ValueError(f"jacobi_svd needs a tensor of at least 2 dimensions, got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"jacobi_svd works in float32 or float64, got {x.dtype}; convert the input first")
    if max_sweeps < 1:
        raise ValueError(f"max_sweeps must be at least 1, got {max_sweeps}")
    *lead, h, w = x.shape
    r = min(h, w)
    wide = h < w
    a = x.transpose(-1, -2) if wide else x
    m, n = (w, h) if wide else (h, w)
    a = a.reshape(-1, m, n)
    batch = a.shape[0]
    if batch == 0 or r == 0:
        u = x.new_zeros(*lead, h, r)
        vh = x.new_zeros(*lead, r, w)
        return u, x.new_zeros(*lead, r), vh
    # Scale each matrix to max |entry| = 1 so that squared norms neither overflow nor underflow.
    amax = a.abs().amax(dim=(-2, -1), keepdim=True)
    amax = torch.where(amax > 0, amax, 1.0)
    tol = _default_tol(x.dtype, m) if tol is None else float(tol)
    u, s, vh, _ = _jacobi_tall(a / amax, tol, max_sweeps)
    s = s * amax.squeeze(-1)
    if wide:
        # x^T = U S Vh  =>  x = Vh^T S U^T
        u, vh = vh.transpose(-1, -2), u.transpose(-1, -2)
    return u.reshape(*lead, h, r), s.reshape(*lead, r), vh.reshape(*lead, r, w)
