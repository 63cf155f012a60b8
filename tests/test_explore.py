"""Latent explorer engine (spec 11): spectra, rank-one views, subspace distances (checked against scipy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles

from avi_core.errors import NonFiniteError, ParameterError, ShapeMismatchError
from avi_core.explore import (
    paper_trajectory,
    principal_angles,
    rank_one_grid,
    rank_one_views,
    singular_spectrum,
    subspace_distance,
    top_basis,
    trajectory_distances,
    view_labels,
)
from avi_core.latent.conventions import to_paper_space


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    """numpy's check (the first torch.testing call costs seconds of imports)."""
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual.double().numpy(), expected.double().numpy(), rtol=rtol, atol=atol)


def scipy_distance(a: np.ndarray, b: np.ndarray, k: int, side: str) -> float:
    """Geodesic distance of the top-k singular subspaces, computed independently with numpy and scipy."""
    ua, _, vha = np.linalg.svd(a)
    ub, _, vhb = np.linalg.svd(b)
    basis_a = ua[:, :k] if side == "left" else vha[:k].T
    basis_b = ub[:, :k] if side == "left" else vhb[:k].T
    return float(np.sqrt((subspace_angles(basis_a, basis_b) ** 2).sum()))


# --- subspace distance ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("k", [1, 3, 6])
def test_subspace_distance_matches_scipy_principal_angles(side, k):
    a = randn(2, 3, 12, 10, seed=1, dtype=torch.float64)
    b = randn(2, 3, 12, 10, seed=2, dtype=torch.float64)
    ours = subspace_distance(a, b, k, side)
    assert ours.shape == (2, 3) and ours.dtype == torch.float64
    for i in range(2):
        for c in range(3):
            expected = scipy_distance(a[i, c].numpy(), b[i, c].numpy(), k, side)
            assert float(ours[i, c]) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    single = subspace_distance(a.float(), b.float(), k, side)
    assert single.dtype == torch.float32
    np.testing.assert_allclose(single.numpy(), ours.numpy(), rtol=1e-4, atol=1e-5)


def test_small_distances_keep_their_digits():
    # The paper reports distances of 4e-4; arccos of cosines near 1 would return 0 or noise there.
    a = randn(16, 16, seed=3, dtype=torch.float64)
    b = a + 1e-6 * randn(16, 16, seed=4, dtype=torch.float64)
    expected = scipy_distance(a.numpy(), b.numpy(), 4, "left")
    assert 1e-8 < expected < 1e-4
    assert float(subspace_distance(a, b, 4)) == pytest.approx(expected, rel=1e-6)


