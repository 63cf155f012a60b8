"""Engine pieces the h-space nodes use (host-free): sweeps (HSweep), the model-family check, two collections as
one supervised problem, and the projections plot."""

from __future__ import annotations

import pytest
import torch

from avi_core.errors import DatasetError, ParameterError, ShapeMismatchError
from avi_core.hspace import (
    DirectionSet,
    HEdit,
    HSweep,
    append_h,
    make_record,
    pair_collections,
    read_collection,
    render_projections,
    supervised_from_collection,
)

SCHEDULE = [14.6, 9.0, 5.5, 3.0, 1.4, 0.5, 0.0]  # 6 steps
ITEM = (4, 2, 2)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _unit(seed: int) -> torch.Tensor:
    d = torch.randn(ITEM, generator=torch.Generator().manual_seed(seed))
    return d / d.norm()


def _set(count: int = 2) -> DirectionSet:
    return DirectionSet(torch.stack([_unit(i) for i in range(count)]), torch.tensor([2.0, 3.0][:count]), "pca")


def test_sweep_gives_each_block_of_rows_its_own_variant():
    directions = _set()
    strengths = [-1.0, 0.0, 2.0]
    sweep = HSweep([directions.edit([s, 0.0]) for s in strengths], stride=2)  # B = 2 images per variant
    h = torch.randn(2 * 6, *ITEM)  # two chunks (cond, uncond) of 3 variants x 2 images
    out = sweep.edit(h, 9.0, SCHEDULE, [0, 1])
    d = directions.directions[0] * 2.0  # scale of direction 1
    for chunk in range(2):
        for row in range(6):
            r = chunk * 6 + row
            expected = h[r] + strengths[row // 2] * d
            assert torch.allclose(out[r], expected, atol=1e-6), (chunk, row)
    # strength 0 leaves its rows exactly as they were
    assert torch.equal(out[2:4], h[2:4]) and torch.equal(out[8:10], h[8:10])


def test_nested_sweeps_each_find_their_own_variant():
    directions = _set()
    inner = HSweep([directions.edit([s, 0.0]) for s in (1.0, 2.0)], stride=1)  # B = 1: rows [v1]
    outer = HSweep([directions.edit([0.0, s]) for s in (1.0, -1.0, 0.5)], stride=2)  # rows [v2][v1]
    h = torch.zeros(6, *ITEM)
    out = outer.edit(inner.edit(h, 9.0, SCHEDULE), 9.0, SCHEDULE)
    d1, d2 = directions.directions[0] * 2.0, directions.directions[1] * 3.0
    for v2, s2 in enumerate((1.0, -1.0, 0.5)):
        for v1, s1 in enumerate((1.0, 2.0)):
            assert torch.allclose(out[v2 * 2 + v1], s1 * d1 + s2 * d2, atol=1e-6)


def test_sweep_honours_window_target_and_refuses_a_batch_that_is_not_whole_sweeps():
    directions = _set(1)
    sweep = HSweep([directions.edit([s], 0.0, 0.5, "cond") for s in (1.0, 2.0)], stride=1)
    h = torch.randn(4, *ITEM)
    assert sweep.edit(h, 1.4, SCHEDULE, [0, 1]) is h  # step 4 of 6: outside [0, 0.5]
    out = sweep.edit(h, 14.6, SCHEDULE, [1, 0])  # chunk order uncond, cond
    assert torch.equal(out[:2], h[:2])  # uncond untouched
    assert torch.allclose(out[2], h[2] + 2.0 * directions.directions[0], atol=1e-6)
    assert torch.allclose(out[3], h[3] + 4.0 * directions.directions[0], atol=1e-6)
    with pytest.raises(ShapeMismatchError, match="not a multiple of the 2 sweep value") as err:
        sweep.edit(torch.randn(3, *ITEM), 14.6, SCHEDULE)
    assert err.value.reason == "sweep" and err.value.details["rows"] == 3
    with pytest.raises(ShapeMismatchError, match="direction has shape") as err:
        sweep.edit(torch.randn(2, 4, 3, 3), 14.6, SCHEDULE)
    assert err.value.reason == "shape"


def test_sweep_arguments_are_checked():
    edit = _set(1).edit([1.0])
    with pytest.raises(ParameterError):
        HSweep([])
    with pytest.raises(ParameterError):
        HSweep([edit], stride=0)
    with pytest.raises(ParameterError, match="share one window"):
        HSweep([edit, HEdit(_set(1).directions, [1.0], None, 0.0, 0.5)])


def test_one_variant_sweep_equals_the_plain_edit():
    directions = _set()
    edit = directions.edit([1.5, -0.5], 0.2, 0.9, "both")
    h = torch.randn(4, *ITEM)
    for sigma in SCHEDULE[:-1]:
        assert torch.equal(
            HSweep([edit], stride=2).edit(h, sigma, SCHEDULE, [0, 1]), edit.edit(h, sigma, SCHEDULE, [0, 1])
        )


def test_model_family_check():
    directions = DirectionSet(torch.stack([_unit(0)]), torch.tensor([1.0]), "pca", info={"model": "SD20"})
    directions.check_model("SD20")
    directions.check_model(None)
    DirectionSet(torch.stack([_unit(0)]), torch.tensor([1.0]), "pca").check_model("SDXL")
    with pytest.raises(ShapeMismatchError, match="made with a SD20 model, but the model given is SDXL") as err:
        directions.check_model("SDXL")
    assert err.value.reason == "model" and err.value.details == {"made_for": "SD20", "model": "SDXL"}


def _write(folder, h, labels, step=3):
    records = [make_record(step, 10, 2.0, 500.0, label, seed=i) for i, label in enumerate(labels)]
    append_h(folder, h, records, {"model": "SD20"})


def test_two_collections_make_one_supervised_problem(tmp_path):
    g = torch.Generator().manual_seed(0)
    h_a = torch.randn(5, *ITEM, generator=g)
    h_b = torch.randn(4, *ITEM, generator=g) + 2 * _unit(7)
    _write(tmp_path / "plain", h_a, ["a photo"] * 5)
    _write(tmp_path / "smiling", h_b, ["a smiling photo"] * 4)
    first, second = read_collection(tmp_path / "plain"), read_collection(tmp_path / "smiling")
    joined, key_a, key_b = pair_collections(first, second)
    assert (key_a, key_b) == ("plain", "smiling") and joined.samples == 9
    made = supervised_from_collection(joined, key_a, key_b)
    n = h_b.half().double().mean(0) - h_a.half().double().mean(0)  # stored float16
    assert torch.allclose(made.directions[0].double(), n / n.norm(), atol=1e-5)
    assert made.info["samples_a"] == 5 and made.info["samples_b"] == 4 and made.info["model"] == "SD20"
    assert made.scales[0] == pytest.approx(float(n.norm()), rel=1e-4)

    # one collection, two labels
    _write(tmp_path / "both", torch.cat([h_a, h_b]), ["a photo"] * 5 + ["a smiling photo"] * 4)
    both = read_collection(tmp_path / "both")
    joined, key_a, key_b = pair_collections(both, both, "a photo", "a smiling photo")
    assert (key_a, key_b, joined.samples) == ("a photo", "a smiling photo", 9)
    again = supervised_from_collection(joined, key_a, key_b)
    assert torch.allclose(again.directions, made.directions, atol=1e-5)

    # the same collection without labels: keys made distinct
    _, key_a, key_b = pair_collections(first, first)
    assert key_a != key_b

    with pytest.raises(DatasetError, match="no h labelled 'frowning'") as err:
        pair_collections(both, both, "a photo", "frowning")
    assert err.value.reason == "no_match"
    _write(tmp_path / "other", torch.randn(2, 3, 2, 2), ["x", "x"])
    with pytest.raises(ShapeMismatchError, match="different shapes"):
        pair_collections(first, read_collection(tmp_path / "other"))


def test_projection_plot_is_an_image():
    image = render_projections(torch.randn(20), torch.randn(30) + 3, label_a="plain", label_b="smiling")
    assert image.shape == (1, 320, 512, 3) and image.dtype == torch.float32
    assert 0 <= float(image.min()) and float(image.max()) <= 1 and float(image.std()) > 0
    constant = render_projections([1.0, 1.0], [1.0])  # no spread: still drawn
    assert constant.shape == (1, 320, 512, 3)
    with pytest.raises(ValueError):
        render_projections([], [1.0])
