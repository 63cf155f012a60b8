"""The example workflows run end to end through ComfyUI's real executor (set COMFYUI_DIR; see tiny_sd2).

Each API twin in workflows/api/ is validated by the host's execution.validate_prompt and run by
execution.PromptExecutor, with three swaps that no-download testing needs:

- CheckpointLoaderSimple -> a test node giving the tiny SD2-architecture model (tests/host/tiny_sd2.py),
  a stand-in CLIP and a small VAE (ComfyUI's own AutoencoderKL, narrow, with seeded weights);
- CLIPTextEncode -> a test node giving a random conditioning seeded by the prompt text;
- sizes and training widths made small: 128 x 128 images (16 x 16 latents), hidden 32, one epoch.

Everything else (the pack's nodes, KSamplerAdvanced, VAEDecode, SaveImage, PreviewImage, PrimitiveInt,
PreviewAny, the links between them) is the committed workflow as an artist would queue it. The runs go in
the order an artist would: learn -> apply -> rho sweep -> build a dataset (three queue runs) -> train from it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import math
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest
import tiny_sd2
import torch

pytestmark = pytest.mark.host

REPO_ROOT = Path(__file__).resolve().parents[2]
API_DIR = REPO_ROOT / "workflows" / "api"
IMAGE_SIZE = 128

VAE_CONFIG = {
    "params": {
        "embed_dim": 4,
        "ddconfig": {
            "double_z": True,
            "z_channels": 4,
            "resolution": IMAGE_SIZE,
            "in_channels": 3,
            "out_ch": 3,
            "ch": 32,
            "ch_mult": [1, 1, 1, 1],
            "num_res_blocks": 1,
            "attn_resolutions": [],
            "dropout": 0.0,
        },
    }
}


def tiny_vae(seed: int = 0):
    """A ComfyUI VAE (comfy.sd.VAE): SD's AutoencoderKL layout (8x down/up, 4 latent channels), 32 wide."""
    import comfy.ldm.models.autoencoder
    import comfy.sd

    with torch.inference_mode(False):
        module = comfy.ldm.models.autoencoder.AutoencoderKL(**copy.deepcopy(VAE_CONFIG["params"]))
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in module.named_parameters():
                if param.ndim >= 2:
                    values = torch.randn(param.shape, generator=generator) / math.sqrt(param[0].numel())
                elif "norm" in name and name.endswith("weight"):
                    values = torch.ones(param.shape)
                else:
                    values = torch.zeros(param.shape)
                param.copy_(values)
        state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    return comfy.sd.VAE(sd=state, config=copy.deepcopy(VAE_CONFIG))


class StandInClip:
    """What the test checkpoint gives as CLIP: only the random-conditioning node below accepts it."""


class AVITestTinyCheckpoint:
    """Test stand-in for CheckpointLoaderSimple: tiny SD2 UNet, stand-in CLIP, small VAE."""

    CATEGORY = "testing"
    FUNCTION = "load"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    _cache: dict[str, Any] = {}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": ("STRING", {"default": ""})}}

    def load(self, ckpt_name):
        if not self._cache:
            self._cache.update(model=tiny_sd2.tiny_model(seed=0), vae=tiny_vae(seed=0))
        return (self._cache["model"], StandInClip(), self._cache["vae"])


