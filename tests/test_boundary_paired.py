"""Paired sides (a boundary collection: prompt A and prompt B from the same seeds): the held-out part keeps pairs
together, else the accuracy is far below chance (the partner of a held-out latent trains the other side)."""

from __future__ import annotations

import pytest
import torch

from avi_core.boundary import fit_boundary, mixing_step_search
from avi_core.boundary.svm import stratified_split
from avi_core.errors import ParameterError


def _paired(n: int, shift: float, seed: int = 0, dim: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Side a = noise - shift/2 d, side b = the same noise + shift/2 d (one noise per pair, as one seed gives)."""
    generator = torch.Generator().manual_seed(seed)
    noise = 3.0 * torch.randn(n, dim, generator=generator, dtype=torch.float64)
    direction = torch.randn(dim, generator=generator, dtype=torch.float64)
    direction /= direction.norm()
    return noise - shift / 2 * direction, noise + shift / 2 * direction


def test_a_paired_split_holds_out_both_samples_of_a_pair():
    labels = torch.tensor([0] * 10 + [1] * 10)
    train, held = stratified_split(labels, 0.2, 3, paired=True)
    assert held.numel() == 4 and train.numel() == 16
    a_held, b_held = held[held < 10], held[held >= 10] - 10
    assert torch.equal(a_held, b_held)
    assert torch.equal(stratified_split(labels, 0.2, 3, paired=True)[1], held)  # seeded


def test_unequal_sides_cannot_be_paired():
    with pytest.raises(ParameterError) as caught:
        stratified_split(torch.tensor([0] * 5 + [1] * 6), 0.2, 0, paired=True)
    assert caught.value.reason == "paired" and "5 and 6" in str(caught.value)


def test_paired_sides_give_an_honest_accuracy_where_the_unpaired_split_leaks():
    a, b = _paired(30, 12.0)  # the shift is four noise deviations along d: separable held out
    leaky = fit_boundary(a, b, 0.2, 0)
    honest = fit_boundary(a, b, 0.2, 0, paired=True)
    assert leaky.accuracy < 0.2  # each held-out latent sits next to its partner, a training sample of the other side
    assert honest.accuracy == 1.0 and honest.info["paired"] is True


def test_the_search_passes_paired_on():
    candidates = {step: _paired(20, 12.0, seed=step) for step in (2, 5, 9)}
    search = mixing_step_search(candidates, paired=True)
    assert min(search.accuracies) >= 0.75
    assert all(b.info["paired"] for b in search.boundaries.values())
    assert max(mixing_step_search(candidates).accuracies) < 0.5  # unpaired: below chance at every step
