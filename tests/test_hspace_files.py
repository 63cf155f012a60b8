"""avi_core.hspace.direction_files: direction files round-trip, and every damaged file is refused (host-free)."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from avi_core.errors import FileFormatError, FileVersionError, ParameterError, ShapeMismatchError
from avi_core.hspace import (
    DIRECTION_FORMAT,
    DirectionSet,
    load_directions,
    pca_directions,
    read_direction_metadata,
    save_directions,
)

SHAPE = (16, 2, 2)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: one thread is fastest, and spares a busy shared CPU OpenMP's spin-waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pca_set(count: int = 3) -> DirectionSet:
    h = torch.randn(10, *SHAPE, generator=torch.Generator().manual_seed(0))
    directions, stds = pca_directions(h, count)
    info = {"model": "SD2", "step": 10, "steps": 50, "sigma": 5.1, "prompts": ["a cat"], "samples": 10, "height": 64}
    return DirectionSet(directions, stds, "pca", "std", None, info)


def per_step_set() -> DirectionSet:
    g = torch.Generator().manual_seed(1)
    raw = torch.randn(4, 2, *SHAPE, generator=g)
    directions = raw / raw.reshape(4, 2, -1).norm(dim=-1).reshape(4, 2, 1, 1, 1)
    return DirectionSet(directions, torch.rand(4, 2, generator=g) + 0.5, "pca", "std", [14.6, 7.0, 3.1, 1.2])


def test_round_trip_keeps_tensors_and_metadata(tmp_path):
    original = pca_set()
    path = save_directions(tmp_path / "cat.safetensors", original)
    loaded = load_directions(path)
    assert torch.equal(loaded.directions, original.directions) and torch.equal(loaded.scales, original.scales)
    assert loaded.method == "pca" and loaded.scale_unit == "std" and loaded.sigmas is None and not loaded.per_step
    assert loaded.count == 3 and loaded.shape == SHAPE
    for key, value in original.info.items():
        assert loaded.info[key] == value
    meta = read_direction_metadata(path)
    assert meta["method"] == "pca" and meta["count"] == 3 and meta["shape"] == list(SHAPE)
    assert "pack_version" in meta and "created" in meta
    assert [p.name for p in tmp_path.iterdir()] == ["cat.safetensors"], "no temporary file left behind"


def test_per_step_and_half_round_trip(tmp_path):
    original = per_step_set()
    loaded = load_directions(save_directions(tmp_path / "steps.safetensors", original, half=True))
    assert loaded.per_step and loaded.sigmas == original.sigmas and loaded.count == 2 and loaded.shape == SHAPE
    assert loaded.directions.dtype == torch.float32
    torch.testing.assert_close(loaded.directions, original.directions, rtol=0, atol=1e-3)
    norms = loaded.directions.reshape(4, 2, -1).norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones(4, 2), rtol=0, atol=1e-6)
    assert read_direction_metadata(tmp_path / "steps.safetensors")["storage_dtype"] == "float16"


def test_from_vectors_keeps_the_edit():
    vectors = torch.randn(2, *SHAPE)
    made = DirectionSet.from_vectors(vectors)
    assert made.method == "custom" and made.scale_unit == "norm"
    rebuilt = made.directions * made.scales.reshape(2, 1, 1, 1)
    torch.testing.assert_close(rebuilt, vectors, rtol=1e-6, atol=1e-6)


def _header(**overrides):
    info = {"method": "pca", "count": 3, "shape": list(SHAPE), "per_step": False, "scale_unit": "std", "sigmas": None}
    info.update(overrides.pop("info", {}))
    header = {"format": DIRECTION_FORMAT, "format_version": "1", "avi": json.dumps(info)}
    header.update(overrides)
    return header


def _tensors():
    s = pca_set()
    return {"directions": s.directions, "scales": s.scales}


@pytest.mark.parametrize(
    "kind, match, reason",
    [
        ("pickle", "pickle", "pickle"),
        ("torch_save", "pickle", "pickle"),
        ("foreign", "not an AVI h-space direction file", "foreign"),
        ("truncated", "truncated", None),
        ("nan", "NaN", "nonfinite"),
        ("wrong_shape", r"shape \(3, 16, 2, 3\), expected \(3, 16, 2, 2\)", None),
        ("wrong_names", "do not match", None),
        ("bad_meta", "no known method", None),
        ("not_unit", "unit norm", None),
        ("empty", "too short", "truncated"),
    ],
)
def test_damaged_files_are_refused_naming_the_file(tmp_path, kind, match, reason):
    path = tmp_path / f"{kind}.safetensors"
    tensors, header = _tensors(), _header()
    if kind == "pickle":
        path.write_bytes(pickle.dumps({"directions": [1.0, 2.0]}))
    elif kind == "torch_save":
        torch.save(tensors, str(path))
    elif kind == "foreign":
        save_file({"weight": torch.zeros(3)}, str(path))
    elif kind == "truncated":
        good = save_directions(tmp_path / "good.safetensors", pca_set())
        path.write_bytes(good.read_bytes()[:-40])
    elif kind == "nan":
        tensors["directions"][1, 0, 0, 0] = float("nan")
        save_file(tensors, str(path), metadata=header)
    elif kind == "wrong_shape":
        tensors["directions"] = torch.randn(3, 16, 2, 3)
        save_file(tensors, str(path), metadata=header)
    elif kind == "wrong_names":
        tensors["extra"] = torch.zeros(1)
        save_file(tensors, str(path), metadata=header)
    elif kind == "bad_meta":
        save_file(tensors, str(path), metadata=_header(info={"method": "magic"}))
    elif kind == "not_unit":
        tensors["directions"] = tensors["directions"] * 2
        save_file(tensors, str(path), metadata=header)
    elif kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(FileFormatError, match=match) as info:
        load_directions(path)
    assert str(path) in str(info.value)
    assert info.value.details["kind"] == "h-space direction file"
    if reason is not None:
        assert info.value.reason == reason


def test_newer_format_and_missing_file(tmp_path):
    path = tmp_path / "future.safetensors"
    save_file(_tensors(), str(path), metadata=_header(format_version="99"))
    with pytest.raises(FileVersionError, match="newer version") as info:
        load_directions(path)
    assert info.value.details["version"] == 99 and str(path) in str(info.value)
    with pytest.raises(FileVersionError):
        read_direction_metadata(path)
    with pytest.raises(FileFormatError, match="no h-space direction file") as info:
        load_directions(tmp_path / "nope.safetensors")
    assert info.value.reason == "missing"


def test_per_step_file_needs_its_sigmas(tmp_path):
    s = per_step_set()
    path = tmp_path / "steps.safetensors"
    header = _header(info={"per_step": True, "count": 2, "sigmas": None})
    save_file({"directions": s.directions, "scales": s.scales}, str(path), metadata=header)
    with pytest.raises(FileFormatError, match="no valid list of their sigmas"):
        load_directions(path)


def test_direction_set_validation():
    s = pca_set()
    with pytest.raises(ParameterError, match="method"):
        DirectionSet(s.directions, s.scales, "guess")
    with pytest.raises(ShapeMismatchError, match="scales"):
        DirectionSet(s.directions, s.scales[:2], "pca")
    with pytest.raises(ParameterError, match="unit norm"):
        DirectionSet(s.directions * 3, s.scales, "pca")
    with pytest.raises(ShapeMismatchError, match="sigma"):
        DirectionSet(per_step_set().directions, per_step_set().scales, "pca", "std", [1.0, 2.0])
    with pytest.raises(ParameterError, match=">= 0"):
        DirectionSet(s.directions, -s.scales, "pca")
