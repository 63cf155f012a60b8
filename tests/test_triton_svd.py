"""The fused Triton Jacobi SVD against LAPACK, run on the CPU through Triton's interpreter.

TRITON_INTERPRET=1 is set here (unless already set) before triton is imported (the kernel is built on first
use and reads it then), so no GPU is needed. The interpreter runs each program in numpy, about a second per
64 x 64 matrix, so the cases are small; the bigger ones are marked slow. On a GPU machine the same checks run
on the compiled kernel with `TRITON_INTERPRET=0 python -m pytest tests/test_triton_svd.py` (inputs moved to
CUDA, results compared on the CPU). The GPU speed is measured by `python -m avi_core bench --device cuda
--also triton`, never here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

if importlib.util.find_spec("triton") is None:
    pytest.skip(
        "triton is not installed (pip install triton, Linux only; the test extra brings it): "
        "the Triton SVD backend is not tested",
        allow_module_level=True,
    )
os.environ.setdefault("TRITON_INTERPRET", "1")
COMPILED = os.environ["TRITON_INTERPRET"].strip().lower() in ("0", "false", "no", "off", "")
if COMPILED and not torch.cuda.is_available():
    pytest.skip("TRITON_INTERPRET=0 compiles the kernel, which needs a CUDA GPU: none here", allow_module_level=True)
DEVICE = torch.device("cuda" if COMPILED else "cpu")

from test_svd import check_svd, seeded  # noqa: E402

import avi_core.latent.triton_svd as ts  # noqa: E402
from avi_core.app import bench  # noqa: E402
from avi_core.errors import AVIError, BackendUnavailableError  # noqa: E402
from avi_core.latent.svd import ENV_VAR, auto_backend, backend_unavailable_reason, channel_svd, resolve_backend  # noqa: E402
from avi_core.latent.triton_svd import triton_svd, triton_svd_with_sweeps  # noqa: E402

INTERPRETER_ONLY = pytest.mark.skipif(COMPILED, reason="checks the CPU interpreter path")
NO_GPU_ONLY = pytest.mark.skipif(COMPILED or torch.cuda.is_available(), reason="checks the error without a GPU")


def svd(x: torch.Tensor, **options) -> tuple[torch.Tensor, ...]:
    """`triton_svd_with_sweeps` of `x` on DEVICE, the results back on the CPU (U, S, Vh, sweeps)."""
    return tuple(t.cpu() for t in triton_svd_with_sweeps(x.to(DEVICE), **options))


def svd3(x: torch.Tensor, **options) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return svd(x, **options)[:3]


@pytest.mark.parametrize(
    "shape",
    [(2, 8, 8), (1, 16, 16), (1, 12, 20), (1, 20, 12), (2, 13, 7), (2, 1, 5), (2, 5, 1), (1, 64, 64)],
    ids=lambda s: "x".join(map(str, s)),
)
def test_matches_lapack(shape):
    x = seeded(*shape, seed=sum(shape))
    u, s, vh, sweeps = svd(x)
    check_svd(x, u, s, vh)
    assert (sweeps >= 1).all() and (sweeps < ts.DEFAULT_MAX_SWEEPS).all(), "every matrix must converge"


def test_leading_dims_and_each_matrix_on_its_own():
    x = seeded(2, 3, 8, 6, seed=5)
    u, s, vh = svd3(x)
    check_svd(x, u, s, vh)
    # One program per matrix: the rest of the batch cannot change a matrix's result.
    u1, s1, vh1 = svd3(x[1, 2])
    assert torch.equal(s[1, 2], s1) and torch.equal(u[1, 2], u1) and torch.equal(vh[1, 2], vh1)


def test_each_pair_has_one_sign_in_u_and_vh():
    x = seeded(2, 10, 10, seed=21)
    u, s, vh = svd3(x)
    ref_u, _, ref_vh = torch.linalg.svd(x.double())
    # Flipping a pair's sign flips u and v together: the signs relative to LAPACK must agree pair by pair.
    du = (u.double() * ref_u).sum(-2)
    dv = (vh.double() * ref_vh).sum(-1)
    assert torch.allclose(du.abs(), torch.ones_like(du), atol=1e-4)
    assert torch.equal(du.sign(), dv.sign())
    flip = torch.tensor([1.0, -1.0] * 5)
    rebuilt = (u * flip * s.unsqueeze(-2)) @ (vh * flip.unsqueeze(-1))
    assert torch.allclose(rebuilt, x, atol=1e-5)


@pytest.mark.parametrize("rank", [0, 1, 3])
def test_rank_deficient_completed_without_nan(rank):
    gen = torch.Generator().manual_seed(rank)
    x = torch.randn(2, 12, rank, generator=gen) @ torch.randn(2, rank, 10, generator=gen)
    u, s, vh = svd3(x)
    check_svd(x, u, s, vh)
    assert (s[:, rank:] <= 1e-5 * s[:, :1].clamp_min(1)).all()


def test_zero_matrix_and_zero_rows_and_columns():
    zero = torch.zeros(2, 9, 7)
    u, s, vh = svd3(zero)
    check_svd(zero, u, s, vh)
    assert torch.equal(s, torch.zeros(2, 7))
    x = seeded(2, 10, 8, seed=1)
    x[:, :, 3] = 0
    x[:, 6, :] = 0
    check_svd(x, *svd3(x))


@pytest.mark.parametrize("kind", ["identity", "repeated"])
def test_repeated_singular_values(kind):
    n = 12
    if kind == "identity":
        x = torch.eye(n).expand(2, n, n).clone()
    else:
        q, _ = torch.linalg.qr(seeded(2, n, n, seed=2))
        x = q * torch.tensor([3.0] * 4 + [1.0] * 5 + [0.0] * 3)
    check_svd(x, *svd3(x))


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_extreme_scales(scale):
    x = seeded(1, 8, 8, seed=4) * scale
    check_svd(x, *svd3(x))


def test_columns_of_wildly_different_scales_converge():
    # After scaling to max |entry| = 1 the smallest columns are subnormal when squared; their dot products are
    # noise, and without freezing them the sweeps would run to the cap.
    x = seeded(2, 17, 14, seed=11) * torch.logspace(-20, 20, 14)
    u, s, vh, sweeps = svd(x)
    check_svd(x, u, s, vh)
    assert (sweeps <= 10).all()


def test_float64_runs_in_float64():
    x = seeded(1, 10, 7, seed=6, dtype=torch.float64)
    u, s, vh = svd3(x)
    assert u.dtype == s.dtype == vh.dtype == torch.float64
    check_svd(x, u, s, vh, tol=1e-12)


def test_gather_modes_are_bit_identical():
    x = seeded(2, 9, 6, seed=7)
    import triton.language as tl

    if not hasattr(tl, "gather"):
        with pytest.raises(BackendUnavailableError, match="triton>=3.3"):
            svd(x, gather="registers")
        pytest.skip("this triton has no tl.gather (3.3+): only the 'memory' gather mode runs")
    registers = svd(x, gather="registers")
    memory = svd(x, gather="memory")
    for a, b in zip(registers, memory, strict=True):
        assert torch.equal(a, b)


def test_non_contiguous_input():
    base = seeded(8, 12, seed=8)
    x = base.mT  # 12 x 8 seen through strides, wide source
    check_svd(x, *svd3(x))


def test_empty_batch_and_refused_input():
    u, s, vh = svd3(torch.zeros(0, 5, 4))
    assert u.shape == (0, 5, 4) and s.shape == (0, 4) and vh.shape == (0, 4, 4)
    with pytest.raises(ValueError, match="up to 128 x 128"):
        triton_svd(torch.zeros(1, 129, 8))
    with pytest.raises(TypeError, match="float32 or float64"):
        triton_svd(torch.ones(2, 2, dtype=torch.float16))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        triton_svd(torch.ones(3))
    with pytest.raises(ValueError, match="max_sweeps"):
        triton_svd(torch.ones(2, 2), max_sweeps=0)
    with pytest.raises(ValueError, match="gather mode"):
        triton_svd(torch.ones(2, 2), gather="shared")


def test_sweep_cap_is_respected():
    x = seeded(1, 16, 16, seed=9)
    _, _, _, sweeps = svd(x, max_sweeps=2)
    assert sweeps.tolist() == [2]


def test_channel_svd_triton_backend_by_argument_and_environment(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    x = seeded(2, 8, 6, seed=10)
    check_svd(x, *(t.cpu() for t in channel_svd(x.to(DEVICE), backend="triton")))
    monkeypatch.setenv(ENV_VAR, "triton")
    assert resolve_backend("auto", "cuda", 64, 64, 20000) == "triton"
    check_svd(x, *(t.cpu() for t in channel_svd(x.to(DEVICE))))
    monkeypatch.delenv(ENV_VAR)
    # "auto" never picks it, on any device or size.
    for device in ("cpu", "cuda", "mps"):
        for n, batch in ((8, 4), (64, 4), (64, 20000), (128, 4096)):
            assert auto_backend(device, n, n, batch) != "triton"
            assert resolve_backend("auto", device, n, n, batch) != "triton"


# ------------------------------------------------------------------------------------------ availability


@INTERPRETER_ONLY
def test_available_under_the_interpreter():
    assert ts.interpreting()
    assert ts.is_available() and ts.is_available("cpu")
    assert backend_unavailable_reason("triton", "cpu") is None
    assert backend_unavailable_reason("jacobi", "cpu") is None


def test_missing_triton_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(ts, "triton_installed", lambda: False)
    assert not ts.is_available()
    with pytest.raises(BackendUnavailableError, match="pip install triton") as caught:
        triton_svd(torch.ones(1, 2, 2))
    assert isinstance(caught.value, AVIError)
    with pytest.raises(BackendUnavailableError, match="pip install triton"):
        channel_svd(torch.ones(1, 2, 2), backend="triton")


@NO_GPU_ONLY
def test_no_gpu_without_the_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not ts.is_available()
    with pytest.raises(BackendUnavailableError, match="CUDA"):
        triton_svd(torch.ones(1, 2, 2))
    assert "CUDA" in backend_unavailable_reason("triton", "cpu")


def test_importing_avi_core_does_not_import_triton():
    code = (
        "import sys, avi_core, avi_core.latent.svd, avi_core.latent.triton_svd, avi_core.app.bench; "
        "assert 'triton' not in sys.modules, 'triton was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@INTERPRETER_ONLY
def test_bench_skips_triton_with_a_message(capsys, tmp_path, monkeypatch):
    # Under the interpreter (as here) or without CUDA, --also triton cannot be timed: skipped, not fatal.
    monkeypatch.setattr(bench, "QUICK_SVD_CASES", ((8, 2),))
    path = tmp_path / "figures.json"
    argv = ["--quick", "--skip-training", "--repeats", "1", "--device", "cpu", "--also", "triton", "--json", str(path)]
    assert bench.main(argv) == 0
    captured = capsys.readouterr()
    assert "--also triton skipped: TRITON_INTERPRET=1" in captured.err
    assert "--also triton skipped" in captured.out
    report = json.loads(path.read_text(encoding="utf-8"))
    assert report["also"] == [] and set(report["also_skipped"]) == {"triton"}
    assert "triton_ms" not in report["svd"][0]
    assert bench.also_skip_reason("jacobi", torch.device("cpu")) is None


# ------------------------------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_latent_like_64_with_a_spread_spectrum():
    gen = torch.Generator().manual_seed(3)
    left, _ = torch.linalg.qr(torch.randn(1, 64, 64, generator=gen))
    right, _ = torch.linalg.qr(torch.randn(1, 64, 64, generator=gen))
    spectrum = 10.0 * 0.8 ** torch.arange(64, dtype=torch.float32)  # down to ~1e-6 of the largest
    x = (left * spectrum) @ right.mT
    u, s, vh, sweeps = svd(x)
    check_svd(x, u, s, vh)
    assert (sweeps < ts.DEFAULT_MAX_SWEEPS).all()
