"""Build the pack's example workflows: ComfyUI UI-format files and their API-format twins.

    python tools/build_workflows.py            # (re)write workflows/*.json and workflows/api/*.json
    python tools/build_workflows.py --check    # exit 1 when the committed files differ from what this builds
    COMFYUI_DIR=/path/to/ComfyUI /path/to/ComfyUI/.venv/bin/python tools/build_workflows.py --node-info [--check]
                                               # (re)write (or check) tools/node_info.json from the real host

The UI files (workflows/*.json, format version 0.4, what the page saves and loads by drag and drop) are what
artists use; ComfyUI's template browser lists a custom pack's `workflows/*.json` (the host's
app/custom_node_manager.py accepts the folder names example_workflows, example, examples, workflow and
workflows; only the top level is listed, so the API twins in workflows/api/ stay out of the browser).
The API twins (what the page's "Export (API)" writes and the /prompt endpoint takes) are built from the same
description, so the two never drift apart.

The pack's nodes are V3 nodes (comfy_api), which only the host can import. Their descriptions come from
tools/node_info.json: what the host's /object_info gives for them (GET_NODE_INFO_V1), with the host's own lists
(samplers, schedulers, head files) replaced by placeholders. `--node-info` rewrites it with the host's
python; tests/host/test_node_schemas_host.py checks that it is current. So building and checking the
workflows, and the host-free tests that read the snapshot, need no host.

Widget values are given by input name here and placed in input order, with the frontend's hidden
`control_after_generate` value after every INT that has one (inputs declaring it, and INTs named seed or
noise_seed, as the frontend adds it to those on its own).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS_DIR = REPO_ROOT / "workflows"
API_DIR = WORKFLOWS_DIR / "api"
FRONTEND_VERSION = "1.27.10"
"""The comfyui-frontend-package the workflows were checked against (the host's pinned version)."""

CHECKPOINT = "v2-1_512-ema-pruned.safetensors"
"""The official Stable Diffusion 2.1 base (512 px) file name."""

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
FRONTEND_ONLY = {"Note", "MarkdownNote"}
"""Nodes that exist only in the page (never sent to the server, absent from API workflows)."""

_SAMPLERS = "<host sampler list>"
_SCHEDULERS = "<host scheduler list>"

# The host's core nodes these workflows use: inputs in INPUT_TYPES order, as (name, type, options).
# Checked against the real host's INPUT_TYPES by tests/host/test_workflows_host.py.
CORE_NODES: dict[str, dict[str, Any]] = {
    "CheckpointLoaderSimple": {
        "display": "Load Checkpoint",
        "inputs": [("ckpt_name", "COMBO", {"values": "<checkpoints>"})],
        "outputs": [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")],
    },
    "CLIPTextEncode": {
        "display": "CLIP Text Encode (Prompt)",
        "inputs": [("text", "STRING", {"multiline": True}), ("clip", "CLIP", {})],
        "outputs": [("CONDITIONING", "CONDITIONING")],
    },
    "EmptyLatentImage": {
        "display": "Empty Latent Image",
        "inputs": [
            ("width", "INT", {"default": 512, "min": 16, "max": 16384, "step": 8}),
            ("height", "INT", {"default": 512, "min": 16, "max": 16384, "step": 8}),
            ("batch_size", "INT", {"default": 1, "min": 1, "max": 4096}),
        ],
        "outputs": [("LATENT", "LATENT")],
    },
    "KSamplerAdvanced": {
        "display": "KSampler (Advanced)",
        "inputs": [
            ("model", "MODEL", {}),
            ("add_noise", "COMBO", {"values": ["enable", "disable"]}),
            ("noise_seed", "INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}),
            ("steps", "INT", {"default": 20, "min": 1, "max": 10000}),
            ("cfg", "FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}),
            ("sampler_name", "COMBO", {"values": _SAMPLERS}),
            ("scheduler", "COMBO", {"values": _SCHEDULERS}),
            ("positive", "CONDITIONING", {}),
            ("negative", "CONDITIONING", {}),
            ("latent_image", "LATENT", {}),
            ("start_at_step", "INT", {"default": 0, "min": 0, "max": 10000}),
            ("end_at_step", "INT", {"default": 10000, "min": 0, "max": 10000}),
            ("return_with_leftover_noise", "COMBO", {"values": ["disable", "enable"]}),
        ],
        "outputs": [("LATENT", "LATENT")],
    },
    "VAEDecode": {
        "display": "VAE Decode",
        "inputs": [("samples", "LATENT", {}), ("vae", "VAE", {})],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "SaveImage": {
        "display": "Save Image",
        "inputs": [("images", "IMAGE", {}), ("filename_prefix", "STRING", {"default": "ComfyUI"})],
        "outputs": [],
    },
    "PreviewImage": {
        "display": "Preview Image",
        "inputs": [("images", "IMAGE", {})],
        "outputs": [],
    },
    "PrimitiveInt": {
        "display": "Int",
        "inputs": [
            ("value", "INT", {"min": -sys.maxsize, "max": sys.maxsize, "control_after_generate": True}),
        ],
        "outputs": [("INT", "INT")],
    },
    "PreviewAny": {
        "display": "Preview Any",
        "inputs": [("source", "*", {})],
        "outputs": [],
    },
}

# Default (minimum) sizes the page gives these nodes (frontend 1.27.10), widened where text needs room.
SIZES: dict[str, tuple[float, float]] = {
    "AVICaptureLatentAtStep": (300, 330),
    "AVIMerge": (300, 180),
    "AVITrainAttributeHead": (400, 430),
    "AVILoadAttributeHead": (300, 80),
    "AVIAppendToDataset": (300, 80),
    "CheckpointLoaderSimple": (360, 100),
    "CLIPTextEncode": (400, 160),
    "EmptyLatentImage": (300, 110),
    "KSamplerAdvanced": (320, 340),
    "VAEDecode": (200, 50),
    "SaveImage": (420, 470),
    "PreviewImage": (420, 360),
    "PrimitiveInt": (300, 82),
    "PreviewAny": (300, 160),
    "Note": (400, 240),
    "MarkdownNote": (400, 240),
}


NODE_INFO_PATH = REPO_ROOT / "tools" / "node_info.json"
"""The pack's node descriptions as the host gives them (see the module docstring)."""
HOST_LISTS = {
    "sampler_name": _SAMPLERS,
    "scheduler": _SCHEDULERS,
    "head_name": "<avi_heads files>",
    "direction_name": "<avi_directions files>",  # hspace
}
HOST_LISTS["boundary_name"] = "<avi_boundaries files>"  # boundary
"""Combo inputs whose options are the host's (its samplers, its schedulers, the files in models/avi_heads)."""


def load_pack():
    """The repository root imported as the package `avi_pack` (as tests/conftest.py does)."""
    if "avi_pack" in sys.modules:
        return sys.modules["avi_pack"]
    spec = importlib.util.spec_from_file_location(
        "avi_pack", REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["avi_pack"] = module
    spec.loader.exec_module(module)
    return module


def normalise_node_info(info: dict[str, Any]) -> dict[str, Any]:
    """A node's GET_NODE_INFO_V1() without what depends on the installation: the module path, and the options of
    the combos in HOST_LISTS (replaced by placeholders)."""
    out = json.loads(json.dumps(info, default=str))
    out.pop("python_module", None)
    for section in ("required", "optional"):
        for name, entry in out["input"].get(section, {}).items():
            if name in HOST_LISTS and len(entry) > 1 and "options" in entry[1]:
                entry[1]["options"] = HOST_LISTS[name]
    return out


def live_node_info() -> dict[str, dict[str, Any]]:
    """{node id: normalised GET_NODE_INFO_V1()} of the pack's nodes, from the running host (needs its python)."""
    import asyncio

    pack = load_pack()
    extension = asyncio.run(pack.comfy_entrypoint())
    classes = asyncio.run(extension.get_node_list())
    if pack.nodes.IMPORT_ERRORS:
        raise RuntimeError(f"node modules failed to import: {pack.nodes.IMPORT_ERRORS}")
    return {cls.GET_SCHEMA().node_id: normalise_node_info(cls.GET_NODE_INFO_V1()) for cls in classes}


def read_node_info() -> dict[str, dict[str, Any]]:
    """The committed snapshot, tools/node_info.json."""
    return json.loads(NODE_INFO_PATH.read_text(encoding="utf-8"))


def pack_node_spec(info: dict[str, Any]) -> dict[str, Any]:
    """A pack node's inputs (required then optional, in input order) and outputs, as CORE_NODES, from its info."""
    inputs = []
    for section in ("required", "optional"):
        for name in info["input_order"].get(section, []):
            entry = info["input"][section][name]
            kind = entry[0]
            opts = dict(entry[1]) if len(entry) > 1 else {}
            if kind == "COMBO":
                opts["values"] = opts.pop("options")
            inputs.append((name, kind, opts))
    return {
        "display": info["display_name"],
        "inputs": inputs,
        "optional": sorted(info["input_order"].get("optional", [])),
        "outputs": list(zip(info["output_name"], info["output"], strict=True)),
    }


def node_specs() -> dict[str, dict[str, Any]]:
    """Specs of every node a workflow may use: the host's core nodes above and the pack's own (the snapshot)."""
    specs = dict(CORE_NODES)
    for node_id, info in read_node_info().items():
        specs[node_id] = pack_node_spec(info)
    return specs


def is_widget(kind: str, opts: dict[str, Any]) -> bool:
    return kind in WIDGET_TYPES and not opts.get("forceInput", False)


def has_control_widget(name: str, kind: str, opts: dict[str, Any]) -> bool:
    """Whether the frontend adds a control_after_generate combo after this widget."""
    if kind == "INT":
        return bool(opts.get("control_after_generate", name in ("seed", "noise_seed")))
    if kind == "COMBO":
        return bool(opts.get("control_after_generate", False))
    return False


def widget_order(spec: dict[str, Any]) -> list[tuple[str, bool]]:
    """[(widget name, is a control_after_generate value)] in widgets_values order."""
    out: list[tuple[str, bool]] = []
    for name, kind, opts in spec["inputs"]:
        if is_widget(kind, opts):
            out.append((name, False))
            if has_control_widget(name, kind, opts):
                out.append((name, True))
    return out


def ui_inputs(spec: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """[(name, type, is widget)] in the order the page lists a node's inputs: sockets first, then widgets."""
    sockets = [(n, k, False) for n, k, o in spec["inputs"] if not is_widget(k, o)]
    widgets = [(n, k, True) for n, k, o in spec["inputs"] if is_widget(k, o)]
    return sockets + widgets


@dataclass
class Node:
    id: int
    type: str
    pos: tuple[float, float]
    values: dict[str, Any]
    title: str | None = None
    size: tuple[float, float] | None = None
    control: dict[str, str] = field(default_factory=dict)
    color: str | None = None
    bgcolor: str | None = None


@dataclass
class Link:
    id: int
    src: int
    src_slot: int
    dst: int
    dst_name: str
    type: str


class Workflow:
    """A workflow described once, written as a UI graph and as an API prompt."""

    def __init__(self, name: str, specs: dict[str, dict[str, Any]]):
        self.name = name
        self.specs = specs
        self.nodes: list[Node] = []
        self.links: list[Link] = []
        self.groups: list[dict[str, Any]] = []

    def add(
        self,
        type_: str,
        pos: tuple[float, float],
        values: dict[str, Any] | None = None,
        *,
        title: str | None = None,
        size: tuple[float, float] | None = None,
        control: dict[str, str] | None = None,
        color: str | None = None,
        bgcolor: str | None = None,
    ) -> Node:
        if type_ not in self.specs and type_ not in FRONTEND_ONLY:
            raise KeyError(f"unknown node type {type_}")
        node = Node(
            len(self.nodes) + 1, type_, pos, dict(values or {}), title, size, dict(control or {}), color, bgcolor
        )
        self.nodes.append(node)
        return node

    def note(
        self, text: str, pos: tuple[float, float], size: tuple[float, float] = (400, 240), title: str = "Note"
    ) -> Node:
        return self.add("Note", pos, {"text": text}, title=title, size=size, color="#432", bgcolor="#653")

    def connect(self, src: Node, src_slot: int, dst: Node, dst_name: str) -> None:
        out_type = self.specs[src.type]["outputs"][src_slot][1]
        self.links.append(Link(len(self.links) + 1, src.id, src_slot, dst.id, dst_name, out_type))

    def group(self, title: str, bounding: tuple[float, float, float, float], color: str = "#3f789e") -> None:
        self.groups.append(
            {
                "id": len(self.groups) + 1,
                "title": title,
                "bounding": list(bounding),
                "color": color,
                "font_size": 24,
                "flags": {},
            }
        )

    # --- serialisation ---------------------------------------------------------------------------------

    def _widget_values(self, node: Node) -> list[Any]:
        if node.type in FRONTEND_ONLY:
            return [node.values["text"]]
        spec = self.specs[node.type]
        values = []
        for name, is_control in widget_order(spec):
            if is_control:
                values.append(node.control.get(name, "fixed"))
            else:
                values.append(node.values[name])
        return values

    def _order(self) -> dict[int, int]:
        """Execution order (a topological order, notes first), as the page stores it."""
        deps = {n.id: {lk.src for lk in self.links if lk.dst == n.id} for n in self.nodes}
        done: list[int] = []
        while len(done) < len(self.nodes):
            ready = [n.id for n in self.nodes if n.id not in done and deps[n.id] <= set(done)]
            if not ready:
                raise ValueError(f"{self.name}: the graph has a cycle")
            done.extend(sorted(ready))
        return {node_id: i for i, node_id in enumerate(done)}

    def check(self) -> None:
        """Every widget has a value, every socket input of a node is connected at most once."""
        for node in self.nodes:
            if node.type in FRONTEND_ONLY:
                continue
            spec = self.specs[node.type]
            widget_names = [n for n, _, _ in ui_inputs(spec) if _]
            missing = [n for n in widget_names if n not in node.values]
            unknown = [n for n in node.values if n not in widget_names]
            if missing or unknown:
                raise ValueError(f"{self.name}: node {node.id} {node.type}: missing {missing}, unknown {unknown}")
            seen = [lk.dst_name for lk in self.links if lk.dst == node.id]
            if len(seen) != len(set(seen)):
                raise ValueError(f"{self.name}: node {node.id} has an input connected twice")

    def ui(self) -> dict[str, Any]:
        self.check()
        order = self._order()
        nodes_json = []
        for node in self.nodes:
            item: dict[str, Any] = {
                "id": node.id,
                "type": node.type,
                "pos": list(node.pos),
                "size": list(node.size or SIZES[node.type]),
                "flags": {},
                "order": order[node.id],
                "mode": 0,
                "inputs": [],
                "outputs": [],
                "properties": {} if node.type in FRONTEND_ONLY else {"Node name for S&R": node.type},
                "widgets_values": self._widget_values(node),
            }
            if node.title:
                item["title"] = node.title
            if node.color:
                item["color"] = node.color
            if node.bgcolor:
                item["bgcolor"] = node.bgcolor
            if node.type not in FRONTEND_ONLY:
                spec = self.specs[node.type]
                for name, kind, widget in ui_inputs(spec):
                    link = next((lk.id for lk in self.links if lk.dst == node.id and lk.dst_name == name), None)
                    entry: dict[str, Any] = {"name": name, "localized_name": name, "type": kind, "link": link}
                    if widget:
                        entry["widget"] = {"name": name}
                    if name in spec.get("optional", ()):
                        entry["shape"] = 7
                    item["inputs"].append(entry)
                for slot, (name, kind) in enumerate(spec["outputs"]):
                    links = [lk.id for lk in self.links if lk.src == node.id and lk.src_slot == slot]
                    item["outputs"].append(
                        {
                            "name": name,
                            "localized_name": name,
                            "type": kind,
                            "slot_index": slot,
                            "links": links,
                        }
                    )
            nodes_json.append(item)
        links_json = []
        for lk in self.links:
            dst = next(n for n in self.nodes if n.id == lk.dst)
            slot = [name for name, _, _ in ui_inputs(self.specs[dst.type])].index(lk.dst_name)
            links_json.append([lk.id, lk.src, lk.src_slot, lk.dst, slot, lk.type])
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"avi-attribute-vectors/{self.name}")),
            "revision": 0,
            "last_node_id": max(n.id for n in self.nodes),
            "last_link_id": max((lk.id for lk in self.links), default=0),
            "nodes": nodes_json,
            "links": links_json,
            "groups": self.groups,
            "config": {},
            "extra": {"ds": {"scale": 0.55, "offset": [40, 60]}, "frontendVersion": FRONTEND_VERSION},
            "version": 0.4,
        }

    def api(self) -> dict[str, Any]:
        self.check()
        prompt: dict[str, Any] = {}
        for node in self.nodes:
            if node.type in FRONTEND_ONLY:
                continue
            spec = self.specs[node.type]
            inputs: dict[str, Any] = {}
            for name, _kind, widget in ui_inputs(spec):
                link = next((lk for lk in self.links if lk.dst == node.id and lk.dst_name == name), None)
                if link is not None:
                    inputs[name] = [str(link.src), link.src_slot]
                elif widget:
                    inputs[name] = node.values[name]
            prompt[str(node.id)] = {
                "inputs": inputs,
                "class_type": node.type,
                "_meta": {"title": node.title or spec["display"]},
            }
        return prompt


# --- the workflows ------------------------------------------------------------------------------------------

ORIGINAL_PROMPT = "a close-up portrait photo of a person, natural light, detailed face, 50mm"
TARGET_PROMPT = "a close-up portrait photo of a smiling person, natural light, detailed face, 50mm"
NEGATIVE_PROMPT = "blurry, lowres, deformed, watermark, text"
ATTRIBUTE = "smile"
SAMPLER = "euler"  # deterministic, like the paper's DDIM (eta 0)
SCHEDULER = "normal"
CFG = 7.5
STEPS = 50
SEED = 42

NOTE_COLORS = {"color": "#432", "bgcolor": "#653"}


def _base(wf: Workflow, *, batch: int, seed_control: str, x0: float = 0.0) -> dict[str, Node]:
    """Checkpoint, prompts, latent, shared seed and steps, and the two captures (x at 0.8T, z at 0.5T)."""
    n: dict[str, Node] = {}
    n["ckpt"] = wf.add("CheckpointLoaderSimple", (x0, 330), {"ckpt_name": CHECKPOINT}, size=(380, 100))
    n["seed"] = wf.add(
        "PrimitiveInt",
        (x0, 480),
        {"value": SEED},
        title="seed (shared by every sampler)",
        control={"value": seed_control},
        size=(380, 82),
    )
    n["steps"] = wf.add(
        "PrimitiveInt",
        (x0, 610),
        {"value": STEPS},
        title="steps (shared by every sampler)",
        control={"value": "fixed"},
        size=(380, 82),
    )
    n["latent"] = wf.add(
        "EmptyLatentImage", (x0, 740), {"width": 512, "height": 512, "batch_size": batch}, size=(380, 110)
    )
    n["pos"] = wf.add(
        "CLIPTextEncode",
        (x0 + 430, 0),
        {"text": ORIGINAL_PROMPT},
        title="Original prompt (x)",
        color="#232",
        bgcolor="#353",
    )
    n["target"] = wf.add(
        "CLIPTextEncode",
        (x0 + 430, 210),
        {"text": TARGET_PROMPT},
        title="Target prompt (z): the attribute",
        color="#223",
        bgcolor="#335",
    )
    n["neg"] = wf.add(
        "CLIPTextEncode",
        (x0 + 430, 420),
        {"text": NEGATIVE_PROMPT},
        title="Negative prompt",
        color="#322",
        bgcolor="#533",
    )
    for key in ("pos", "target", "neg"):
        wf.connect(n["ckpt"], 1, n[key], "clip")
    capture_values = {
        "add_noise": "enable",
        "noise_seed": SEED,
        "steps": STEPS,
        "cfg": CFG,
        "sampler_name": SAMPLER,
        "scheduler": SCHEDULER,
        "stop_step": 0,
    }
    n["cap_x"] = wf.add(
        "AVICaptureLatentAtStep",
        (x0 + 880, 0),
        {**capture_values, "stop_at": 0.8},
        title="Capture x: original prompt at 0.8T",
        control={"noise_seed": "fixed"},
    )
    n["cap_z"] = wf.add(
        "AVICaptureLatentAtStep",
        (x0 + 880, 380),
        {**capture_values, "stop_at": 0.5},
        title="Capture z: target prompt at 0.5T",
        control={"noise_seed": "fixed"},
    )
    for key, prompt in (("cap_x", "pos"), ("cap_z", "target")):
        wf.connect(n["ckpt"], 0, n[key], "model")
        wf.connect(n[prompt], 0, n[key], "positive")
        wf.connect(n["neg"], 0, n[key], "negative")
        wf.connect(n["latent"], 0, n[key], "latent_image")
        wf.connect(n["seed"], 0, n[key], "noise_seed")
        wf.connect(n["steps"], 0, n[key], "steps")
    wf.group("Model, prompts, seed", (x0 - 20, -80, 870, 960))
    wf.group("Capture x 0.8T, z 0.5T", (x0 + 860, -80, 340, 820), color="#8A8")
    return n


def _resume(wf: Workflow, n: dict[str, Node], latent: Node, pos: tuple[float, float], title: str) -> Node:
    """A KSamplerAdvanced resuming at x's captured step with the original prompt, noise off."""
    ks = wf.add(
        "KSamplerAdvanced",
        pos,
        {
            "add_noise": "disable",
            "noise_seed": SEED,
            "steps": STEPS,
            "cfg": CFG,
            "sampler_name": SAMPLER,
            "scheduler": SCHEDULER,
            "start_at_step": 10,
            "end_at_step": 10000,
            "return_with_leftover_noise": "disable",
        },
        title=title,
        control={"noise_seed": "fixed"},
    )
    wf.connect(n["ckpt"], 0, ks, "model")
    wf.connect(n["pos"], 0, ks, "positive")
    wf.connect(n["neg"], 0, ks, "negative")
    wf.connect(latent, 0, ks, "latent_image")
    wf.connect(n["seed"], 0, ks, "noise_seed")
    wf.connect(n["steps"], 0, ks, "steps")
    wf.connect(n["cap_x"], 1, ks, "start_at_step")
    return ks


def _decode(wf: Workflow, n: dict[str, Node], latent: Node, pos: tuple[float, float]) -> Node:
    dec = wf.add("VAEDecode", pos)
    wf.connect(latent, 0, dec, "samples")
    wf.connect(n["ckpt"], 2, dec, "vae")
    return dec


CAPTURE_NOTE = (
    "x and z come from the SAME seed: the 'seed' box feeds both captures (and every sampler). "
    "Capture x stops at the step nearest 0.8T (step 10 of 50 with the normal scheduler), Capture z nearest "
    "0.5T (step 24). "
    "Keep cfg, sampler and scheduler equal in all samplers."
)


def learn_attribute(specs: dict[str, dict[str, Any]]) -> Workflow:
    wf = Workflow("avi_learn_attribute", specs)
    wf.note(
        "LEARN AN ATTRIBUTE (AVI)\n\n"
        "1. Load Checkpoint: pick Stable Diffusion 2.1 base (v2-1_512-ema-pruned.safetensors).\n"
        "2. Original prompt: the subject. Target prompt: the same words plus the attribute "
        "(here: 'smiling').\n"
        "3. Empty Latent Image: 512 x 512; batch_size = how many pairs this run trains on (8 here; the paper "
        "used 500-5000, see the 'build a dataset' workflow).\n"
        "4. Train Attribute Head: set name (the file models/avi_heads/<name>.safetensors) and a "
        "description. The paper's settings are the defaults.\n"
        "5. Queue. The loss plot shows the four loss terms; then open 'apply an attribute'.\n\n" + CAPTURE_NOTE,
        (0, -20),
        size=(380, 300),
        title="Read me: learn an attribute",
    )
    n = _base(wf, batch=8, seed_control="fixed")
    train = wf.add(
        "AVITrainAttributeHead",
        (1240, 0),
        {
            "name": ATTRIBUTE,
            "description": f"'{ORIGINAL_PROMPT}' -> '{TARGET_PROMPT}'",
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
            "dataset": "",
        },
        control={"seed": "fixed"},
    )
    wf.connect(n["cap_x"], 0, train, "original")
    wf.connect(n["cap_z"], 0, train, "target")
    plot = wf.add("PreviewImage", (1680, 0), title="Loss plot (L1..L4 per step)", size=(520, 430))
    wf.connect(train, 1, plot, "images")
    wf.note(
        "To train on a dataset instead (many queue runs of 'build a dataset'): disconnect 'original' and "
        "'target' and type the dataset's name into 'dataset'.",
        (1240, 470),
        size=(400, 120),
        title="Note: training from a dataset",
    )
    wf.group("Train the head: models/avi_heads/<name>.safetensors", (1220, -80, 1000, 720), color="#A88")
    return wf


def apply_attribute(specs: dict[str, dict[str, Any]]) -> Workflow:
    wf = Workflow("avi_apply_attribute", specs)
    wf.note(
        "APPLY AN ATTRIBUTE (AVI)\n\n"
        "1. Load Checkpoint: the model the head was trained with (SD 2.1 base, 512 x 512).\n"
        "2. Prompts: the same original / target pair the head learned (you may change the subject).\n"
        "3. Load Attribute Head: pick the head (models/avi_heads; press R after copying one in).\n"
        "4. AVI Merge: rho = strength (0 = none, 1 = the paper's edit, up to 2 extrapolates); "
        "k = 0 uses the head's; mode paper = Algorithm 1, anchored = rho 0 gives back x exactly.\n"
        "5. Queue: the unedited image (same seed, same x) and the edit appear side by side.\n"
        "Change the seed for another image.\n\n" + CAPTURE_NOTE,
        (0, -20),
        size=(380, 300),
        title="Read me: apply an attribute",
    )
    n = _base(wf, batch=1, seed_control="fixed")
    head = wf.add("AVILoadAttributeHead", (1240, 0), {"head_name": f"{ATTRIBUTE}.safetensors"})
    info = wf.add("PreviewAny", (1240, 120), title="Head info", size=(300, 200))
    wf.connect(head, 1, info, "source")
    merge = wf.add("AVIMerge", (1240, 360), {"rho": 1.0, "k": 0, "mode": "paper", "rho_list": ""})
    wf.connect(n["cap_x"], 0, merge, "original")
    wf.connect(n["cap_z"], 0, merge, "target")
    wf.connect(head, 0, merge, "head")
    edited = _resume(wf, n, merge, (1600, 0), "Resume the edit (original prompt)")
    plain = _resume(wf, n, n["cap_x"], (1600, 400), "Resume x unedited (original prompt)")
    dec_edit = _decode(wf, n, edited, (1960, 0))
    dec_plain = _decode(wf, n, plain, (1960, 400))
    save_plain = wf.add("SaveImage", (2200, 0), {"filename_prefix": "AVI/unedited"}, title="Unedited", size=(420, 480))
    save_edit = wf.add("SaveImage", (2640, 0), {"filename_prefix": "AVI/edited"}, title="Edited", size=(420, 480))
    wf.connect(dec_plain, 0, save_plain, "images")
    wf.connect(dec_edit, 0, save_edit, "images")
    wf.group("Merge with the head", (1220, -80, 360, 660), color="#A88")
    wf.group("Resume both at x's step, no new noise", (1580, -80, 600, 840), color="#88A")
    wf.group("Unedited | Edited", (2180, -80, 900, 600), color="#b58b2a")
    return wf


def rho_sweep(specs: dict[str, dict[str, Any]]) -> Workflow:
    wf = Workflow("avi_rho_sweep", specs)
    wf.note(
        "RHO SWEEP (AVI)\n\n"
        "One queue gives the strip of edits at several strengths, to pick rho by eye "
        "(the paper's Figure 7).\n"
        "1. Set the checkpoint, prompts and head as in 'apply an attribute'.\n"
        "2. AVI Merge > rho_list: the values, comma separated (here 0, 0.25, 0.5, 0.75, 1; up to 2). "
        "rho is ignored while rho_list is filled.\n"
        "3. The whole sweep is one batch: the sampler resumes it and Save Image shows it in order.\n"
        "mode anchored makes the rho = 0 image the unedited one.\n\n" + CAPTURE_NOTE,
        (0, -20),
        size=(380, 300),
        title="Read me: rho sweep",
    )
    n = _base(wf, batch=1, seed_control="fixed")
    head = wf.add("AVILoadAttributeHead", (1240, 0), {"head_name": f"{ATTRIBUTE}.safetensors"})
    merge = wf.add(
        "AVIMerge",
        (1240, 140),
        {
            "rho": 1.0,
            "k": 0,
            "mode": "paper",
            "rho_list": "0, 0.25, 0.5, 0.75, 1",
        },
        title="AVI Merge (rho sweep)",
    )
    wf.connect(n["cap_x"], 0, merge, "original")
    wf.connect(n["cap_z"], 0, merge, "target")
    wf.connect(head, 0, merge, "head")
    ks = _resume(wf, n, merge, (1600, 0), "Resume the sweep (original prompt)")
    dec = _decode(wf, n, ks, (1960, 0))
    save = wf.add("SaveImage", (2200, 0), {"filename_prefix": "AVI/rho_sweep"}, title="rho sweep", size=(900, 480))
    wf.connect(dec, 0, save, "images")
    wf.group("Merge at every rho of the list, resume as one batch", (1220, -80, 1900, 600), color="#A88")
    return wf


def build_dataset(specs: dict[str, dict[str, Any]]) -> Workflow:
    wf = Workflow("avi_build_dataset", specs)
    wf.note(
        "BUILD A DATASET (AVI)\n\n"
        "Each queue run adds its pairs to models/avi_datasets/<dataset>/ as one new file.\n"
        "1. Set checkpoint and prompts as for 'learn an attribute'.\n"
        "2. seed is set to 'increment': every run uses new seeds.\n"
        "3. Set the run count next to the Queue/Run button (e.g. 125 runs x batch 4 = 500 pairs; the paper "
        "used 500 pairs per prompt pair, 5000 for a single pair) and queue.\n"
        "4. Then train: 'train from a dataset' workflow, or type the dataset name into "
        "Train Attribute Head.\n\n"
        "Several ComfyUI instances may fill the same dataset at once. A damaged file is skipped with a "
        "warning at training time.\n\n" + CAPTURE_NOTE,
        (0, -20),
        size=(380, 300),
        title="Read me: build a dataset",
    )
    n = _base(wf, batch=4, seed_control="increment")
    append = wf.add("AVIAppendToDataset", (1240, 0), {"dataset": ATTRIBUTE})
    wf.connect(n["cap_x"], 0, append, "original")
    wf.connect(n["cap_z"], 0, append, "target")
    show = wf.add("PreviewAny", (1240, 130), title="What was written", size=(400, 200))
    wf.connect(append, 0, show, "source")
    wf.group("Append to the dataset", (1220, -80, 440, 440), color="#A88")
    return wf


def train_from_dataset(specs: dict[str, dict[str, Any]]) -> Workflow:
    wf = Workflow("avi_train_from_dataset", specs)
    wf.note(
        "TRAIN FROM A DATASET (AVI)\n\n"
        "1. dataset: the name used in 'build a dataset' (a folder in models/avi_datasets).\n"
        "2. name: the head file to write (models/avi_heads/<name>.safetensors).\n"
        "3. Queue. No checkpoint is loaded: the pairs were captured already. Damaged dataset files are "
        "skipped with a warning in the console.",
        (0, -20),
        size=(380, 240),
        title="Read me: train from a dataset",
    )
    train = wf.add(
        "AVITrainAttributeHead",
        (430, 0),
        {
            "name": ATTRIBUTE,
            "description": f"'{ORIGINAL_PROMPT}' -> '{TARGET_PROMPT}'",
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
            "dataset": ATTRIBUTE,
        },
        control={"seed": "fixed"},
    )
    plot = wf.add("PreviewImage", (870, 0), title="Loss plot (L1..L4 per step)", size=(520, 430))
    wf.connect(train, 1, plot, "images")
    return wf


BUILDERS: dict[str, Callable[[dict[str, dict[str, Any]]], Workflow]] = {
    "avi_learn_attribute": learn_attribute,
    "avi_apply_attribute": apply_attribute,
    "avi_rho_sweep": rho_sweep,
    "avi_build_dataset": build_dataset,
    "avi_train_from_dataset": train_from_dataset,
}

# Each method's workflows live in tools/workflows_<method>.py and import their helpers from this module by name.
sys.modules.setdefault("build_workflows", sys.modules[__name__])
if str(REPO_ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "tools"))
from workflows_boundary import BOUNDARY_BUILDERS  # noqa: E402  (boundary)

BUILDERS.update(BOUNDARY_BUILDERS)  # boundary
from workflows_hspace import HSPACE_BUILDERS  # noqa: E402  # hspace

BUILDERS.update(HSPACE_BUILDERS)  # hspace


def build_all() -> dict[Path, str]:
    """{path: file text} of every UI workflow and API twin."""
    specs = node_specs()
    files: dict[Path, str] = {}
    for name, builder in BUILDERS.items():
        wf = builder(specs)
        files[WORKFLOWS_DIR / f"{name}.json"] = render(wf.ui())
        files[API_DIR / f"{name}.json"] = render(wf.api())
    return files


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _use_host() -> None:
    """Put $COMFYUI_DIR first on sys.path, CPU only, as the host tests do (tests/host/tiny_sd2.py)."""
    import os

    host = os.environ.get("COMFYUI_DIR", "").strip()
    if not host:
        raise SystemExit("--node-info needs COMFYUI_DIR (a ComfyUI checkout) and its python")
    sys.path.insert(0, str(Path(host).expanduser().resolve()))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    parser.add_argument(
        "--node-info", action="store_true", help="the node snapshot (tools/node_info.json) from the host, not workflows"
    )
    args = parser.parse_args(argv)
    if args.node_info:
        _use_host()
        files = {NODE_INFO_PATH: render(live_node_info())}
    else:
        files = build_all()
    stale = [p for p, text in files.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(REPO_ROOT)}")
        return 1 if stale else 0
    API_DIR.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.write_text(files[path], encoding="utf-8")
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
