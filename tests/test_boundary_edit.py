"""Editing with a boundary: signed distances, the one-step move, sweeps, the distance list and the editing checks."""

from __future__ import annotations

import pytest
import torch

from avi_core.boundary import (
    DISTANCE_RANGE,
    Boundary,
    check_edit_target,
    move_to_distance,
    parse_distances,
    signed_distance,
    sweep_distances,
)
from avi_core.errors import (
    CaptureRecordError,
    NonFiniteError,
    ParameterError,
    ShapeMismatchError,
    StepMismatchError,
)
from avi_core.latent.capture import make_record

SHAPE = (4, 8, 8)


@pytest.fixture
def boundary() -> Boundary:
    g = torch.Generator().manual_seed(0)
    normal = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    info = {"step": 10, "steps": 50, "sigma": 4.2, "scale_factor": 0.18215, "space": "paper"}
    info.update(channels=4, height=8, width=8)
    return Boundary(
        normal=normal / normal.norm(),
        offset=0.7,
        unit=2.5,
        accuracy=0.9,
        train_accuracy=1.0,
        counts=(10, 10),
        held_out=(2, 2),
        info=info,
    )


def latents(batch=3, dtype=torch.float32, seed=1):
    return torch.randn(batch, *SHAPE, generator=torch.Generator().manual_seed(seed)).to(dtype)


def test_signed_distance_is_n_dot_x_plus_offset_in_units(boundary):
    x = latents(dtype=torch.float64)
    raw = x.reshape(3, -1) @ boundary.normal.reshape(-1) + boundary.offset
    torch.testing.assert_close(signed_distance(x, boundary, raw=True), raw)
    torch.testing.assert_close(signed_distance(x, boundary), raw / boundary.unit)
    assert signed_distance(x[0], boundary).shape == ()  # one sample, no batch
    assert signed_distance(x.reshape(1, 3, *SHAPE), boundary).shape == (1, 3)


@pytest.mark.parametrize("d", [-20.0, -1.0, 0.0, 0.5, 3.0, 20.0])
def test_move_lands_exactly_at_the_distance(boundary, d):
    x = latents(batch=5, dtype=torch.float64)
    moved = move_to_distance(x, boundary, d)
    assert moved.shape == x.shape and moved.dtype == torch.float64
    torch.testing.assert_close(signed_distance(moved, boundary), torch.full((5,), d, dtype=torch.float64))
    # only the component along the normal changed
    change = (moved - x).reshape(5, -1)
    along = change @ boundary.normal.reshape(-1)
    torch.testing.assert_close(change, along[:, None] * boundary.normal.reshape(1, -1))


def test_move_in_float32_and_per_sample_distances(boundary):
    x = latents(batch=4)
    targets = torch.tensor([-2.0, 0.0, 1.0, 7.5])
    moved = move_to_distance(x, boundary, targets)
    assert moved.dtype == torch.float32 and moved.shape == x.shape
    torch.testing.assert_close(signed_distance(moved, boundary), targets.double(), atol=1e-5, rtol=1e-5)


def test_moving_to_its_own_distance_leaves_x_unchanged(boundary):
    x = latents(dtype=torch.float64)
    torch.testing.assert_close(move_to_distance(x, boundary, signed_distance(x, boundary)), x, atol=1e-12, rtol=0)
    x32 = latents()
    torch.testing.assert_close(move_to_distance(x32, boundary, signed_distance(x32, boundary)), x32)


def test_positive_distance_moves_towards_b(boundary):
    x = latents()
    before = signed_distance(x, boundary)
    after = signed_distance(move_to_distance(x, boundary, before + 1.0), boundary)
    assert (after > before).all()


def test_sweep_is_distance_major(boundary):
    x = latents(batch=2)
    out = sweep_distances(x, boundary, [-1.0, 0.0, 2.0])
    assert out.shape == (6, *SHAPE)
    expected = torch.tensor([-1.0, -1.0, 0.0, 0.0, 2.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(signed_distance(out, boundary), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ShapeMismatchError):
        sweep_distances(x, boundary, [])


def test_bad_inputs_to_the_move(boundary):
    with pytest.raises(ShapeMismatchError, match=r"\(4, 8, 8\)") as info:
        move_to_distance(torch.zeros(2, 4, 8, 6), boundary, 1.0)
    assert info.value.reason == "size"
    with pytest.raises(ShapeMismatchError):
        signed_distance(torch.zeros(8, 8), boundary)
    with pytest.raises(ShapeMismatchError):
        signed_distance(torch.zeros(2, *SHAPE, dtype=torch.int32), boundary)
    bad = latents()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteError):
        move_to_distance(bad, boundary, 1.0)
    with pytest.raises(NonFiniteError):
        move_to_distance(latents(), boundary, float("inf"))
    with pytest.raises(ShapeMismatchError):
        move_to_distance(latents(batch=3), boundary, torch.tensor([1.0, 2.0]))
    with pytest.raises(NonFiniteError):
        move_to_distance(latents().half(), boundary, 1e6)  # beyond float16


def test_distance_list_reaches_at_least_20_units():
    assert DISTANCE_RANGE[0] <= -20 and DISTANCE_RANGE[1] >= 20
    assert parse_distances("-20, -2; 0 2 20") == [-20.0, -2.0, 0.0, 2.0, 20.0]
    assert parse_distances("") == [1.0] and parse_distances(" ", default=-3) == [-3.0]
    with pytest.raises(ParameterError) as info:
        parse_distances(f"1, {DISTANCE_RANGE[1] + 1}")
    assert info.value.details["name"] == "distances"
    with pytest.raises(ParameterError):
        parse_distances("1, far")


def record(**changes):
    fields = dict(step=10, steps=50, sigma=4.2, timestep=795, num_timesteps=1000, scale_factor=0.18215, seed=1)
    fields.update(batch=1, sampler="euler", scheduler="normal", shape=(1, 4, 8, 8))
    fields.update(changes)
    return make_record(**fields)


def test_edit_target_at_the_boundary_step_passes(boundary):
    assert check_edit_target(record(), boundary, SHAPE)["step"] == 10
    plain = Boundary(boundary.normal, 0.0, 1.0, 1.0, 1.0, (2, 2), (1, 1), {})
    check_edit_target(record(step=3, sigma=9.0), plain)  # a boundary without capture facts checks nothing


@pytest.mark.parametrize(
    ("changes", "error", "reason"),
    [
        ({"step": 11}, StepMismatchError, "step"),
        ({"steps": 30}, StepMismatchError, "steps"),
        ({"sigma": 3.9}, StepMismatchError, "schedule"),
        ({"scale_factor": 0.13025}, CaptureRecordError, "scale"),
        ({"shape": (1, 4, 16, 16)}, ShapeMismatchError, "size"),
    ],
)
def test_edit_target_mismatches_state_facts(boundary, changes, error, reason):
    with pytest.raises(error) as info:
        check_edit_target(record(**changes), boundary, role="original")
    assert info.value.reason == reason
    assert "original" in str(info.value)


def test_edit_target_sample_shape_and_bad_record(boundary):
    with pytest.raises(ShapeMismatchError):
        check_edit_target(record(), boundary, (1280, 8, 8))
    with pytest.raises(CaptureRecordError):
        check_edit_target({"step": 10}, boundary)
