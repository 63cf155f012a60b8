"""fit_boundary: the SVM, the split, the unit of distance and every refusal of bad input (host-free, fast)."""

from __future__ import annotations

import math

import pytest
import torch

from avi_core.boundary import Boundary, fit_boundary
from avi_core.boundary.svm import stratified_split
from avi_core.errors import DatasetError, NonFiniteError, ParameterError, ShapeMismatchError

SHAPE = (4, 6, 6)


def separable(n1=30, n2=40, shape=SHAPE, gap=1.0, noise=0.02, seed=0, dtype=torch.float32):
    """Side a at -gap along a random unit normal, side b at +gap, both around a common centre c, small noise.

    Returns (a, b, normal, centre): the true boundary is s(x) = normal . (x - centre).
    """
    g = torch.Generator().manual_seed(seed)
    normal = torch.randn(shape, generator=g, dtype=torch.float64)
    normal /= normal.norm()
    centre = torch.randn(shape, generator=g, dtype=torch.float64)
    a = centre - gap * normal + noise * torch.randn(n1, *shape, generator=g, dtype=torch.float64)
    b = centre + gap * normal + noise * torch.randn(n2, *shape, generator=g, dtype=torch.float64)
    return a.to(dtype), b.to(dtype), normal, centre


def distances(x, boundary):
    return x.double().reshape(x.shape[0], -1) @ boundary.normal.reshape(-1) + boundary.offset


def test_separable_data_gives_accuracy_1_and_the_true_normal():
    a, b, normal, centre = separable()
    boundary = fit_boundary(a, b)
    assert isinstance(boundary, Boundary)
    assert boundary.accuracy == 1.0 and boundary.train_accuracy == 1.0
    assert boundary.normal.shape == SHAPE and boundary.normal.dtype == torch.float64
    assert math.isclose(float(boundary.normal.norm()), 1.0, abs_tol=1e-12)
    cosine = float((boundary.normal * normal).sum())
    assert cosine > 0.99  # and positive: s > 0 on b's side
    # offset consistent with the true boundary through the centre: s(centre) ~ 0, s(b) > 0 > s(a)
    assert abs(float((boundary.normal * centre).sum()) + boundary.offset) < 0.05
    assert distances(a, boundary).max() < 0 < distances(b, boundary).min()
    assert boundary.counts == (30, 40) and boundary.held_out == (6, 8)
    # the unit is the median |s| of the samples the (refitted) boundary was fitted on
    all_s = distances(torch.cat([a, b]), boundary).abs()
    assert boundary.unit == pytest.approx(float(all_s.quantile(0.5)), rel=1e-9)
    assert boundary.unit == pytest.approx(1.0, abs=0.1)
    assert torch.isfinite(boundary.normal).all() and math.isfinite(boundary.offset)


def test_same_solution_as_the_authors_svc_with_a_linear_kernel():
    from sklearn.svm import SVC

    a, b, _, _ = separable(n1=12, n2=14, noise=0.3, seed=3, dtype=torch.float64)
    boundary = fit_boundary(a, b, refit=True)
    x = torch.cat([a, b]).reshape(26, -1)
    # our C applies to samples scaled to unit mean squared distance to their mean: raw-space C = C / r^2
    r2 = float((x - x.mean(0)).pow(2).sum(1).mean())
    reference = SVC(kernel="linear", C=1.0 / r2, tol=1e-6).fit(x.numpy(), [0] * 12 + [1] * 14)
    w = torch.tensor(reference.coef_[0])
    assert float(w @ boundary.normal.reshape(-1)) / float(w.norm()) > 0.99999
    assert boundary.offset == pytest.approx(float(reference.intercept_[0]) / float(w.norm()), abs=1e-3)


def test_sign_follows_the_sides():
    a, b, normal, _ = separable(seed=1)
    swapped = fit_boundary(b, a)
    assert float((swapped.normal * normal).sum()) < -0.99


def test_reproducible_and_seeded():
    a, b, _, _ = separable(noise=0.8, seed=2)
    first = fit_boundary(a, b, seed=5)
    again = fit_boundary(a, b, seed=5)
    assert torch.equal(first.normal, again.normal) and first.offset == again.offset
    assert first.accuracy == again.accuracy and first.unit == again.unit
    train, held = stratified_split(torch.tensor([0] * 30 + [1] * 40), 0.2, 5)
    train2, held2 = stratified_split(torch.tensor([0] * 30 + [1] * 40), 0.2, 5)
    assert torch.equal(held, held2) and torch.equal(train, train2)
    _, held_other = stratified_split(torch.tensor([0] * 30 + [1] * 40), 0.2, 6)
    assert not torch.equal(held, held_other)


