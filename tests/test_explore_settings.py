"""Host-free parts of the inversion and explorer nodes: their text settings, and `invert(on_step=...)`, which lets
'AVI Invert' return the latent at the chosen step and at step 0 from one inversion."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def settings(pack):
    import avi_pack.nodes.explore.settings as settings

    return settings


def test_pair_groups(settings):
    assert settings.parse_pair_groups("0, 1, 2+3") == [[0], [1], [2, 3]]
    assert settings.parse_pair_groups(" 5 ;7") == [[5], [7]]


@pytest.mark.parametrize("text", ["", " , ", "0, x", "1.5", "-1", "2+"])
def test_bad_pair_groups_are_refused_with_advice(pack, settings, text):
    from avi_pack.avi_core.errors import ParameterError
    from avi_pack.nodes.fixes import user_errors

    with pytest.raises(ParameterError) as caught, user_errors():
        settings.parse_pair_groups(text)
    assert caught.value.reason == "pairs" and "'0+1, 2'" in str(caught.value)


def test_channels(settings):
    assert settings.parse_channels("") is None
    assert settings.parse_channels("0, 2") == [0, 2]


def test_trajectory_steps_on_the_normal_schedule(pack, settings):
    """50 steps: 0.8T is step 10 (timestep 795, spec 2); 1 is step 0, 0 the end (step 50); duplicates merge."""
    # The SD 2.x discrete schedule's `normal` sigmas at 50 steps are not needed: timesteps decide the step.
    steps = 50
    timesteps = [999 * (1 - i / steps) for i in range(steps)] + [0.0]
    sigmas = [float(steps - i) for i in range(steps)] + [0.0]
    got = settings.trajectory_steps("1, 0.8, 0.8, 0.5, 0", sigmas, timesteps, 1000)
    assert got == [0, 10, 25, 50]
    assert settings.step_label(10, 795.4, 50) == "t=795" and settings.step_label(50, 0.0, 50) == "end"
    from avi_pack.avi_core.errors import ParameterError

    with pytest.raises(ParameterError) as caught:
        settings.trajectory_steps("", sigmas, timesteps, 1000)
    assert caught.value.reason == "no_steps"
    with pytest.raises(ParameterError):
        settings.trajectory_steps("1.5", sigmas, timesteps, 1000)


def test_on_step_yields_every_shorter_inversion_bit_for_bit(pack):
    from avi_pack.avi_core.inversion import invert

    weights = torch.randn(4, 4, generator=torch.Generator().manual_seed(0)) * 0.1

    def denoise(x, sigma):  # a smooth, x-dependent stand-in for a model
        return torch.tanh(torch.einsum("ij,bjhw->bihw", weights, x)) / (1 + sigma.view(-1, 1, 1, 1))

    sigmas = [14.6, 9.0, 5.0, 2.5, 1.0, 0.3, 0.0]
    clean = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    seen: dict[int, torch.Tensor] = {}
    full = invert(denoise, clean, sigmas, 0, refine=2, on_step=lambda step, x: seen.__setitem__(step, x.clone()))
    assert sorted(seen) == [0, 1, 2, 3, 4, 5]
    assert torch.equal(seen[0], full)
    for step in (1, 3, 5):
        assert torch.equal(seen[step], invert(denoise, clean, sigmas, step, refine=2))
