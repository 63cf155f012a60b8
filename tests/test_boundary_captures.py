"""The sides of a boundary from capture records and from datasets (boundary datasets vs AVI training datasets)."""

from __future__ import annotations

import pytest
import torch

from avi_core.boundary import capture_info, dataset_sides, fit_boundary, mixing_step_search
from avi_core.errors import CaptureRecordError, DatasetError, StepMismatchError
from avi_core.files.datasets import append_shard, read_dataset
from avi_core.latent.capture import make_record

SIGMAS = {5: 8.0, 10: 4.2, 25: 1.1}


def record(step=10, seed=1, batch=3, **changes):
    fields = dict(step=step, steps=50, sigma=SIGMAS.get(step, 2.0), timestep=795, num_timesteps=1000, seed=seed)
    fields.update(scale_factor=0.18215, batch=batch, sampler="euler", scheduler="normal", shape=(batch, 4, 8, 8))
    fields.update(changes)
    return make_record(**fields)


def test_capture_info_keeps_what_a_boundary_needs():
    info = capture_info(record(), record(seed=1))
    assert info["step"] == 10 and info["steps"] == 50 and info["sigma"] == 4.2 and info["T"] == 1000
    assert (info["channels"], info["height"], info["width"]) == (4, 8, 8) and info["space"] == "paper"
    assert "seed" not in info and "batch" not in info


@pytest.mark.parametrize(
    ("changes", "error", "reason"),
    [
        ({"step": 25}, StepMismatchError, "step"),
        ({"steps": 30}, StepMismatchError, "steps"),
        ({"sigma": 4.0}, StepMismatchError, "schedule"),
        ({"scale_factor": 0.13025}, CaptureRecordError, "scale"),
    ],
)
def test_sides_captured_apart_are_refused(changes, error, reason):
    with pytest.raises(error) as info:
        capture_info(record(), record(**changes))
    assert info.value.reason == reason
    assert "side a" in str(info.value) or "side b" in str(info.value)


def shard(folder, step, count, seed, shift):
    g = torch.Generator().manual_seed(seed)
    normal = torch.ones(4, 8, 8) / 16
    a = torch.randn(count, 4, 8, 8, generator=g) - shift * normal
    b = torch.randn(count, 4, 8, 8, generator=g) + shift * normal
    append_shard(folder, a, b, {"x": record(step, seed, count), "z": record(step, seed, count)})
    return a, b


def test_a_boundary_dataset_gives_the_sides_per_step(tmp_path):
    folder = tmp_path / "smile"
    parts = {5: [], 10: []}
    for index, (step, count) in enumerate([(10, 4), (5, 3), (10, 5), (5, 4)]):
        parts[step].append(shard(folder, step, count, seed=index, shift=3.0 * step))
    dataset = read_dataset(folder)
    sides = dataset_sides(dataset.x, dataset.z, dataset.records)
    assert list(sides) == [5, 10]
    for step in (5, 10):
        torch.testing.assert_close(sides[step].a, torch.cat([a for a, _ in parts[step]]))
        torch.testing.assert_close(sides[step].b, torch.cat([b for _, b in parts[step]]))
        assert sides[step].info["step"] == step and sides[step].info["sigma"] == SIGMAS[step]
    assert sides[10].info["pairs"] == 9
    boundary = fit_boundary(sides[10].a, sides[10].b, info=sides[10].info)
    assert boundary.info["step"] == 10 and boundary.accuracy == 1.0
    search = mixing_step_search(sides)
    assert search.steps == (5, 10) and search.boundaries[5].info["sigma"] == SIGMAS[5]


def test_an_avi_training_dataset_is_not_a_boundary_dataset(tmp_path):
    # AVI pairs: x = original prompt at Tx (step 10), z = target prompt at Tz (step 25)
    folder = tmp_path / "avi"
    x, z = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    append_shard(folder, x, z, {"x": record(10), "z": record(25)})
    dataset = read_dataset(folder)
    with pytest.raises(StepMismatchError, match="same step") as info:
        dataset_sides(dataset.x, dataset.z, dataset.records)
    assert info.value.reason == "step"


def test_records_that_do_not_describe_the_dataset_are_refused():
    x = torch.zeros(5, 4, 8, 8)
    with pytest.raises(DatasetError, match="count 3 pairs but it holds 5"):
        dataset_sides(x, x, [{"x": record(batch=3), "z": record(batch=3)}])
    with pytest.raises(DatasetError) as info:
        dataset_sides(x, x, [None])
    assert info.value.reason == "records"
    with pytest.raises(DatasetError):
        dataset_sides(x, x, [{"original": record(batch=5)}])
    with pytest.raises(DatasetError):
        dataset_sides(x, x, [])
    with pytest.raises(DatasetError):
        dataset_sides(x, x[:2], [{"x": record(batch=5), "z": record(batch=5)}])
    # a list of pair records per shard works, with their batches in order
    two = [[{"x": record(batch=2), "z": record(batch=2)}, {"x": record(batch=3), "z": record(batch=3)}]]
    assert dataset_sides(x, x, two)[10].info["pairs"] == 5
    with pytest.raises(StepMismatchError):  # one step at two sigmas
        dataset_sides(
            x,
            x,
            [
                {"x": record(batch=2), "z": record(batch=2)},
                {"x": record(batch=3, sigma=3.0), "z": record(batch=3, sigma=3.0)},
            ],
        )
    with pytest.raises(StepMismatchError):  # two schedules
        dataset_sides(
            x,
            x,
            [
                {"x": record(batch=2), "z": record(batch=2)},
                {"x": record(5, batch=3, steps=30), "z": record(5, batch=3, steps=30)},
            ],
        )
