"""Capture records: what AVI needs to know about a latent a sampler stopped early (spec sections 1-2).

A captured latent is a ComfyUI LATENT dict whose "samples" a sampler left at noise level sigma (sampling
stopped at `step` of `steps`, with its leftover noise). The capture node adds a record under
`latent["avi_capture"]`, a JSON-safe dict:

    step, steps          the step sampling stopped at (resume with KSamplerAdvanced start_at_step = step)
    sigma                the sampler's sigma at that step (the noise level of "samples")
    timestep, T          model_sampling.timestep(sigma) and the model's number of training timesteps
    fraction             timestep / T
    scale_factor         the model's latent scale factor (0.18215 for SD 1.x/2.x)
    seed, batch          the noise seed and the batch size
    sampler, scheduler, denoise, height, width, channels

This module holds the host-free logic: choosing the step nearest to a fraction of T, building and reading
records, checking that an original (x) and a target (z) latent fit together, parsing rho lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..errors import CaptureRecordError, PairMismatchError, ParameterError, UnsupportedModelError

CAPTURE_KEY = "avi_capture"
RECORD_VERSION = 1
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "step": int,
    "steps": int,
    "sigma": (int, float),
    "timestep": (int, float),
    "T": int,
    "scale_factor": (int, float),
    "seed": int,
    "batch": int,
}


def nearest_step(timesteps: Sequence[float], fraction: float, num_timesteps: int) -> int:
    """Index of the step whose timestep is nearest to fraction * T.

    timesteps: model_sampling.timestep(sigma) of each candidate step, in sampling order (step 0 first).
    Ties go to the earlier (noisier) step. Example: 50 steps of the `normal` schedule of SD 2.1 give
    timestep 795 at step 10, the nearest to 0.8 * 1000.
    """
    if len(timesteps) == 0:
        raise ParameterError("there are no sampling steps to choose from", name="steps", value=0, low=1)
    if not 0.0 <= float(fraction) <= 1.0:
        raise ParameterError(
            f"stop_at = {fraction} is outside 0..1 (a fraction of T)", name="stop_at", value=fraction, low=0, high=1
        )
    if num_timesteps < 1:
        raise ParameterError(f"the model's T must be >= 1, got {num_timesteps}", name="T", value=num_timesteps, low=1)
    goal = float(fraction) * num_timesteps
    distances = [abs(float(t) - goal) for t in timesteps]
    return min(range(len(distances)), key=lambda i: (distances[i], i))


def resolve_stop_step(
    sigmas: Sequence[float],
    timesteps: Sequence[float],
    fraction: float,
    num_timesteps: int,
    explicit_step: int = 0,
) -> int:
    """The step at which the capture stops.

    sigmas: the sampler's full schedule (steps + 1 values, the last one 0); timesteps: the model's timestep
    of each sigma (same length). explicit_step > 0 is taken as is (and must leave noise: < steps);
    otherwise the step nearest to fraction * T among those with sigma > 0.
    """
    if len(sigmas) != len(timesteps):
        raise ValueError(f"{len(sigmas)} sigmas but {len(timesteps)} timesteps")  # a programming error
    last = max(i for i, s in enumerate(sigmas) if float(s) > 0) if any(float(s) > 0 for s in sigmas) else -1
    if last < 0:
        raise ParameterError("the sampler's schedule has no noisy step to stop at", name="steps", value=0)
    if explicit_step and explicit_step > 0:
        if explicit_step > last:
            raise ParameterError(
                f"stop_step {explicit_step} leaves no noise: with {len(sigmas) - 1} steps the last step that still "
                f"has noise is {last}",
                reason="no_noise",
                name="stop_step",
                value=explicit_step,
                low=0,
                high=last,
            )
        return int(explicit_step)
    return nearest_step(timesteps[: last + 1], fraction, num_timesteps)


def check_additive_noise(
    noise_scaling: Callable[..., torch.Tensor],
    inverse_noise_scaling: Callable[..., torch.Tensor],
    model_name: str = "this model",
) -> None:
    """Raise UnsupportedModelError unless noising is `x0 + sigma * eps` and the latent needs no unscaling.

    noise_scaling(sigma, noise, latent_image) and inverse_noise_scaling(sigma, latent) are the model's
    (ComfyUI's model_sampling methods). Flow models (SD3, Flux) mix x0 and eps as (1 - sigma) x0 + sigma eps
    and are refused.
    """
    sigma = torch.tensor([2.5])
    noise = torch.full((1, 1, 2, 2), 1.0)
    x0 = torch.full((1, 1, 2, 2), 3.0)
    try:
        noised = noise_scaling(sigma, noise.clone(), x0.clone())
        restored = inverse_noise_scaling(sigma, x0.clone())
    except Exception as err:  # a model_sampling we do not know: refuse it rather than guess
        raise UnsupportedModelError(
            f"{model_name}: cannot check how this model adds noise ({type(err).__name__}: {err}); the pack supports "
            "models that noise as x0 + sigma * eps",
            reason="unknown",
        ) from None
    if not torch.allclose(noised, x0 + 2.5 * noise) or not torch.allclose(restored, x0):
        raise UnsupportedModelError(
            f"{model_name} does not add noise as x0 + sigma * eps (it looks like a flow model such as SD3 or Flux), "
            "so its latents cannot be mapped to the paper's space",
            reason="flow",
        )


def resolve_capture_step(
    sigmas: Sequence[float],
    timesteps: Sequence[float],
    fraction: float,
    num_timesteps: int,
    explicit_step: int = 0,
) -> int:
    """`resolve_stop_step` for a capture, which must stop after at least one sampling step.

    Step 0 is before any sampling: ComfyUI's sampler, asked to stop there, returns the latent it was given
    (no noise added), so a record claiming sigma[0] would be false. Raises ParameterError (reason "range",
    name "stop_at", details low/high: the stop_at values that reach step 1 or later) when `fraction` resolves
    to step 0, and (name "steps") when the schedule has no noisy step after step 0.
    """
    step = resolve_stop_step(sigmas, timesteps, fraction, num_timesteps, explicit_step)
    if step > 0:
        return step
    if len(timesteps) < 3 or not float(sigmas[1]) > 0:
        raise ParameterError(
            f"with {len(sigmas) - 1} sampling step(s) there is no step with noise left after the first one",
            reason="range",
            name="steps",
            value=len(sigmas) - 1,
            low=2,
        )
    # The largest stop_at whose nearest step is 1: just below the midpoint of steps 0 and 1.
    middle = (float(timesteps[0]) + float(timesteps[1])) / 2 / num_timesteps * 1000
    high = (math.ceil(middle) - 1) / 1000  # a tie at the middle goes to the noisier step 0
    raise ParameterError(
        f"stop_at = {fraction} resolves to step 0 of {len(sigmas) - 1}, before the first sampling step, where "
        f"the sampler returns its input latent unchanged; a capture needs stop_at between 0 and {high:g}",
        reason="range",
        name="stop_at",
        value=fraction,
        low=0,
        high=high,
    )


def make_record(
    *,
    step: int,
    steps: int,
    sigma: float,
    timestep: float,
    num_timesteps: int,
    scale_factor: float,
    seed: int,
    batch: int,
    sampler: str,
    scheduler: str,
    denoise: float = 1.0,
    shape: Sequence[int] = (),
) -> dict[str, Any]:
    """A capture record (JSON-safe dict) for a latent sampled to `step` of `steps` (see module docstring)."""
    record: dict[str, Any] = {
        "version": RECORD_VERSION,
        "step": int(step),
        "steps": int(steps),
        "sigma": float(sigma),
        "timestep": int(round(float(timestep))),
        "T": int(num_timesteps),
        "fraction": round(float(timestep) / int(num_timesteps), 4),
        "scale_factor": float(scale_factor),
        "seed": int(seed),
        "batch": int(batch),
        "sampler": str(sampler),
        "scheduler": str(scheduler),
        "denoise": float(denoise),
    }
    if len(shape) == 4:
        record.update(channels=int(shape[1]), height=int(shape[2]), width=int(shape[3]))
    return validate_record(record, "captured")


def validate_record(record: Any, role: str) -> dict[str, Any]:
    """Check a record's fields; returns it. Raises CaptureRecordError naming the bad field."""
    if not isinstance(record, Mapping):
        raise CaptureRecordError(
            f"the {role} latent's capture record is not a record ({type(record).__name__})",
            reason="invalid",
            role=role,
            key="record",
        )
    for key, kinds in _REQUIRED.items():
        value = record.get(key)
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise CaptureRecordError(
                f"the {role} latent's capture record lacks a valid {key!r} (got {value!r})",
                reason="invalid",
                role=role,
                key=key,
            )
    if not math.isfinite(record["sigma"]) or record["sigma"] < 0:
        raise CaptureRecordError(
            f"the {role} latent's capture record has an invalid sigma {record['sigma']!r}",
            reason="invalid",
            role=role,
            key="sigma",
        )
    if not math.isfinite(record["scale_factor"]) or record["scale_factor"] <= 0:
        raise CaptureRecordError(
            f"the {role} latent's capture record has an invalid scale_factor {record['scale_factor']!r}",
            reason="invalid",
            role=role,
            key="scale_factor",
        )
    return dict(record)


def get_record(latent: Mapping[str, Any], role: str) -> dict[str, Any]:
    """The validated capture record of a ComfyUI LATENT dict, or CaptureRecordError saying how to make one.

    role: how the message names the latent ("original", "target").
    """
    if not isinstance(latent, Mapping) or "samples" not in latent:
        raise CaptureRecordError(f"the {role} input is not a LATENT", reason="not_latent", role=role)
    if CAPTURE_KEY not in latent:
        raise CaptureRecordError(
            f"the {role} latent has no capture record, so its noise level is unknown", reason="missing", role=role
        )
    record = validate_record(latent[CAPTURE_KEY], role)
    batch = int(latent["samples"].shape[0])
    if record["batch"] != batch:
        raise CaptureRecordError(
            f"the {role} latent holds {batch} latents but its capture record says {record['batch']}: it was batched, "
            "split or repeated after it was captured",
            reason="batch",
            role=role,
        )
    return record


def check_pair(x_record: Mapping[str, Any], z_record: Mapping[str, Any]) -> None:
    """Raise PairMismatchError unless x (original) and z (target) records make an AVI pair.

    x must be the noisier of the two (captured earlier: paper Tx = 0.8T, Tz = 0.5T), both from the same seed
    and batch size, with the same latent scale factor. reason: "seed", "batch", "scale" or "order".
    """
    if x_record["seed"] != z_record["seed"]:
        raise PairMismatchError(
            f"the original latent was sampled with seed {x_record['seed']} but the target with seed "
            f"{z_record['seed']}: a pair must come from the same noise",
            reason="seed",
        )
    if x_record["batch"] != z_record["batch"]:
        raise PairMismatchError(
            f"the original latent holds a batch of {x_record['batch']} but the target a batch of {z_record['batch']}",
            reason="batch",
        )
    if x_record["scale_factor"] != z_record["scale_factor"]:
        raise PairMismatchError(
            f"the original latent comes from a model with latent scale factor {x_record['scale_factor']} but the "
            f"target from one with {z_record['scale_factor']}",
            reason="scale",
        )
    if float(x_record["sigma"]) <= float(z_record["sigma"]):
        raise PairMismatchError(
            "the original latent (x) must be captured earlier, at more noise, than the target (z): x stopped at "
            f"step {x_record['step']} of {x_record['steps']} (timestep {x_record['timestep']} of {x_record['T']}, "
            f"sigma {x_record['sigma']:.4g}) and z at step {z_record['step']} of {z_record['steps']} (timestep "
            f"{z_record['timestep']}, sigma {z_record['sigma']:.4g})",
            reason="order",
        )


def pair_metadata(x_record: Mapping[str, Any], z_record: Mapping[str, Any]) -> dict[str, Any]:
    """What a head file keeps about the captures it was trained on (timesteps, steps, sigmas, scale)."""
    return {
        "x_timestep": x_record["timestep"],
        "z_timestep": z_record["timestep"],
        "T": x_record["T"],
        "x_step": x_record["step"],
        "z_step": z_record["step"],
        "x_steps": x_record["steps"],
        "z_steps": z_record["steps"],
        "x_sigma": x_record["sigma"],
        "z_sigma": z_record["sigma"],
        "scale_factor": x_record["scale_factor"],
        "sampler": x_record.get("sampler"),
        "scheduler": x_record.get("scheduler"),
    }


def dataset_capture_metadata(records: Sequence[Any]) -> dict[str, Any]:
    """Head metadata (timesteps, steps, sigmas, scale factor) from a dataset's capture records.

    records: what `avi_core.datasets.read_dataset` returns, one entry per shard, each a pair record (a dict
    with "x"/"z" or "original"/"target") or a list of them. The first pair that validates is used; {} if none.
    """
    for entry in records:
        for candidate in entry if isinstance(entry, list) else [entry]:
            if not isinstance(candidate, Mapping):
                continue
            for x_key, z_key in (("x", "z"), ("original", "target")):
                if x_key in candidate and z_key in candidate:
                    try:
                        return pair_metadata(
                            validate_record(candidate[x_key], "original"),
                            validate_record(candidate[z_key], "target"),
                        )
                    except CaptureRecordError:
                        continue
    return {}
