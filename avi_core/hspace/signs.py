"""The sign rule of spec section 8: a direction and its negative span the same line, so every method fixes one.

- Within one step: each direction is flipped so that its largest-magnitude entry is positive (the first such
  entry in row-major order when several share the largest magnitude).
- Across steps (one direction per step, e.g. per-step PCA): the first step keeps the rule above; every later
  step is flipped so that its inner product with the previous step's (already fixed) direction is >= 0, so
  consecutive steps agree.
"""

from __future__ import annotations

import torch


def largest_entry_signs(directions: torch.Tensor) -> torch.Tensor:
    """+1 / -1 per direction: the sign of its largest-magnitude entry. directions `[K, *shape]` -> `[K]`."""
    rows = directions.reshape(directions.shape[0], -1)
    index = rows.abs().argmax(dim=1, keepdim=True)
    picked = rows.gather(1, index).squeeze(1)
    return torch.where(picked < 0, -1.0, 1.0).to(directions.dtype)


def fix_signs(directions: torch.Tensor) -> torch.Tensor:
    """directions `[K, *shape]` with each row flipped so its largest-magnitude entry is positive (a new tensor)."""
    signs = largest_entry_signs(directions)
    return directions * signs.reshape((-1,) + (1,) * (directions.dim() - 1))


def align_across_steps(directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Make consecutive steps agree: directions `[S, K, *shape]` -> (aligned `[S, K, *shape]`, flipped `[S, K]`).

    Step 0 is taken as given (apply `fix_signs` to it first); direction k of step s is negated when its inner
    product (float64) with direction k of step s - 1, as already aligned, is negative. flipped says which were.
    """
    if directions.dim() < 3:
        raise ValueError(f"per-step directions must be [S, K, ...], got {tuple(directions.shape)}")
    aligned = directions.clone()
    flipped = torch.zeros(directions.shape[:2], dtype=torch.bool, device=directions.device)
    for step in range(1, directions.shape[0]):
        prev = aligned[step - 1].reshape(directions.shape[1], -1).to(torch.float64)
        cur = aligned[step].reshape(directions.shape[1], -1).to(torch.float64)
        negative = (prev * cur).sum(dim=1) < 0
        flipped[step] = negative
        signs = torch.where(negative, -1.0, 1.0).to(directions.dtype)
        aligned[step] = aligned[step] * signs.reshape((-1,) + (1,) * (directions.dim() - 2))
    return aligned, flipped
