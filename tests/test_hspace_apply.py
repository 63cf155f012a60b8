"""avi_core.hspace.steps and apply: the step of a sigma, edit windows, cond/uncond chunks (host-free)."""

from __future__ import annotations

import pytest
import torch

from avi_core.errors import ParameterError, ShapeMismatchError
from avi_core.hspace import (
    DirectionSet,
    HEdit,
    apply_directions,
    in_window,
    nearest_stored_step,
    row_mask,
    step_of_sigma,
    window_steps,
)

SCHEDULE = [14.6, 9.0, 5.5, 3.0, 1.4, 0.5, 0.0]  # 6 steps
ITEM = (4, 2, 2)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: one thread is fastest, and spares a busy shared CPU OpenMP's spin-waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_step_of_sigma_exact_between_and_outside():
    for index, sigma in enumerate(SCHEDULE[:-1]):
        assert step_of_sigma(sigma, SCHEDULE) == index
        assert step_of_sigma(torch.tensor([sigma, sigma], dtype=torch.float32), torch.tensor(SCHEDULE)) == index
    # a midpoint evaluation of a multistage sampler belongs to the step in progress, even nearer the next sigma
    assert step_of_sigma(5.6, SCHEDULE) == 1  # between 9.0 (step 1) and 5.5, nearer 5.5
    assert step_of_sigma(3.1, SCHEDULE) == 2
    assert step_of_sigma(0.2, SCHEDULE) == 5
    # outside the schedule: the nearest end; the final sigma counts as the last step
    assert step_of_sigma(20.0, SCHEDULE) == 0
    assert step_of_sigma(0.0, SCHEDULE) == 5
    # float32 rounding of a schedule value still finds it
    assert step_of_sigma(float(torch.tensor(1.4, dtype=torch.float32)), SCHEDULE) == 4


def test_windows_by_step_middles():
    assert window_steps(50, 0.0, 1.0) == list(range(50))
    first, second = window_steps(50, 0.0, 0.5), window_steps(50, 0.5, 1.0)
    assert first == list(range(25)) and second == list(range(25, 50))
    assert window_steps(10, 0.2, 0.4) == [2, 3]
    assert window_steps(10, 0.3, 0.3) == [3]  # zero width: the step running at that fraction
    assert window_steps(10, 1.0, 1.0) == [9]
    assert window_steps(100, 0.29, 0.29) == [29]
    assert in_window(0, 1, 0.0, 1.0)
    with pytest.raises(ParameterError, match="after its end"):
        in_window(0, 10, 0.6, 0.4)
    with pytest.raises(ParameterError, match="outside 0..1"):
        in_window(0, 10, -0.1, 0.4)


def test_nearest_stored_step_on_a_log_scale():
    stored = [10.0, 1.0, 0.1]
    assert nearest_stored_step(4.0, stored) == 0  # log-nearer to 10 than to 1
    assert nearest_stored_step(2.0, stored) == 1
    assert nearest_stored_step(0.0, stored) == 2


def test_row_mask_follows_cond_or_uncond_chunks():
    assert row_mask([0, 1], 4, "cond").tolist() == [True, True, False, False]
    assert row_mask([1, 0], 4, "cond").tolist() == [False, False, True, True]
    assert row_mask([1, 0], 4, "uncond").tolist() == [True, True, False, False]
    assert row_mask([1, 0], 4, "both").tolist() == [True] * 4
    assert row_mask(None, 3, "cond").tolist() == [True] * 3
    with pytest.raises(ShapeMismatchError, match="do not split"):
        row_mask([0, 1], 3, "both")
    with pytest.raises(ParameterError, match="target"):
        row_mask([0], 1, "negative")


def test_apply_adds_the_weighted_sum_on_chosen_rows():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(4, *ITEM, generator=g)
    d = torch.randn(2, *ITEM, generator=g)
    out = apply_directions(h, d, [1.5, -2.0], scales=torch.tensor([2.0, 0.5]), cond_or_uncond=[1, 0], target="cond")
    delta = 3.0 * d[0] - 1.0 * d[1]
    torch.testing.assert_close(out[:2], h[:2])
    torch.testing.assert_close(out[2:], h[2:] + delta)
    both = apply_directions(h, d, [1.5, -2.0], scales=torch.tensor([2.0, 0.5]), cond_or_uncond=[1, 0])
    torch.testing.assert_close(both, h + delta)
    assert not torch.equal(both, h) and torch.equal(h, h.clone()), "h itself is not changed"
    half = apply_directions(h.half(), d, [1.0, 0.0])
    assert half.dtype == torch.float16


def test_apply_per_image_directions_and_shape_facts():
    h = torch.zeros(4, *ITEM)  # 2 chunks of 2 images
    per_image = torch.arange(2 * 16, dtype=torch.float32).reshape(1, 2, *ITEM)  # [K=1, b=2, *item]
    out = apply_directions(h, per_image, [1.0], cond_or_uncond=[0, 1])
    torch.testing.assert_close(out[:2], per_image[0])
    torch.testing.assert_close(out[2:], per_image[0])
    with pytest.raises(ShapeMismatchError, match=r"\(4, 3, 3\).*\(4, 4, 2, 2\)") as info:
        apply_directions(h, torch.ones(1, 4, 3, 3), [1.0])
    assert info.value.details["first_shape"] == (4, 3, 3) and info.value.details["second_shape"] == (4, 4, 2, 2)
    with pytest.raises(ShapeMismatchError, match="1 strength"):
        apply_directions(h, torch.ones(2, *ITEM), [1.0])


def test_hedit_window_target_and_per_step_directions():
    g = torch.Generator().manual_seed(1)
    raw = torch.randn(3, 1, *ITEM, generator=g)
    directions = raw / raw.reshape(3, 1, -1).norm(dim=-1).reshape(3, 1, 1, 1, 1)
    stored = [14.6, 3.0, 0.5]
    dset = DirectionSet(directions, torch.tensor([[1.0], [2.0], [3.0]]), "pca", "std", stored)
    edit = dset.edit([0.5], start=0.0, end=0.75, target="uncond")
    assert isinstance(edit, HEdit) and edit.per_step
    h = torch.zeros(2, *ITEM)
    # step 0 (sigma 14.6): stored step 0, scale 1
    out = edit(h, torch.tensor([14.6, 14.6]), SCHEDULE, [0, 1])
    torch.testing.assert_close(out[0], h[0])
    torch.testing.assert_close(out[1], 0.5 * directions[0, 0])
    # step 3 (sigma 3.0): stored step 1, scale 2; step 4 (sigma 1.4) has its middle at 0.75: in the window
    torch.testing.assert_close(edit(h, 3.0, SCHEDULE, [0, 1])[1], 1.0 * directions[1, 0])
    assert not torch.equal(edit(h, 1.4, SCHEDULE, [0, 1]), h)
    # step 5 (sigma 0.5) is outside [0, 0.75]: h comes back untouched
    assert edit(h, 0.5, SCHEDULE, [0, 1]) is h
    # a set without steps is used at every step of the window
    single = HEdit(directions[0], [2.0])
    for sigma in SCHEDULE[:-1]:
        torch.testing.assert_close(single(h, sigma, SCHEDULE)[0], 2.0 * directions[0, 0])
    with pytest.raises(ShapeMismatchError, match="stored"):
        HEdit(directions, [1.0], stored_sigmas=[1.0, 2.0])
