"""avi_core.hspace.collection, recipes and plots: shards of captured h, PCA / supervised sets from them (host-free)."""

from __future__ import annotations

import logging
import multiprocessing
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from avi_core.errors import DatasetError, NonFiniteError
from avi_core.hspace import (
    append_h,
    count_samples,
    jacobian_power_iteration,
    list_collections,
    load_directions,
    make_record,
    pca_directions,
    pca_from_collection,
    read_collection,
    render_explained_variance,
    render_singular_values,
    save_directions,
    supervised_from_collection,
)
from avi_core.hspace.recipes import jacobian_direction_set

REPO_ROOT = Path(__file__).resolve().parent.parent
ITEM = (8, 2, 2)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: one thread is fastest, and spares a busy shared CPU OpenMP's spin-waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def records(label: str, seeds: list[int], step: int = 3, steps: int = 10, pass_: str = "cond") -> list[dict]:
    sigma = 10.0 / (step + 1)
    return [
        make_record(step, steps, sigma, 100.0 * (steps - step), label, s, pass_, batch_index=i)
        for i, s in enumerate(seeds)
    ]


def test_append_and_read_back_with_filters(tmp_path):
    folder = tmp_path / "cats"
    g = torch.Generator().manual_seed(0)
    h1 = torch.randn(3, *ITEM, generator=g)
    h2 = torch.randn(2, *ITEM, generator=g)
    p1 = append_h(folder, h1, records("cat", [1, 2, 3]), {"model": "SD2", "height": 64})
    p2 = append_h(folder, h2, records("dog", [4, 5], step=5, pass_="uncond"), {"model": "SD2", "height": 64})
    assert p1 != p2 and p1.parent == folder
    everything = read_collection(folder)
    assert everything.samples == 5 and everything.shape == ITEM and everything.h.dtype == torch.float32
    torch.testing.assert_close(everything.h, torch.cat([h1, h2]).half().float())  # stored as float16
    assert everything.steps == [3, 5] and everything.labels == ["cat", "dog"]
    assert everything.records[3]["seed"] == 4 and everything.records[3]["batch_index"] == 0
    assert everything.runs == [{"model": "SD2", "height": 64}] * 2
    cats = read_collection(folder, step=3, pass_="cond")
    assert cats.samples == 3 and {r["label"] for r in cats.records} == {"cat"}
    assert everything.select(label="dog").samples == 2
    assert "5 h of shape 8x2x2" in everything.summary()
    with pytest.raises(DatasetError, match="no h with step 7") as info:
        read_collection(folder, step=7)
    assert info.value.reason == "no_match" and info.value.details["steps"] == [3, 5]
    assert count_samples(folder) == (2, 5)
    assert list_collections(tmp_path) == ["cats"]
    assert sorted(p.name for p in folder.iterdir()) == sorted([p1.name, p2.name]), "no temporary file left"


def test_append_refusals_leave_nothing(tmp_path):
    h = torch.randn(2, *ITEM)
    with pytest.raises(DatasetError, match="1 record"):
        append_h(tmp_path / "a", h, records("x", [1]))
    with pytest.raises(DatasetError, match="pass"):
        append_h(tmp_path / "a", h, [dict(r, **{"pass": "both"}) for r in records("x", [1, 2])])
    with pytest.raises(DatasetError, match="step 12 of 10"):
        make_record(12, 10, 1.0, 1.0, "x", 0)
    bad = h.clone()
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(NonFiniteError):
        append_h(tmp_path / "a", bad, records("x", [1, 2]))
    with pytest.raises(NonFiniteError, match="float16"):
        append_h(tmp_path / "a", h * 1e6, records("x", [1, 2]))
    with pytest.raises(DatasetError, match="JSON"):
        append_h(tmp_path / "a", h, records("x", [1, 2]), {"thing": object()})
    assert not (tmp_path / "a").exists()


