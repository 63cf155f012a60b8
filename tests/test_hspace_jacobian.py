"""avi_core.hspace.jacobian: power iteration against the SVD of known Jacobians (host-free)."""

from __future__ import annotations

import pytest
import torch

from avi_core.errors import NonFiniteError, ParameterError
from avi_core.hspace import jacobian_directions, jacobian_power_iteration

H_SHAPE = (3, 2, 4)  # 24 values
Y_SHAPE = (2, 5, 3)  # 30 values


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: one thread is fastest, and spares a busy shared CPU OpenMP's spin-waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def known_map(singular_values: list[float], seed: int = 0, dtype=torch.float64):
    """A [30, 24] with the given leading singular values (the rest 0.3) and its SVD (U, S, Vh)."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(30, 24, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(24, 24, generator=g, dtype=torch.float64))
    s = torch.tensor(singular_values + [0.3] * (24 - len(singular_values)), dtype=torch.float64)
    return (u @ torch.diag(s) @ v.T).to(dtype), u, s, v.T


def linear(a: torch.Tensor):
    return lambda h: (a @ h.reshape(-1)).reshape(Y_SHAPE)


def assert_same_lines(found: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    """Rows of found and expected span the same lines: |<f_i, e_i>| = 1."""
    dots = (found.reshape(found.shape[0], -1).double() * expected.reshape(expected.shape[0], -1).double()).sum(1)
    torch.testing.assert_close(dots.abs(), torch.ones_like(dots), rtol=0, atol=atol)


def assert_orthonormal(directions: torch.Tensor, atol: float) -> None:
    flat = directions.reshape(directions.shape[0], -1).double()
    torch.testing.assert_close(flat @ flat.T, torch.eye(flat.shape[0], dtype=torch.float64), rtol=0, atol=atol)


@pytest.mark.parametrize("mode", ["forward", "double_vjp"])
def test_linear_map_gives_its_top_singular_vectors(mode):
    a, u, s, vh = known_map([9.0, 6.0, 4.0, 2.0])
    h = torch.randn(H_SHAPE, dtype=torch.float64)
    result = jacobian_power_iteration(linear(a), h, count=3, iters=200, tol=1e-10, mode=mode)
    assert result.mode == mode and result.converged == [True, True, True] and not result.stopped
    assert result.directions.shape == (3, *H_SHAPE) and result.singular_values.shape == (3,)
    torch.testing.assert_close(result.singular_values, s[:3], rtol=1e-9, atol=0)
    assert_same_lines(result.directions, vh[:3], atol=1e-9)
    assert_same_lines(result.output_directions, u[:, :3].T, atol=1e-9)
    assert_orthonormal(result.directions, atol=1e-12)
    # signs: largest-magnitude entry positive; left vectors follow their directions
    flat = result.directions.reshape(3, -1)
    assert torch.all(flat.gather(1, flat.abs().argmax(1, keepdim=True)) > 0)
    lefts = (a @ flat.T).T / result.singular_values.unsqueeze(1)
    torch.testing.assert_close(result.output_directions.reshape(3, -1), lefts, rtol=0, atol=1e-8)


def test_defaults_converge_in_float32():
    a, _, s, vh = known_map([9.0, 5.0, 2.5], seed=1, dtype=torch.float32)
    directions, values = jacobian_directions(linear(a), torch.randn(H_SHAPE))
    assert directions.shape == (3, *H_SHAPE) and directions.dtype == torch.float32
    torch.testing.assert_close(values.double(), s[:3], rtol=1e-5, atol=0)
    assert_same_lines(directions, vh[:3], atol=1e-5)
    assert_orthonormal(directions, atol=1e-6)


def test_nonlinear_f_matches_the_svd_of_its_jacobian():
    a, _, _, _ = known_map([9.0, 6.0, 4.0, 2.0], seed=4)
    b = torch.randn(30, 24, generator=torch.Generator().manual_seed(5), dtype=torch.float64) / 10

    def f(h):
        x = h.reshape(-1)
        return (a @ x + torch.sin(b @ x) + 0.1 * (b @ x) ** 2).reshape(Y_SHAPE)

    h = torch.randn(H_SHAPE, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(f, h).reshape(30, 24)
    _, s, vh = torch.linalg.svd(jac)
    assert float(s[2] / s[1]) < 0.9  # a clear gap: the comparison below is about the method, not about luck
    result = jacobian_power_iteration(f, h, count=3, iters=300, tol=1e-11)
    torch.testing.assert_close(result.singular_values, s[:3], rtol=1e-9, atol=0)
    assert_same_lines(result.directions, vh[:3], atol=1e-9)
    assert_orthonormal(result.directions, atol=1e-12)


class _NoForwardMode(torch.autograd.Function):
    """x -> sin(x) with a backward made of differentiable ops but no forward-mode (jvp) formula."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.cos(x)


def test_auto_falls_back_to_double_vjp_when_forward_mode_is_unsupported():
    a, _, _, _ = known_map([5.0, 3.0, 2.0], seed=2)

    def f(h):
        return _NoForwardMode.apply(a @ h.reshape(-1))

    h = torch.randn(24, dtype=torch.float64)
    with pytest.raises((NotImplementedError, RuntimeError)):
        jacobian_power_iteration(f, h, count=1, iters=5, mode="forward")
    result = jacobian_power_iteration(f, h, count=2, iters=200, tol=1e-10)
    assert result.mode == "double_vjp"
    jac = torch.autograd.functional.jacobian(f, h)
    _, s, vh = torch.linalg.svd(jac)
    torch.testing.assert_close(result.singular_values, s[:2], rtol=1e-8, atol=0)
    assert_same_lines(result.directions, vh[:2], atol=1e-8)


