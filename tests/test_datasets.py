"""avi_core.files.datasets: shards written atomically, read back in order, broken shards skipped (host-free)."""

from __future__ import annotations

import logging
import multiprocessing
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ds(pack):
    import avi_pack.avi_core.files.datasets as datasets

    return datasets


@pytest.fixture(scope="module")
def errors(pack):
    return pack.avi_core.errors


def _pairs(p: int, size: int = 8, seed: int = 0, c: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(p, c, size, size, generator=g), torch.randn(p, c, size, size, generator=g)


def test_round_trip_keeps_values_order_and_records(ds, tmp_path):
    folder = tmp_path / "smile"
    x1, z1 = _pairs(3, seed=1)
    x2, z2 = _pairs(2, seed=2)
    rec1 = {"x": {"step": 10, "sigma": 5.1}, "z": {"step": 25, "sigma": 1.2}, "seeds": [1, 2, 3]}
    rec2 = {"x": {"step": 10, "sigma": 5.1}, "z": {"step": 25, "sigma": 1.2}, "seeds": [4, 5]}
    p1 = ds.append_shard(folder, x1, z1, rec1)
    p2 = ds.append_shard(folder, x2.double(), z2.double(), rec2)
    assert p1.parent == folder and p1.suffix == ".safetensors" and p1 != p2
    data = ds.read_dataset(folder)
    assert data.pairs == 5
    assert data.x.dtype == torch.float32 and data.z.dtype == torch.float32
    torch.testing.assert_close(data.x, torch.cat([x1, x2]), rtol=0, atol=1e-6)
    torch.testing.assert_close(data.z, torch.cat([z1, z2]), rtol=0, atol=1e-6)
    assert data.records == [rec1, rec2]
    assert data.shards == [p1, p2]
    assert data.skipped == []
    assert "5 pairs of 4x8x8" in data.summary()
    # nothing but the two finished shards is left behind (no temporary files)
    assert sorted(p.name for p in folder.iterdir()) == sorted([p1.name, p2.name])


def test_read_to_device(ds, tmp_path):
    x, z = _pairs(1)
    ds.append_shard(tmp_path, x, z, None)
    data = ds.read_dataset(tmp_path, device="cpu")
    assert data.x.device.type == "cpu" and data.records == [None]


def _append_worker(args: tuple[str, str, int, int]) -> str:
    repo, folder, seed, count = args
    if repo not in sys.path:
        sys.path.insert(0, repo)
    from avi_core.files.datasets import append_shard  # a separate process: the plain package is enough

    names = []
    for i in range(count):
        g = torch.Generator().manual_seed(seed * 1000 + i)
        x = torch.full((2, 4, 8, 8), float(seed * 1000 + i)) + 0 * torch.randn(2, 4, 8, 8, generator=g)
        names.append(append_shard(folder, x, -x, {"writer": seed, "run": i}).name)
    return ",".join(names)


def test_concurrent_appends_from_several_processes(ds, tmp_path):
    folder = tmp_path / "shared"
    writers, runs = 4, 5
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(writers) as pool:
        results = pool.map(_append_worker, [(str(REPO_ROOT), str(folder), w, runs) for w in range(writers)])
    names = [n for r in results for n in r.split(",")]
    assert len(names) == len(set(names)) == writers * runs
    on_disk = sorted(p.name for p in folder.iterdir())
    assert on_disk == sorted(names), "temporary files left behind or shards lost"
    data = ds.read_dataset(folder)
    assert data.skipped == []
    assert data.pairs == writers * runs * 2
    # every shard intact: each pair's values are the constant its writer put there, z = -x
    got = {(r["writer"], r["run"]) for r in data.records}
    assert got == {(w, i) for w in range(writers) for i in range(runs)}
    for k, rec in enumerate(data.records):
        value = float(rec["writer"] * 1000 + rec["run"])
        assert torch.all(data.x[2 * k : 2 * k + 2] == value)
        assert torch.all(data.z[2 * k : 2 * k + 2] == -value)


def test_reader_ignores_temporary_files(ds, tmp_path):
    x, z = _pairs(2)
    ds.append_shard(tmp_path, x, z, {})
    (tmp_path / ".shard-half-written.safetensors.abcd.tmp").write_bytes(b"\x00" * 10)
    (tmp_path / ".hidden.safetensors").write_bytes(b"garbage")
    (tmp_path / "notes.txt").write_text("not a shard")
    data = ds.read_dataset(tmp_path)
    assert data.pairs == 2 and data.skipped == []


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty", "foreign", "nan", "bad_json"])
def test_corrupt_shard_is_skipped_with_a_warning(ds, tmp_path, caplog, kind):
    x, z = _pairs(3, seed=3)
    good = ds.append_shard(tmp_path, x, z, {"ok": True})
    bad = tmp_path / "shard-99999999T999999999999-1-bad.safetensors"
    if kind == "truncated":
        other = ds.append_shard(tmp_path / "other", x, z, {})
        bad.write_bytes(other.read_bytes()[:-100])
    elif kind == "garbage":
        bad.write_bytes(b"this is not a safetensors file at all" * 10)
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "foreign":
        save_file({"weight": torch.zeros(3)}, str(bad))
    elif kind == "nan":
        xx = x.clone()
        xx[0, 0, 0, 0] = float("nan")
        save_file({"x": xx, "z": z}, str(bad), metadata={"format": "avi-dataset-shard", "records": "{}"})
    elif kind == "bad_json":
        save_file({"x": x, "z": z}, str(bad), metadata={"format": "avi-dataset-shard", "records": "{oops"})
    with caplog.at_level(logging.WARNING, logger="avi.datasets"):
        data = ds.read_dataset(tmp_path)
    assert data.pairs == 3 and data.shards == [good]
    assert [p for p, _ in data.skipped] == [bad]
    assert any(bad.name in rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING)


def test_mismatched_latent_size_is_skipped(ds, tmp_path, caplog):
    a = ds.append_shard(tmp_path, *_pairs(2, size=8), {})
    odd = ds.append_shard(tmp_path, *_pairs(1, size=12), {})
    c = ds.append_shard(tmp_path, *_pairs(2, size=8), {})
    with caplog.at_level(logging.WARNING, logger="avi.datasets"):
        data = ds.read_dataset(tmp_path)
    assert data.shards == [a, c] and data.pairs == 4
    assert len(data.skipped) == 1 and data.skipped[0][0] == odd
    assert "4x12x12" in data.skipped[0][1] and "4x8x8" in data.skipped[0][1]
    assert odd.name in caplog.text


def test_majority_size_wins_over_first(ds, tmp_path):
    first = ds.append_shard(tmp_path, *_pairs(1, size=12), {})
    ds.append_shard(tmp_path, *_pairs(1, size=8), {})
    ds.append_shard(tmp_path, *_pairs(1, size=8), {})
    data = ds.read_dataset(tmp_path)
    assert data.x.shape[-1] == 8 and data.skipped[0][0] == first


def test_missing_and_empty_folders_raise_dataset_error(ds, errors, tmp_path):
    with pytest.raises(errors.DatasetError, match="does not exist") as info:
        ds.read_dataset(tmp_path / "nope")
    assert info.value.reason == "missing"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(errors.DatasetError, match="holds no shards") as info:
        ds.read_dataset(empty)
    assert str(empty) in str(info.value) and info.value.reason == "empty"


def test_only_broken_shards_raise_dataset_error_naming_them(ds, errors, tmp_path):
    (tmp_path / "shard-a.safetensors").write_bytes(b"junk")
    with pytest.raises(errors.DatasetError, match="no usable shard") as info:
        ds.read_dataset(tmp_path)
    assert "shard-a.safetensors" in str(info.value) and str(tmp_path) in str(info.value)


def test_append_rejects_bad_pairs(ds, errors, tmp_path):
    x, z = _pairs(2)
    with pytest.raises(errors.ShapeMismatchError, match="same shape"):
        ds.append_shard(tmp_path, x, z[:1], {})
    with pytest.raises(errors.ShapeMismatchError, match=r"\[P, C, H, W\]"):
        ds.append_shard(tmp_path, x[0], z[0], {})
    bad = x.clone()
    bad[1, 2, 3, 4] = float("inf")
    with pytest.raises(errors.NonFiniteError):
        ds.append_shard(tmp_path, bad, z, {})
    with pytest.raises(errors.DatasetError, match="JSON"):
        ds.append_shard(tmp_path, x, z, {"obj": object()})
    assert list(tmp_path.iterdir()) == [], "a refused append must leave nothing behind"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("smile", "smile"),
        ("old man", "old man"),
        ("../../etc", "etc"),
        ("a/b\\c", "a_b_c"),
        (".hidden", "hidden"),
        ("x:y*z", "x_y_z"),
    ],
)
def test_sanitize_dataset_name(ds, name, expected):
    clean = ds.sanitize_dataset_name(name)
    assert clean == expected
    assert "/" not in clean and "\\" not in clean and ".." not in clean


