"""Algorithm 1 of the paper, per channel (spec section 3).

Notation, for one channel matrix of shape H x W and r = min(H, W):
`X = Ux diag(Sx) Vx`, `Z = Uz diag(Sz) Vz` (thin SVDs, Vx and Vz hold right singular vectors as rows, like
`torch.linalg.svd`'s Vh). The first k directions of x are kept whole; the remaining m = r - k slots blend x's
trailing directions with z's directions in reversed order:

    U^ = [ Ux[:, :k] , (1 - rho) Ux[:, k:] + rho Uz'[:, :m] ]      Uz' = Uz[:, ::-1]
    V^ = [ Vx[:k, :] ; (1 - rho) Vx[k:, :] + rho Vz'[:m, :] ]      Vz' = Vz[::-1, :]

Sign convention (spec): each z pair landing in slot k + j is multiplied, u and v together, by the sign of
<Ux[:, k+j], Uz'[:, j]> (zero counts as +1), so the result does not depend on the SVD backend's signs.
Everything is batched over leading dimensions.
"""

from __future__ import annotations

import torch

from ..errors import ShapeMismatchError
from ..latent.svd import channel_svd
from .head import check_k


def blend_bases(
    u_x: torch.Tensor,
    vh_x: torch.Tensor,
    u_z: torch.Tensor,
    vh_z: torch.Tensor,
    k: int,
    rho: float | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend the singular bases of x and z into (U^ [..., H, r], V^ [..., r, W]).

    u_x, u_z: [..., H, r]; vh_x, vh_z: [..., r, W]; leading dims broadcast (z may have batch 1).
    rho: a number, or a tensor broadcastable to the leading dims (one rho per matrix, for sweeps).
    """
    rank = u_x.shape[-1]
    if u_z.shape[-2:] != u_x.shape[-2:] or vh_z.shape[-2:] != vh_x.shape[-2:]:
        raise ShapeMismatchError(
            f"x and z channel matrices differ in size: x bases {tuple(u_x.shape[-2:])}/{tuple(vh_x.shape[-2:])}, "
            f"z bases {tuple(u_z.shape[-2:])}/{tuple(vh_z.shape[-2:])}",
            reason="size",
        )
    k = check_k(k, rank)
    m = rank - k
    u_z_rev = u_z.flip(-1)[..., :m]  # Uz'[:, :m]   [..., H, m]
    vh_z_rev = vh_z.flip(-2)[..., :m, :]  # Vz'[:m, :]   [..., m, W]
    u_x_tail = u_x[..., k:]
    vh_x_tail = vh_x[..., k:, :]
    # Sign of <Ux[:, k+j], Uz'[:, j]> per slot, zero counted as +1.
    dots = (u_x_tail * u_z_rev).sum(dim=-2)  # [..., m]
    signs = torch.where(dots < 0, -1.0, 1.0).to(u_x.dtype)
    u_z_rev = u_z_rev * signs.unsqueeze(-2)
    vh_z_rev = vh_z_rev * signs.unsqueeze(-1)
    rho_t = torch.as_tensor(rho, dtype=u_x.dtype, device=u_x.device)
    rho_cols = rho_t.reshape(*rho_t.shape, 1, 1) if rho_t.dim() else rho_t
    u_hat = _cat_blend(u_x[..., :k], u_x_tail, u_z_rev, rho_cols, dim=-1)
    v_hat = _cat_blend(vh_x[..., :k, :], vh_x_tail, vh_z_rev, rho_cols, dim=-2)
    return u_hat, v_hat


def _cat_blend(
    head: torch.Tensor, x_tail: torch.Tensor, z_part: torch.Tensor, rho: torch.Tensor, dim: int
) -> torch.Tensor:
    """[head, (1 - rho) x_tail + rho z_part] along `dim`, broadcasting leading dims."""
    tail = (1 - rho) * x_tail + rho * z_part
    lead = torch.broadcast_shapes(head.shape[:-2], tail.shape[:-2])
    head = head.broadcast_to(*lead, *head.shape[-2:])
    tail = tail.broadcast_to(*lead, *tail.shape[-2:])
    return torch.cat([head, tail], dim=dim)


def compose(u: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """U diag(S) V for u [..., H, r], s [..., r], v [..., r, W] (V holds right vectors as rows) -> [..., H, W]."""
    return (u * s.unsqueeze(-2)) @ v


def attribute_vectors(
    x: torch.Tensor, z: torch.Tensor, k: int, rho: float | torch.Tensor, svd_backend: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Algorithm 1's bases for paper-space x [..., H, W] and z [..., H, W] (leading dims broadcast).

    Returns (U_hat [..., H, r], V_hat [..., r, W], S_x [..., r], S_z [..., r]) in float32 (float64 if x is).
    """
    if x.shape[-2:] != z.shape[-2:]:
        raise ShapeMismatchError(
            f"x is {tuple(x.shape[-2:])} per channel but z is {tuple(z.shape[-2:])}", reason="size"
        )
    u_x, s_x, vh_x = channel_svd(x, backend=svd_backend)
    u_z, s_z, vh_z = channel_svd(z.to(u_x.dtype), backend=svd_backend)
    u_hat, v_hat = blend_bases(u_x, vh_x, u_z, vh_z, k, rho)
    return u_hat, v_hat, s_x, s_z
