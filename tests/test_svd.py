"""The SVD backends: the batched Jacobi SVD against LAPACK, and channel_svd's backend choice and checks."""

from __future__ import annotations

import threading

import pytest
import torch

import avi_core.latent.svd as svd_module
from avi_core.errors import NonFiniteError
from avi_core.latent.jacobi import jacobi_svd, tournament_schedule
from avi_core.latent.svd import (
    BACKENDS,
    ENV_VAR,
    auto_backend,
    channel_svd,
    resolve_backend,
    threaded_svd,
    torch_svd,
)

TOL = 1e-5


def check_svd(x: torch.Tensor, u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, tol: float = TOL) -> None:
    """The issue's criteria: reconstruction, orthonormality, singular values against LAPACK in float64."""
    *lead, h, w = x.shape
    r = min(h, w)
    assert u.shape == (*lead, h, r) and s.shape == (*lead, r) and vh.shape == (*lead, r, w)
    assert u.dtype == s.dtype == vh.dtype == x.dtype
    for t in (u, s, vh):
        assert torch.isfinite(t).all()
    x64 = x.double()
    eye = torch.eye(r, dtype=torch.float64)
    rec = (u.double() * s.double().unsqueeze(-2)) @ vh.double()
    norm = torch.linalg.matrix_norm(x64).clamp_min(torch.finfo(torch.float64).tiny)
    assert (torch.linalg.matrix_norm(rec - x64) / norm).max() <= tol
    assert (u.double().mT @ u.double() - eye).abs().max() <= tol
    assert (vh.double() @ vh.double().mT - eye).abs().max() <= tol
    reference = torch.linalg.svdvals(x64)
    largest = reference[..., :1].clamp_min(torch.finfo(torch.float64).tiny)
    assert ((s.double() - reference).abs() / largest).max() <= tol
    assert (s[..., :-1] >= s[..., 1:]).all(), "singular values must be descending"
    assert (s >= 0).all()