@pytest.mark.parametrize("name", ["", "   ", "..", "/", "***"])
def test_unusable_dataset_names_raise(ds, errors, name):
    with pytest.raises(errors.InvalidNameError, match="dataset name"):
        ds.sanitize_dataset_name(name)


def test_list_datasets(ds, tmp_path):
    assert ds.list_datasets(tmp_path / "missing") == []
    ds.append_shard(tmp_path / "smile", *_pairs(1), {})
    ds.append_shard(tmp_path / "Age", *_pairs(1), {})
    (tmp_path / "empty").mkdir()
    (tmp_path / ".trash").mkdir()
    ds.append_shard(tmp_path / ".trash", *_pairs(1), {})
    assert ds.list_datasets(tmp_path) == ["Age", "smile"]
    assert ds.dataset_folder(tmp_path, "../smile") == tmp_path / "smile"


def _captured(pack, samples: torch.Tensor, *, step: int, sigma: float, timestep: int, seed: int = 7) -> dict:
    record = pack.avi_core.latent.capture.make_record(
        step=step,
        steps=50,
        sigma=sigma,
        timestep=timestep,
        num_timesteps=1000,
        scale_factor=0.18215,
        seed=seed,
        batch=samples.shape[0],
        sampler="euler",
        scheduler="normal",
        shape=samples.shape,
    )
    return {"samples": samples, pack.avi_core.latent.capture.CAPTURE_KEY: record, "batch_index": [0, 1]}


