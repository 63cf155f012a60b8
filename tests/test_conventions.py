import math

import pytest
import torch

from avi_core import from_paper_space, to_paper_space


def test_round_trip_scalar_sigma():
    latent = torch.randn(2, 4, 8, 8) * 14.0
    paper = to_paper_space(latent, 14.6, 0.18215)
    back = from_paper_space(paper, 14.6, 0.18215)
    torch.testing.assert_close(back, latent, rtol=1e-6, atol=1e-5)


def test_formula_matches_spec():
    latent = torch.randn(1, 4, 4, 4)
    sigma, scale = 3.0, 0.13025
    expected = scale * latent / math.sqrt(1 + sigma**2)
    torch.testing.assert_close(to_paper_space(latent, sigma, scale), expected)


def test_per_item_sigma_broadcasts_over_batch():
    latent = torch.ones(3, 4, 2, 2)
    sigmas = torch.tensor([0.0, 1.0, 7.0])
    paper = to_paper_space(latent, sigmas, 1.0)
    for i, s in enumerate(sigmas.tolist()):
        assert torch.allclose(paper[i], torch.full((4, 2, 2), 1 / math.sqrt(1 + s * s)))
    torch.testing.assert_close(from_paper_space(paper, sigmas, 1.0), latent)


def test_captured_latent_becomes_unit_scale():
    # A VE latent at sigma 14 has std ~14 / s; in paper space it is ~unit variance, like the paper's DDPM latents.
    torch.manual_seed(0)
    x0, eps, sigma, scale = torch.randn(1, 4, 64, 64), torch.randn(1, 4, 64, 64), 14.0, 0.18215
    comfy = (x0 + sigma * eps) / scale
    assert comfy.std() > 50
    assert 0.9 < to_paper_space(comfy, sigma, scale).std() < 1.1


def test_float64_preserved_and_half_promoted():
    assert to_paper_space(torch.ones(1, 1, 2, 2, dtype=torch.float64), 1.0, 0.5).dtype == torch.float64
    assert to_paper_space(torch.ones(1, 1, 2, 2, dtype=torch.float16), 1.0, 0.5).dtype == torch.float32


@pytest.mark.parametrize(
    "sigma, scale, message",
    [
        (-1.0, 0.18215, "sigma"),
        (float("nan"), 0.18215, "sigma"),
        (1.0, 0.0, "scale_factor"),
        ([1.0, 2.0], 1.0, "2 sigmas"),
    ],
)
def test_bad_arguments_are_refused(sigma, scale, message):
    with pytest.raises(ValueError, match=message):
        to_paper_space(torch.ones(3, 4, 2, 2), sigma, scale)