def test_reproducible_seeded_and_works_under_inference_mode():
    a, _, _, _ = known_map([4.0, 3.0, 2.0], seed=3, dtype=torch.float32)
    h = torch.randn(H_SHAPE)
    first = jacobian_power_iteration(linear(a), h, count=2, iters=8, seed=7)
    again = jacobian_power_iteration(linear(a), h, count=2, iters=8, seed=7)
    other = jacobian_power_iteration(linear(a), h, count=2, iters=8, seed=8)
    assert torch.equal(first.directions, again.directions)
    assert not torch.equal(first.directions, other.directions)
    with torch.inference_mode():
        inside = jacobian_power_iteration(linear(a), h.clone(), count=2, iters=8, seed=7)
    torch.testing.assert_close(inside.directions, first.directions)


def test_rank_deficient_map_gives_zero_singular_values():
    g = torch.Generator().manual_seed(6)
    a = torch.randn(30, 2, generator=g, dtype=torch.float64) @ torch.randn(2, 24, generator=g, dtype=torch.float64)
    result = jacobian_power_iteration(linear(a), torch.randn(H_SHAPE, dtype=torch.float64), count=4, iters=100)
    assert result.singular_values[2:].tolist() == [0.0, 0.0] and all(result.converged)
    assert torch.all(result.singular_values[:2] > 0)
    assert_orthonormal(result.directions, atol=1e-10)


def test_per_sample_solves_each_image_in_one_batch():
    a0, _, s0, vh0 = known_map([7.0, 3.0], seed=8)
    a1, _, s1, vh1 = known_map([5.0, 1.0], seed=9)
    calls = []

    def f(h):  # h [2, 24] -> [2, 30], rows independent
        calls.append(1)
        return torch.stack([a0 @ h[0], a1 @ h[1]])

    result = jacobian_power_iteration(
        f, torch.randn(2, 24, dtype=torch.float64), count=2, iters=100, tol=1e-10, per_sample=True
    )
    assert result.directions.shape == (2, 2, 24) and result.singular_values.shape == (2, 2)
    torch.testing.assert_close(result.singular_values[0], s0[:2], rtol=1e-9, atol=0)
    torch.testing.assert_close(result.singular_values[1], s1[:2], rtol=1e-9, atol=0)
    assert_same_lines(result.directions[0], vh0[:2], atol=1e-9)
    assert_same_lines(result.directions[1], vh1[:2], atol=1e-9)
    assert len(result.iterations) == 2 and len(result.iterations[0]) == 2


def test_progress_callback_counts_stops_and_propagates():
    a, _, _, _ = known_map([4.0, 3.9, 3.8], seed=10)
    seen = []

    def progress(done, total):
        seen.append((done, total))
        return None if len(seen) < 5 else False

    result = jacobian_power_iteration(
        linear(a), torch.randn(H_SHAPE, dtype=torch.float64), 3, 4, 0.0, progress=progress
    )
    assert result.stopped and len(seen) == 5 and seen[0] == (1, 12) and seen[-1] == (5, 12)
    assert result.directions.shape[0] == 2 and result.converged == [False, False]  # the second one cut short

    class Cancel(Exception):
        pass

    def cancel(done, total):
        raise Cancel

    with pytest.raises(Cancel):
        jacobian_power_iteration(linear(a), torch.randn(H_SHAPE, dtype=torch.float64), progress=cancel)


def test_refusals():
    h = torch.randn(4)
    with pytest.raises(ParameterError, match="does not depend on h"):
        jacobian_power_iteration(lambda x: torch.ones(3), h)
    with pytest.raises(NonFiniteError):
        jacobian_power_iteration(lambda x: x * float("nan"), h)
    with pytest.raises(ParameterError):
        jacobian_power_iteration(lambda x: x, h, count=0)
    with pytest.raises(ParameterError, match="mode"):
        jacobian_power_iteration(lambda x: x, h, mode="reverse")


def test_attention_inside_f_runs_on_the_math_kernel():
    # torch's fused CPU attention kernel has neither forward mode nor double backward; the default
    # math_attention=True runs f on the math kernel, where both work
    g = torch.Generator().manual_seed(11)
    wq, wk, wv = (torch.randn(8, 8, generator=g) / 3 for _ in range(3))

    def f(h):  # h [1, 2, 16, 8]: one image, 2 heads, 16 tokens
        return torch.nn.functional.scaled_dot_product_attention(h @ wq, h @ wk, h @ wv)

    h = torch.randn(1, 2, 16, 8, generator=g)
    result = jacobian_power_iteration(f, h, count=2, iters=200, tol=1e-6)
    assert result.mode == "forward"
    with torch.nn.attention.sdpa_kernel([torch.nn.attention.SDPBackend.MATH]):
        jac = torch.autograd.functional.jacobian(f, h).reshape(h.numel(), h.numel())
    _, s, vh = torch.linalg.svd(jac.double())
    torch.testing.assert_close(result.singular_values.double(), s[:2], rtol=1e-4, atol=0)
    assert_same_lines(result.directions, vh[:2], atol=1e-4)
