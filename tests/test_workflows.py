"""The example workflows (host-free): they parse, name only existing nodes, give every widget a valid value in
input order, have consistent links, match their API twins, and wire AVI the way the spec says.

The pack's nodes are described by tools/node_info.json (what the host's /object_info gives for them; checked
against the real host by tests/host/test_node_schemas_host.py), the host's core nodes by the builder's
CORE_NODES. With COMFYUI_DIR set, the core nodes are also checked against the real host's INPUT_TYPES (in a
subprocess running the host's python, so this process never imports the host's `nodes`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO_ROOT / "workflows").glob("*.json"))
API_DIR = REPO_ROOT / "workflows" / "api"
EXPECTED = {
    "avi_learn_attribute",
    "avi_apply_attribute",
    "avi_rho_sweep",
    "avi_build_dataset",
    "avi_train_from_dataset",
}
BOUNDARY_WORKFLOWS = {"avi_boundary_collect", "avi_boundary_fit", "avi_boundary_edit"}  # boundary
EXPECTED |= BOUNDARY_WORKFLOWS  # boundary
HSPACE_WORKFLOWS = {"avi_hspace_learn_direction", "avi_hspace_pca_explorer"}  # tests/test_hspace_workflows.py
EXPECTED |= HSPACE_WORKFLOWS
# The host's core nodes the workflows use (each must exist in ComfyUI's NODE_CLASS_MAPPINGS).
CORE_NODE_NAMES = {
    "CheckpointLoaderSimple",
    "CLIPTextEncode",
    "EmptyLatentImage",
    "KSamplerAdvanced",
    "VAEDecode",
    "SaveImage",
    "PreviewImage",
    "PrimitiveInt",
    "PreviewAny",
}
FRONTEND_ONLY = {"Note", "MarkdownNote"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _load_tool():
    path = REPO_ROOT / "tools" / "build_workflows.py"
    spec = importlib.util.spec_from_file_location("avi_build_workflows", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("avi_build_workflows", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tool():
    return _load_tool()


@pytest.fixture(scope="module")
def specs(tool) -> dict[str, dict[str, Any]]:
    """name -> {"inputs": [(name, type, opts)], "outputs": [(name, type)], "optional": [...]}"""
    return tool.node_specs()


def _ui(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _is_widget(kind: str, opts: dict[str, Any]) -> bool:
    return kind in WIDGET_TYPES and not opts.get("forceInput")


def _widget_names(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], bool]]:
    """(name, type, options, is_control) in widgets_values order (the frontend's own rule for controls:
    declared control_after_generate, or an INT named seed / noise_seed)."""
    out = []
    for name, kind, opts in spec["inputs"]:
        if not _is_widget(kind, opts):
            continue
        out.append((name, kind, opts, False))
        auto = kind == "INT" and name in ("seed", "noise_seed")
        if kind in ("INT", "COMBO") and opts.get("control_after_generate", auto):
            out.append((name, kind, opts, True))
    return out


def _named_widget_values(node: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    order = _widget_names(spec)
    values = node["widgets_values"]
    assert len(values) == len(order), (
        f"node {node['id']} {node['type']}: {len(values)} widget values for {len(order)} widgets "
        f"{[n + (' (control)' if c else '') for n, _, _, c in order]}"
    )
    return {name: value for (name, _, _, control), value in zip(order, values, strict=True) if not control}


def test_the_expected_workflows_are_there():
    assert {p.stem for p in WORKFLOWS} == EXPECTED
    assert {p.stem for p in API_DIR.glob("*.json")} == EXPECTED


def test_committed_files_are_what_the_builder_makes(tool):
    stale = [
        str(p.relative_to(REPO_ROOT))
        for p, text in tool.build_all().items()
        if not p.is_file() or p.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"run python tools/build_workflows.py: out of date {stale}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_ui_workflow_structure_and_node_types(path, specs):
    ui = _ui(path)
    assert ui["version"] == 0.4
    ids = [n["id"] for n in ui["nodes"]]
    assert len(ids) == len(set(ids)) and ui["last_node_id"] >= max(ids)
    link_ids = [lk[0] for lk in ui["links"]]
    assert len(link_ids) == len(set(link_ids)) and ui["last_link_id"] >= max(link_ids, default=0)
    for node in ui["nodes"]:
        assert node["type"] in specs or node["type"] in FRONTEND_ONLY, f"unknown node type {node['type']}"
        kind = node["type"]
        assert kind in FRONTEND_ONLY or kind in CORE_NODE_NAMES or kind.startswith("AVI")
        assert len(node["pos"]) == 2 and len(node["size"]) == 2 and node["mode"] == 0
    notes = [n for n in ui["nodes"] if n["type"] == "Note" and len(n["widgets_values"][0]) > 100]
    assert notes, "no note telling the artist what to set"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_widget_values_have_the_right_type_and_range(path, specs, tool):
    for node in _ui(path)["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            assert [type(v) for v in node["widgets_values"]] == [str]
            continue
        spec = specs[node["type"]]
        order = _widget_names(spec)
        _named_widget_values(node, spec)  # the count
        for (name, kind, opts, control), value in zip(order, node["widgets_values"], strict=True):
            where = f"{path.stem} node {node['id']} {node['type']}.{name}"
            if control:
                assert value in CONTROL_VALUES, where
            elif kind == "INT":
                assert isinstance(value, int) and not isinstance(value, bool), where
                assert opts.get("min", -(2**64)) <= value <= opts.get("max", 2**64), where
            elif kind == "FLOAT":
                assert isinstance(value, (int, float)) and not isinstance(value, bool), where
                assert opts.get("min", float("-inf")) <= value <= opts.get("max", float("inf")), where
            elif kind == "STRING":
                assert isinstance(value, str), where
            elif kind == "BOOLEAN":
                assert isinstance(value, bool), where
            elif kind == "COMBO":
                assert isinstance(value, str), where
                values = opts.get("values")
                if isinstance(values, list) and values:
                    assert value in values, f"{where}: {value!r} not in {values}"
                elif values == "<host sampler list>":  # the real host's list: test_core_nodes_match_the_real_host
                    assert value == tool.SAMPLER, where
                elif values == "<host scheduler list>":
                    assert value == tool.SCHEDULER, where
                else:  # a models-folder list (checkpoints, heads): a file name
                    assert value.endswith((".safetensors", ".ckpt")), where


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_links_are_consistent(path, specs):
    ui = _ui(path)
    nodes = {n["id"]: n for n in ui["nodes"]}
    for link_id, src, src_slot, dst, dst_slot, kind in ui["links"]:
        source, target = nodes[src], nodes[dst]
        out = source["outputs"][src_slot]
        assert out["type"] == kind and link_id in out["links"]
        assert specs[source["type"]]["outputs"][src_slot][1] == kind
        inp = target["inputs"][dst_slot]
        assert inp["link"] == link_id
        declared = {n: k for n, k, _ in specs[target["type"]]["inputs"]}
        assert inp["name"] in declared and inp["type"] == declared[inp["name"]]
        assert declared[inp["name"]] in (kind, "*"), f"{path.stem}: link {link_id} {kind} into {inp}"
    linked_inputs = {(n["id"], i["link"]) for n in ui["nodes"] for i in n["inputs"] if i["link"] is not None}
    assert linked_inputs == {(lk[3], lk[0]) for lk in ui["links"]}
    for node in ui["nodes"]:
        for out in node["outputs"]:
            for link_id in out["links"]:
                assert any(lk[0] == link_id and lk[1] == node["id"] for lk in ui["links"])
        if node["type"] in FRONTEND_ONLY:
            continue
        spec = specs[node["type"]]
        # every declared input is listed once: sockets first, then widgets (the page's order)
        sockets = [n for n, k, o in spec["inputs"] if not _is_widget(k, o)]
        widgets = [n for n, k, o in spec["inputs"] if _is_widget(k, o)]
        assert [i["name"] for i in node["inputs"]] == sockets + widgets
        required = set(sockets) - set(spec.get("optional", []))
        unlinked = [i["name"] for i in node["inputs"] if i["name"] in required and i["link"] is None]
        assert not unlinked, f"{path.stem} node {node['id']} {node['type']}: unconnected {unlinked}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_api_twin_describes_the_same_graph(path, specs):
    ui = _ui(path)
    api = json.loads((API_DIR / path.name).read_text(encoding="utf-8"))
    real_nodes = [n for n in ui["nodes"] if n["type"] not in FRONTEND_ONLY]
    assert set(api) == {str(n["id"]) for n in real_nodes}
    links = {lk[0]: lk for lk in ui["links"]}
    for node in real_nodes:
        entry = api[str(node["id"])]
        assert entry["class_type"] == node["type"]
        if "title" in node:
            assert entry["_meta"]["title"] == node["title"]
        values = _named_widget_values(node, specs[node["type"]])
        expected: dict[str, Any] = {}
        for inp in node["inputs"]:
            if inp["link"] is not None:
                lk = links[inp["link"]]
                expected[inp["name"]] = [str(lk[1]), lk[2]]
            elif "widget" in inp:
                expected[inp["name"]] = values[inp["name"]]
        assert entry["inputs"] == expected, f"{path.stem} node {node['id']} {node['type']}"


# --- what the workflows must do (spec sections 1-2, issue 4) ----------------------------------------------


def _api(name: str) -> dict[str, Any]:
    return json.loads((API_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _of(api: dict[str, Any], class_type: str) -> list[tuple[str, dict[str, Any]]]:
    return [(k, v) for k, v in api.items() if v["class_type"] == class_type]


def _value(api: dict[str, Any], ref: Any) -> Any:
    """A constant input, or the value of the PrimitiveInt it is linked to."""
    if isinstance(ref, list):
        source = api[ref[0]]
        assert source["class_type"] == "PrimitiveInt", f"linked to {source['class_type']}"
        return source["inputs"]["value"]
    return ref


@pytest.mark.parametrize("name", sorted(EXPECTED - BOUNDARY_WORKFLOWS - {"avi_train_from_dataset"} - HSPACE_WORKFLOWS))
def test_sd21_defaults_and_paired_captures(name):
    api = _api(name)
    ((_, ckpt),) = _of(api, "CheckpointLoaderSimple")
    assert ckpt["inputs"]["ckpt_name"] == "v2-1_512-ema-pruned.safetensors"
    ((_, latent),) = _of(api, "EmptyLatentImage")
    assert (latent["inputs"]["width"], latent["inputs"]["height"]) == (512, 512)
    captures = sorted(_of(api, "AVICaptureLatentAtStep"), key=lambda kv: -kv[1]["inputs"]["stop_at"])
    assert [c["inputs"]["stop_at"] for _, c in captures] == [0.8, 0.5]
    x, z = captures[0][1]["inputs"], captures[1][1]["inputs"]
    # the same seed: one source wired into both captures
    assert x["noise_seed"] == z["noise_seed"] and isinstance(x["noise_seed"], list)
    for key in ("steps", "cfg", "sampler_name", "scheduler", "latent_image", "model", "negative", "add_noise"):
        assert x[key] == z[key], key
    assert _value(api, x["steps"]) == 50
    assert x["positive"] != z["positive"], "x and z must use the original and the target prompt"
    for _, ks in _of(api, "KSamplerAdvanced"):
        inputs = ks["inputs"]
        assert inputs["add_noise"] == "disable" and inputs["return_with_leftover_noise"] == "disable"
        assert inputs["start_at_step"] == [captures[0][0], 1], "resume at x's captured step"
        assert inputs["positive"] == x["positive"], "resume with the original prompt"
        for key in ("noise_seed", "steps", "cfg", "sampler_name", "scheduler"):
            assert inputs[key] == x[key], key


def test_apply_shows_the_unedited_image_beside_the_edit():
    api = _api("avi_apply_attribute")
    ((merge_id, merge),) = _of(api, "AVIMerge")
    ((x_id, _),) = [kv for kv in _of(api, "AVICaptureLatentAtStep") if kv[1]["inputs"]["stop_at"] == 0.8]
    assert merge["inputs"]["original"] == [x_id, 0] and merge["inputs"]["rho"] == 1.0
    sources = {}
    for _, save in _of(api, "SaveImage"):
        decode = api[save["inputs"]["images"][0]]
        sampler = api[decode["inputs"]["samples"][0]]
        sources[save["_meta"]["title"]] = sampler["inputs"]["latent_image"]
    assert sources == {"Edited": [merge_id, 0], "Unedited": [x_id, 0]}
    ui = _ui(REPO_ROOT / "workflows" / "avi_apply_attribute.json")
    saves = sorted((n for n in ui["nodes"] if n["type"] == "SaveImage"), key=lambda n: n["pos"][0])
    assert [n["title"] for n in saves] == ["Unedited", "Edited"]
    assert saves[0]["pos"][1] == saves[1]["pos"][1], "side by side"
    ((_, loader),) = _of(api, "AVILoadAttributeHead")
    assert loader["inputs"]["head_name"] == "smile.safetensors"


def test_rho_sweep_decodes_the_strip_as_one_batch(pack):
    from avi_pack.avi_core.values import parse_number_list  # a submodule: avi_core's lazy exports do not load it

    api = _api("avi_rho_sweep")
    ((merge_id, merge),) = _of(api, "AVIMerge")
    rhos = parse_number_list(merge["inputs"]["rho_list"], "rho_list")
    assert rhos == [0.0, 0.25, 0.5, 0.75, 1.0]
    ((_, ks),) = _of(api, "KSamplerAdvanced")
    assert ks["inputs"]["latent_image"] == [merge_id, 0]
    ((_, save),) = _of(api, "SaveImage")
    assert api[save["inputs"]["images"][0]]["class_type"] == "VAEDecode"


def test_learn_trains_on_the_captured_pairs():
    api = _api("avi_learn_attribute")
    ((_, train),) = _of(api, "AVITrainAttributeHead")
    caps = {c["inputs"]["stop_at"]: k for k, c in _of(api, "AVICaptureLatentAtStep")}
    assert train["inputs"]["original"] == [caps[0.8], 0] and train["inputs"]["target"] == [caps[0.5], 0]
    assert train["inputs"]["dataset"] == ""
    assert (train["inputs"]["epochs"], train["inputs"]["batch_size"], train["inputs"]["learning_rate"]) == (
        5,
        256,
        0.001,
    )
    ((_, preview),) = _of(api, "PreviewImage")
    assert preview["inputs"]["images"][1] == 1, "the loss plot output"


def test_build_dataset_increments_the_seed_and_appends():
    ui = _ui(REPO_ROOT / "workflows" / "avi_build_dataset.json")
    seed = next(n for n in ui["nodes"] if n["type"] == "PrimitiveInt" and n["title"].startswith("seed"))
    assert seed["widgets_values"][1] == "increment"
    api = _api("avi_build_dataset")
    ((_, append),) = _of(api, "AVIAppendToDataset")
    caps = {c["inputs"]["stop_at"]: k for k, c in _of(api, "AVICaptureLatentAtStep")}
    assert append["inputs"]["original"] == [caps[0.8], 0] and append["inputs"]["target"] == [caps[0.5], 0]
    train = _api("avi_train_from_dataset")
    ((_, node),) = _of(train, "AVITrainAttributeHead")
    assert node["inputs"]["dataset"] == append["inputs"]["dataset"]
    assert "original" not in node["inputs"] and "target" not in node["inputs"]


def test_template_browser_layout():
    """The host lists custom_nodes/<pack>/workflows/*.json (top level only) as the pack's templates: every
    top-level file must be a UI workflow, and the API twins must stay out of it."""
    for path in WORKFLOWS:
        assert "nodes" in _ui(path) and "links" in _ui(path)
    for path in API_DIR.glob("*.json"):
        assert "nodes" not in json.loads(path.read_text(encoding="utf-8"))
    host = os.environ.get("COMFYUI_DIR")
    if host and (Path(host) / "app" / "custom_node_manager.py").is_file():
        source = (Path(host) / "app" / "custom_node_manager.py").read_text(encoding="utf-8")
        assert '"workflows"' in source, "the host no longer serves custom_nodes/<pack>/workflows as templates"


_HOST_PROBE = r"""
import asyncio, json, sys
sys.argv = [sys.argv[0], "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()
import nodes
asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
names = json.loads(sys.stdin.read())
out = {}
for name in names:
    cls = nodes.NODE_CLASS_MAPPINGS.get(name)
    if cls is None:
        continue
    types = cls.INPUT_TYPES()
    inputs = []
    for section in ("required", "optional"):
        for key, entry in types.get(section, {}).items():
            kind, opts = entry[0], dict(entry[1]) if len(entry) > 1 else {}
            if isinstance(kind, (list, tuple)):
                opts["values"], kind = list(kind), "COMBO"
            opts = {k: v for k, v in opts.items() if isinstance(v, (int, float, str, bool, list))}
            inputs.append([key, str(kind), opts])
    outputs = [str(t) for t in cls.RETURN_TYPES]
    out[name] = {"inputs": inputs, "outputs": outputs}
print("PROBE" + json.dumps(out))
"""


def test_core_nodes_match_the_real_host(tool):
    host = os.environ.get("COMFYUI_DIR", "").strip()
    if not host:
        pytest.skip("set COMFYUI_DIR to a ComfyUI checkout (with its .venv) to check the core nodes against it")
    python = Path(host) / ".venv" / "bin" / "python"
    if not python.is_file():
        python = Path(sys.executable)
    proc = subprocess.run(
        [str(python), "-c", _HOST_PROBE],
        input=json.dumps(sorted(CORE_NODE_NAMES)),
        cwd=host,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE")), None)
    assert line, f"host probe failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    real = json.loads(line[len("PROBE") :])
    assert set(real) == CORE_NODE_NAMES, f"missing in the host: {CORE_NODE_NAMES - set(real)}"
    for name, spec in tool.CORE_NODES.items():
        got = real[name]
        assert [i[0] for i in got["inputs"]] == [i[0] for i in spec["inputs"]], name
        assert got["outputs"] == [o[1] for o in spec["outputs"]], name
        for (iname, kind, opts), (_, real_kind, real_opts) in zip(spec["inputs"], got["inputs"], strict=True):
            assert real_kind == kind, f"{name}.{iname}: {real_kind} != {kind}"
            for key in ("min", "max", "default", "control_after_generate"):
                if key in opts:
                    assert real_opts.get(key) == opts[key], f"{name}.{iname}.{key}"
            values = opts.get("values")
            if isinstance(values, list):
                assert real_opts["values"] == values, f"{name}.{iname}"
            elif values == "<host sampler list>":
                assert tool.SAMPLER in real_opts["values"]
            elif values == "<host scheduler list>":
                assert tool.SCHEDULER in real_opts["values"]


PRE_V3 = "bd965c7"
"""The last commit whose nodes were V1 classes: the workflows saved then must load unchanged."""


def _git_show(revision: str, path: str) -> str | None:
    try:
        run = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "show", f"{revision}:{path}"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return run.stdout if run.returncode == 0 else None


@pytest.mark.parametrize(
    "path",
    [p for p in WORKFLOWS + sorted(API_DIR.glob("*.json")) if p.stem not in BOUNDARY_WORKFLOWS],  # boundary: newer
    ids=lambda p: p.stem,
)
def test_the_workflows_are_the_ones_saved_with_the_v1_nodes(path):
    """The V3 nodes keep every node id and input, so the shipped files did not need to change at all (the page
    check loads these same files, and the pre-V3 ones from git, in the real page: tests/page)."""
    rel = path.relative_to(REPO_ROOT).as_posix()
    before = _git_show(PRE_V3, rel)
    if before is None:
        pytest.skip(f"git history with {PRE_V3} is not available here")
    assert path.read_text(encoding="utf-8") == before, f"{rel} changed since {PRE_V3}"
