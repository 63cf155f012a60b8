"""The explorer nodes' text settings, parsed (host-free): pair groups and where a trajectory is captured."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ...avi_core.errors import ParameterError
from ...avi_core.latent.capture import resolve_stop_step
from ...avi_core.values import parse_number_list

_SEPARATORS = re.compile(r"[,;\s]+")


def parse_pair_groups(text: str, name: str = "pairs") -> list[list[int]]:
    """'0, 1, 2+3' -> [[0], [1], [2, 3]]: one group per comma, '+' joins pairs into one group.

    ParameterError (reason "pairs") for an empty list or an entry that is not a whole number >= 0.
    """
    groups: list[list[int]] = []
    for part in (p for p in _SEPARATORS.split(text.strip()) if p):
        members = []
        for item in part.split("+"):
            item = item.strip()
            if not item.isdigit():
                raise ParameterError(
                    f"{name}: {part!r} is not a pair number (or pair numbers joined by '+')",
                    reason="pairs",
                    name=name,
                    value=part,
                )
            members.append(int(item))
        groups.append(members)
    if not groups:
        raise ParameterError(f"{name} names no singular pair", reason="pairs", name=name, value=text)
    return groups


def parse_channels(text: str) -> list[int] | None:
    """'' -> None (every channel); '0, 2' -> [0, 2] (checked against the latent by the engine)."""
    values = parse_number_list(text, "channels", 0, 4096)
    if not values:
        return None
    if any(v != int(v) for v in values):
        raise ParameterError(f"channels: {text!r} holds a fraction", reason="type", name="channels", value=text)
    return [int(v) for v in values]


def trajectory_steps(text: str, sigmas: Sequence[float], timesteps: Sequence[float], num_timesteps: int) -> list[int]:
    """The sampling steps to capture, ascending and unique, from fractions of T ('1, 0.8, 0.5, 0').

    Each fraction f > 0 picks the noisy step whose timestep is nearest to f * T (as 'AVI Capture Latent at
    Step' does); f = 0 is the end of sampling (the last step, sigma 0).
    """
    fractions = parse_number_list(text, "at", 0.0, 1.0)
    if not fractions:
        raise ParameterError("'at' names no step to capture", reason="no_steps", name="at", value=text)
    end = len(sigmas) - 1
    steps = {end if f == 0.0 else resolve_stop_step(sigmas, timesteps, f, num_timesteps) for f in fractions}
    return sorted(steps)


def step_label(step: int, timestep: float, end: int) -> str:
    """'t=795' for a noisy step, 'end' for the finished latent."""
    return "end" if step >= end else f"t={int(round(timestep))}"