def seeded(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("n", [2, 4, 6, 8, 64])
def test_tournament_meets_every_pair_once(n):
    labels = list(range(n))
    met = []
    for perm in tournament_schedule(n):
        met += [frozenset((labels[k], labels[k + n // 2])) for k in range(n // 2)]
        labels = [labels[i] for i in perm]
    assert len(met) == len(set(met)) == n * (n - 1) // 2
    assert labels == list(range(n)), "a sweep must bring the rows back to their order"


@pytest.mark.parametrize("shape", [(6, 64, 64), (3, 96, 96), (16, 13, 7), (16, 7, 13), (4, 1, 5), (4, 5, 1)])
def test_jacobi_matches_lapack_on_random_matrices(shape):
    x = seeded(*shape, seed=sum(shape))
    check_svd(x, *jacobi_svd(x))


def test_jacobi_on_latent_like_matrices_with_a_spread_spectrum():
    gen = torch.Generator().manual_seed(3)
    left, _ = torch.linalg.qr(torch.randn(4, 64, 64, generator=gen))
    right, _ = torch.linalg.qr(torch.randn(4, 64, 64, generator=gen))
    spectrum = 10.0 * 0.8 ** torch.arange(64, dtype=torch.float32)  # down to ~1e-5 of the largest
    x = (left * spectrum) @ right.mT
    check_svd(x, *jacobi_svd(x))


def test_jacobi_batched_leading_dims():
    x = seeded(2, 3, 16, 12, seed=5)
    u, s, vh = jacobi_svd(x)
    check_svd(x, u, s, vh)
    # Each matrix is decomposed on its own: the batch does not change any matrix's result.
    u1, s1, vh1 = jacobi_svd(x[1, 2])
    assert torch.equal(s[1, 2], s1) and torch.equal(u[1, 2], u1) and torch.equal(vh[1, 2], vh1)


@pytest.mark.parametrize("rank", [0, 1, 5])
def test_jacobi_rank_deficient(rank):
    gen = torch.Generator().manual_seed(rank)
    x = torch.randn(3, 24, rank, generator=gen) @ torch.randn(3, rank, 20, generator=gen)
    u, s, vh = jacobi_svd(x)
    check_svd(x, u, s, vh)
    assert (s[:, rank:] <= 1e-5 * s[:, :1].clamp_min(1)).all()


def test_jacobi_zero_and_zero_columns():
    zero = torch.zeros(2, 9, 9)
    u, s, vh = jacobi_svd(zero)
    check_svd(zero, u, s, vh)
    assert torch.equal(s, torch.zeros(2, 9))
    x = seeded(2, 10, 8, seed=1)
    x[:, :, 3] = 0
    x[:, 6, :] = 0
    check_svd(x, *jacobi_svd(x))


@pytest.mark.parametrize("kind", ["identity", "orthogonal", "repeated"])
def test_jacobi_repeated_singular_values(kind):
    n = 16
    if kind == "identity":
        x = torch.eye(n).expand(3, n, n).clone()
    else:
        q, _ = torch.linalg.qr(seeded(3, n, n, seed=2))
        x = q if kind == "orthogonal" else q * torch.tensor([3.0] * 5 + [1.0] * 6 + [0.0] * 5)
    u, s, vh = jacobi_svd(x)
    check_svd(x, u, s, vh)


def test_jacobi_extreme_scales_do_not_overflow():
    x = seeded(2, 12, 12, seed=4)
    for scale in (1e-30, 1e30):
        check_svd(x * scale, *jacobi_svd(x * scale))


def test_jacobi_float64_stays_float64_and_is_accurate():
    x = seeded(3, 20, 17, seed=6, dtype=torch.float64)
    u, s, vh = jacobi_svd(x)
    assert s.dtype == torch.float64
    check_svd(x, u, s, vh, tol=1e-12)


def test_jacobi_refuses_bad_input():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        jacobi_svd(torch.ones(3))
    with pytest.raises(TypeError, match="float32 or float64"):
        jacobi_svd(torch.ones(2, 2, dtype=torch.float16))


def test_jacobi_empty_batch():
    u, s, vh = jacobi_svd(torch.zeros(0, 5, 4))
    assert u.shape == (0, 5, 4) and s.shape == (0, 4) and vh.shape == (0, 4, 4)


@pytest.mark.parametrize("backend", ["torch", "threads", "jacobi", "auto"])
def test_channel_svd_every_backend(backend, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    x = seeded(3, 4, 20, 18, seed=7)
    check_svd(x, *channel_svd(x, backend=backend))


def test_threads_backend_is_bit_identical_to_torch_on_cpu():
    x = seeded(40, 12, 12, seed=8)
    for got, want in zip(threaded_svd(x, workers=3), torch_svd(x), strict=True):
        assert torch.equal(got, want)


def test_backend_forced_by_argument(monkeypatch):
    calls = []
    monkeypatch.setitem(svd_module._IMPLEMENTATIONS, "jacobi", lambda x: calls.append(tuple(x.shape)) or jacobi_svd(x))
    monkeypatch.setenv(ENV_VAR, "torch")  # an explicit argument wins over the variable
    x = seeded(2, 8, 8, seed=9)
    channel_svd(x, backend="jacobi")
    assert calls == [(2, 8, 8)]


def test_backend_forced_by_environment(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "jacobi")
    assert resolve_backend("auto", "cpu", 64, 64, 20000) == "jacobi"
    monkeypatch.setenv(ENV_VAR, "torch")
    assert resolve_backend("auto", "cpu", 64, 64, 20000) == "torch"
    monkeypatch.setenv(ENV_VAR, "bogus")
    with pytest.raises(ValueError, match=f"bogus.*{ENV_VAR}"):
        channel_svd(torch.eye(3))
    monkeypatch.delenv(ENV_VAR)
    assert resolve_backend("auto", "cpu", 64, 64, 20000) == auto_backend("cpu", 64, 64, 20000)


def test_unknown_backend_argument_names_the_choices():
    with pytest.raises(ValueError, match="unknown SVD backend 'lapack'.*torch"):
        channel_svd(torch.eye(3), backend="lapack")


def test_auto_rule(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert auto_backend("cpu", 64, 64, 20000) == "threads"
    assert auto_backend("cpu", 8, 8, 4) == "torch"  # too little work for a thread hand-off
    assert auto_backend("cuda", 64, 64, 20000) == "jacobi"
    assert auto_backend("cuda", 32, 32, 20000) == "torch"  # cuSOLVER batches these itself
    assert auto_backend("cuda", 64, 64, 4) == "torch"
    assert auto_backend("mps", 64, 64, 20000) == "torch"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert auto_backend("cpu", 64, 64, 20000) == "torch"
    assert set(BACKENDS) == {"auto", "torch", "threads", "jacobi", "triton"}


def test_nonfinite_input_is_refused():
    x = seeded(2, 6, 6, seed=10)
    x[1, 2, 3] = float("nan")
    with pytest.raises(NonFiniteError, match="latent contains NaN or infinity"):
        channel_svd(x)
    x[1, 2, 3] = float("inf")
    with pytest.raises(NonFiniteError, match="latent contains NaN or infinity"):
        channel_svd(x, backend="jacobi")


def test_large_finite_input_whose_sum_overflows_is_not_refused():
    # The finiteness check sums the tensors first; a finite latent whose sum overflows float32 must still pass.
    x = (seeded(1, 64, 64, seed=12).abs() + 0.5) * 1e36
    assert not torch.isfinite(x.sum())
    u, s, vh = channel_svd(x, backend="torch")
    assert torch.isfinite(s).all() and s[0, 0] > 1e36
    torch.testing.assert_close(u @ torch.diag_embed(s) @ vh / 1e36, x / 1e36, atol=1e-3, rtol=1e-3)
    x[0, 5, 7] = float("nan")
    with pytest.raises(NonFiniteError, match="latent contains NaN or infinity"):
        channel_svd(x, backend="torch")


def test_dtypes_and_device():
    x = seeded(2, 6, 5, seed=11)
    assert channel_svd(x.half())[1].dtype == torch.float32
    assert channel_svd(x.double(), backend="jacobi")[1].dtype == torch.float64
    assert channel_svd(x.double(), backend="threads")[1].dtype == torch.float64
    assert all(t.device == x.device for t in channel_svd(x))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        channel_svd(torch.ones(4))


def test_all_backends_agree_on_singular_values():
    x = seeded(5, 4, 16, 16, seed=12)
    reference = torch.linalg.svdvals(x.double())
    for backend in ("torch", "threads", "jacobi"):
        s = channel_svd(x, backend=backend)[1]
        assert ((s.double() - reference).abs().amax(-1) / reference[..., 0]).max() <= TOL, backend


def test_thread_pool_leaves_other_threads_thread_counts_alone():
    def count_in_new_thread() -> int:
        seen = []
        thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        return seen[0]

    before_main, before_new = torch.get_num_threads(), count_in_new_thread()
    threaded_svd(seeded(16, 8, 8, seed=13), workers=2)
    assert torch.get_num_threads() == before_main
    assert count_in_new_thread() == before_new


def test_torch_backend_runs_small_matrices_on_one_thread_and_restores_the_count():
    x = seeded(3, 64, 64, seed=21)
    before = torch.get_num_threads()
    expected = torch.linalg.svd(x, full_matrices=False)
    seen = []
    original = torch.linalg.svd

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    try:
        torch.linalg.svd = spy
        got = channel_svd(x, backend="torch")
    finally:
        torch.linalg.svd = original
    assert torch.get_num_threads() == before
    assert seen == [1]
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)