def _append_worker(args: tuple[str, str, int, int]) -> str:
    repo, folder, writer, count = args
    if repo not in sys.path:
        sys.path.insert(0, repo)
    from avi_core.hspace.collection import append_h as append  # a separate process: the plain package
    from avi_core.hspace.collection import make_record as record

    names = []
    for run in range(count):
        value = float(writer * 100 + run)
        rows = [record(2, 10, 3.0, 500.0, f"w{writer}", run)]
        names.append(append(folder, torch.full((1, 4, 2, 2), value), rows, {"writer": writer, "run": run}).name)
    return ",".join(names)


def test_concurrent_appends_from_several_processes(tmp_path):
    folder = tmp_path / "shared"
    writers, runs = 3, 3
    # fork where there is one: separate processes (own pids, own random names) without re-importing torch in each,
    # which costs seconds per process on a small machine; the children run no threaded torch code.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(writers) as pool:
        results = pool.map(_append_worker, [(str(REPO_ROOT), str(folder), w, runs) for w in range(writers)])
    names = [n for r in results for n in r.split(",")]
    assert len(set(names)) == writers * runs
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)
    data = read_collection(folder)
    assert data.skipped == [] and data.samples == writers * runs
    for row, run in enumerate(data.runs):
        assert torch.all(data.h[row] == float(run["writer"] * 100 + run["run"]))


@pytest.mark.parametrize("kind", ["truncated", "garbage", "foreign", "nan", "newer", "pickle", "shape"])
def test_damaged_shards_are_skipped_with_a_warning(tmp_path, caplog, kind):
    good = append_h(tmp_path, torch.randn(2, *ITEM), records("a", [1, 2]))
    bad = tmp_path / "h-99999999T999999999999-1-bad.safetensors"
    if kind == "truncated":
        other = append_h(tmp_path / "other", torch.randn(2, *ITEM), records("a", [1, 2]))
        bad.write_bytes(other.read_bytes()[:-30])
    elif kind == "garbage":
        bad.write_bytes(b"not safetensors" * 5)
    elif kind == "foreign":
        save_file({"weight": torch.zeros(3)}, str(bad))
    elif kind == "pickle":
        torch.save({"h": torch.zeros(3)}, str(bad))
    elif kind in ("nan", "newer"):
        other = append_h(tmp_path / "other", torch.randn(2, *ITEM), records("a", [1, 2]))
        from safetensors import safe_open

        with safe_open(str(other), "pt") as handle:
            meta, h = handle.metadata(), handle.get_tensor("h")
        if kind == "nan":
            h[0, 0, 0, 0] = float("nan")
        else:
            meta["format_version"] = "7"
        save_file({"h": h}, str(bad), metadata=meta)
    elif kind == "shape":
        append_h(tmp_path / "other", torch.randn(1, 8, 3, 3), records("a", [1]))
        (tmp_path / "other").iterdir().__next__().rename(bad)
    with caplog.at_level(logging.WARNING, logger="avi.hspace.collection"):
        data = read_collection(tmp_path)
    assert data.shards == [good] and data.samples == 2
    assert [p for p, _ in data.skipped] == [bad]
    assert bad.name in caplog.text


def test_empty_and_missing_collections(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as info:
        read_collection(tmp_path / "nope")
    assert info.value.reason == "missing"
    with pytest.raises(DatasetError, match="holds no shards") as info:
        read_collection(tmp_path)
    assert info.value.reason == "empty"
    (tmp_path / "h-broken.safetensors").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="no usable shard") as info:
        read_collection(tmp_path)
    assert "h-broken.safetensors" in str(info.value) and info.value.reason == "unusable"


def _planted(tmp_path):
    g = torch.Generator().manual_seed(3)
    attribute = torch.randn(*ITEM, generator=g)
    for step in (2, 6):
        base = torch.randn(6, *ITEM, generator=g)
        append_h(tmp_path, base, records("plain", list(range(6)), step=step), {"model": "SD2"})
        append_h(tmp_path, base + 3 * attribute, records("styled", list(range(6)), step=step), {"model": "SD2"})
    return read_collection(tmp_path), attribute


