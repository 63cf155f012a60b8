"""The mixing-step search: the rule on constructed curves, the search on synthetic steps, and its plot."""

from __future__ import annotations

import pytest
import torch

from avi_core.boundary import StepSides, choose_mixing_step, mixing_step_search
from avi_core.boundary.plots import render_accuracy_curve, render_search
from avi_core.errors import ParameterError, StepMismatchError


@pytest.mark.parametrize(
    ("steps", "accuracies", "chosen"),
    [
        # best 0.95 at step 20; step 10 is within 2 points (0.94), step 5 is not (0.90): step 10
        ([5, 10, 20, 30], [0.90, 0.94, 0.95, 0.95], 10),
        # exactly 2 points below the best counts (inclusive), whatever the float rounding of 0.98
        ([5, 10, 20], [0.98, 0.99, 1.0], 5),
        # just over 2 points below does not
        ([5, 10, 20], [0.9799, 0.99, 1.0], 10),
        # ties at the best go to the noisiest step
        ([12, 4, 8], [1.0, 1.0, 1.0], 4),
        # the noisiest step is the smallest index, whatever order the steps come in
        ([30, 20, 10], [0.99, 1.0, 0.985], 10),
        # a dip in the middle does not hide a noisy step that qualifies
        ([2, 6, 10], [0.99, 0.70, 1.0], 2),
        # a single step
        ([7], [0.5], 7),
    ],
)
def test_rule_picks_the_noisiest_step_within_2_points(steps, accuracies, chosen):
    assert choose_mixing_step(steps, accuracies) == chosen


def test_rule_tolerance():
    steps, accuracies = [5, 10, 20], [0.80, 0.91, 0.95]
    assert choose_mixing_step(steps, accuracies, tolerance=0.0) == 20
    assert choose_mixing_step(steps, accuracies, tolerance=0.05) == 10
    assert choose_mixing_step(steps, accuracies, tolerance=0.15) == 5


@pytest.mark.parametrize(
    ("steps", "accuracies", "tolerance"),
    [
        ([], [], 0.02),
        ([1, 2], [0.5], 0.02),
        ([1, 1], [0.5, 0.6], 0.02),
        ([-1, 2], [0.5, 0.6], 0.02),
        ([1, 2], [0.5, 1.5], 0.02),
        ([1, 2], [0.5, float("nan")], 0.02),
        ([1, 2], [0.5, 0.6], -0.1),
        ([1, 2], [0.5, 0.6], 2.0),
    ],
)
def test_rule_refuses_bad_curves(steps, accuracies, tolerance):
    with pytest.raises(ParameterError):
        choose_mixing_step(steps, accuracies, tolerance)


def noisy_steps(steps=(4, 8, 12, 16), n=24, dim=64, seed=0):
    """Sides that separate better at later (less noisy) steps: the signal grows with the step."""
    g = torch.Generator().manual_seed(seed)
    normal = torch.randn(dim, generator=g)
    normal /= normal.norm()
    out = {}
    for step in steps:
        signal = 0.3 * step
        noise = torch.randn(2 * n, dim, generator=g)
        a = noise[:n] - signal * normal
        b = noise[n:] + signal * normal
        sigma = 10.0 / (1 + step)
        out[step] = StepSides(step=step, a=a, b=b, info={"step": step, "steps": 20, "sigma": sigma, "space": "paper"})
    return out


def test_search_fits_each_step_and_applies_the_rule():
    candidates = noisy_steps()
    calls = []
    search = mixing_step_search(candidates, holdout=0.25, seed=1, progress=lambda d, t: calls.append((d, t)))
    assert search.steps == (4, 8, 12, 16) and len(search.accuracies) == 4
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert search.chosen == choose_mixing_step(list(search.steps), list(search.accuracies))
    assert search.best == max(search.accuracies) == 1.0
    assert search.accuracies[0] < search.best  # the noisiest step separates worse
    chosen = search.boundary
    assert chosen.step == search.chosen and chosen.info["sigma"] == candidates[search.chosen].info["sigma"]
    assert chosen.info["search"]["accuracies"] == list(search.accuracies)
    assert f"chosen step {search.chosen}" in search.summary()
    again = mixing_step_search(candidates, holdout=0.25, seed=1)
    assert again.accuracies == search.accuracies and torch.equal(again.boundary.normal, chosen.normal)


def test_search_accepts_plain_pairs_and_checks_the_schedule():
    candidates = noisy_steps(steps=(3, 9))
    plain = {step: (value.a, value.b) for step, value in candidates.items()}
    search = mixing_step_search(plain)
    assert search.boundaries[3].info["step"] == 3
    bad = noisy_steps(steps=(3, 9))
    bad[9].info["sigma"] = 50.0  # sigma rising with the step: not one schedule
    with pytest.raises(StepMismatchError) as info:
        mixing_step_search(bad)
    assert info.value.reason == "schedule"
    bad = noisy_steps(steps=(3, 9))
    bad[9].info["steps"] = 30
    with pytest.raises(StepMismatchError):
        mixing_step_search(bad)
    with pytest.raises(ParameterError):
        mixing_step_search({})
    with pytest.raises(ParameterError):
        mixing_step_search(plain, tolerance=-1)


def test_plot_marks_the_chosen_step():
    image = render_accuracy_curve([4, 8, 12], [0.7, 0.95, 0.96], 8, 0.02, sigmas={4: 9.1, 8: 4.2, 12: 1.3})
    assert image.shape == (1, 320, 512, 3) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    red = (image[0, ..., 0] > 0.7) & (image[0, ..., 1] < 0.35) & (image[0, ..., 2] < 0.35)
    assert int(red.sum()) > 50  # the chosen step's mark
    with pytest.raises(ValueError):
        render_accuracy_curve([4, 8], [0.7], 8, 0.02)


def test_plot_of_a_search():
    search = mixing_step_search(noisy_steps(steps=(4, 16), n=8, dim=16))
    image = render_search(search, width=400, height=300)
    assert image.shape == (1, 300, 400, 3)
