"""ComfyUI .latent files: SaveLatent's format, read exactly as LoadLatent reads it; bad files refused."""

import pickle
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from avi_core.errors import LatentFileError
from avi_core.files.latent_files import (
    LATENT_KEY,
    LEGACY_SCALE,
    VERSION_MARKER,
    read_latent_file,
    read_latent_metadata,
    write_latent_file,
)


@pytest.fixture
def samples():
    return torch.randn(2, 4, 16, 12, generator=torch.Generator().manual_seed(0)) * 5


def comfy_load_latent(path):
    """ComfyUI's LoadLatent.load, transcribed from nodes.py, as the reference behaviour."""
    latent = load_file(str(path), device="cpu")
    multiplier = 1.0
    if "latent_format_version_0" not in latent:
        multiplier = 1.0 / 0.18215
    return latent["latent_tensor"].float() * multiplier


def test_round_trip_is_exact_and_readable_by_comfyui(samples, tmp_path):
    path = write_latent_file(tmp_path / "a.latent", samples, metadata={"prompt": "{}", "avi": {"rho": 1.0}})
    back = read_latent_file(path)
    assert back.dtype == torch.float32 and back.shape == samples.shape
    assert torch.equal(back, samples)
    assert torch.equal(comfy_load_latent(path), samples)
    raw = load_file(str(path))
    assert set(raw) == {LATENT_KEY, VERSION_MARKER} and raw[VERSION_MARKER].numel() == 0
    assert read_latent_metadata(path) == {"prompt": "{}", "avi": '{"rho": 1.0}'}


def test_reads_a_file_written_the_way_savelatent_writes_it(samples, tmp_path):
    path = tmp_path / "ComfyUI_00001_.latent"
    half = samples.half()
    save_file({LATENT_KEY: half, VERSION_MARKER: torch.tensor([])}, str(path), metadata={"prompt": "{}"})
    back = read_latent_file(path)
    assert back.dtype == torch.float32
    assert torch.equal(back, half.float())
    assert torch.equal(back, comfy_load_latent(path))


def test_legacy_file_without_the_marker_is_rescaled_like_loadlatent(samples, tmp_path):
    path = tmp_path / "old.latent"
    save_file({LATENT_KEY: samples}, str(path))
    back = read_latent_file(path)
    assert torch.equal(back, samples.float() * (1.0 / LEGACY_SCALE))
    assert torch.equal(back, comfy_load_latent(path))
    assert not torch.allclose(back, samples)


def test_write_replaces_atomically_and_leaves_no_temporary_files(samples, tmp_path):
    path = tmp_path / "sub" / "a.latent"
    path.parent.mkdir()
    write_latent_file(path, samples)
    write_latent_file(path, samples * 2)
    assert torch.equal(read_latent_file(path), samples * 2)
    assert [p.name for p in path.parent.iterdir()] == ["a.latent"]


@pytest.mark.parametrize(
    "bad, problem",
    [
        (torch.full((1, 4, 8, 8), float("nan")), "NaN"),
        (torch.zeros(4, 8, 8), "shape"),
        (torch.zeros(1, 4, 8, 8, dtype=torch.int64), "floating-point"),
    ],
)
def test_write_refuses_bad_latents_and_writes_nothing(bad, problem, tmp_path):
    path = tmp_path / "bad.latent"
    with pytest.raises(LatentFileError, match=problem):
        write_latent_file(path, bad)
    assert list(tmp_path.iterdir()) == []


def _refused(path, *words):
    with pytest.raises(LatentFileError) as info:
        read_latent_file(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message
    return message


def test_missing_file_is_refused(tmp_path):
    _refused(tmp_path / "nope.latent", "no ComfyUI latent file at")


def test_folder_is_refused(tmp_path):
    _refused(tmp_path, "not a regular file")


def test_garbage_is_refused(tmp_path):
    path = tmp_path / "garbage.latent"
    path.write_bytes(b"this is not a safetensors file at all, just text" * 10)
    _refused(path, "safetensors")


def test_empty_and_tiny_files_are_refused(tmp_path):
    path = tmp_path / "empty.latent"
    path.write_bytes(b"")
    _refused(path, "too short")
    path.write_bytes(b"\x01\x02")
    _refused(path, "too short")


@pytest.mark.parametrize("zipfile", [True, False])
def test_pickle_written_by_torch_save_is_refused_without_unpickling(zipfile, samples, tmp_path, monkeypatch):
    path = tmp_path / "evil.latent"
    torch.save({LATENT_KEY: samples}, path, _use_new_zipfile_serialization=zipfile)

    def forbidden(*args, **kwargs):
        raise AssertionError("read_latent_file must never unpickle")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    _refused(path, "pickle")


def test_truncated_file_is_refused(samples, tmp_path):
    path = write_latent_file(tmp_path / "cut.latent", samples)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    _refused(path, "truncated")


def test_file_with_a_corrupt_header_is_refused(samples, tmp_path):
    path = write_latent_file(tmp_path / "corrupt.latent", samples)
    data = bytearray(path.read_bytes())
    (header_len,) = struct.unpack("<Q", data[:8])
    data[8 : 8 + header_len] = b"{" * header_len
    path.write_bytes(bytes(data))
    _refused(path, "safetensors")


def test_safetensors_without_latent_tensor_is_refused(samples, tmp_path):
    path = tmp_path / "head.latent"
    save_file({"weight": samples}, str(path))
    _refused(path, "latent_tensor", "weight")


def test_nan_latent_is_refused(samples, tmp_path):
    path = tmp_path / "nan.latent"
    bad = samples.clone()
    bad[0, 1, 2, 3] = float("nan")
    save_file({LATENT_KEY: bad, VERSION_MARKER: torch.tensor([])}, str(path))
    _refused(path, "NaN")


@pytest.mark.parametrize("shape", [(4, 8, 8), (1, 4, 2, 8, 8)])
def test_latent_of_the_wrong_rank_is_refused(shape, tmp_path):
    path = tmp_path / "video.latent"
    save_file({LATENT_KEY: torch.zeros(shape), VERSION_MARKER: torch.tensor([])}, str(path))
    _refused(path, str(tuple(shape)))


def test_integer_latent_is_refused(tmp_path):
    path = tmp_path / "int.latent"
    latent = torch.zeros(1, 4, 8, 8, dtype=torch.int32)
    save_file({LATENT_KEY: latent, VERSION_MARKER: torch.tensor([])}, str(path))
    _refused(path, "floating point")
