"""The shared safetensors reader: what it takes for a pickle, and what it must not."""

from __future__ import annotations

import pickle

import torch
from safetensors.torch import save_file

from avi_core.files.safetensors_io import sniff_not_safetensors


def test_a_header_length_starting_with_0x80_is_still_safetensors(tmp_path):
    # Find metadata that makes the 8-byte header length start with 0x80 (128 modulo 256), like a pickle opcode.
    for size in range(0, 512):
        path = tmp_path / "a.safetensors"
        save_file({"t": torch.zeros(2)}, str(path), metadata={"pad": "x" * size})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        raise AssertionError("no header length of 128 mod 256 was produced")
    assert sniff_not_safetensors(path) is None


def test_pickles_zips_truncated_and_foreign_files_are_named(tmp_path):
    cases = {
        "p.pt": (pickle.dumps({"a": 1}, protocol=4), "pickle"),
        "z.ckpt": (b"PK\x03\x04" + b"\0" * 60, "pickle"),
        "t.safetensors": (b"\x10\0\0", "truncated"),
        "f.bin": (b"GGUF" + b"\0" * 60, "foreign"),
    }
    for name, (data, reason) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert sniff_not_safetensors(path)[0] == reason, name
    torch.save({"a": torch.zeros(1)}, tmp_path / "real.pt")
    assert sniff_not_safetensors(tmp_path / "real.pt")[0] == "pickle"
