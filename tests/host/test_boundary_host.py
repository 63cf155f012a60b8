"""The semantic-boundary nodes inside a real ComfyUI (set COMFYUI_DIR; see tiny_sd2.SKIP_MESSAGE), tiny SD2 UNet.

Direct calls of the V3 nodes (collect -> fit -> load -> capture -> edit -> resume), the refusals a user meets
(a latent captured at another step or size, with the numbers), Cancel during the fit, and the three boundary
workflows run as committed through the host's real executor (tiny_sd2.run_prompt), with the test swaps of
tests/host/test_workflows_host.py (tiny checkpoint, random conditioning, 128 px images).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
import tiny_sd2
import torch

pytestmark = pytest.mark.host


def errors_module():
    import avi_pack.avi_core.errors as errors

    return errors


def load_boundary(path):
    from avi_pack.avi_core.boundary import load_boundary as load

    return load(path)


def parse_number_list(text, name):
    from avi_pack.avi_core.values import parse_number_list as parse

    return parse(text, name)


REPO_ROOT = Path(__file__).resolve().parents[2]
API_DIR = REPO_ROOT / "workflows" / "api"
STEPS, SEED = 30, 7
IMAGE_SIZE = 128


@pytest.fixture(scope="module")
def host_env(pack):
    base = tiny_sd2.require_host()
    assert pack.nodes.host.register_model_folders() is True
    import folder_paths

    for folder in ("avi_boundaries", "avi_boundary_collections"):
        first = Path(folder_paths.get_folder_paths(folder)[0]).resolve()
        assert first.is_relative_to(base.resolve()), f"{folder} would be written to {first}"
    return base


@pytest.fixture(scope="module")
def avi(pack, host_env):
    return tiny_sd2.avi_node_classes(pack)


@pytest.fixture(scope="module")
def model(host_env):
    return tiny_sd2.tiny_model(seed=0)


@pytest.fixture(scope="module")
def conds(host_env):
    return {
        "a": tiny_sd2.random_conditioning(seed=11),
        "b": tiny_sd2.random_conditioning(seed=12),
        "negative": tiny_sd2.random_conditioning(seed=13),
    }


def collect(avi, model, conds, seed, collection, capture_steps="6, 12", batch=3):
    with torch.inference_mode():
        (summary,) = (
            avi["AVICollectBoundarySamples"]
            .execute(
                model=model,
                noise_seed=seed,
                steps=STEPS,
                cfg=7.5,
                sampler_name="euler",
                scheduler="normal",
                positive_a=conds["a"],
                positive_b=conds["b"],
                negative=conds["negative"],
                latent_image=tiny_sd2.empty_latent(batch=batch),
                capture_steps=capture_steps,
                collection=collection,
            )
            .args
        )
    return summary


def fit(avi, collection, name, step=-1, **extra):
    settings = dict(
        collection=collection, name=name, description="a -> b", step=step, tolerance=0.02, holdout=0.2, C=1.0, seed=0
    )
    settings.update(extra)
    with torch.inference_mode():
        return avi["AVIFitBoundary"].execute(**settings)


def capture(avi, model, positive, negative, latent, stop_step, seed=SEED):
    with torch.inference_mode():
        out, step = (
            avi["AVICaptureLatentAtStep"]
            .execute(
                model=model,
                add_noise="enable",
                noise_seed=seed,
                steps=STEPS,
                cfg=7.5,
                sampler_name="euler",
                scheduler="normal",
                positive=positive,
                negative=negative,
                latent_image=latent,
                stop_at=0.8,
                stop_step=stop_step,
            )
            .args
        )
    return out, step


def edit(avi, latent, boundary, distance, distance_list=""):
    with torch.inference_mode():
        return (
            avi["AVIBoundaryEdit"]
            .execute(captured=latent, boundary=boundary, distance=distance, distance_list=distance_list)
            .args
        )


def resume(model, positive, negative, latent, start, seed=SEED):
    with torch.inference_mode():
        return tiny_sd2.ksampler_advanced(
            model, positive, negative, latent, seed=seed, steps=STEPS, start=start, add_noise=False
        )["samples"]


@pytest.fixture(scope="module")
def fitted(avi, model, conds, host_env):
    """A collection of two queue runs (3 seeds each) at steps 6 and 12, and the boundary fitted on it."""
    first = collect(avi, model, conds, 100, "ab")
    second = collect(avi, model, conds, 103, "ab")
    assert "added 3 image(s) per side at step(s) 6, 12 of 30" in first
    assert "now 12 pair(s) in 4 file(s)" in second, second
    out = fit(avi, "ab", "ab boundary")
    return out


def test_collect_then_fit_saves_the_boundary_with_the_accuracy_curve(pack, fitted, host_env):
    boundary, plot, chosen, summary = fitted.args
    assert chosen in (6, 12) and boundary.step == chosen
    assert boundary.counts == (6, 6) and boundary.sample_shape == (4, 16, 16)
    assert plot.shape[0] == 1 and plot.shape[-1] == 3 and float(plot.std()) > 0
    assert "held-out accuracy by step (6: " in summary and f"chosen step {chosen}" in summary
    path = host_env / "models" / "avi_boundaries" / "ab boundary.safetensors"
    assert path.is_file() and str(path) in summary
    loaded = load_boundary(path)
    assert torch.allclose(loaded.normal, boundary.normal, rtol=0, atol=1e-12) and loaded.info["description"] == "a -> b"
    assert loaded.info["paired"] is True and 0.5 <= boundary.accuracy <= 1.0
    assert loaded.info["steps"] == STEPS and loaded.info["search"]["steps"] == [6, 12]
    assert loaded.info["sampler"] == "euler" and loaded.info["collection"] == "ab"
    (shown,) = fitted.ui.as_dict()["images"]
    assert shown["type"] == "temp"


def test_load_gives_the_step_and_describes_the_boundary(avi, fitted):
    load = avi["AVILoadBoundary"]
    assert load.validate_inputs(boundary_name="ab boundary.safetensors") is True
    boundary, step, info = load.execute(boundary_name="ab boundary.safetensors").args
    assert step == fitted.args[2] == boundary.step
    assert "a -> b" in info and f"captured at step {step} of {STEPS}" in info and "held-out accuracy" in info
    message = load.validate_inputs(boundary_name="gone.safetensors")
    assert message.startswith("semantic boundary 'gone.safetensors' is not in the avi_boundaries folders (")
    assert message.endswith("Press R to refresh the page's lists and pick a file that exists.")


def test_edit_at_the_latents_own_distance_is_the_identity_and_resuming_reproduces_plain_sampling(
    pack, avi, model, conds, fitted
):
    boundary, _, step, _ = fitted.args
    x, captured_step = capture(avi, model, conds["a"], conds["negative"], tiny_sd2.empty_latent(batch=1), step)
    assert captured_step == step
    from avi_pack.avi_core.boundary import signed_distance
    from avi_pack.avi_core.latent.conventions import to_paper_space

    record = x["avi_capture"]
    own = float(
        signed_distance(to_paper_space(x["samples"].double(), record["sigma"], record["scale_factor"]), boundary)[0]
    )
    out, info = edit(avi, x, boundary, own)
    assert torch.equal(out["samples"], x["samples"])  # bit for bit
    assert out["avi_capture"]["step"] == step and out["avi_capture"]["batch"] == 1
    assert f"{own:.3f}" in info
    plain = resume(model, conds["a"], conds["negative"], x, step)
    again = resume(model, conds["a"], conds["negative"], out, step)
    assert torch.equal(plain, again)

    # Moving across: the latent lands at each distance asked for, on prompt B's side for d > 0.
    sweep, _ = edit(avi, x, boundary, 0.0, "-8, 0, 8")
    assert sweep["samples"].shape == (3, 4, 16, 16) and sweep["avi_capture"]["batch"] == 3
    assert sweep["avi_capture"]["boundary_edit"]["distances"] == [-8.0, 0.0, 8.0]
    after = signed_distance(
        to_paper_space(sweep["samples"].double(), record["sigma"], record["scale_factor"]), boundary
    )
    assert torch.allclose(after, torch.tensor([-8.0, 0.0, 8.0], dtype=torch.float64), atol=1e-3)
    assert sweep["batch_index"] == [0, 0, 0]
    images = resume(model, conds["a"], conds["negative"], sweep, step)
    assert torch.isfinite(images).all() and (images[0] - images[2]).abs().mean() > 1e-3


def test_edit_refuses_another_step_or_size_with_the_numbers(pack, avi, model, conds, fitted):
    errors = errors_module()
    boundary, _, step, _ = fitted.args
    other = 6 if step == 12 else 12
    x, _ = capture(avi, model, conds["a"], conds["negative"], tiny_sd2.empty_latent(batch=1), other)
    with pytest.raises(errors.StepMismatchError) as caught:
        edit(avi, x, boundary, 1.0)
    message = str(caught.value)
    assert f"captured at step {other} of {STEPS} but the boundary was fitted on captures at step {step}" in message
    assert "stop_step wired from 'AVI Load Boundary''s step output" in message

    big, _ = capture(avi, model, conds["a"], conds["negative"], tiny_sd2.empty_latent(batch=1, size=24), step)
    with pytest.raises(errors.ShapeMismatchError) as caught:
        edit(avi, big, boundary, 1.0)
    message = str(caught.value)
    assert "(4, 16, 16)" in message and "(4, 24, 24)" in message, message
    assert "Generate at the size the boundary was collected at" in message

    with pytest.raises(errors.CaptureRecordError, match="has no capture record"):
        edit(avi, tiny_sd2.empty_latent(batch=1), boundary, 1.0)


def test_fit_refuses_an_avi_dataset_whose_sides_are_at_two_steps(pack, avi, host_env):
    from avi_pack.avi_core.files.datasets import append_shard
    from avi_pack.avi_core.latent.capture import make_record

    def record(step, sigma):
        return make_record(
            step=step,
            steps=50,
            sigma=sigma,
            timestep=800 if step == 10 else 500,
            num_timesteps=1000,
            scale_factor=0.18215,
            seed=1,
            batch=4,
            sampler="euler",
            scheduler="normal",
        )

    generator = torch.Generator().manual_seed(0)
    folder = host_env / "models" / "avi_datasets" / "smile_pairs"
    x, z = torch.randn(4, 4, 8, 8, generator=generator), torch.randn(4, 4, 8, 8, generator=generator)
    append_shard(folder, x, z, {"x": record(10, 5.4), "z": record(24, 1.9)})
    with pytest.raises(errors_module().StepMismatchError) as caught:
        fit(avi, "smile_pairs", "never")
    message = str(caught.value)
    assert "side a (original prompt) was captured at step 10 of 50" in message and "at step 24 of 50" in message
    assert "an AVI dataset holds x and z at two different steps and cannot be used" in message
    assert not (host_env / "models" / "avi_boundaries" / "never.safetensors").exists()
    with pytest.raises(errors_module().DatasetError, match="no boundary collection named 'nothing'"):
        fit(avi, "nothing", "never")


def _synthetic_collection(pack, folder: Path, steps=(4, 8, 12), pairs=20) -> None:
    """A collection at three steps of one schedule: side b = side a shifted along one direction."""
    from avi_pack.avi_core.latent.capture import make_record
    from avi_pack.nodes.boundary.latents import append_sides

    generator = torch.Generator().manual_seed(3)
    direction = torch.randn(4, 8, 8, generator=generator)
    for step in steps:
        record = make_record(
            step=step,
            steps=20,
            sigma=10.0 / (1 + step),
            timestep=1000 - 40 * step,
            num_timesteps=1000,
            scale_factor=0.18215,
            seed=5,
            batch=pairs,
            sampler="euler",
            scheduler="normal",
            shape=(pairs, 4, 8, 8),
        )
        a = torch.randn(pairs, 4, 8, 8, generator=generator)
        append_sides(folder, a, a + 0.3 * step * direction, record, record)


def test_cancel_stops_the_fit_and_writes_nothing(pack, avi, host_env):
    import comfy.model_management
    import comfy.utils

    _synthetic_collection(pack, host_env / "models" / "avi_boundary_collections" / "synthetic")
    ticks = []

    def hook(value, total, preview, node_id=None):
        ticks.append((value, total))
        if value == 1:
            comfy.model_management.interrupt_current_processing(True)  # what the page's Cancel button does

    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            fit(avi, "synthetic", "cancelled")
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        comfy.model_management.interrupt_current_processing(False)
    assert ticks == [(1, 4)]
    assert not (host_env / "models" / "avi_boundaries" / "cancelled.safetensors").exists()

    # Not cancelled: all three steps, then the file; the step widget picks one step.
    boundary, _, chosen, summary = fit(avi, "synthetic", "synthetic").args
    assert chosen in (4, 8, 12) and "4: " in summary and "12: " in summary
    _, _, only, summary = fit(avi, "synthetic", "synthetic8", step=8).args
    assert only == 8 and "(8: " in summary
    with pytest.raises(errors_module().DatasetError) as caught:
        fit(avi, "synthetic", "never", step=5)
    assert "holds captures at step(s) 4, 8, 12, not at step 5" in str(caught.value)


# --- the workflows through the host's executor ------------------------------------------------------------------


class TinyCheckpoint:
    """Test stand-in for CheckpointLoaderSimple (see test_workflows_host): tiny UNet, stand-in CLIP, small VAE."""

    CATEGORY = "testing"
    FUNCTION = "load"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    _cache: dict = {}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": ("STRING", {"default": ""})}}

    def load(self, ckpt_name):
        import test_workflows_host

        if not self._cache:
            self._cache.update(model=tiny_sd2.tiny_model(seed=0), vae=test_workflows_host.tiny_vae(seed=0))
        return (self._cache["model"], test_workflows_host.StandInClip(), self._cache["vae"])


@pytest.fixture(scope="module")
def executor_nodes(pack, avi, host_env):
    import test_workflows_host

    import nodes as comfy_nodes

    asyncio.run(comfy_nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    added = {
        **avi,
        "AVITestTinyCheckpoint": TinyCheckpoint,
        "AVITestRandomConditioning": test_workflows_host.AVITestRandomConditioning,
    }
    saved = {k: comfy_nodes.NODE_CLASS_MAPPINGS.get(k) for k in added}
    comfy_nodes.NODE_CLASS_MAPPINGS.update(added)
    yield
    for key, value in saved.items():
        if value is None:
            comfy_nodes.NODE_CLASS_MAPPINGS.pop(key, None)
        else:
            comfy_nodes.NODE_CLASS_MAPPINGS[key] = value


def load_api(name: str) -> dict:
    prompt = json.loads((API_DIR / f"{name}.json").read_text(encoding="utf-8"))
    for node in prompt.values():
        if node["class_type"] == "CheckpointLoaderSimple":
            node["class_type"] = "AVITestTinyCheckpoint"
        elif node["class_type"] == "CLIPTextEncode":
            node["class_type"] = "AVITestRandomConditioning"
        elif node["class_type"] == "EmptyLatentImage":
            node["inputs"]["width"] = node["inputs"]["height"] = IMAGE_SIZE
    return prompt


def run(prompt: dict) -> dict:
    executor, server = tiny_sd2.run_prompt(prompt)
    assert executor.success, json.dumps(tiny_sd2.execution_error(server), default=str)[:4000]
    return executor.history_result["outputs"]


def node_of(prompt: dict, class_type: str, title: str | None = None) -> str:
    ids = [k for k, v in prompt.items() if v["class_type"] == class_type and title in (None, v["_meta"]["title"])]
    assert len(ids) == 1, (class_type, title, ids)
    return ids[0]


def saved(outputs: dict, node: str) -> list[Path]:
    import folder_paths

    paths = []
    for item in outputs[node]["images"]:
        root = folder_paths.get_output_directory() if item["type"] == "output" else folder_paths.get_temp_directory()
        paths.append(Path(root) / item["subfolder"] / item["filename"])
    assert all(p.is_file() for p in paths), paths
    return paths


def pixels(path: Path):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_the_boundary_workflows_collect_fit_and_edit(pack, executor_nodes, host_env):
    collect_prompt = load_api("avi_boundary_collect")
    seed = next(k for k, v in collect_prompt.items() if v["class_type"] == "PrimitiveInt")
    texts = []
    for run_index in range(2):  # two queue runs, the seed incremented as the workflow's control says
        collect_prompt[seed]["inputs"]["value"] = 42 + run_index
        outputs = run(collect_prompt)
        texts.append(outputs[node_of(collect_prompt, "PreviewAny")]["text"][0])
    collector = collect_prompt[node_of(collect_prompt, "AVICollectBoundarySamples")]["inputs"]
    steps = parse_number_list(collector["capture_steps"], "capture_steps")
    batch = [v for v in collect_prompt.values() if v["class_type"] == "EmptyLatentImage"][0]["inputs"]["batch_size"]
    assert f"now {2 * batch * len(steps)} pair(s) in {2 * len(steps)} file(s)" in texts[-1], texts

    fit_prompt = load_api("avi_boundary_fit")
    outputs = run(fit_prompt)
    fitter = fit_prompt[node_of(fit_prompt, "AVIFitBoundary")]["inputs"]
    assert fitter["collection"] == collector["collection"]
    path = host_env / "models" / "avi_boundaries" / f"{fitter['name']}.safetensors"
    boundary = load_boundary(path)
    assert boundary.counts == (2 * batch, 2 * batch) and boundary.info["search"]["steps"] == [int(s) for s in steps]
    (curve,) = saved(outputs, node_of(fit_prompt, "PreviewImage"))
    assert pixels(curve).std() > 0
    summary = outputs[node_of(fit_prompt, "PreviewAny")]["text"][0]
    assert f"chosen step {boundary.step}" in summary

    edit_prompt = load_api("avi_boundary_edit")
    outputs = run(edit_prompt)
    editor = edit_prompt[node_of(edit_prompt, "AVIBoundaryEdit")]["inputs"]
    distances = parse_number_list(editor["distance_list"], "distance_list")
    strip = saved(outputs, node_of(edit_prompt, "SaveImage", "Distance sweep"))
    (plain,) = saved(outputs, node_of(edit_prompt, "SaveImage", "Unedited"))
    assert len(strip) == len(distances) >= 5 and min(distances) <= -20 and max(distances) >= 20
    first, last = pixels(strip[0]), pixels(strip[-1])
    assert first.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and abs(first - last).mean() > 0.5
    assert pixels(plain).shape == first.shape
    info = outputs[node_of(edit_prompt, "PreviewAny", "Where the latent was")]["text"][0]
    assert info.startswith("signed distance before: ")
    assert os.path.isfile(path)


def test_cancel_stops_the_collection_before_anything_is_written(avi, model, conds, host_env):
    import comfy.model_management
    import comfy.utils

    folder = host_env / "models" / "avi_boundary_collections" / "cancelled"

    def hook(value, total, preview, node_id=None):
        comfy.model_management.interrupt_current_processing(True)  # Cancel during the first sampling segment

    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            collect(avi, model, conds, 1, "cancelled")
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        comfy.model_management.interrupt_current_processing(False)
    assert not folder.exists() or not any(folder.iterdir())


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("6, 7.5", "capture_steps: 7.5 is not a whole step number. Type a whole number into capture_steps."),
        ("6, 30", "capture_steps = 30 is outside the supported range 1..29. Change capture_steps on the node"),
        ("", "capture_steps is empty. Give at least one value in capture_steps."),
    ],
)
def test_collect_refuses_bad_capture_steps_with_advice(pack, avi, model, conds, steps, message):
    with pytest.raises(errors_module().ParameterError) as caught:
        collect(avi, model, conds, 1, "never", capture_steps=steps)
    assert message in str(caught.value)


def test_fit_from_two_captured_latents_at_one_step(pack, avi, model, conds, host_env):
    latent = tiny_sd2.empty_latent(batch=4)
    a, _ = capture(avi, model, conds["a"], conds["negative"], latent, 9)
    b, _ = capture(avi, model, conds["b"], conds["negative"], latent, 9)
    boundary, _, chosen, summary = fit(avi, "", "from latents", side_a=a, side_b=b).args
    assert chosen == 9 and boundary.counts == (4, 4) and boundary.info["paired"] is True
    assert (host_env / "models" / "avi_boundaries" / "from latents.safetensors").is_file()

    later, _ = capture(avi, model, conds["b"], conds["negative"], latent, 10)
    with pytest.raises(errors_module().StepMismatchError) as caught:
        fit(avi, "", "never", side_a=a, side_b=later)
    assert "side a (original prompt) was captured at step 9 of 30" in str(caught.value)
    assert "side b (target prompt) at step 10 of 30" in str(caught.value)
    with pytest.raises(errors_module().ParameterError) as caught:
        fit(avi, "ab", "never", side_a=a, side_b=b)
    assert str(caught.value).endswith(
        "Disconnect side_a and side_b to fit from the collection, or clear collection to fit from the latents."
    )
