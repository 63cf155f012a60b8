"""Inversion engine (spec section 10): schedule, Euler/DDIM inversion, refusals, records. Host-free and fast.

The model is the ideal denoiser of a Gaussian data distribution x0 ~ N(mu, diag(v)), which is linear:
D(x, sigma) = mu + v / (v + sigma^2) * (x - mu). Its probability-flow ODE has the exact solution
x(sigma) = mu + (x0 - mu) * sqrt((v + sigma^2) / v), so inversion and reconstruction errors are known.
"""

from __future__ import annotations

import math

import pytest
import torch

from avi_core.errors import (
    CaptureRecordError,
    NonFiniteError,
    OperationStoppedError,
    ParameterError,
    ShapeMismatchError,
    UnsupportedSamplerError,
)
from avi_core.inversion import (
    SUPPORTED_SAMPLERS,
    check_sampler,
    inversion_record,
    inversion_sampler_function,
    inversion_schedule,
    inversion_seed,
    invert,
    is_inverted,
    resume,
    reversed_sigmas,
)
from avi_core.latent.capture import CAPTURE_KEY, check_pair, get_record, make_record

SHAPE = (2, 4, 8, 8)


def sd_sigmas(steps: int) -> torch.Tensor:
    """A `normal`-like schedule of SD's discrete sigmas (steps + 1 float32 values, the last 0), as ComfyUI's."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, 0)
    log_sigmas = ((1 - abar) / abar).sqrt().log()
    t = torch.linspace(999, 0, steps, dtype=torch.float64)
    low, high, w = t.floor().long(), t.ceil().long(), t.frac()
    sigmas = ((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp()
    return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)]).float()


class GaussianModel:
    """The ideal denoiser of N(mu, diag(v)) per element; records the sigmas it is called at."""

    def __init__(self, seed: int = 0, shape: tuple[int, ...] = SHAPE[1:]) -> None:
        g = torch.Generator().manual_seed(seed)
        self.mu = torch.randn(shape, generator=g) * 0.5
        self.v = torch.rand(shape, generator=g) * 0.9 + 0.1
        self.calls: list[torch.Tensor] = []

    def sample(self, batch: int, seed: int = 1) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return self.mu + self.v.sqrt() * torch.randn((batch, *self.mu.shape), generator=g)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls.append(sigma.clone())
        s = sigma.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)
        mu, v = self.mu.to(x.dtype), self.v.to(x.dtype)
        return mu + v / (v + s * s) * (x - mu)

    def flow(self, x0: torch.Tensor, sigma: float) -> torch.Tensor:
        """The exact probability-flow ODE solution from x0 (sigma 0) to sigma."""
        return self.mu + (x0 - self.mu) * ((self.v + sigma**2) / self.v).sqrt()


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def assert_close(a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
    """Elementwise |a - b| <= tol * (1 + |b|) (the first torch.testing call costs seconds of imports)."""
    assert a.shape == b.shape
    excess = ((a.double() - b.double()).abs() - tol * (1 + b.double().abs())).max()
    assert float(excess) <= 0, float(excess)


# --- the schedule ---------------------------------------------------------------------------------------------


def test_reversed_schedule_visits_the_sigmas_backwards_from_zero():
    sigmas = sd_sigmas(10)
    visited = reversed_sigmas(sigmas, 3)
    assert visited[0] == 0.0
    assert visited == sigmas[3:].flip(0).double().tolist()
    plan = inversion_schedule(sigmas, 3)
    assert len(plan) == 10 - 3
    first = plan[0]
    assert (first.from_step, first.to_step, first.sigma_from) == (10, 9, 0.0)
    assert first.sigma_eval == first.sigma_to == pytest.approx(float(sigmas[-2]))  # never evaluated at sigma 0
    assert plan[-1].to_step == 3 and plan[-1].sigma_to == pytest.approx(float(sigmas[3]))
    assert all(p.sigma_eval == p.sigma_to and p.delta > 0 for p in plan)
    assert [p.index for p in plan] == list(range(len(plan)))


@pytest.mark.parametrize(
    "sigmas, step, error",
    [
        ([3.0, 2.0, 1.0, 0.5], 0, ParameterError),  # does not end at 0
        ([3.0, 1.0, 2.0, 0.0], 0, ParameterError),  # not in sampling order
        ([3.0, 0.0, 1.0, 0.0], 0, ParameterError),  # a zero before the end
        ([0.0], 0, ParameterError),  # too short
        ([3.0, float("nan"), 0.0], 0, NonFiniteError),
        ([3.0, 2.0, 0.0], 2, ParameterError),  # step 2 of 2 is the clean latent
        ([3.0, 2.0, 0.0], -1, ParameterError),
        ([3.0, 2.0, 0.0], 1.5, ParameterError),
        ([3.0, 2.0, 0.0], True, ParameterError),
    ],
)
def test_bad_schedules_and_steps_are_refused(sigmas, step, error):
    with pytest.raises(error):
        inversion_schedule(sigmas, step)


def test_a_two_dimensional_schedule_is_refused():
    with pytest.raises(ParameterError):
        reversed_sigmas(torch.ones(2, 3), 0)


# --- inversion --------------------------------------------------------------------------------------------------


def test_the_model_is_called_at_the_next_sigma_with_one_sigma_per_batch_item():
    model = GaussianModel()
    sigmas = sd_sigmas(8)
    invert(model, model.sample(2), sigmas, 2)
    called = [float(c[0]) for c in model.calls]
    assert called == pytest.approx(sigmas[2:-1].flip(0).tolist())
    assert all(c.shape == (2,) and c.dtype == torch.float32 for c in model.calls)


def test_inversion_to_step_zero_approaches_the_exact_flow_and_reconstructs_with_more_steps():
    model = GaussianModel()
    x0 = model.sample(2)
    inversion_errors, reconstruction_errors = [], []
    for steps in (10, 20, 40, 80):
        sigmas = sd_sigmas(steps)
        noise = invert(model, x0, sigmas, 0)
        assert noise.shape == x0.shape and noise.dtype == torch.float32
        inversion_errors.append(relative(noise, model.flow(x0, float(sigmas[0]))))
        reconstruction_errors.append(relative(resume(model, noise, sigmas, 0), x0))
    for errors in (inversion_errors, reconstruction_errors):
        assert all(b < 0.75 * a for a, b in zip(errors, errors[1:], strict=False)), errors  # first order: ~halves
    assert reconstruction_errors[-1] < 0.15 and reconstruction_errors[-1] < reconstruction_errors[0] / 4


def test_reconstruction_from_an_intermediate_step_improves_with_steps():
    model = GaussianModel()
    x0 = model.sample(2)
    errors = []
    for steps in (10, 50):
        sigmas = sd_sigmas(steps)
        step = int(0.2 * steps)  # timestep ~0.8T, the paper's Tx
        errors.append(relative(resume(model, invert(model, x0, sigmas, step), sigmas, step), x0))
    assert errors[1] < 0.35 * errors[0] and errors[1] < 0.1, errors


def test_fixed_point_refinement_inverts_the_euler_sampler_almost_exactly():
    model = GaussianModel()
    x0 = model.sample(2)
    sigmas = sd_sigmas(20)
    plain = relative(resume(model, invert(model, x0, sigmas, 4), sigmas, 4), x0)
    model.calls.clear()
    refined_latent = invert(model, x0, sigmas, 4, refine=3)
    assert len(model.calls) == (20 - 4) * 4
    refined = relative(resume(model, refined_latent, sigmas, 4), x0)
    assert refined < 1e-3 and refined < plain / 20, (plain, refined)


def test_ddim_equals_the_variance_preserving_ddim_inversion_formula():
    model = GaussianModel()
    x0 = model.sample(2).double()
    sigmas = sd_sigmas(12)
    step = 3
    ours = invert(model, x0, sigmas, step, sampler="ddim")
    assert torch.equal(ours, invert(model, x0, sigmas, step, sampler="euler"))  # the same update in ComfyUI
    # DDIM inversion in the paper's space: x_vp = x / sqrt(1 + sigma^2), abar = 1 / (1 + sigma^2), eps at (x, t_next).
    x_vp = x0.clone()
    path = sigmas[step:].flip(0).double().tolist()
    for sigma, sigma_next in zip(path, path[1:], strict=False):
        abar, abar_next = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
        x_ve = x_vp * math.sqrt(1 + sigma**2)
        eps = (x_ve - model(x_ve, torch.tensor([sigma_next] * 2, dtype=torch.float64))) / sigma_next
        x0_pred = (x_vp - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
        x_vp = math.sqrt(abar_next) * x0_pred + math.sqrt(1 - abar_next) * eps
    expected = x_vp * math.sqrt(1 + path[-1] ** 2)
    assert ours.dtype == torch.float64
    assert_close(ours, expected, 1e-9)


def test_a_batch_inverts_like_its_items_and_in_either_scaling():
    model = GaussianModel()
    x0 = model.sample(3)
    sigmas = sd_sigmas(10)
    batch = invert(model, x0, sigmas, 2)
    single = torch.cat([invert(model, x0[i : i + 1], sigmas, 2) for i in range(3)])
    assert_close(batch, single, 1e-6)
    # Homogeneity: a LATENT's "samples" (x / s) with a denoiser in the same scaling gives the result / s.
    s = 0.18215
    scaled = invert(lambda x, sig: model(x * s, sig) / s, x0 / s, sigmas, 2)
    assert_close(scaled * s, batch, 1e-5)


def test_progress_is_reported_and_can_stop_the_inversion():
    model = GaussianModel()
    x0 = model.sample(1)
    sigmas = sd_sigmas(6)
    seen = []
    invert(model, x0, sigmas, 1, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 5) for i in range(1, 6)]
    with pytest.raises(OperationStoppedError) as info:
        invert(model, x0, sigmas, 1, progress=lambda done, total: done < 2)
    assert info.value.details == {"done": 2, "total": 5}

    class Cancel(Exception):
        pass

    def cancel(done: int, total: int) -> None:
        raise Cancel

    with pytest.raises(Cancel):
        invert(model, x0, sigmas, 1, progress=cancel)


@pytest.mark.parametrize("sampler", ["euler_ancestral", "dpmpp_2m", "heun", "uni_pc", "dpmpp_sde", "ddpm"])
def test_samplers_without_a_meaningful_inversion_are_refused_with_the_ones_that_work(sampler):
    model = GaussianModel()
    with pytest.raises(UnsupportedSamplerError) as info:
        invert(model, model.sample(1), sd_sigmas(4), 0, sampler=sampler)
    err = info.value
    assert err.details == {"sampler": sampler, "supported": ["euler", "ddim"]}
    assert "euler" in str(err) and "ddim" in str(err) and sampler in str(err)
    assert model.calls == []  # refused before any model call
    assert SUPPORTED_SAMPLERS == ("euler", "ddim") and check_sampler("ddim") == "ddim"


def test_non_finite_inputs_and_model_outputs_are_refused():
    model = GaussianModel()
    x0 = model.sample(1)
    bad = x0.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteError):
        invert(model, bad, sd_sigmas(4), 0)
    with pytest.raises(NonFiniteError) as info:
        invert(lambda x, s: torch.full_like(x, float("inf")), x0, sd_sigmas(4), 0)
    assert info.value.reason == "model"
    with pytest.raises(NonFiniteError) as info:
        invert(lambda x, s: x - 1e38 * torch.ones_like(x), x0, sd_sigmas(4), 0)
    assert info.value.reason == "diverged"


def test_bad_model_outputs_and_arguments_are_refused():
    model = GaussianModel()
    x0 = model.sample(1)
    with pytest.raises(ShapeMismatchError):
        invert(lambda x, s: x[:, :1], x0, sd_sigmas(4), 0)
    with pytest.raises(ShapeMismatchError):
        invert(model, torch.zeros(4), sd_sigmas(4), 0)
    with pytest.raises(ParameterError):
        invert(model, x0, sd_sigmas(4), 0, refine=-1)
    with pytest.raises(TypeError):
        invert(model, x0.long(), sd_sigmas(4), 0)


def test_half_precision_latents_are_inverted_in_float32():
    model = GaussianModel()
    out = invert(model, model.sample(1).half(), sd_sigmas(4), 1)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_the_comfyui_sampler_function_inverts_with_the_models_extra_arguments():
    model = GaussianModel()
    x0 = model.sample(2)
    sigmas = sd_sigmas(10)
    seen_extra, previews = [], []

    def model_k(x, sigma, denoise_mask=None, model_options=None, seed=None):  # like KSamplerX0Inpaint
        seen_extra.append((denoise_mask, model_options, seed))
        return model(x, sigma)

    function = inversion_sampler_function(3, "ddim", refine=1)
    extra_args = {"denoise_mask": None, "model_options": {"transformer_options": {}}, "seed": 7}
    out = function(model_k, x0, sigmas, extra_args=extra_args, callback=previews.append, disable=True)
    assert torch.equal(out, invert(model, x0, sigmas, 3, "ddim", refine=1))
    assert seen_extra and all(extra == (None, {"transformer_options": {}}, 7) for extra in seen_extra)
    assert [p["i"] for p in previews] == list(range(7))
    assert set(previews[0]) == {"x", "i", "sigma", "sigma_hat", "denoised"}
    with pytest.raises(UnsupportedSamplerError):
        inversion_sampler_function(3, "dpmpp_2m")
    with pytest.raises(ParameterError):
        inversion_sampler_function(12, "euler")(model_k, x0, sigmas)  # step 12 of 10


# --- records ----------------------------------------------------------------------------------------------------


def capture_node_record(sigmas: torch.Tensor, step: int, seed: int) -> dict:
    """What the Capture node records (nodes/avi/capture.py) for the same model, schedule and step."""
    return make_record(
        step=step,
        steps=len(sigmas) - 1,
        sigma=float(sigmas[step]),
        timestep=795.3,
        num_timesteps=1000,
        scale_factor=0.18215,
        seed=seed,
        batch=2,
        sampler="ddim",
        scheduler="normal",
        denoise=1.0,
        shape=SHAPE,
    )


def test_the_record_of_an_inverted_latent_is_the_capture_record_plus_a_marker():
    sigmas = sd_sigmas(50)
    record = inversion_record(
        sigmas=sigmas,
        step=10,
        timestep=795.3,
        num_timesteps=1000,
        scale_factor=0.18215,
        seed=1234,
        batch=2,
        sampler="ddim",
        scheduler="normal",
        shape=SHAPE,
    )
    expected = capture_node_record(sigmas, 10, 1234)
    assert record == {**expected, "inverted": True}
    assert is_inverted(record) and not is_inverted(expected)
    latent = {"samples": torch.zeros(SHAPE), CAPTURE_KEY: record}
    assert get_record(latent, "original") == record
    # The target z, sampled from the image inverted to step 0 and captured at 0.5T with the same seed, pairs.
    check_pair(record, capture_node_record(sigmas, 25, 1234))


def test_records_refuse_other_samplers_and_steps_without_noise():
    kwargs = dict(
        timestep=1.0, num_timesteps=1000, scale_factor=0.18215, seed=1, batch=1, scheduler="normal", shape=SHAPE
    )
    with pytest.raises(UnsupportedSamplerError):
        inversion_record(sigmas=sd_sigmas(4), step=1, sampler="euler_ancestral", **kwargs)
    with pytest.raises(ParameterError):
        inversion_record(sigmas=sd_sigmas(4), step=4, sampler="euler", **kwargs)
    with pytest.raises(ParameterError):
        inversion_record(sigmas=sd_sigmas(4), step=1, sampler="euler", **{**kwargs, "seed": -3})
    with pytest.raises(CaptureRecordError):
        inversion_record(sigmas=sd_sigmas(4), step=1, sampler="euler", **{**kwargs, "scale_factor": float("nan")})


def test_the_pseudo_seed_depends_on_the_image_only():
    model = GaussianModel()
    image = model.sample(2)
    seed = inversion_seed(image)
    assert seed == inversion_seed(image.clone()) == inversion_seed(image.double())
    assert 0 <= seed < 2**53
    other = image.clone()
    other[0, 0, 0, 0] += 0.5
    assert inversion_seed(other) != seed
    assert inversion_seed(image.reshape(4, 2, 8, 8)) != seed  # the shape counts too


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_inversion_runs_on_the_latents_device():
    model = GaussianModel()
    x0 = model.sample(2)
    sigmas = sd_sigmas(8)
    gpu_model = GaussianModel()
    gpu_model.mu, gpu_model.v = model.mu.cuda(), model.v.cuda()
    gpu = invert(gpu_model, x0.cuda(), sigmas.cuda(), 2, refine=1)
    assert gpu.device.type == "cuda"
    assert relative(gpu.cpu(), invert(model, x0, sigmas, 2, refine=1)) < 1e-5
