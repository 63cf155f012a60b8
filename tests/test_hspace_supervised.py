"""avi_core.hspace.supervised: mean difference, separation and disentangling, against spec section 8 (host-free)."""

from __future__ import annotations

import pytest
import torch

from avi_core.errors import DatasetError, ParameterError, ShapeMismatchError
from avi_core.hspace import disentangle, mean_difference_direction, separation


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: one thread is fastest, and spares a busy shared CPU OpenMP's spin-waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reference_disentangle(n: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """Section 8 transcribed: n' = n - N^T (N N^T)^-1 N n, renormalised (rows of N are the other directions)."""
    v = n.reshape(-1).double()
    big_n = others.reshape(others.shape[0], -1).double()
    out = v - big_n.T @ torch.linalg.inv(big_n @ big_n.T) @ big_n @ v
    return (out / out.norm()).reshape(n.shape)


def _sets(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shift = torch.randn(4, 3, 3, generator=g)
    h_a = torch.randn(7, 4, 3, 3, generator=g)
    h_b = torch.randn(9, 4, 3, 3, generator=g) + shift
    return h_a, h_b


def test_mean_difference_points_from_a_to_b():
    h_a, h_b = _sets()
    n = mean_difference_direction(h_a, h_b)
    expected = h_b.double().mean(0) - h_a.double().mean(0)
    torch.testing.assert_close(n.double(), expected / expected.norm(), rtol=0, atol=1e-6)
    assert n.shape == (4, 3, 3) and n.dtype == torch.float32
    assert abs(float(n.double().norm()) - 1) < 1e-6
    torch.testing.assert_close(mean_difference_direction(h_b, h_a), -n)
    gap = separation(h_a, h_b, n)
    assert gap == pytest.approx(float(expected.norm()), rel=1e-6)


def test_mean_difference_refusals():
    h_a, h_b = _sets()
    with pytest.raises(ShapeMismatchError, match=r"\(4, 3, 3\).*\(4, 9\)"):
        mean_difference_direction(h_a, h_b.reshape(9, 4, 9))
    with pytest.raises(DatasetError, match="same mean") as info:
        mean_difference_direction(h_a, h_a.flip(0))
    assert info.value.reason == "same_mean"


def test_disentangle_matches_the_formula_and_is_orthogonal():
    g = torch.Generator().manual_seed(2)
    n = torch.randn(6, 5, generator=g, dtype=torch.float64)
    others = torch.randn(3, 6, 5, generator=g, dtype=torch.float64)
    out = disentangle(n, others)
    torch.testing.assert_close(out, reference_disentangle(n, others), rtol=0, atol=1e-12)
    assert abs(float(out.norm()) - 1) < 1e-12
    assert (others.reshape(3, -1) @ out.reshape(-1)).abs().max() < 1e-12
    # float32 inputs: orthogonal to float32 rounding
    out32 = disentangle(n.float(), others.float())
    assert out32.dtype == torch.float32
    assert (others.float().reshape(3, -1) @ out32.reshape(-1)).abs().max() < 1e-5


def test_disentangle_is_idempotent_and_keeps_orthogonal_directions():
    g = torch.Generator().manual_seed(3)
    n = torch.randn(40, generator=g, dtype=torch.float64)
    others = torch.randn(4, 40, generator=g, dtype=torch.float64)
    once = disentangle(n, others)
    torch.testing.assert_close(disentangle(once, others), once, rtol=0, atol=1e-12)
    # a direction already orthogonal to the others only gets normalised
    torch.testing.assert_close(disentangle(3.0 * once, others), once, rtol=0, atol=1e-12)
    # one other direction given without its row dimension; dependent rows are fine (pseudo-inverse)
    single = disentangle(n, others[0])
    torch.testing.assert_close(single, disentangle(n, others[:1]))
    repeated = disentangle(n, torch.cat([others, others[:2] * 2.0]))
    torch.testing.assert_close(repeated, once, rtol=0, atol=1e-10)
    torch.testing.assert_close(disentangle(n, torch.zeros(0, 40, dtype=torch.float64)), n / n.norm())


def test_disentangle_refusals():
    others = torch.eye(4)[:2]
    with pytest.raises(ParameterError, match="lies in the span") as info:
        disentangle(others[0] + 2 * others[1], others)
    assert info.value.reason == "in_span"
    with pytest.raises(ShapeMismatchError, match=r"\(2, 5\)"):
        disentangle(torch.ones(4), torch.ones(2, 5))
    with pytest.raises(ParameterError, match="zero"):
        disentangle(torch.zeros(4), others)


def test_supervised_on_a_planted_attribute():
    # h of set b = set a + an attribute direction: the mean difference finds it; disentangling from a second,
    # correlated attribute leaves the part orthogonal to it
    g = torch.Generator().manual_seed(5)
    attribute = torch.randn(50, generator=g)
    attribute /= attribute.norm()
    h_a = torch.randn(200, 50, generator=g) * 0.01
    h_b = h_a + 4.0 * attribute
    n = mean_difference_direction(h_a, h_b)
    torch.testing.assert_close(n, attribute, rtol=0, atol=1e-5)
    assert separation(h_a, h_b, n) == pytest.approx(4.0, rel=1e-5)