def test_split_is_stratified_and_keeps_one_sample_per_side_in_each_part():
    labels = torch.tensor([0] * 10 + [1] * 3)
    train, held = stratified_split(labels, 0.2, 0)
    assert (labels[held] == 0).sum() == 2 and (labels[held] == 1).sum() == 1
    assert sorted(torch.cat([train, held]).tolist()) == list(range(13))
    train, held = stratified_split(torch.tensor([0, 0, 1, 1]), 0.9, 0)
    assert len(train) == 2 and len(held) == 2  # at most n - 1 held out per side


def test_refit_false_keeps_the_split_fit():
    a, b, _, _ = separable(noise=0.5, seed=4)
    split = fit_boundary(a, b, refit=False)
    refit = fit_boundary(a, b, refit=True)
    assert split.accuracy == refit.accuracy  # the same split fit measures both
    assert not torch.equal(split.normal, refit.normal)
    assert split.info["refit"] is False and refit.info["refit"] is True


def test_float64_float32_float16_and_h_shapes():
    a, b, normal, _ = separable(n1=8, n2=9, shape=(32, 2, 2), dtype=torch.float16)
    boundary = fit_boundary(a, b)
    assert boundary.normal.shape == (32, 2, 2) and boundary.accuracy == 1.0
    flat = fit_boundary(*(t.reshape(t.shape[0], -1).double() for t in separable()[:2]))
    assert flat.normal.shape == (144,)


def test_info_is_recorded():
    a, b, _, _ = separable(seed=6)
    boundary = fit_boundary(a, b, holdout=0.25, seed=3, C=2.0, info={"step": 12, "steps": 50, "space": "paper"})
    info = boundary.info
    assert info["step"] == 12 and info["steps"] == 50 and info["space"] == "paper"
    assert info["holdout"] == 0.25 and info["seed"] == 3 and info["C"] == 2.0 and info["flatten"] == "C"
    assert boundary.step == 12 and "held-out accuracy 100.0%" in boundary.summary()


def test_overlapping_sides_give_chance_accuracy_not_an_error():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(20, 16, generator=g), torch.randn(20, 16, generator=g)
    boundary = fit_boundary(a, b)
    assert 0.0 <= boundary.accuracy <= 1.0 and boundary.unit > 0


@pytest.mark.parametrize(
    ("a", "b", "error", "reason"),
    [
        (torch.zeros(0, 3), torch.ones(4, 3), DatasetError, "empty"),
        (torch.zeros(1, 3), torch.ones(4, 3), DatasetError, "too_few"),
        (torch.zeros(4, 3), torch.ones(1, 3), DatasetError, "too_few"),
        (torch.zeros(4, 3), torch.ones(4, 2), ShapeMismatchError, "sample_shape"),
        (torch.zeros(4), torch.ones(4), ShapeMismatchError, "shape"),
        (torch.zeros(4, 3, dtype=torch.int64), torch.ones(4, 3), ShapeMismatchError, "dtype"),
        ([[0.0, 1.0]] * 3, torch.ones(3, 2), ShapeMismatchError, "type"),
        (torch.ones(4, 3), torch.ones(4, 3), DatasetError, "degenerate"),
    ],
)
def test_bad_sides_are_refused_with_facts(a, b, error, reason):
    with pytest.raises(error) as info:
        fit_boundary(a, b)
    assert info.value.reason == reason
    assert "use" not in str(info.value).lower().split()  # facts, no advice


def test_nan_is_refused():
    a, b, _, _ = separable()
    a[3, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="side a holds NaN"):
        fit_boundary(a, b)
    b[0, 1, 1, 1] = float("inf")
    with pytest.raises(NonFiniteError):
        fit_boundary(b, b)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"holdout": 0.0}, "holdout"),
        ({"holdout": 1.0}, "holdout"),
        ({"holdout": float("nan")}, "holdout"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"C": 0.0}, "C"),
        ({"C": float("inf")}, "C"),
    ],
)
def test_bad_settings_are_refused(kwargs, name):
    a, b, _, _ = separable(n1=4, n2=4)
    with pytest.raises(ParameterError) as info:
        fit_boundary(a, b, **kwargs)
    assert info.value.details["name"] == name
