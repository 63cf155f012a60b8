"""The semantic-boundary workflows (host-free): wired the way spec section 9 says, from the committed API twins.

The generic checks (valid widget values, links, API twins equal to the UI files, built by the builder) are
tests/test_workflows.py's, which covers every workflows/*.json; the real runs are tests/host/test_boundary_host.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
API_DIR = REPO_ROOT / "workflows" / "api"
NODE_INFO = json.loads((REPO_ROOT / "tools" / "node_info.json").read_text(encoding="utf-8"))


def _api(name: str) -> dict[str, Any]:
    return json.loads((API_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _one(api: dict[str, Any], class_type: str) -> tuple[str, dict[str, Any]]:
    (item,) = [(k, v) for k, v in api.items() if v["class_type"] == class_type]
    return item


def _value(api: dict[str, Any], ref: Any) -> Any:
    if isinstance(ref, list):
        source = api[ref[0]]
        assert source["class_type"] == "PrimitiveInt"
        return source["inputs"]["value"]
    return ref


def test_collect_samples_both_prompts_from_one_seed_that_increments():
    api = _api("avi_boundary_collect")
    _, collect = _one(api, "AVICollectBoundarySamples")
    inputs = collect["inputs"]
    assert inputs["positive_a"] != inputs["positive_b"]
    seed = api[inputs["noise_seed"][0]]
    ui = json.loads((REPO_ROOT / "workflows" / "avi_boundary_collect.json").read_text(encoding="utf-8"))
    (seed_node,) = [n for n in ui["nodes"] if n["type"] == "PrimitiveInt"]
    assert seed["class_type"] == "PrimitiveInt" and seed_node["widgets_values"][1] == "increment"
    steps = [int(s) for s in inputs["capture_steps"].split(",")]
    assert len(steps) >= 4 and steps == sorted(steps) and 0 < steps[0] and steps[-1] < inputs["steps"]
    _, latent = _one(api, "EmptyLatentImage")
    assert (latent["inputs"]["width"], latent["inputs"]["height"]) == (512, 512)


def test_fit_reads_the_collected_collection_and_shows_the_curve():
    collect = _one(_api("avi_boundary_collect"), "AVICollectBoundarySamples")[1]["inputs"]
    api = _api("avi_boundary_fit")
    fit_id, fit = _one(api, "AVIFitBoundary")
    assert fit["inputs"]["collection"] == collect["collection"] and fit["inputs"]["step"] == -1
    assert fit["inputs"]["tolerance"] == 0.02 and "side_a" not in fit["inputs"]
    _, plot = _one(api, "PreviewImage")
    assert plot["inputs"]["images"] == [fit_id, 1]


def test_edit_captures_at_the_boundarys_step_and_resumes_the_sweep_there():
    collect = _one(_api("avi_boundary_collect"), "AVICollectBoundarySamples")[1]["inputs"]
    fit = _one(_api("avi_boundary_fit"), "AVIFitBoundary")[1]["inputs"]
    api = _api("avi_boundary_edit")
    load_id, load = _one(api, "AVILoadBoundary")
    cap_id, cap = _one(api, "AVICaptureLatentAtStep")
    edit_id, edit = _one(api, "AVIBoundaryEdit")
    assert load["inputs"]["boundary_name"] == f"{fit['name']}.safetensors"
    assert cap["inputs"]["stop_step"] == [load_id, 1], "capture at the boundary's step"
    assert edit["inputs"]["captured"] == [cap_id, 0] and edit["inputs"]["boundary"] == [load_id, 0]
    for key in ("cfg", "sampler_name", "scheduler"):
        assert cap["inputs"][key] == collect[key], key
    assert _value(api, cap["inputs"]["steps"]) == collect["steps"]
    distances = [float(d) for d in edit["inputs"]["distance_list"].split(",")]
    assert len(distances) >= 5 and min(distances) <= -20 and max(distances) >= 20
    sources = {}
    for _, save in [(k, v) for k, v in api.items() if v["class_type"] == "SaveImage"]:
        sampler = api[api[save["inputs"]["images"][0]]["inputs"]["samples"][0]]
        inputs = sampler["inputs"]
        assert inputs["add_noise"] == "disable" and inputs["start_at_step"] == [cap_id, 1]
        assert inputs["positive"] == cap["inputs"]["positive"], "resume with prompt A"
        assert inputs["steps"] == cap["inputs"]["steps"] and inputs["noise_seed"] == cap["inputs"]["noise_seed"]
        sources[save["_meta"]["title"]] = inputs["latent_image"]
    assert sources == {"Distance sweep": [edit_id, 0], "Unedited": [cap_id, 0]}


@pytest.mark.parametrize("node_id", ["AVIBoundaryEdit"])
def test_the_distance_slider_reaches_20_each_way(node_id):
    distance = NODE_INFO[node_id]["input"]["required"]["distance"][1]
    assert distance["min"] <= -20 and distance["max"] >= 20 and distance["display"] == "slider"
