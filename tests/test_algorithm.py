"""Algorithm 1 against a direct, loop-per-channel transcription of the spec's formulas."""

import numpy as np
import pytest
import torch

from avi_core import ParameterError, ShapeMismatchError, attribute_vectors, channel_svd, compose
from avi_core.avi.algorithm import blend_bases


def reference_bases(x: np.ndarray, z: np.ndarray, k: int, rho: float):
    """Spec section 3 written out literally, one channel matrix at a time, in float64 numpy."""
    u_hats, v_hats = [], []
    for X, Z in zip(x.reshape(-1, *x.shape[-2:]), z.reshape(-1, *z.shape[-2:]), strict=True):
        Ux, Sx, Vx = np.linalg.svd(X, full_matrices=False)
        Uz, Sz, Vz = np.linalg.svd(Z, full_matrices=False)
        r = min(X.shape)
        m = r - k
        Uz_rev, Vz_rev = Uz[:, ::-1].copy(), Vz[::-1, :].copy()
        for j in range(m):
            dot = float(Ux[:, k + j] @ Uz_rev[:, j])
            sign = -1.0 if dot < 0 else 1.0
            Uz_rev[:, j] *= sign
            Vz_rev[j, :] *= sign
        U_hat = np.concatenate([Ux[:, :k], (1 - rho) * Ux[:, k:] + rho * Uz_rev[:, :m]], axis=1)
        V_hat = np.concatenate([Vx[:k, :], (1 - rho) * Vx[k:, :] + rho * Vz_rev[:m, :]], axis=0)
        u_hats.append(U_hat)
        v_hats.append(V_hat)
    lead = x.shape[:-2]
    return np.stack(u_hats).reshape(*lead, *u_hats[0].shape), np.stack(v_hats).reshape(*lead, *v_hats[0].shape)


@pytest.mark.parametrize("shape, k", [((2, 4, 8, 8), 4), ((1, 3, 12, 7), 2), ((2, 2, 6, 10), 5), ((1, 1, 9, 9), 1)])
@pytest.mark.parametrize("rho", [0.0, 0.3, 1.0, 1.7])
def test_matches_loop_transcription(shape, k, rho):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    z = torch.randn(shape, generator=g, dtype=torch.float64)
    u_hat, v_hat, s_x, s_z = attribute_vectors(x, z, k, rho)
    ref_u, ref_v = reference_bases(x.numpy(), z.numpy(), k, rho)
    # Backends may pick other signs per pair; a pair's sign flips u and v together, so compare products.
    ours = compose(u_hat, s_x, v_hat)
    ref = compose(torch.from_numpy(ref_u), s_x, torch.from_numpy(ref_v))
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(s_x, torch.linalg.svdvals(x))
    torch.testing.assert_close(s_z, torch.linalg.svdvals(z))
    # Column by column, per matrix, up to the one sign a pair may carry.
    ours_u = u_hat.reshape(-1, *u_hat.shape[-2:])
    ref_u_t = torch.from_numpy(ref_u).reshape(ours_u.shape)
    for matrix in range(ours_u.shape[0]):
        for col in range(ours_u.shape[-1]):
            a, b = ours_u[matrix, :, col], ref_u_t[matrix, :, col]
            assert min((a - b).abs().max(), (a + b).abs().max()) < 1e-8, (matrix, col)


def test_rho_zero_gives_x_bases_and_reconstructs_x():
    x, z = torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16)
    u_hat, v_hat, s_x, _ = attribute_vectors(x, z, 8, 0.0)
    torch.testing.assert_close(compose(u_hat, s_x, v_hat), x, rtol=1e-4, atol=1e-4)


def test_rho_one_takes_reversed_z_directions():
    x, z = torch.randn(1, 1, 10, 10, dtype=torch.float64), torch.randn(1, 1, 10, 10, dtype=torch.float64)
    k = 3
    u_hat, v_hat, _, _ = attribute_vectors(x, z, k, 1.0)
    u_x, _, vh_x = torch.linalg.svd(x)
    u_z, _, vh_z = torch.linalg.svd(z)
    torch.testing.assert_close(u_hat[..., :k], u_x[..., :k])
    for j in range(10 - k):
        # slot k + j holds +-Uz'[:, j] = +-Uz[:, r-1-j], u and v with the same sign
        col, row = u_hat[0, 0, :, k + j], v_hat[0, 0, k + j, :]
        ref_col, ref_row = u_z[0, 0, :, 9 - j], vh_z[0, 0, 9 - j, :]
        sign = torch.sign(col @ ref_col)
        torch.testing.assert_close(col, sign * ref_col)
        torch.testing.assert_close(row, sign * ref_row)
        assert (col @ u_x[0, 0, :, k + j]) >= 0  # the sign convention: aligned with x's slot


