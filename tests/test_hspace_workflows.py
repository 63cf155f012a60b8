"""The h-space workflows (issue 9), host-free: what the committed API twins wire together (the host runs them in
tests/host/test_hspace_host.py; tests/test_workflows.py checks their form like every workflow's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
API_DIR = REPO_ROOT / "workflows" / "api"


def _api(name: str) -> dict[str, Any]:
    return json.loads((API_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _of(api: dict[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    return sorted(((k, v) for k, v in api.items() if v["class_type"] == kind), key=lambda kv: int(kv[0]))


def _numbers(text: str) -> list[float]:
    return [float(p) for p in text.replace(",", " ").split()]


def _capture_samplers(api):
    """{collection: (capture id, sampler id, sampler inputs)} for every Capture h feeding a sampler."""
    out = {}
    for cap_id, cap in _of(api, "AVIHSpaceCapture"):
        ((ks_id, ks),) = [kv for kv in _of(api, "KSamplerAdvanced") if kv[1]["inputs"]["model"] == [cap_id, 0]]
        out[cap["inputs"]["collection"]] = (cap_id, ks_id, ks["inputs"])
    return out


def test_learn_direction_captures_two_prompts_finds_and_sweeps():
    api = _api("avi_hspace_learn_direction")
    captures = _capture_samplers(api)
    assert set(captures) == {"plain", "smiling"}
    (_, ks_a, a), (_, ks_b, b) = captures["plain"], captures["smiling"]
    assert a["positive"] != b["positive"] and a["latent_image"] == b["latent_image"]
    assert a["noise_seed"] == b["noise_seed"] and isinstance(a["noise_seed"], list)  # one capture seed
    seed = api[a["noise_seed"][0]]
    assert seed["class_type"] == "PrimitiveInt"
    ((find_id, find),) = _of(api, "AVIHSpaceFindSupervised")
    inputs = find["inputs"]
    assert (inputs["collection_a"], inputs["collection_b"], inputs["name"]) == ("plain", "smiling", "smile")
    assert inputs["samples_a"] == [ks_a, 0] and inputs["samples_b"] == [ks_b, 0]  # runs after both samplings
    ((apply_id, apply),) = _of(api, "AVIHSpaceApplyDirection")
    assert apply["inputs"]["directions"] == [find_id, 0]
    assert _numbers(apply["inputs"]["strength_list"]) == [-1.0, 0.0, 1.0, 2.0]
    latent = api[apply["inputs"]["latent"][0]]
    assert latent["class_type"] == "EmptyLatentImage" and latent["inputs"]["batch_size"] == 1
    sweepers = [kv for kv in _of(api, "KSamplerAdvanced") if kv[1]["inputs"]["model"] == [apply_id, 0]]
    ((sweep_id, sweep),) = sweepers
    assert sweep["inputs"]["latent_image"] == [apply_id, 1] and sweep["inputs"]["positive"] == a["positive"]
    assert sweep["inputs"]["noise_seed"] != a["noise_seed"]  # the edited image has its own, fixed seed
    ((_, save),) = _of(api, "SaveImage")
    assert api[api[save["inputs"]["images"][0]]["inputs"]["samples"][0]] is sweep


def test_pca_explorer_shows_directions_by_strengths_as_a_grid():
    api = _api("avi_hspace_pca_explorer")
    captures = _capture_samplers(api)
    assert set(captures) == {"explorer"}
    ((find_id, find),) = _of(api, "AVIHSpaceFindPCA")
    assert find["inputs"]["collection"] == "explorer" and find["inputs"]["samples"] == [captures["explorer"][1], 0]
    assert find["inputs"]["count"] >= 4 and find["inputs"]["step"] == -1
    ((apply_id, apply),) = _of(api, "AVIHSpaceApplyDirection")
    assert apply["inputs"]["directions"] == [find_id, 0]
    directions = _numbers(apply["inputs"]["direction_list"])
    strengths = _numbers(apply["inputs"]["strength_list"])
    assert directions == [1.0, 2.0, 3.0, 4.0] and 0.0 in strengths and len(strengths) == 3
    ((_, grid),) = _of(api, "AVIImageGrid")
    assert grid["inputs"]["columns"] == len(strengths)
    decode = api[grid["inputs"]["images"][0]]
    sampler = api[decode["inputs"]["samples"][0]]
    assert sampler["inputs"]["model"] == [apply_id, 0] and sampler["inputs"]["latent_image"] == [apply_id, 1]
    ((_, save),) = _of(api, "SaveImage")
    assert api[save["inputs"]["images"][0]] is grid
