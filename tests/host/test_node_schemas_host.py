"""The nodes' V3 schemas in the real host (set COMFYUI_DIR; see tiny_sd2.SKIP_MESSAGE).

- tools/node_info.json, which the builder and the host-free tests read, is what this host says of the nodes;
- the committed workflows' widget values still land on the same widgets (saved workflows load unchanged);
- `advanced` and `search_aliases` (nodes/schema_compat.py) are left out on this host, which has neither, and
  passed on a newer one (its signatures put in place with monkeypatch).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys

import pytest
import tiny_sd2

pytestmark = pytest.mark.host

ADVANCED = {
    "AVIFitBoundary": {"tolerance", "holdout", "C", "seed"},  # boundary
    "AVIMerge": {"k"},
    "AVITrainAttributeHead": {
        "batch_size",
        "learning_rate",
        "k",
        "lambda1",
        "lambda2",
        "lambda3",
        "lambda4",
        "hidden",
        "seed",
    },
    # hspace
    "AVIHSpaceFindPCA": {"pass"},
    "AVIHSpaceFindSupervised": {"pass"},
    "AVIHSpaceFindJacobian": {"iterations", "tolerance", "seed", "batch_index"},
    "AVIHSpaceApplyDirection": {"target"},
    "AVIImageGrid": {"gap"},
}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


@pytest.fixture(scope="module")
def avi(pack):
    tiny_sd2.require_host()
    assert pack.nodes.host.register_model_folders() is True
    return tiny_sd2.avi_node_classes(pack)


@pytest.fixture(scope="module")
def tool(avi):
    path = tiny_sd2.REPO_ROOT / "tools" / "build_workflows.py"
    spec = importlib.util.spec_from_file_location("avi_build_workflows", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("avi_build_workflows", module)
    spec.loader.exec_module(module)
    return module


def test_the_committed_node_snapshot_is_what_the_host_says(tool):
    live = tool.live_node_info()
    committed = tool.read_node_info()
    assert list(live) == list(committed)
    for node_id in live:
        assert live[node_id] == committed[node_id], (
            f"{node_id}: tools/node_info.json is out of date; run COMFYUI_DIR=... <host python> "
            "tools/build_workflows.py --node-info"
        )
    # key order matters too (input order is what old workflows' widget values follow)
    assert tool.render(live) == tool.NODE_INFO_PATH.read_text(encoding="utf-8")


def test_saved_workflows_widget_values_map_onto_the_same_widgets(avi):
    """Every AVI node of every committed workflow: its inputs (sockets, then widgets) and its widget values, by
    position, are what the V3 schema declares, in the same order."""
    for path in sorted((tiny_sd2.REPO_ROOT / "workflows").glob("*.json")):
        ui = json.loads(path.read_text(encoding="utf-8"))
        for node in ui["nodes"]:
            if node["type"] not in avi:
                continue
            info = avi[node["type"]].GET_NODE_INFO_V1()
            declared = [
                (name, info["input"][section][name])
                for section in ("required", "optional")
                for name in info["input_order"].get(section, [])
            ]
            widgets = [n for n, (kind, opts) in declared if kind in WIDGET_TYPES and not opts.get("forceInput")]
            sockets = [n for n, _ in declared if n not in widgets]
            assert [i["name"] for i in node["inputs"]] == sockets + widgets, f"{path.stem} node {node['id']}"
            controls = [
                n for n, (kind, opts) in declared if opts.get("control_after_generate") or n in ("seed", "noise_seed")
            ]
            assert len(node["widgets_values"]) == len(widgets) + len(controls), f"{path.stem} node {node['id']}"


def _inputs(schema):
    return {i.id: i for i in schema.inputs}


def test_this_host_gets_neither_advanced_inputs_nor_search_aliases(avi, pack):
    from comfy_api.latest import io

    compat = pack.nodes.schema_compat
    assert not compat.has_field(io.Schema, "search_aliases"), "this host has search_aliases: update the test"
    assert not compat.accepts_keyword(io.Int.Input, "advanced"), "this host has advanced inputs: update the test"
    for node_id, cls in avi.items():
        schema = cls.define_schema()
        assert not hasattr(schema, "search_aliases")
        assert all(getattr(i, "advanced", None) is None for i in schema.inputs), node_id


DIGIT_NODES = ("AVILoadDigitModel", "AVIDigitPrompt", "AVIEmptyDigitLatent")


def test_a_newer_host_gets_advanced_inputs_and_search_aliases(avi, monkeypatch):
    """Signatures as in newer ComfyUI: io.<Type>.Input(..., advanced=None) and io.Schema(search_aliases=[])."""
    from comfy_api.latest import io

    def with_advanced(input_class):
        class NewerInput(input_class):
            def __init__(self, *args, advanced: bool | None = None, **kwargs):
                super().__init__(*args, **kwargs)
                self.advanced = advanced

        return NewerInput

    for kind in (io.Int, io.Float, io.String, io.Combo, io.Latent, io.Model, io.Conditioning):
        monkeypatch.setattr(kind, "Input", with_advanced(kind.Input))

    @dataclasses.dataclass
    class NewerSchema(io.Schema):
        search_aliases: list[str] = dataclasses.field(default_factory=list)

    monkeypatch.setattr(io, "Schema", NewerSchema)
    for node_id, cls in avi.items():
        schema = cls.define_schema()
        assert isinstance(schema, NewerSchema)
        if node_id.startswith("AVIHSpace") or node_id == "AVIImageGrid":  # hspace
            assert {"h-space", "hspace"} <= set(schema.search_aliases), node_id
        elif node_id in DIGIT_NODES:  # digits: the test model's nodes are found by "digit" / "mnist"
            assert {"digit", "mnist"} <= set(schema.search_aliases), node_id
        else:
            method = {"boundary"} if "Boundary" in node_id else {"svd"}  # boundary: not an SVD method
            assert {"attribute"} | method <= set(schema.search_aliases), node_id
        if node_id not in ("AVIAppendToDataset", *DIGIT_NODES):
            assert "slider" in schema.search_aliases or "edit" in schema.search_aliases, node_id
        advanced = {name for name, i in _inputs(schema).items() if getattr(i, "advanced", None)}
        assert advanced == ADVANCED.get(node_id, set()), node_id
    merge = avi["AVIMerge"].define_schema()
    assert {"attribute", "slider", "edit", "svd"} <= set(merge.search_aliases)
