"""The capture record of an inverted latent, and the seed it records (spec sections 2 and 10).

An inverted latent at step s is, for every method that reads capture records (Merge, boundaries, directions,
datasets), the same thing as a latent the Capture node stopped at step s: `inversion_record` builds the very
record `avi_core.latent.capture.make_record` gives the Capture node for the same model, steps, sampler,
scheduler and step (sigma = `sigmas[step]`, steps = `len(sigmas) - 1`), plus one marker, `"inverted": True`.

The seed. An inverted latent has no noise seed, but AVI pairs an original latent x with a target latent z only
when their records name the same seed (`capture.check_pair`). In the real-image workflow both come from one
photo: x is the photo inverted to Tx; z is sampled with the target prompt from the photo inverted to step 0
(a Capture with `add_noise = disable`, whose noise seed is unused but recorded). So the record holds
`inversion_seed(clean_latent)`: a pseudo-seed derived from the encoded image's values (a SHA-256 of its shape
and float32 bytes, 0 <= seed < 2**53 so that it survives JSON and the browser's numbers). Every inversion of
the same encoded image gets the same seed, at any step, and two different images (almost surely) different
ones. Give that seed to the capture of z (its noise_seed) and the pair checks out. A front end may instead
let the user choose a seed (`seed=` argument): the record then holds that one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import ParameterError
from ..latent.capture import make_record
from .invert import check_sampler
from .schedule import SigmaSchedule, check_sigmas, check_step

INVERTED_KEY = "inverted"
SEED_BITS = 53


def inversion_seed(clean_latent: torch.Tensor) -> int:
    """The pseudo-seed of an encoded image `[B, ...]` (module doc): deterministic, 0 <= seed < 2**53.

    Depends only on the shape and the float32 values (not the device or the dtype it came in).
    """
    values = clean_latent.detach().to("cpu", torch.float32).contiguous()
    digest = hashlib.sha256()
    digest.update(repr(tuple(values.shape)).encode())
    digest.update(values.numpy().tobytes())
    return int.from_bytes(digest.digest()[:8], "little") & ((1 << SEED_BITS) - 1)


def inversion_record(
    *,
    sigmas: SigmaSchedule,
    step: int,
    timestep: float,
    num_timesteps: int,
    scale_factor: float,
    seed: int,
    batch: int,
    sampler: str,
    scheduler: str,
    denoise: float = 1.0,
    shape: tuple[int, ...] | list[int] = (),
) -> dict[str, Any]:
    """The capture record of a latent inverted to `step` of the schedule `sigmas` (module doc).

    timestep: the model's timestep of `sigmas[step]` (`model_sampling.timestep(sigma)`); num_timesteps: the
    model's T; seed: `inversion_seed(clean_latent)` or the user's; shape: the latent's `[B, C, H, W]`.
    Equal to `make_record(step=step, steps=len(sigmas) - 1, sigma=sigmas[step], ...)` plus `"inverted": True`.
    """
    check_sampler(sampler)
    values = check_sigmas(sigmas)
    step = check_step(values, step)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ParameterError(f"the seed must be a whole number >= 0, got {seed!r}", name="seed", value=seed, low=0)
    record = make_record(
        step=step,
        steps=len(values) - 1,
        sigma=values[step],
        timestep=timestep,
        num_timesteps=num_timesteps,
        scale_factor=scale_factor,
        seed=seed,
        batch=batch,
        sampler=sampler,
        scheduler=scheduler,
        denoise=denoise,
        shape=tuple(shape),
    )
    record[INVERTED_KEY] = True
    return record


def is_inverted(record: Any) -> bool:
    """True when a capture record describes an inverted latent."""
    return isinstance(record, Mapping) and record.get(INVERTED_KEY) is True