def test_pca_recipe_one_step_per_step_and_too_few(tmp_path):
    collection, _ = _planted(tmp_path)
    one = pca_from_collection(collection, 3, step=2)
    expected, stds = pca_directions(collection.select(step=2).h, 3)
    torch.testing.assert_close(one.directions, expected)
    torch.testing.assert_close(one.scales, stds)
    assert one.info["step"] == 2 and one.info["samples"] == 12 and one.info["model"] == "SD2"
    assert one.info["pass"] == "cond" and len(one.info["explained_variance"]) == 3
    per_step = pca_from_collection(collection, 2, per_step=True)
    assert per_step.per_step and per_step.directions.shape == (2, 2, *ITEM) and per_step.sigmas == [10 / 3, 10 / 7]
    with pytest.raises(DatasetError, match="holds h of 2 steps"):
        pca_from_collection(collection, 2)
    lonely = tmp_path / "lonely"
    append_h(lonely, torch.randn(1, *ITEM), records("a", [1]))
    with pytest.raises(DatasetError, match="PCA needs at least 2 samples, the collection holds 1") as info:
        pca_from_collection(read_collection(lonely), 1)
    assert info.value.reason == "too_few"
    path = save_directions(tmp_path / "pca.safetensors", per_step)
    assert load_directions(path).sigmas == per_step.sigmas


def test_supervised_recipe_finds_the_planted_attribute(tmp_path):
    collection, attribute = _planted(tmp_path)
    made = supervised_from_collection(collection, "plain", "styled", step=6)
    unit = attribute / attribute.norm()
    torch.testing.assert_close(made.directions[0], unit, rtol=0, atol=1e-3)  # float16 storage
    assert made.scales[0] == pytest.approx(3 * float(attribute.norm()), rel=1e-3)
    assert made.scale_unit == "separation" and made.info["label_b"] == "styled"
    # disentangled from a direction along part of the attribute: orthogonal to it
    other = torch.zeros(*ITEM)
    other.view(-1)[0] = 1.0
    clean = supervised_from_collection(collection, "plain", "styled", step=6, others=other.unsqueeze(0))
    assert abs(float((clean.directions[0] * other).sum())) < 1e-6
    per_step = supervised_from_collection(collection, "plain", "styled", per_step=True)
    assert per_step.directions.shape == (2, 1, *ITEM) and per_step.info["steps_stored"] == [2, 6]
    with pytest.raises(DatasetError, match="no h labelled 'purple'"):
        supervised_from_collection(collection, "plain", "purple", step=2)


def test_jacobian_set_and_plots():
    a = torch.randn(20, 32, generator=torch.Generator().manual_seed(4))
    h = torch.randn(1, *ITEM)
    result = jacobian_power_iteration(lambda x: a @ x.reshape(-1), h, count=2, iters=30)
    made = jacobian_direction_set(result, h, info={"step": 4})
    assert made.directions.shape == (2, *ITEM) and made.scale_unit == "h_norm"
    assert made.scales[0] == pytest.approx(float(h.norm()), rel=1e-6)
    per_step = jacobian_direction_set([result, result], [h, h], sigmas=[5.0, 2.0])
    assert per_step.per_step and per_step.directions.shape == (2, 2, *ITEM)
    for image in (
        render_explained_variance(torch.tensor([3.0, 2.0, 1.0]), torch.tensor(20.0)),
        render_explained_variance(torch.rand(5, 3), torch.rand(5) + 3, steps=[0, 2, 4, 6, 8]),
        render_singular_values(result.singular_values),
        render_singular_values(torch.rand(4, 2), width=300, height=200),
    ):
        assert image.dim() == 4 and image.shape[0] == 1 and image.shape[-1] == 3
        assert image.dtype == torch.float32 and 0 <= float(image.min()) and float(image.max()) <= 1
        assert float(image.std()) > 0.01  # something was drawn
    assert render_singular_values(torch.rand(4, 2), width=300, height=200).shape == (1, 200, 300, 3)
