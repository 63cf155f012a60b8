"""Subspace distance between the top-k singular subspaces of latents (spec 11; paper section 4.3, Figure 5).

For two channel matrices A and B `[H, W]`, take the spans of their top-k singular vectors, on the left (the
first k columns of U: subspaces of R^H) or on the right (the first k rows of Vh: subspaces of R^W). The
distance is the geodesic distance on the Grassmannian, `sqrt(sum_i theta_i^2)` over the k principal angles
theta_i in [0, pi/2] (so it lies in [0, sqrt(k) * pi / 2]). The paper uses k = 4 (`PAPER_K`).

Principal angles are computed as in Bjorck & Golub (1973) and Knyazev & Argentati (2002): the cosines are the
singular values of `Qa^T Qb`, the sines those of `Qb - Qa Qa^T Qb`; an angle below 45 degrees is taken from its
sine (arccos loses every digit near 0, and the paper reports distances of 4e-4), a larger one from its cosine.
Distances are invariant to a positive scaling of either latent and to the SVD's sign choices, so they are the
same in paper and ComfyUI space. Where s_k = s_(k+1) the top-k subspace is not unique (never the case for real
latents, but for example for an identity matrix).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from ..errors import NonFiniteError, ParameterError, ShapeMismatchError
from ..latent.svd import channel_svd

logger = logging.getLogger("avi.explore")

SIDES = ("left", "right")
PAPER_K = 4


def _angles_of_orthonormal(qa: torch.Tensor, qb: torch.Tensor) -> torch.Tensor:
    """Principal angles `[..., m]` (ascending, m = min(ka, kb)) of orthonormal bases `[..., n, ka]`, `[..., n, kb]`."""
    cross = qa.transpose(-1, -2) @ qb
    cosines = torch.linalg.svdvals(cross).clamp(0.0, 1.0)  # descending: angles ascending
    if qa.shape[-1] >= qb.shape[-1]:
        residual = qb - qa @ cross
    else:
        residual = qa - qb @ cross.transpose(-1, -2)
    sines = torch.linalg.svdvals(residual).clamp(0.0, 1.0)  # descending: angles descending
    sines = sines[..., : cosines.shape[-1]].flip(-1)  # ascending, aligned with the cosines
    return torch.where(cosines * cosines >= 0.5, torch.arcsin(sines), torch.arccos(cosines))


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles between the column spans of `a [..., n, ka]` and `b [..., n, kb]` (any bases).

    Returns `[..., min(ka, kb)]` in radians, ascending, float32 (float64 if either input is float64); the
    leading dimensions broadcast. The bases are orthonormalised first (QR), so they need only be full rank.
    """
    if a.dim() < 2 or b.dim() < 2 or a.shape[-2] != b.shape[-2]:
        raise ShapeMismatchError(
            f"bases {tuple(a.shape)} and {tuple(b.shape)} must be [..., n, k] with the same n",
            reason="basis",
            a=tuple(a.shape),
            b=tuple(b.shape),
        )
    dtype = torch.float64 if torch.float64 in (a.dtype, b.dtype) else torch.float32
    qa = torch.linalg.qr(a.to(dtype)).Q
    qb = torch.linalg.qr(b.to(dtype)).Q
    return _angles_of_orthonormal(qa, qb)


def _check_k(k: int, rank: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= rank:
        raise ParameterError(
            f"k = {k!r} is outside 1..{rank} (the latent's channels have {rank} singular pairs)",
            reason="range",
            name="k",
            value=k,
            low=1,
            high=rank,
        )
    return k


def _check_side(side: str) -> str:
    if side not in SIDES:
        raise ParameterError(f"side must be 'left' or 'right', got {side!r}", reason="choice", name="side", value=side)
    return side


def top_basis(latents: torch.Tensor, k: int, side: str = "left", backend: str = "auto") -> torch.Tensor:
    """Orthonormal basis of the top-k singular subspace of each channel matrix of `latents [..., H, W]`.

    left: `U[..., :, :k]` -> `[..., H, k]`; right: `Vh[..., :k, :]^T` -> `[..., W, k]`. float32+.
    """
    _check_side(side)
    if latents.dim() < 2:
        raise ShapeMismatchError(
            f"the latent must be [..., H, W], got {tuple(latents.shape)}", reason="shape", shape=tuple(latents.shape)
        )
    k = _check_k(k, min(latents.shape[-2:]))
    u, _, vh = channel_svd(latents, backend=backend)
    return u[..., :, :k] if side == "left" else vh[..., :k, :].transpose(-1, -2)


def _distance(basis_a: torch.Tensor, basis_b: torch.Tensor) -> torch.Tensor:
    theta = _angles_of_orthonormal(basis_a, basis_b)
    distance = torch.sqrt((theta * theta).sum(-1))
    if not bool(torch.isfinite(distance).all()):
        raise NonFiniteError("a subspace distance came out NaN or infinite", reason="result")
    return distance


def subspace_distance(
    a: torch.Tensor, b: torch.Tensor, k: int, side: str = "left", backend: str = "auto"
) -> torch.Tensor:
    """Geodesic distance between the top-k singular subspaces of `a [..., H, W]` and `b [..., H, W]`.

    Per channel matrix: `sqrt(sum_i theta_i^2)` over the k principal angles (module doc). The leading
    dimensions broadcast; returns their broadcast shape (`[B, C]` for two `[B, C, H, W]` latents), float32+,
    in radians. side: "left" (column spaces, U) or "right" (row spaces, Vh).
    """
    if a.shape[-2:] != b.shape[-2:]:
        raise ShapeMismatchError(
            f"latents of {tuple(a.shape)} and {tuple(b.shape)} have different H x W",
            reason="shape",
            a=tuple(a.shape),
            b=tuple(b.shape),
        )
    basis_a = top_basis(a, k, side, backend)
    basis_b = top_basis(b, k, side, backend)
    if torch.float64 in (basis_a.dtype, basis_b.dtype):
        basis_a, basis_b = basis_a.double(), basis_b.double()
    return _distance(basis_a, basis_b)


def trajectory_distances(
    latents: torch.Tensor | Sequence[torch.Tensor], k: int, side: str = "left", backend: str = "auto"
) -> torch.Tensor:
    """Distances between every two steps of a trajectory: `[S, ..., H, W]` -> `[S, S, ...]` (one SVD per step).

    latents: S latents of the same shape (e.g. `paper_trajectory(...)`, `[S, B, C, H, W]`, a batch of seeds
    captured at S steps); entry [i, j, ...] is `subspace_distance(latents[i], latents[j], k, side)`, so the
    result is symmetric with a zero diagonal. Average over the trailing dimensions for the paper's Figure 5.
    """
    stack = torch.stack(list(latents)) if not isinstance(latents, torch.Tensor) else latents
    if stack.dim() < 3 or stack.shape[0] == 0:
        raise ShapeMismatchError(
            f"the trajectory must be [S, ..., H, W] with S >= 1, got {tuple(stack.shape)}",
            reason="shape",
            shape=tuple(stack.shape),
        )
    bases = top_basis(stack, k, side, backend)  # [S, ..., n, k]
    steps = bases.shape[0]
    out = torch.zeros((steps, steps, *bases.shape[1:-2]), dtype=bases.dtype, device=bases.device)
    for i in range(steps):
        if i + 1 < steps:
            row = _distance(bases[i].unsqueeze(0), bases[i + 1 :])
            out[i, i + 1 :] = row
            out[i + 1 :, i] = row
    logger.debug("subspace distances of %d steps, k %d, %s side", steps, k, side)
    return out