class AVITestRandomConditioning:
    """Test stand-in for CLIPTextEncode: a random conditioning seeded by the text (same text, same tensor)."""

    CATEGORY = "testing"
    FUNCTION = "encode"
    RETURN_TYPES = ("CONDITIONING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True}), "clip": ("CLIP",)}}

    def encode(self, text, clip):
        assert isinstance(clip, StandInClip)
        return (tiny_sd2.random_conditioning(seed=zlib.crc32(text.encode())),)


class FakeServer:
    """What execution.PromptExecutor needs of ComfyUI's PromptServer: it records the messages."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets_metadata: dict[str, Any] = {}
        self.messages: list[tuple[str, Any]] = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))

    def queue_updated(self):
        pass


@pytest.fixture(scope="module")
def host(pack):
    base = tiny_sd2.require_host()
    assert pack.nodes.host.register_model_folders() is True
    import execution
    import folder_paths

    import nodes as comfy_nodes

    failed = asyncio.run(comfy_nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    for core in ("PrimitiveInt", "PreviewAny"):
        assert core in comfy_nodes.NODE_CLASS_MAPPINGS, f"{core} missing; import failures: {failed}"
    logging.getLogger("avi.tests").info("host extra nodes that failed to import: %s", failed)
    added = {
        **tiny_sd2.avi_node_classes(pack),
        "AVITestTinyCheckpoint": AVITestTinyCheckpoint,
        "AVITestRandomConditioning": AVITestRandomConditioning,
    }
    saved = {k: comfy_nodes.NODE_CLASS_MAPPINGS.get(k) for k in added}
    comfy_nodes.NODE_CLASS_MAPPINGS.update(added)
    # Heads and datasets must land in the temporary models folder, never in the host tree.
    for folder in ("avi_heads", "avi_datasets"):
        first = Path(folder_paths.get_folder_paths(folder)[0]).resolve()
        assert first.is_relative_to(base.resolve()), f"{folder} would be written to {first}"
    yield {"base": base, "execution": execution, "folder_paths": folder_paths}
    for key, value in saved.items():
        if value is None:
            comfy_nodes.NODE_CLASS_MAPPINGS.pop(key, None)
        else:
            comfy_nodes.NODE_CLASS_MAPPINGS[key] = value


def load_api(name: str) -> dict[str, Any]:
    """A committed API workflow with the test swaps (model, text encoder, sizes, training width)."""
    prompt = json.loads((API_DIR / f"{name}.json").read_text(encoding="utf-8"))
    for node in prompt.values():
        kind, inputs = node["class_type"], node["inputs"]
        if kind == "CheckpointLoaderSimple":
            node["class_type"] = "AVITestTinyCheckpoint"
        elif kind == "CLIPTextEncode":
            node["class_type"] = "AVITestRandomConditioning"
        elif kind == "EmptyLatentImage":
            inputs["width"] = inputs["height"] = IMAGE_SIZE
        elif kind == "AVITrainAttributeHead":
            inputs["hidden"], inputs["epochs"] = 32, 1
    return prompt


def run(host, prompt: dict[str, Any]) -> dict[str, Any]:
    """Validate and execute like the server's prompt worker; returns the executor's history outputs."""
    execution = host["execution"]
    prompt_id = str(uuid.uuid4())
    valid = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
    assert valid[0], f"validation failed: {valid[1]} {json.dumps(valid[3], default=str)[:2000]}"
    server = FakeServer()
    executor = execution.PromptExecutor(server)
    executor.execute(prompt, prompt_id, {}, valid[2])
    errors = [data for event, data in server.messages if event == "execution_error"]
    assert executor.success and not errors, json.dumps(errors, default=str)[:4000]
    assert any(event == "execution_success" for event, _ in executor.status_messages)
    return executor.history_result["outputs"]


def node_id(prompt: dict[str, Any], class_type: str, title: str | None = None) -> str:
    ids = [
        k
        for k, v in prompt.items()
        if v["class_type"] == class_type and (title is None or v["_meta"]["title"] == title)
    ]
    assert len(ids) == 1, (class_type, title, ids)
    return ids[0]


def saved_images(host, outputs: dict[str, Any], node: str) -> list[Path]:
    folder_paths = host["folder_paths"]
    paths = []
    for item in outputs[node]["images"]:
        output = item["type"] == "output"
        root = folder_paths.get_output_directory() if output else folder_paths.get_temp_directory()
        paths.append(Path(root) / item["subfolder"] / item["filename"])
    assert all(p.is_file() for p in paths), paths
    return paths


def pixels(path: Path):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_learn_attribute_trains_and_saves_the_head(host, pack):
    prompt = load_api("avi_learn_attribute")
    outputs = run(host, prompt)
    head_path = Path(host["folder_paths"].get_folder_paths("avi_heads")[0]) / "smile.safetensors"
    assert head_path.is_file()
    head = pack.avi_core.load_head(head_path)
    assert (head.height, head.width, head.hidden) == (16, 16, 32)
    assert head.metadata.get("name") == "smile"
    plot = saved_images(host, outputs, node_id(prompt, "PreviewImage"))
    assert len(plot) == 1 and pixels(plot[0]).std() > 0
    shown = saved_images(host, outputs, node_id(prompt, "AVITrainAttributeHead"))  # the node's own preview
    assert len(shown) == 1 and (pixels(shown[0]) == pixels(plot[0])).all()


def test_apply_attribute_saves_the_unedited_image_beside_the_edit(host):
    prompt = load_api("avi_apply_attribute")
    outputs = run(host, prompt)
    plain = saved_images(host, outputs, node_id(prompt, "SaveImage", "Unedited"))
    edited = saved_images(host, outputs, node_id(prompt, "SaveImage", "Edited"))
    assert len(plain) == len(edited) == 1
    assert "AVI" in plain[0].parts and plain[0].name.startswith("unedited")
    a, b = pixels(plain[0]), pixels(edited[0])
    assert a.shape == b.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    assert abs(a - b).mean() > 0.5, "rho = 1 must change the image"
    info = outputs[node_id(prompt, "PreviewAny")]["text"][0]
    assert "smile" in info


def test_apply_anchored_rho_0_gives_back_the_unedited_image(host):
    """Spec 6: anchored mode at rho = 0 returns x, so the edit equals the unedited image."""
    prompt = load_api("avi_apply_attribute")
    merge = prompt[node_id(prompt, "AVIMerge")]["inputs"]
    merge["mode"], merge["rho"] = "anchored", 0.0
    prompt[node_id(prompt, "SaveImage", "Edited")]["inputs"]["filename_prefix"] = "AVI/anchored_rho0"
    outputs = run(host, prompt)
    plain = pixels(saved_images(host, outputs, node_id(prompt, "SaveImage", "Unedited"))[0])
    edited = pixels(saved_images(host, outputs, node_id(prompt, "SaveImage", "Edited"))[0])
    assert abs(plain - edited).max() <= 1  # 8-bit rounding of a 1e-6 relative difference


def test_rho_sweep_decodes_five_images(host):
    prompt = load_api("avi_rho_sweep")
    outputs = run(host, prompt)
    images = saved_images(host, outputs, node_id(prompt, "SaveImage"))
    assert len(images) == 5
    first, last = pixels(images[0]), pixels(images[-1])
    assert abs(first - last).mean() > 0.5, "rho 0 and rho 1 must differ"


def test_build_dataset_then_train_from_it(host, pack, caplog):
    import avi_pack.avi_core.files.datasets as datasets

    root = Path(host["folder_paths"].get_folder_paths("avi_datasets")[0])
    prompt = load_api("avi_build_dataset")
    seed_node = next(
        k for k, v in prompt.items() if v["class_type"] == "PrimitiveInt" and v["_meta"]["title"].startswith("seed")
    )
    summaries = []
    for run_index in range(3):  # three queue runs, the seed incremented as the workflow's control says
        prompt[seed_node]["inputs"]["value"] = 42 + run_index
        outputs = run(host, prompt)
        summaries.append(outputs[node_id(prompt, "PreviewAny")]["text"][0])
    assert "now 12 pair(s) in 3 shard(s)" in summaries[-1], summaries
    folder = root / "smile"
    data = datasets.read_dataset(folder)
    assert data.pairs == 12 and len(data.shards) == 3 and not data.skipped
    assert [r["x"]["seed"] for r in data.records] == [42, 43, 44]
    # x at 0.8T: step 10 of 50 (timestep 795); z at the step whose timestep is nearest to 500
    steps = {(r["x"]["step"], r["x"]["timestep"], r["z"]["step"], r["z"]["timestep"]) for r in data.records}
    assert len(steps) == 1, steps
    x_step, x_t, z_step, z_t = steps.pop()
    assert (x_step, x_t) == (10, 795) and z_step in (24, 25) and abs(z_t - 500) <= 11, (z_step, z_t)

    # A damaged shard (a crash of another writer, a bad copy) is skipped with a warning, never fatal.
    (folder / "shard-zzzz-damaged.safetensors").write_bytes(b"\x00" * 64)
    train = load_api("avi_train_from_dataset")
    train[node_id(train, "AVITrainAttributeHead")]["inputs"]["name"] = "smile_from_dataset"
    with caplog.at_level(logging.WARNING):
        outputs = run(host, train)
    assert "shard-zzzz-damaged.safetensors" in caplog.text
    head_path = Path(host["folder_paths"].get_folder_paths("avi_heads")[0]) / "smile_from_dataset.safetensors"
    head = pack.avi_core.load_head(head_path)
    assert (head.height, head.width) == (16, 16)
    assert "dataset 'smile'" in json.dumps(head.metadata)
    assert len(saved_images(host, outputs, node_id(train, "PreviewImage"))) == 1
