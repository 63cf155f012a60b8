"""avi_core.hspace.pca and signs: PCA of h against a direct transcription of spec section 8 (host-free)."""

from __future__ import annotations

import math

import pytest
import torch

from avi_core.errors import DatasetError, NonFiniteError, ParameterError
from avi_core.hspace import (
    align_across_steps,
    fix_signs,
    pca_directions,
    pca_directions_per_step,
    principal_components,
    principal_components_per_step,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: one thread is fastest, and spares a busy shared CPU OpenMP's spin-waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reference_pca(h: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Section 8 transcribed: SVD of the centred flattened data; stds sigma_i / sqrt(N - 1); largest entry > 0."""
    x = h.reshape(h.shape[0], -1).double()
    centred = x - x.mean(dim=0)
    _, sigma, vh = torch.linalg.svd(centred, full_matrices=False)
    directions = vh[:count].clone()
    for row in directions:
        if row[row.abs().argmax()] < 0:
            row.neg_()
    return directions.reshape(count, *h.shape[1:]), sigma[:count] / math.sqrt(h.shape[0] - 1)


def structured(n: int, shape: tuple[int, ...], seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """Samples with a clear spectrum: a few strong latent factors plus small noise."""
    g = torch.Generator().manual_seed(seed)
    d = math.prod(shape)
    factors = torch.randn(5, d, generator=g, dtype=torch.float64)
    weights = torch.randn(n, 5, generator=g, dtype=torch.float64) * torch.tensor([8.0, 5.0, 3.0, 2.0, 1.5])
    noise = 0.05 * torch.randn(n, d, generator=g, dtype=torch.float64)
    return (weights @ factors + noise + 3.0).reshape(n, *shape).to(dtype)


@pytest.mark.parametrize("n, shape", [(12, (4, 6, 5)), (60, (3, 4))])  # N << D (Gram route) and N > D (covariance)
def test_pca_equals_svd_of_centred_data(n, shape):
    h = structured(n, shape, seed=n)
    directions, stds = pca_directions(h, 4)
    ref_dirs, ref_stds = reference_pca(h, 4)
    assert directions.shape == (4, *shape) and stds.shape == (4,)
    assert directions.dtype == torch.float32 and stds.dtype == torch.float32
    torch.testing.assert_close(stds.double(), ref_stds, rtol=1e-5, atol=0)
    # up to sign: |<d, d_ref>| = 1 for each pair
    dots = (directions.reshape(4, -1).double() * ref_dirs.reshape(4, -1)).sum(dim=1)
    torch.testing.assert_close(dots.abs(), torch.ones(4, dtype=torch.float64), rtol=0, atol=1e-5)
    # and with the same sign rule, equal outright
    torch.testing.assert_close(directions.double(), ref_dirs, rtol=0, atol=1e-4)


def test_directions_are_orthonormal_and_descending():
    h = structured(20, (8, 4, 4), seed=3, dtype=torch.float64)
    result = principal_components(h, 5)
    assert result.directions.dtype == torch.float64
    flat = result.directions.reshape(5, -1)
    torch.testing.assert_close(flat @ flat.T, torch.eye(5, dtype=torch.float64), rtol=0, atol=1e-10)
    assert torch.all(result.stds[:-1] >= result.stds[1:])
    torch.testing.assert_close(result.mean, h.mean(dim=0), rtol=0, atol=1e-12)


def test_sign_rule_largest_magnitude_entry_positive():
    h = structured(10, (6, 5), seed=5)
    directions, _ = pca_directions(h, 3)
    flat = directions.reshape(3, -1)
    picked = flat.gather(1, flat.abs().argmax(dim=1, keepdim=True))
    assert torch.all(picked > 0)
    # negating the data's deviations (h -> 2*mean - h) gives the same directions: the sign comes from the rule
    mirrored = 2 * h.mean(dim=0, keepdim=True) - h
    torch.testing.assert_close(pca_directions(mirrored, 3)[0], directions, rtol=0, atol=1e-5)


def test_fix_signs_and_ties():
    d = torch.tensor([[0.1, -0.9, 0.3], [-0.5, 0.5, 0.0]])
    fixed = fix_signs(d)
    assert fixed[0, 1] > 0 and fixed[1, 0] > 0  # a tie takes the first largest entry


def test_stds_scale_as_sigma_over_sqrt_n_minus_1():
    # two samples at +-a along one axis: the only direction has std |2a| / sqrt(1) ... exactly sigma / sqrt(N - 1)
    a = 3.0
    h = torch.zeros(2, 4)
    h[0, 2], h[1, 2] = a, -a
    directions, stds = pca_directions(h, 1)
    torch.testing.assert_close(directions, torch.tensor([[0.0, 0.0, 1.0, 0.0]]))
    torch.testing.assert_close(stds, torch.tensor([a * math.sqrt(2.0)]))  # sigma = a*sqrt(2), N - 1 = 1
    # and it is the sample standard deviation of the projections
    h = structured(30, (7, 3), seed=7, dtype=torch.float64)
    result = principal_components(h, 2)
    projections = (h.reshape(30, -1) - h.reshape(30, -1).mean(0)) @ result.directions.reshape(2, -1).T
    torch.testing.assert_close(result.stds, projections.std(dim=0), rtol=1e-10, atol=0)
    ratio = result.explained_variance_ratio
    assert ratio.shape == (2,) and 0 < float(ratio.sum()) <= 1
    torch.testing.assert_close(result.total_variance, h.reshape(30, -1).var(dim=0).sum(), rtol=1e-10, atol=0)


def test_n_much_smaller_than_d_without_a_d_by_d_matrix():
    # D = 80,000 (SD 2.1 at 512 px: 1280 x 8 x 8); a D x D float64 matrix would need 51 GB.
    n, shape = 16, (1280, 8, 8)
    h = structured(n, shape, seed=11).to(torch.float16)
    directions, stds = pca_directions(h, 3)
    assert directions.shape == (3, *shape) and directions.dtype == torch.float32
    ref_dirs, ref_stds = reference_pca(h.float(), 3)  # the thin SVD of a 16 x 80,000 matrix
    torch.testing.assert_close(stds.double(), ref_stds, rtol=1e-4, atol=0)
    dots = (directions.reshape(3, -1).double() * ref_dirs.reshape(3, -1)).sum(dim=1)
    assert torch.all(dots > 1 - 1e-5)


def test_per_step_signs_agree_across_steps():
    base = structured(12, (5, 4), seed=13)
    # step s: the same data slowly rotated, and with flipped deviations on odd steps
    steps = []
    for s in range(4):
        flip = -1.0 if s % 2 else 1.0
        steps.append(base.mean(0) + flip * (base - base.mean(0)) + 0.01 * s * structured(12, (5, 4), seed=20 + s))
    result = principal_components_per_step(steps, 2)
    assert result.directions.shape == (4, 2, 5, 4) and result.stds.shape == (4, 2)
    assert result.samples == [12, 12, 12, 12] and result.total_variance.shape == (4,)
    flat = result.directions.reshape(4, 2, -1)
    for s in range(1, 4):
        assert torch.all((flat[s] * flat[s - 1]).sum(dim=1) > 0)
    # the first step follows the largest-entry rule
    torch.testing.assert_close(result.directions[0], pca_directions(steps[0], 2)[0])
    directions, stds = pca_directions_per_step(torch.stack(steps), 2)
    torch.testing.assert_close(directions, result.directions)


def test_align_across_steps_reports_flips():
    d = torch.tensor([[[1.0, 0.0]], [[-1.0, 0.1]], [[-1.0, 0.0]]])
    aligned, flipped = align_across_steps(d)
    assert flipped.tolist() == [[False], [True], [True]]
    assert torch.all(aligned[:, 0, 0] > 0)


def test_refusals():
    with pytest.raises(DatasetError, match="PCA needs at least 2 samples of h, got 1") as info:
        pca_directions(torch.randn(1, 10), 1)
    assert info.value.reason == "too_few" and info.value.details["samples"] == 1
    with pytest.raises(ParameterError, match="exceeds the 3 principal directions that 4 samples") as info:
        pca_directions(torch.randn(4, 10), 4)
    assert info.value.details["high"] == 3
    with pytest.raises(ParameterError, match="vary along only 1 direction"):
        pca_directions(torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0], [1.0, 2.0]]).repeat(1, 3), 2)
    bad = torch.randn(5, 6)
    bad[2, 3] = float("nan")
    with pytest.raises(NonFiniteError):
        pca_directions(bad, 2)
    with pytest.raises(ParameterError):
        pca_directions(torch.randn(5, 6), 0)
