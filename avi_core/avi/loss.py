"""The training loss (spec section 5).

    L1 = ||y^ - Z||_F^2      L2 = ||y~ - X||_F^2      L3 = ||S - Sz||^2      L4 = ||S + ds - Sx||^2
    L  = l1 L1 + l2 L2 + l3 L3 + l4 L4

with y^ = U^ diag(S) V^ and y~ = U~ diag(S + ds) V~ (U~, V~: U^, V^ in reversed order). Each term is summed
over one sample (a channel matrix or its singular-value vector) and averaged over every sample of the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..errors import ParameterError
from .algorithm import attribute_vectors, compose

DEFAULT_LAMBDAS: tuple[float, float, float, float] = (3.0, 10.0, 10.0, 10.0)
LOSS_NAMES: tuple[str, str, str, str] = ("L1", "L2", "L3", "L4")


def check_lambdas(lambdas: Sequence[float] | torch.Tensor) -> None:
    """ParameterError unless `lambdas` are four finite, non-negative weights (l1, l2, l3, l4)."""
    values = lambdas.tolist() if isinstance(lambdas, torch.Tensor) else list(lambdas)
    if len(values) != 4 or not all(math.isfinite(v) and v >= 0 for v in values):
        raise ParameterError(
            f"lambdas must be four finite weights >= 0 (l1, l2, l3, l4), got {values}", name="lambdas", value=values
        )


def loss_from_bases(
    x: torch.Tensor,
    z: torch.Tensor,
    u_hat: torch.Tensor,
    v_hat: torch.Tensor,
    s_x: torch.Tensor,
    s_z: torch.Tensor,
    s: torch.Tensor,
    ds: torch.Tensor,
    lambdas: Sequence[float] | torch.Tensor = DEFAULT_LAMBDAS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss from precomputed bases (training computes the data's SVDs once, not per step).

    x, z: [..., H, W]; u_hat [..., H, r]; v_hat [..., r, W]; s_x, s_z, s, ds: [..., r].
    lambdas: four weights; a [4] tensor already on the device avoids a host-to-device copy per call.
    Returns (total: scalar, terms: [4] = the unweighted batch means of L1..L4).
    """
    if isinstance(lambdas, torch.Tensor):
        if lambdas.shape != (4,):  # checked once by the caller; reading values here would sync the device
            raise ParameterError(f"lambdas must be a [4] tensor, got {tuple(lambdas.shape)}", name="lambdas")
    else:
        check_lambdas(lambdas)
    y_hat = compose(u_hat, s, v_hat)
    y_tilde = compose(u_hat.flip(-1), s + ds, v_hat.flip(-2))
    terms = torch.stack(
        [
            (y_hat - z).square().sum(dim=(-2, -1)).mean(),
            (y_tilde - x).square().sum(dim=(-2, -1)).mean(),
            (s - s_z).square().sum(dim=-1).mean(),
            (s + ds - s_x).square().sum(dim=-1).mean(),
        ]
    )
    if isinstance(lambdas, torch.Tensor):
        weights = lambdas.to(dtype=terms.dtype)
    else:
        weights = torch.as_tensor(list(lambdas), dtype=terms.dtype, device=terms.device)
    return (weights * terms).sum(), terms


def avi_loss(
    x: torch.Tensor,
    z: torch.Tensor,
    S: torch.Tensor,  # noqa: N803 - the paper's name
    ds: torch.Tensor,
    k: int,
    rho: float = 1.0,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Total loss and its four unweighted terms for paper-space x, z [..., H, W] and the head's S, ds [..., r].

    The SVDs of x and z carry no gradient (they are of the data); S and ds do.
    """
    with torch.no_grad():
        u_hat, v_hat, s_x, s_z = attribute_vectors(x, z, k, rho)
    return loss_from_bases(x.to(u_hat.dtype), z.to(u_hat.dtype), u_hat, v_hat, s_x, s_z, S, ds, lambdas)
