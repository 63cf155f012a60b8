import pytest
import torch

from avi_core import (
    AttributeHead,
    HeadSizeMismatchError,
    ShapeMismatchError,
    attribute_vectors,
    compose,
    merge,
    merge_sweep,
)


@pytest.fixture
def head():
    torch.manual_seed(0)
    return AttributeHead(16, 16, hidden=32).eval()


def test_anchored_rho_zero_returns_x(head):
    x, z = torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16)
    y = merge(x, z, head, rho=0.0, mode="anchored")
    assert (y - x).norm() / x.norm() < 1e-5


def test_paper_mode_uses_the_heads_singular_values(head):
    x, z = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16)
    y = merge(x, z, head, rho=1.0, k=5, mode="paper")
    s, _ = head(x)
    u_hat, v_hat, _, _ = attribute_vectors(x, z, 5, 1.0)
    torch.testing.assert_close(y, compose(u_hat, s, v_hat))


def test_anchored_mode_interpolates_singular_values(head):
    x, z = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16)
    y = merge(x, z, head, rho=0.4, mode="anchored")
    s, _ = head(x)
    u_hat, v_hat, s_x, _ = attribute_vectors(x, z, head.k, 0.4)
    torch.testing.assert_close(y, compose(u_hat, 0.6 * s_x + 0.4 * s, v_hat))


def test_rho_one_changes_the_latent(head):
    x, z = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16)
    assert (merge(x, z, head, rho=1.0, mode="anchored") - x).norm() > 0.1 * x.norm()


def test_sweep_is_rho_major_and_matches_single_merges(head):
    x, z = torch.randn(2, 4, 16, 16), torch.randn(1, 4, 16, 16)
    rhos = [0.0, 0.5, 1.0, 2.0]
    sweep = merge_sweep(x, z, head, rhos, mode="anchored")
    assert sweep.shape == (8, 4, 16, 16)
    for i, rho in enumerate(rhos):
        torch.testing.assert_close(sweep[2 * i : 2 * i + 2], merge(x, z, head, rho=rho, mode="anchored"))


def test_extrapolation_stays_finite(head):
    x, z = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16)
    assert torch.isfinite(merge(x, z, head, rho=2.0)).all()
    with pytest.raises(ValueError, match="range"):
        merge(x, z, head, rho=2.5)


def test_wrong_sizes_are_refused(head):
    with pytest.raises(HeadSizeMismatchError, match="16x16.*24x24"):
        merge(torch.randn(1, 4, 24, 24), torch.randn(1, 4, 24, 24), head)
    with pytest.raises(ShapeMismatchError, match="batch"):
        merge(torch.randn(3, 4, 16, 16), torch.randn(2, 4, 16, 16), head)
    with pytest.raises(ValueError, match="mode"):
        merge(torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16), head, mode="magic")


def test_merge_keeps_the_input_device_and_shape(head):
    x = torch.randn(3, 4, 16, 16, dtype=torch.float64)
    y = merge(x, x[:1], head)
    assert y.shape == x.shape and y.device == x.device and y.dtype == torch.float32