def test_append_latent_pair_stores_paper_space_and_records(pack, ds, tmp_path):
    g = torch.Generator().manual_seed(5)
    xs, zs = torch.randn(2, 4, 8, 8, generator=g) * 20, torch.randn(2, 4, 8, 8, generator=g) * 3
    original = _captured(pack, xs, step=10, sigma=14.6, timestep=795)
    target = _captured(pack, zs, step=25, sigma=1.9, timestep=489)
    path = ds.append_latent_pair(tmp_path, original, target)
    data = ds.read_dataset(tmp_path)
    assert data.shards == [path]
    # paper = s * comfy / sqrt(1 + sigma^2), each latent with its own sigma
    torch.testing.assert_close(data.x, xs * 0.18215 / (1 + 14.6**2) ** 0.5)
    torch.testing.assert_close(data.z, zs * 0.18215 / (1 + 1.9**2) ** 0.5)
    assert data.records[0]["x"]["step"] == 10 and data.records[0]["z"]["sigma"] == 1.9


def test_append_latent_pair_refuses_bad_pairs(pack, ds, errors, tmp_path):
    xs = torch.randn(2, 4, 8, 8)
    with pytest.raises(errors.CaptureRecordError, match="no capture record"):
        target = _captured(pack, xs, step=25, sigma=1.9, timestep=489)
        ds.append_latent_pair(tmp_path, {"samples": xs}, target)
    with pytest.raises(errors.CaptureRecordError, match="seed"):
        ds.append_latent_pair(
            tmp_path,
            _captured(pack, xs, step=10, sigma=14.6, timestep=795, seed=1),
            _captured(pack, xs, step=25, sigma=1.9, timestep=489, seed=2),
        )
    with pytest.raises(errors.CaptureRecordError, match="earlier"):
        ds.append_latent_pair(
            tmp_path,
            _captured(pack, xs, step=25, sigma=1.9, timestep=489),
            _captured(pack, xs, step=10, sigma=14.6, timestep=795),
        )
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_find_dataset_searches_the_roots_in_order(ds, errors, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    ds.append_shard(second / "smile", *_pairs(1), {})
    ds.append_shard(second / "age", *_pairs(1), {})
    assert ds.find_dataset([first, second], " smile ") == second / "smile"
    ds.append_shard(first / "smile", *_pairs(1), {})
    assert ds.find_dataset([first, second], "smile") == first / "smile"
    with pytest.raises(errors.DatasetError) as caught:
        ds.find_dataset([first, second], "nope")
    err = caught.value
    assert err.reason == "unknown" and err.details["available"] == "age, smile"
    assert str(err) == f"no dataset named 'nope' in {first}, {second} (the datasets there are age, smile)"
    with pytest.raises(errors.DatasetError, match="there is no dataset yet"):
        ds.find_dataset([tmp_path / "empty"], "smile")
    with pytest.raises(errors.InvalidNameError, match="no usable characters"):
        ds.find_dataset([first], "../..")


def test_dataset_fingerprint_changes_when_pairs_are_appended(ds, tmp_path):
    # The Train node's cache key: training from a dataset must rerun after more pairs were appended.
    roots = [tmp_path / "a", tmp_path / "b"]
    assert ds.dataset_fingerprint(roots, "smile") == ""
    assert ds.dataset_fingerprint(roots, "  ") == ""
    x, z = _pairs(2)
    ds.append_shard(roots[1] / "smile", x, z, None)
    first = ds.dataset_fingerprint(roots, "smile")
    assert first.startswith(str(roots[1] / "smile")) and first.count("shard-") == 1
    assert ds.dataset_fingerprint(roots, "smile") == first
    (roots[1] / "smile" / ".tmp-partial.safetensors").write_bytes(b"half")  # unfinished writes do not count
    assert ds.dataset_fingerprint(roots, "smile") == first
    ds.append_shard(roots[1] / "smile", x, z, None)
    second = ds.dataset_fingerprint(roots, "smile")
    assert second != first and second.count("shard-") == 2
