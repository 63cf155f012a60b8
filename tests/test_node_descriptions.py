"""How the nodes describe themselves to ComfyUI, host-free, from tools/node_info.json.

The node classes are V3 nodes (comfy_api.latest.io.ComfyNode): they cannot be imported without ComfyUI, and the
pack ships no imitation of comfy_api. What the host makes of them, GET_NODE_INFO_V1() (the /object_info the
page reads), is committed as tools/node_info.json; tests/host/test_node_schemas_host.py checks it against the
real host, and this file checks what it says: the node ids and input order saved workflows depend on, and the
descriptions and tooltips an artist reads.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_INFO = json.loads((REPO_ROOT / "tools" / "node_info.json").read_text(encoding="utf-8"))

# The ids saved in every workflow since the pack's first version: they never change.
NODE_IDS = {
    "AVICaptureLatentAtStep": "AVI Capture Latent at Step",
    "AVIMerge": "AVI Merge",
    "AVITrainAttributeHead": "AVI Train Attribute Head",
    "AVILoadAttributeHead": "AVI Load Attribute Head",
    "AVIAppendToDataset": "AVI Append To Dataset",
    # digits
    "AVILoadDigitModel": "AVI Load Digit Model",
    "AVIDigitPrompt": "AVI Digit Prompt",
    "AVIEmptyDigitLatent": "AVI Empty Digit Latent",
    # boundary
    "AVICollectBoundarySamples": "AVI Collect Boundary Samples",
    "AVIFitBoundary": "AVI Fit Boundary",
    "AVILoadBoundary": "AVI Load Boundary",
    "AVIBoundaryEdit": "AVI Boundary Edit",
}
# Input order (required, then optional): old workflows store widget values by position in this order.
INPUT_ORDER = {
    "AVICaptureLatentAtStep": [
        "model",
        "add_noise",
        "noise_seed",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "positive",
        "negative",
        "latent_image",
        "stop_at",
        "stop_step",
    ],
    "AVIMerge": ["original", "target", "head", "rho", "k", "mode", "rho_list"],
    "AVITrainAttributeHead": [
        "name",
        "description",
        "epochs",
        "batch_size",
        "learning_rate",
        "k",
        "lambda1",
        "lambda2",
        "lambda3",
        "lambda4",
        "hidden",
        "seed",
        "original",
        "target",
        "dataset",
    ],
    "AVILoadAttributeHead": ["head_name"],
    "AVIAppendToDataset": ["original", "target", "dataset"],
    # digits
    "AVILoadDigitModel": ["weights"],
    "AVIDigitPrompt": ["text"],
    "AVIEmptyDigitLatent": ["batch_size"],
    # boundary
    "AVICollectBoundarySamples": [
        "model",
        "noise_seed",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "positive_a",
        "positive_b",
        "negative",
        "latent_image",
        "capture_steps",
        "collection",
    ],
    "AVIFitBoundary": [
        "collection",
        "name",
        "description",
        "step",
        "tolerance",
        "holdout",
        "C",
        "seed",
        "side_a",
        "side_b",
    ],
    "AVILoadBoundary": ["boundary_name"],
    "AVIBoundaryEdit": ["captured", "boundary", "distance", "distance_list"],
}
OUTPUTS = {
    "AVICaptureLatentAtStep": [("latent", "LATENT"), ("step", "INT")],
    "AVIMerge": [("latent", "LATENT")],
    "AVITrainAttributeHead": [("head", "AVI_HEAD"), ("loss_plot", "IMAGE")],
    "AVILoadAttributeHead": [("head", "AVI_HEAD"), ("info", "STRING")],
    "AVIAppendToDataset": [("summary", "STRING")],
    # digits
    "AVILoadDigitModel": [("MODEL", "MODEL"), ("VAE", "VAE")],
    "AVIDigitPrompt": [("CONDITIONING", "CONDITIONING")],
    "AVIEmptyDigitLatent": [("LATENT", "LATENT")],
    # boundary
    "AVICollectBoundarySamples": [("summary", "STRING")],
    "AVIFitBoundary": [
        ("boundary", "AVI_BOUNDARY"),
        ("accuracy_plot", "IMAGE"),
        ("chosen_step", "INT"),
        ("summary", "STRING"),
    ],
    "AVILoadBoundary": [("boundary", "AVI_BOUNDARY"), ("step", "INT"), ("info", "STRING")],
    "AVIBoundaryEdit": [("latent", "LATENT"), ("info", "STRING")],
}


def _inputs(info):
    for section in ("required", "optional"):
        for name in info["input_order"].get(section, []):
            yield section, name, info["input"][section][name]


def test_node_ids_and_display_names_never_change():
    names = {node_id: info["display_name"] for node_id, info in NODE_INFO.items()}
    assert {node_id: names.get(node_id) for node_id in NODE_IDS} == NODE_IDS  # other methods add their own
    assert all(
        NODE_INFO[node_id]["name"] == node_id and NODE_INFO[node_id]["category"] == "latent/avi" for node_id in NODE_IDS
    )
    assert all(
        info["name"] == node_id and info["category"].startswith("latent/avi") for node_id, info in NODE_INFO.items()
    )


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_input_order_outputs_and_output_nodes(node_id):
    info = NODE_INFO[node_id]
    assert [name for _, name, _ in _inputs(info)] == INPUT_ORDER[node_id]
    assert list(zip(info["output_name"], info["output"], strict=True)) == OUTPUTS[node_id]
    expected_output_node = node_id in (
        "AVITrainAttributeHead",
        "AVIAppendToDataset",
        "AVICollectBoundarySamples",  # boundary
        "AVIFitBoundary",  # boundary
    )
    assert info["output_node"] is expected_output_node


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_every_node_says_what_it_does_and_every_input_and_output_has_a_tooltip(node_id):
    info = NODE_INFO[node_id]
    assert len(info["description"]) > 100
    for section, name, entry in _inputs(info):
        assert len(entry) == 2 and entry[1].get("tooltip"), f"{node_id}.{name} ({section}) has no tooltip"
    assert len(info["output_tooltips"]) == len(info["output"]) and all(info["output_tooltips"])


def test_the_defaults_are_the_papers():
    train = {name: entry[1] for _, name, entry in _inputs(NODE_INFO["AVITrainAttributeHead"])}
    defaults = {name: train[name].get("default") for name in INPUT_ORDER["AVITrainAttributeHead"][2:12]}
    assert defaults == {
        "epochs": 5,
        "batch_size": 256,
        "learning_rate": 0.001,
        "k": 0,
        "lambda1": 3.0,
        "lambda2": 10.0,
        "lambda3": 10.0,
        "lambda4": 10.0,
        "hidden": 4096,
        "seed": 0,
    }
    merge = {name: entry for _, name, entry in _inputs(NODE_INFO["AVIMerge"])}
    assert merge["rho"][1] | {"tooltip": ""} == {
        "tooltip": "",
        "default": 1.0,
        "min": 0.0,
        "max": 2.0,
        "step": 0.05,
        "display": "slider",
    }
    assert merge["mode"][1]["options"] == ["paper", "anchored"] and merge["head"][0] == "AVI_HEAD"
    capture = {name: entry for _, name, entry in _inputs(NODE_INFO["AVICaptureLatentAtStep"])}
    assert capture["stop_at"][1]["default"] == 0.8 and capture["stop_step"][1]["default"] == 0


def test_advanced_inputs_are_the_rarely_changed_ones():
    """The inputs each node module passes through schema_compat.advanced_input (read from its source)."""
    marked: dict[str, set[str]] = {}
    for path in sorted((REPO_ROOT / "nodes" / "avi").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        helpers = {"advanced_input"} | {
            fn.name
            for fn in tree.body
            if isinstance(fn, ast.FunctionDef)
            and any(isinstance(n, ast.Call) and getattr(n.func, "id", "") == "advanced_input" for n in ast.walk(fn))
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in helpers:
                names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                if names:
                    marked.setdefault(path.stem, set()).add(names[0])
    assert marked == {
        "merge": {"k"},
        "train": {"batch_size", "learning_rate", "k", "lambda1", "lambda2", "lambda3", "lambda4", "hidden", "seed"},
    }


def test_the_pack_root_imports_without_comfyui_and_registers_through_comfy_entrypoint(pack):
    import inspect

    assert inspect.iscoroutinefunction(pack.comfy_entrypoint)
    # ComfyUI takes the V1 path, and ignores comfy_entrypoint, when the root has NODE_CLASS_MAPPINGS.
    assert not hasattr(pack, "NODE_CLASS_MAPPINGS") and not hasattr(pack, "NODE_DISPLAY_NAME_MAPPINGS")
    assert pack.nodes.NODE_MODULES[:5] == ("avi.capture", "avi.merge", "avi.train", "avi.load_head", "avi.datasets")
    assert "digits.model" in pack.nodes.NODE_MODULES  # digits
    assert set(pack.nodes.NODE_MODULES) >= {"boundary.collect", "boundary.fit", "boundary.load", "boundary.edit"}
    try:
        import comfy_api  # noqa: F401
    except ImportError:
        assert pack.nodes.host.register_model_folders() is False
    else:
        pytest.skip("comfy_api is importable here (running inside a ComfyUI environment)")