def test_principal_angles_of_unequal_bases_match_scipy():
    a = randn(3, 9, 5, seed=5, dtype=torch.float64)
    b = randn(3, 9, 2, seed=6, dtype=torch.float64)
    ours = principal_angles(a, b)
    assert ours.shape == (3, 2)
    for i in range(3):
        expected = np.sort(subspace_angles(a[i].numpy(), b[i].numpy()))
        np.testing.assert_allclose(ours[i].numpy(), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(principal_angles(b, a).numpy(), ours.numpy(), rtol=1e-9, atol=1e-12)


def test_distance_properties_and_orthogonal_subspaces():
    a = randn(4, 16, 16, seed=7)
    assert torch.allclose(subspace_distance(a, a, 4), torch.zeros(4), atol=1e-3)
    assert torch.allclose(subspace_distance(a, 37.5 * a, 4), torch.zeros(4), atol=1e-3)  # scale-invariant
    b = randn(4, 16, 16, seed=8)
    assert_close(subspace_distance(a, b, 4), subspace_distance(b, a, 4), rtol=1e-5, atol=1e-5)
    # Top-2 left subspaces span(e0, e1) and span(e2, e3): every principal angle is pi/2.
    x = torch.diag(torch.tensor([5.0, 4.0, 1.0, 0.5]))
    y = torch.diag(torch.tensor([1.0, 0.5, 5.0, 4.0]))
    assert float(subspace_distance(x, y, 2)) == pytest.approx(math.sqrt(2) * math.pi / 2, rel=1e-5)
    assert float(subspace_distance(x, y, 4)) == pytest.approx(0.0, abs=1e-3)  # the whole space


def test_distances_broadcast_over_leading_dimensions():
    a = randn(3, 4, 8, 8, seed=9)
    b = randn(4, 8, 8, seed=10)
    out = subspace_distance(a, b, 2, "right")
    assert out.shape == (3, 4)
    assert_close(out[1], subspace_distance(a[1], b, 2, "right"))


def test_trajectory_distances_are_the_pairwise_distances():
    trajectory = randn(4, 2, 3, 8, 8, seed=11)
    out = trajectory_distances(trajectory, 3)
    assert out.shape == (4, 4, 2, 3)
    assert torch.equal(out, out.transpose(0, 1))
    assert torch.all(out[range(4), range(4)] == 0)
    assert_close(out[0, 2], subspace_distance(trajectory[0], trajectory[2], 3), rtol=1e-5, atol=1e-5)
    as_list = trajectory_distances(list(trajectory), 3, "right")
    assert_close(as_list[1, 3], subspace_distance(trajectory[1], trajectory[3], 3, "right"))


def test_subspace_arguments_are_checked():
    a = randn(8, 6)
    with pytest.raises(ParameterError):
        subspace_distance(a, a, 7)  # only 6 pairs
    with pytest.raises(ParameterError):
        subspace_distance(a, a, 0)
    with pytest.raises(ParameterError):
        subspace_distance(a, a, 2, side="up")
    with pytest.raises(ShapeMismatchError):
        subspace_distance(a, randn(6, 8), 2)
    with pytest.raises(ShapeMismatchError):
        principal_angles(randn(5, 2), randn(6, 2))
    assert top_basis(a, 2, "right").shape == (6, 2)
    bad = a.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(NonFiniteError):
        subspace_distance(bad, a, 2)


# --- rank-one views ---------------------------------------------------------------------------------------------


def test_rank_one_views_alone_sum_back_to_the_latent():
    latent = randn(2, 4, 8, 6, seed=12)
    views = rank_one_views(latent, list(range(6)), 1.0, alone=True)
    assert views.shape == (6, 2, 4, 8, 6)
    assert_close(views.sum(0), latent, rtol=1e-5, atol=1e-5)
    # Groups: one group of all pairs is the latent itself.
    assert_close(rank_one_views(latent, [range(6)], 1.0, alone=True)[0], latent, rtol=1e-5, atol=1e-5)


def test_scaled_views_change_exactly_the_chosen_singular_values():
    latent = randn(3, 8, 8, seed=13, dtype=torch.float64)
    s = torch.linalg.svdvals(latent)
    grid = rank_one_grid(latent, [0, [2, 5]], [0.0, 1.0, 3.0])
    assert grid.shape == (2, 3, 3, 8, 8)
    assert_close(grid[:, 1], latent.expand(2, 3, 8, 8))  # scale 1 is the latent
    expected = s.clone()
    expected[:, 0] *= 3.0
    assert_close(torch.linalg.svdvals(grid[0, 2]), expected.sort(-1, descending=True).values)
    expected = s.clone()
    expected[:, [2, 5]] = 0.0
    assert_close(torch.linalg.svdvals(grid[1, 0]), expected.sort(-1, descending=True).values)


def test_views_commute_with_the_paper_space_conversion_and_keep_unchosen_channels():
    latent = randn(2, 4, 8, 8, seed=14) * 10
    sigma, scale = 12.0, 0.18215
    in_paper = rank_one_views(to_paper_space(latent, sigma, scale), [1, 3], 2.5)
    assert_close(in_paper, to_paper_space(rank_one_views(latent, [1, 3], 2.5), sigma, scale), rtol=1e-4, atol=1e-5)
    for alone in (False, True):
        views = rank_one_views(latent, [0], 2.0, alone=alone, channels=[1, 2])
        assert torch.equal(views[0][:, [0, 3]], latent[:, [0, 3]])
        assert not torch.allclose(views[0][:, 1], latent[:, 1])


def test_rank_one_arguments_are_checked():
    latent = randn(4, 8, 6)
    for indices in ([6], [-1], [], [[]], ["a"], [True]):
        with pytest.raises(ParameterError):
            rank_one_views(latent, indices)
    with pytest.raises(ParameterError):
        rank_one_grid(latent, [0], [])
    with pytest.raises(ParameterError):
        rank_one_views(latent, [0], float("nan"))
    with pytest.raises(ParameterError):
        rank_one_views(latent, [0], channels=[4])
    with pytest.raises(ShapeMismatchError):
        rank_one_views(randn(8, 6), [0], channels=[0])
    assert view_labels([0, [4, 2]], [0.5, 2], alone=False) == (["pair 0", "pairs 2+4"], ["x0.5", "x2"])
    assert view_labels(3, [1], alone=True) == (["pair 3"], ["alone x1"])


# --- spectra and trajectories -----------------------------------------------------------------------------------


def test_singular_spectrum_and_paper_trajectory():
    latents = [randn(2, 4, 8, 8, seed=s) * (1 + sigma) for s, sigma in enumerate((14.6, 3.0, 0.5))]
    sigmas = [14.6, 3.0, 0.5]
    trajectory = paper_trajectory(latents, sigmas, 0.18215)
    assert trajectory.shape == (3, 2, 4, 8, 8)
    assert_close(trajectory[1], to_paper_space(latents[1], 3.0, 0.18215))
    spectra = singular_spectrum(trajectory)
    assert spectra.shape == (3, 2, 4, 8)
    assert_close(spectra, torch.linalg.svdvals(trajectory), rtol=1e-5, atol=1e-5)
    assert torch.all(spectra[..., :-1] >= spectra[..., 1:])
    with pytest.raises(ParameterError):
        paper_trajectory(latents, sigmas[:2], 0.18215)
    with pytest.raises(ParameterError):
        paper_trajectory([], [], 0.18215)
    with pytest.raises(ShapeMismatchError):
        paper_trajectory([latents[0], latents[1][:1]], sigmas[:2], 0.18215)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_explorer_runs_on_the_latents_device():
    a, b = randn(2, 4, 16, 16, seed=20), randn(2, 4, 16, 16, seed=21)
    on_gpu = subspace_distance(a.cuda(), b.cuda(), 4)
    assert on_gpu.device.type == "cuda"
    assert_close(on_gpu.cpu(), subspace_distance(a, b, 4), rtol=1e-3, atol=1e-4)
    views = rank_one_views(a.cuda(), [0, 1], 2.0)
    assert views.device.type == "cuda"
    assert_close(views.cpu(), rank_one_views(a, [0, 1], 2.0), rtol=1e-3, atol=1e-4)
