"""Boundary files: exact round trip, the metadata, and every refusal of the file kinds."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from avi_core.boundary import (
    BOUNDARY_FORMAT_VERSION,
    Boundary,
    fit_boundary,
    load_boundary,
    read_boundary_metadata,
    save_boundary,
    signed_distance,
)
from avi_core.errors import FileFormatError, FileVersionError

SHAPE = (4, 6, 6)


@pytest.fixture(scope="module")
def boundary() -> Boundary:
    g = torch.Generator().manual_seed(0)
    normal = torch.randn(SHAPE, generator=g)
    a = -normal + 0.1 * torch.randn(6, *SHAPE, generator=g)
    b = normal + 0.1 * torch.randn(7, *SHAPE, generator=g)
    info = {"step": 10, "steps": 50, "sigma": 4.2, "scale_factor": 0.18215, "space": "paper", "prompt_b": "old"}
    return fit_boundary(a, b, info=info)


def test_round_trip_is_exact(boundary, tmp_path):
    path = save_boundary(boundary, tmp_path / "old.safetensors", {"description": "young -> old"})
    loaded = load_boundary(path)
    torch.testing.assert_close(loaded.normal, boundary.normal, rtol=0, atol=1e-15)
    assert loaded.normal.dtype == torch.float64 and loaded.sample_shape == SHAPE
    assert (loaded.offset, loaded.unit, loaded.accuracy) == (boundary.offset, boundary.unit, boundary.accuracy)
    assert loaded.counts == boundary.counts == (6, 7) and loaded.held_out == boundary.held_out
    assert loaded.info["step"] == 10 and loaded.info["prompt_b"] == "old" and loaded.info["seed"] == 0
    assert loaded.info["description"] == "young -> old" and loaded.info["pack_version"]
    x = torch.randn(3, *SHAPE)
    torch.testing.assert_close(signed_distance(x, loaded), signed_distance(x, boundary))
    meta = read_boundary_metadata(path)
    assert meta["sample_shape"] == list(SHAPE) and meta["holdout"] == 0.2 and meta["sign"] == "s > 0 on side b"
    assert meta["accuracy"] == boundary.accuracy and meta["created"]


def _rewrite(path, tensors=None, metadata=None, info=None):
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    data = load_file(str(path)) if tensors is None else tensors
    meta = dict(header.get("__metadata__", {}))
    meta.update(metadata or {})
    if info is not None:
        avi = json.loads(meta["avi"])
        avi.update(info)
        meta["avi"] = json.dumps(avi)
    save_file(data, str(path), metadata=meta)


@pytest.fixture
def saved(boundary, tmp_path):
    return save_boundary(boundary, tmp_path / "b.safetensors")


def test_newer_format_is_refused(saved):
    _rewrite(saved, metadata={"format_version": str(BOUNDARY_FORMAT_VERSION + 1)})
    with pytest.raises(FileVersionError, match="newer version") as info:
        load_boundary(saved)
    assert info.value.reason == "newer" and info.value.details["kind"] == "semantic boundary"


def test_pickle_is_refused_without_unpickling(boundary, tmp_path):
    path = tmp_path / "b.safetensors"
    torch.save({"normal": boundary.normal}, path)
    with pytest.raises(FileFormatError, match="pickle") as info:
        load_boundary(path)
    assert info.value.reason == "pickle"


def test_truncated_and_missing_files_are_refused(saved, tmp_path):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match="b.safetensors"):
        load_boundary(saved)
    with pytest.raises(FileFormatError) as info:
        load_boundary(tmp_path / "nope.safetensors")
    assert info.value.reason == "missing"


def test_foreign_safetensors_is_refused(tmp_path):
    path = tmp_path / "lora.safetensors"
    save_file({"normal": torch.zeros(2)}, str(path))
    with pytest.raises(FileFormatError, match="not an AVI semantic boundary") as info:
        load_boundary(path)
    assert info.value.reason == "foreign"
    _rewrite(path, metadata={"format": "avi-head", "format_version": "1", "avi": '{"k": 2}'})
    with pytest.raises(FileFormatError, match="not an AVI semantic boundary"):
        read_boundary_metadata(path)


def test_nan_is_refused(saved):
    tensors = load_file(str(saved))
    tensors["normal"][0, 0, 0] = float("nan")
    _rewrite(saved, tensors=tensors)
    with pytest.raises(FileFormatError, match="NaN") as info:
        load_boundary(saved)
    assert info.value.reason == "nonfinite"


def test_wrong_shape_dtype_and_extra_tensors_are_refused(saved):
    tensors = load_file(str(saved))
    _rewrite(saved, tensors={"normal": torch.ones(4, 6, 5, dtype=torch.float64) / 120**0.5})
    with pytest.raises(FileFormatError, match=r"shape \(4, 6, 5\)"):
        load_boundary(saved)
    _rewrite(saved, tensors={"normal": tensors["normal"].half()})
    with pytest.raises(FileFormatError, match="float16"):
        load_boundary(saved)
    _rewrite(saved, tensors={"normal": tensors["normal"], "extra": torch.zeros(1)})
    with pytest.raises(FileFormatError, match="unexpected"):
        load_boundary(saved)


def test_damaged_numbers_are_refused(saved):
    tensors = load_file(str(saved))
    _rewrite(saved, tensors={"normal": tensors["normal"] * 2})
    with pytest.raises(FileFormatError, match="not 1"):
        load_boundary(saved)
    _rewrite(saved, tensors=tensors)
    good = read_boundary_metadata(saved)
    for info, match in (
        ({"unit": -1.0}, "not positive"),
        ({"offset": float("nan")}, "finite offset"),
        ({"accuracy": 1.5}, "0..1"),
        ({"sample_shape": [4, 0, 6]}, "sample_shape"),
        ({"counts": [3]}, "counts"),
        ({"step": "ten"}, "step"),
        ({"sigma": float("inf")}, "sigma"),
        ({"space": "pixels"}, "space"),
    ):
        _rewrite(saved, info=info)
        with pytest.raises(FileFormatError, match=match):
            read_boundary_metadata(saved)
        _rewrite(saved, info={key: good[key] for key in info})
        assert read_boundary_metadata(saved) == good


def test_every_header_length_loads(boundary, tmp_path):
    # A header of 128 + 256 k bytes makes the file start with 0x80, a pickle's protocol opcode: the shared reader
    # must look at the header itself. Headers are padded to 8 bytes, so descriptions 8 characters apart walk
    # through all 32 header lengths modulo 256.
    starts = set()
    for size in range(0, 256, 8):
        path = save_boundary(boundary, tmp_path / "p.safetensors", {"description": "x" * size})
        starts.add(path.read_bytes()[0])
        assert load_boundary(path).info["description"] == "x" * size
    assert 0x80 in starts


def test_saving_refuses_what_cannot_be_read_back(boundary, tmp_path):
    bad = Boundary(boundary.normal, float("nan"), 1.0, 1.0, 1.0, (2, 2), (1, 1), {})
    with pytest.raises(FileFormatError, match="offset is not finite"):
        save_boundary(bad, tmp_path / "nan.safetensors")
    with pytest.raises(FileFormatError, match="JSON"):
        save_boundary(boundary, tmp_path / "obj.safetensors", {"thing": object()})
    with pytest.raises(FileFormatError, match="space"):
        save_boundary(boundary, tmp_path / "s.safetensors", {"space": "pixels"})
    assert not list(tmp_path.iterdir())  # nothing half-written
