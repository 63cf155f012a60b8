"""Inference (spec section 6): replace x by the merged latent y, in paper space.

S, ds = Phi(x);   U^, V^ from x and z at the user's rho and k
paper mode (default):   y = U^ diag(S) V^
anchored mode:          y = U^ diag((1 - rho) Sx + rho S) V^      (rho = 0 returns x)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import NonFiniteError, ParameterError, ShapeMismatchError
from ..latent.svd import channel_svd
from ..values import check_range
from .algorithm import blend_bases, compose
from .head import AttributeHead, resolve_k

MERGE_MODES: tuple[str, str] = ("paper", "anchored")
RHO_RANGE: tuple[float, float] = (-1.0, 2.0)


def _check_inputs(x: torch.Tensor, z: torch.Tensor, head: AttributeHead, mode: str) -> None:
    if mode not in MERGE_MODES:
        raise ParameterError(
            f"unknown merge mode {mode!r} (the modes are {', '.join(MERGE_MODES)})", name="mode", value=mode
        )
    if x.dim() != 4 or z.dim() != 4:
        raise ShapeMismatchError(
            f"merge takes latents [batch, channels, H, W]; got x {tuple(x.shape)} and z {tuple(z.shape)}",
            reason="rank",
        )
    head.check_latent_size(x.shape[-2], x.shape[-1])
    if z.shape[1:] != x.shape[1:]:
        raise ShapeMismatchError(
            f"x is {tuple(x.shape[1:])} (channels, H, W) but z is {tuple(z.shape[1:])}", reason="size"
        )
    if z.shape[0] not in (1, x.shape[0]):
        raise ShapeMismatchError(
            f"z has batch {z.shape[0]} but x has batch {x.shape[0]} (z must be one latent or one per x)",
            reason="batch",
        )
    for name, t in (("x", x), ("z", z)):
        if not torch.isfinite(t).all():
            raise NonFiniteError(f"the {name} latent contains NaN or infinity", reason="input", role=name)


def check_rho(rho: float) -> float:
    """rho as a float when it lies in RHO_RANGE, else ParameterError (the range every front end states)."""
    return check_range("rho", rho, *RHO_RANGE)


def merge_sweep(
    x: torch.Tensor,
    z: torch.Tensor,
    head: AttributeHead,
    rhos: Sequence[float],
    k: int | None = None,
    mode: str = "paper",
    svd_backend: str = "auto",
) -> torch.Tensor:
    """Merge at each rho of `rhos`; returns paper-space [len(rhos) * B, C, H, W], rho-major.

    x: [B, C, H, W] paper space; z: [1 or B, C, H, W]. The head and the SVDs run once for the whole sweep.
    """
    if len(rhos) == 0:
        raise ParameterError("no rho value was given", reason="empty", name="rho", value=[])
    rhos = [check_rho(r) for r in rhos]
    _check_inputs(x, z, head, mode)
    k = resolve_k(k, head.k, head.rank)
    param = next(head.parameters())
    work = x.to(device=param.device, dtype=torch.float32)
    target = z.to(device=param.device, dtype=torch.float32)
    with torch.no_grad():
        s_pred, _ = head(work)
        u_x, s_x, vh_x = channel_svd(work, backend=svd_backend)
        u_z, _, vh_z = channel_svd(target, backend=svd_backend)
        outputs = []
        for rho in rhos:
            u_hat, v_hat = blend_bases(u_x, vh_x, u_z, vh_z, k, rho)
            s = s_pred if mode == "paper" else (1 - rho) * s_x + rho * s_pred
            outputs.append(compose(u_hat, s.to(u_hat.dtype), v_hat))
        y = torch.cat(outputs, dim=0)
    if not torch.isfinite(y).all():
        raise NonFiniteError("the merged latent is not finite (NaN or infinity)", reason="output")
    return y.to(x.device)


def merge(
    x: torch.Tensor,
    z: torch.Tensor,
    head: AttributeHead,
    rho: float = 1.0,
    k: int | None = None,
    mode: str = "paper",
    svd_backend: str = "auto",
) -> torch.Tensor:
    """Algorithm 1 at inference: paper-space x [B, C, H, W], z [1 or B, C, H, W] -> y [B, C, H, W].

    k = None (or 0) uses the head's k. rho may extrapolate outside [0, 1] within RHO_RANGE.
    """
    return merge_sweep(x, z, head, [rho], k=k, mode=mode, svd_backend=svd_backend)
