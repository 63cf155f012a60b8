"""Running the pack's committed API workflows through the host's real executor (tiny_sd2.run_prompt), with the
swaps of tests/host/test_workflows_host.py (tiny checkpoint, seeded text encoder, 128 px), for the inversion and
explorer host tests. Call only after tiny_sd2.require_host().
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tiny_sd2
import torch

API_DIR = Path(__file__).resolve().parents[2] / "workflows" / "api"
IMAGE_SIZE = 128


def write_png(path: Path, size: int) -> None:
    """A colour gradient PNG (the test photo)."""
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size]
    rgb = np.stack([x * 255 // size, y * 255 // size, (x + y) * 127 // size], -1).astype(np.uint8)
    Image.fromarray(rgb).save(path)


@contextlib.contextmanager
def executor_nodes(pack, avi: dict[str, type]) -> Iterator[object]:
    """The host's node mappings with the pack's nodes and the test checkpoint / text encoder, a photo
    (example.png) in the input folder and a 16 x 16 head (smile.safetensors) in avi_heads; yields folder_paths."""
    import folder_paths
    import test_workflows_host as wf

    import nodes as comfy_nodes

    asyncio.run(comfy_nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    added = {
        **avi,
        "AVITestTinyCheckpoint": wf.AVITestTinyCheckpoint,
        "AVITestRandomConditioning": wf.AVITestRandomConditioning,
    }
    saved = {k: comfy_nodes.NODE_CLASS_MAPPINGS.get(k) for k in added}
    comfy_nodes.NODE_CLASS_MAPPINGS.update(added)
    photo = Path(folder_paths.get_input_directory()) / "example.png"
    made = [] if photo.exists() else [photo]
    if made:
        write_png(photo, 200)
    heads = Path(folder_paths.get_folder_paths("avi_heads")[0])
    assert heads.resolve().is_relative_to(tiny_sd2.temp_base().resolve())
    heads.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    head = heads / "smile.safetensors"
    if not head.exists():  # another test's head (test_workflows_host trains one) is used as it is
        pack.avi_core.save_head(pack.avi_core.AttributeHead(16, 16, hidden=16), head)
        made.append(head)
    try:
        yield folder_paths
    finally:
        # The temporary folders are shared by every host test of the process: leave them as found.
        for path in made:
            path.unlink(missing_ok=True)
        for key, value in saved.items():
            if value is None:
                comfy_nodes.NODE_CLASS_MAPPINGS.pop(key, None)
            else:
                comfy_nodes.NODE_CLASS_MAPPINGS[key] = value


def load_api(name: str) -> dict:
    """A committed API workflow with the test swaps (model, text encoder, sizes)."""
    prompt = json.loads((API_DIR / f"{name}.json").read_text(encoding="utf-8"))
    for node in prompt.values():
        kind, inputs = node["class_type"], node["inputs"]
        if kind == "CheckpointLoaderSimple":
            node["class_type"] = "AVITestTinyCheckpoint"
        elif kind == "CLIPTextEncode":
            node["class_type"] = "AVITestRandomConditioning"
        elif kind in ("EmptyLatentImage", "ImageScale"):
            inputs["width"] = inputs["height"] = IMAGE_SIZE
    return prompt


def of(prompt: dict, class_type: str, title: str | None = None) -> str:
    ids = [
        k
        for k, v in prompt.items()
        if v["class_type"] == class_type and (title is None or v["_meta"]["title"] == title)
    ]
    assert len(ids) == 1, (class_type, title, ids)
    return ids[0]


def saved_pixels(folder_paths, outputs: dict, node: str) -> list[np.ndarray]:
    from PIL import Image

    out = []
    for item in outputs[node]["images"]:
        root = folder_paths.get_output_directory() if item["type"] == "output" else folder_paths.get_temp_directory()
        out.append(np.asarray(Image.open(Path(root) / item["subfolder"] / item["filename"]).convert("RGB"), np.int16))
    return out


def run(prompt: dict) -> tuple[dict, list]:
    executor, server = tiny_sd2.run_prompt(prompt)
    error = tiny_sd2.execution_error(server)
    assert executor.success and error is None, json.dumps(error, default=str)[:3000]
    return executor.history_result["outputs"], server.messages