def test_flipping_any_singular_pair_leaves_the_merge_unchanged():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 12, 12, generator=g, dtype=torch.float64)
    z = torch.randn(1, 2, 12, 12, generator=g, dtype=torch.float64)
    u_x, s_x, vh_x = channel_svd(x)
    u_z, _, vh_z = channel_svd(z)
    for rho in (0.25, 0.5, 1.0):
        base = compose(*_blend_with_s(u_x, vh_x, u_z, vh_z, rho, s_x))
        for which in ("x", "z"):
            for pair in range(12):
                flip = torch.ones(12, dtype=torch.float64)
                flip[pair] = -1
                if which == "x":
                    out = _blend_with_s(u_x * flip, vh_x * flip[:, None], u_z, vh_z, rho, s_x)
                else:
                    out = _blend_with_s(u_x, vh_x, u_z * flip, vh_z * flip[:, None], rho, s_x)
                torch.testing.assert_close(compose(*out), base, rtol=1e-12, atol=1e-12)


def _blend_with_s(u_x, vh_x, u_z, vh_z, rho, s):
    u_hat, v_hat = blend_bases(u_x, vh_x, u_z, vh_z, 5, rho)
    return u_hat, s, v_hat


def test_sign_convention_keeps_blend_from_cancelling():
    # z = x: with rho = 0.5 the blended tail directions must be unit length, whatever sign the SVD chose.
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    u_x, _, vh_x = torch.linalg.svd(x)
    # Build a z whose reversed basis equals x's tail with flipped signs.
    u_z = u_x.flip(-1).clone()
    vh_z = vh_x.flip(-2).clone()
    u_z[..., :4] *= -1
    vh_z[..., :4, :] *= -1
    u_hat, _ = blend_bases(u_x, vh_x, u_z, vh_z, 4, 0.5)
    norms = u_hat.norm(dim=-2)
    assert (norms > 0.5).all(), norms


def test_z_batch_of_one_broadcasts():
    x, z = torch.randn(3, 4, 8, 8), torch.randn(1, 4, 8, 8)
    u_hat, v_hat, _, s_z = attribute_vectors(x, z, 4, 0.5)
    assert u_hat.shape == (3, 4, 8, 8) and v_hat.shape == (3, 4, 8, 8) and s_z.shape == (1, 4, 8)


def test_rho_tensor_gives_one_rho_per_matrix():
    x, z = torch.randn(2, 1, 6, 6, dtype=torch.float64), torch.randn(2, 1, 6, 6, dtype=torch.float64)
    rho = torch.tensor([[0.2], [0.9]], dtype=torch.float64)
    u_hat, v_hat, _, _ = attribute_vectors(x, z, 3, rho)
    for i, r in enumerate((0.2, 0.9)):
        u_i, v_i, _, _ = attribute_vectors(x[i : i + 1], z[i : i + 1], 3, r)
        torch.testing.assert_close(u_hat[i : i + 1], u_i)
        torch.testing.assert_close(v_hat[i : i + 1], v_i)


@pytest.mark.parametrize("k", [0, 8, -1, 2.5])
def test_bad_k_is_refused(k):
    with pytest.raises(ParameterError, match="k") as info:
        attribute_vectors(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 8, 8), k, 1.0)
    assert info.value.details["name"] == "k"


def test_size_mismatch_is_refused():
    with pytest.raises(ShapeMismatchError, match="per channel"):
        attribute_vectors(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 8, 6), 4, 1.0)


def test_compose_inverts_svd():
    a = torch.randn(5, 7, 9)
    u, s, vh = channel_svd(a)
    torch.testing.assert_close(compose(u, s, vh), a, rtol=1e-5, atol=1e-5)
