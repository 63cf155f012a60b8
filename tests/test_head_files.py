import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from avi_core import (
    HEAD_FORMAT_VERSION,
    AttributeHead,
    HeadFileError,
    HeadVersionError,
    load_head,
    read_head_metadata,
    save_head,
)


@pytest.fixture
def head():
    torch.manual_seed(0)
    h = AttributeHead(8, 6, hidden=16, k=2)
    h.metadata = {"description": "young", "lambdas": [3, 10, 10, 10]}
    return h


def test_round_trip_is_exact(head, tmp_path):
    path = save_head(head, tmp_path / "young.safetensors", {"pairs": 12, "timestep_x": 795})
    loaded = load_head(path)
    for (name, a), b in zip(head.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert (loaded.height, loaded.width, loaded.hidden, loaded.k, loaded.rank) == (8, 6, 16, 2, 6)
    meta = read_head_metadata(path)
    assert meta["description"] == "young" and meta["pairs"] == 12 and meta["timestep_x"] == 795
    assert meta["pack_version"] and meta["created"] and meta["storage_dtype"] == "float32"
    assert not any(p.requires_grad for p in loaded.parameters())
    x = torch.randn(2, 8, 6)
    torch.testing.assert_close(loaded(x), head(x))


def test_half_precision_storage(head, tmp_path):
    path = save_head(head, tmp_path / "h.safetensors", half=True)
    loaded = load_head(path)
    assert loaded.trunk[0].weight.dtype == torch.float32
    torch.testing.assert_close(loaded.trunk[0].weight, head.trunk[0].weight, rtol=1e-3, atol=1e-3)
    assert read_head_metadata(path)["storage_dtype"] == "float16"


def test_write_is_atomic_and_leaves_no_temporaries(head, tmp_path, monkeypatch):
    path = tmp_path / "h.safetensors"
    save_head(head, path)
    before = path.read_bytes()

    def failing_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("avi_core.files.safetensors_io.save_file", failing_save)
    with pytest.raises(OSError):
        save_head(head, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.safetensors"]


def _rewrite(path, tensors=None, metadata=None):
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    from safetensors.torch import load_file

    data = load_file(str(path)) if tensors is None else tensors
    meta = dict(header["__metadata__"])
    meta.update(metadata or {})
    save_file(data, str(path), metadata=meta)


def test_newer_format_is_refused_with_update_advice(head, tmp_path):
    path = save_head(head, tmp_path / "h.safetensors")
    _rewrite(path, metadata={"format_version": str(HEAD_FORMAT_VERSION + 1)})
    with pytest.raises(HeadVersionError, match="newer version") as info:
        load_head(path)
    assert info.value.reason == "newer" and info.value.details["version"] == HEAD_FORMAT_VERSION + 1


def test_truncated_file_is_refused(head, tmp_path):
    path = save_head(head, tmp_path / "h.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(HeadFileError, match="h.safetensors"):
        load_head(path)


def test_garbage_and_empty_files_are_refused(tmp_path):
    for name, content in (("garbage.safetensors", b"\x00\x01" * 100), ("empty.safetensors", b"")):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(HeadFileError, match=name):
            load_head(path)


def test_pickle_file_is_refused_without_unpickling(head, tmp_path):
    path = tmp_path / "head.safetensors"
    torch.save(head.state_dict(), path)
    with pytest.raises(HeadFileError, match="pickle"):
        load_head(path)


def test_nan_weights_are_refused(head, tmp_path):
    path = save_head(head, tmp_path / "h.safetensors")
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    tensors["correction.bias"][0] = float("nan")
    _rewrite(path, tensors=tensors)
    with pytest.raises(HeadFileError, match="correction.bias.*NaN"):
        load_head(path)


def test_wrong_shape_and_missing_tensors_are_refused(head, tmp_path):
    path = save_head(head, tmp_path / "h.safetensors")
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    tensors["trunk.2.weight"] = torch.zeros(3, 3)
    _rewrite(path, tensors=tensors)
    with pytest.raises(HeadFileError, match=r"trunk.2.weight has shape \(3, 3\)"):
        load_head(path)
    del tensors["trunk.2.weight"]
    _rewrite(path, tensors=tensors)
    with pytest.raises(HeadFileError, match="missing"):
        load_head(path)


def test_integer_tensors_are_refused(head, tmp_path):
    path = save_head(head, tmp_path / "h.safetensors")
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    tensors["trunk.0.bias"] = tensors["trunk.0.bias"].to(torch.int32)
    _rewrite(path, tensors=tensors)
    with pytest.raises(HeadFileError, match="int32"):
        load_head(path)


def test_other_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "lora.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(HeadFileError, match="not an AVI attribute head"):
        load_head(path)


def test_missing_file(tmp_path):
    with pytest.raises(HeadFileError, match="no attribute head file"):
        load_head(tmp_path / "nope.safetensors")


def test_loaded_head_of_another_size_is_refused_naming_both(head, tmp_path):
    loaded = load_head(save_head(head, tmp_path / "h.safetensors"))
    with pytest.raises(Exception, match=r"8x6.*16x16"):
        loaded(torch.randn(1, 4, 16, 16))


def test_trained_head_round_trip_with_training_metadata(tmp_path):
    from helpers import synthetic_pairs

    from avi_core import train_head

    x, z = synthetic_pairs(2, size=8)
    result = train_head(x, z, epochs=1, batch_size=16, hidden=16, samples_per_epoch=32)
    path = save_head(result.head, tmp_path / "t.safetensors", {"description": "test"})
    meta = read_head_metadata(path)
    assert meta["final_losses"].keys() == {"L1", "L2", "L3", "L4", "total"}
    assert meta["lambdas"] == [3.0, 10.0, 10.0, 10.0] and meta["learning_rate"] == 1e-3 and meta["pairs"] == 2
