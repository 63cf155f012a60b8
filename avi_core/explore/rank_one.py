"""Rank-one views: a latent rebuilt with chosen singular pairs scaled, or kept alone (paper Figures 3-4).

Every channel matrix `X = sum_i s_i u_i v_i^T` (thin SVD, `avi_core.latent.svd.channel_svd`; u_i the left
singular vectors, columns of U, v_i the right ones, rows of Vh; pairs numbered from 0 in descending order of
s_i). A view picks a group g of pairs (one index, or a set) and a scale a:

- scaled (default): `X + (a - 1) * sum_{i in g} s_i u_i v_i^T` (the pairs' singular values times a, the
  rest unchanged; a = 1 gives X back, a = 0 removes the pairs);
- alone: `a * sum_{i in g} s_i u_i v_i^T` (only those pairs).

The same group applies to every channel (or the `channels` chosen; the others stay as they are). Each term
`s_i u_i v_i^T` is independent of the sign the SVD picked for (u_i, v_i). The alone views of all pairs with
a = 1 sum back to the latent.

Space: the SVD of `c * X` (c > 0) has the same pairs with singular values times c, so a view commutes with
the paper <-> ComfyUI conversion at a fixed sigma (a positive factor per latent). A node can take the views
of a captured ComfyUI latent directly, resume sampling each from the latent's step, and decode the results.
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Sequence

import torch

from ..errors import ParameterError, ShapeMismatchError
from ..latent.svd import channel_svd

logger = logging.getLogger("avi.explore")

PairGroup = int | Sequence[int]


def _pair_groups(indices: PairGroup | Sequence[PairGroup], rank: int) -> list[tuple[int, ...]]:
    """Normalise `indices` (an int, or a list whose entries are ints or lists of ints) to groups of pairs."""
    entries = [indices] if isinstance(indices, int) else list(indices)
    if not entries:
        raise ParameterError("no singular pairs were chosen", reason="empty", name="indices", value=[])
    groups = []
    for entry in entries:
        members = [entry] if isinstance(entry, int) else list(entry)
        if not members:
            raise ParameterError("a group of singular pairs is empty", reason="empty", name="indices", value=[])
        group = []
        for member in members:
            try:
                if isinstance(member, bool):
                    raise TypeError
                index = operator.index(member)
            except TypeError:
                raise ParameterError(
                    f"singular pair index {member!r} is not a whole number", reason="type", name="indices", value=member
                ) from None
            if not 0 <= index < rank:
                raise ParameterError(
                    f"singular pair {index} is outside 0..{rank - 1} (the latent's channels have {rank} pairs)",
                    reason="range",
                    name="indices",
                    value=index,
                    low=0,
                    high=rank - 1,
                )
            group.append(index)
        groups.append(tuple(sorted(set(group))))
    return groups


def _check_scales(scales: Sequence[float]) -> list[float]:
    values = [float(a) for a in scales]
    if not values:
        raise ParameterError("no scales were given", reason="empty", name="scale", value=[])
    for value in values:
        if not math.isfinite(value):
            raise ParameterError(f"scale {value} is not a finite number", reason="range", name="scale", value=value)
    return values


def _channel_mask(latent: torch.Tensor, channels: Sequence[int] | None) -> torch.Tensor | None:
    """None (every channel) or a 0/1 mask `[C, 1, 1]` over dim -3 of `latent`."""
    if channels is None:
        return None
    if latent.dim() < 3:
        raise ShapeMismatchError(
            f"channels were chosen but the latent {tuple(latent.shape)} has no channel dimension",
            reason="channels",
            shape=tuple(latent.shape),
        )
    count = latent.shape[-3]
    mask = torch.zeros(count, 1, 1, dtype=latent.dtype, device=latent.device)
    picked = list(channels)
    if not picked:
        raise ParameterError("no channels were chosen", reason="empty", name="channels", value=[])
    for channel in picked:
        if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < count:
            raise ParameterError(
                f"channel {channel!r} is outside 0..{count - 1}",
                reason="range",
                name="channels",
                value=channel,
                low=0,
                high=count - 1,
            )
        mask[channel] = 1.0
    return mask


def _check_latent(latent: torch.Tensor) -> torch.Tensor:
    if not isinstance(latent, torch.Tensor):
        raise TypeError(f"the latent must be a torch.Tensor, got {type(latent).__name__}")
    if latent.dim() < 2:
        raise ShapeMismatchError(
            f"the latent must have at least 2 dimensions [..., H, W], got {tuple(latent.shape)}",
            reason="shape",
            shape=tuple(latent.shape),
        )
    return latent.detach().to(torch.float64 if latent.dtype == torch.float64 else torch.float32)


def rank_one_grid(
    latent: torch.Tensor,
    indices: PairGroup | Sequence[PairGroup],
    scales: Sequence[float],
    *,
    alone: bool = False,
    channels: Sequence[int] | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Every (group, scale) view of `latent [..., H, W]`: `[G, N, ..., H, W]` (G groups, N scales), one SVD.

    indices: pair numbers (0 = largest singular value); each entry is one group: an int or a list of ints.
    Output float32 (float64 for float64 input) on the latent's device, in the latent's space (module doc).
    """
    work = _check_latent(latent)
    u, s, vh = channel_svd(work, backend=backend)
    groups = _pair_groups(indices, s.shape[-1])
    factors = _check_scales(scales)
    mask = _channel_mask(work, channels)
    rows = []
    for group in groups:
        picked = list(group)
        part = (u[..., :, picked] * s[..., None, picked]) @ vh[..., picked, :]
        if mask is not None:
            part = part * mask
        row = []
        for factor in factors:
            if alone:
                view = factor * part if mask is None else factor * part + work * (1.0 - mask)
            else:
                view = work + (factor - 1.0) * part
            row.append(view)
        rows.append(torch.stack(row))
    out = torch.stack(rows)
    logger.debug("rank-one views: %d group(s) x %d scale(s) of %s", len(groups), len(factors), tuple(work.shape))
    return out


def rank_one_views(
    latent: torch.Tensor,
    indices: PairGroup | Sequence[PairGroup],
    scale: float = 2.0,
    *,
    alone: bool = False,
    channels: Sequence[int] | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """One view per group of `indices` at one `scale`: `latent [..., H, W]` -> `[G, ..., H, W]` (module doc)."""
    return rank_one_grid(latent, indices, [scale], alone=alone, channels=channels, backend=backend)[:, 0]


def view_labels(
    indices: PairGroup | Sequence[PairGroup], scales: Sequence[float], alone: bool = False
) -> tuple[list[str], list[str]]:
    """Row labels (one per group: "pair 3", "pairs 0+1") and column labels ("x2", "alone x1") of a grid."""
    entries = [indices] if isinstance(indices, int) else list(indices)
    rows = []
    for entry in entries:
        members = [entry] if isinstance(entry, int) else sorted(set(entry))
        rows.append(f"pair {members[0]}" if len(members) == 1 else "pairs " + "+".join(str(m) for m in members))
    prefix = "alone x" if alone else "x"
    return rows, [f"{prefix}{float(a):g}" for a in scales]
