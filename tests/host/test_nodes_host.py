"""The four nodes inside a real ComfyUI (set COMFYUI_DIR; see tiny_sd2.SKIP_MESSAGE), with a tiny SD2 UNet.

Everything runs in-process on CPU against the host's own code: its samplers (nodes.common_ksampler,
KSamplerAdvanced), its model_sampling, its folder_paths (redirected into a temporary folder), its progress
bar and Cancel, and its custom-node loader.
"""

from __future__ import annotations

import asyncio
import os

import pytest
import tiny_sd2
import torch

pytestmark = pytest.mark.host

STEPS, SEED = 50, 42


@pytest.fixture(scope="module")
def host_env(pack):
    base = tiny_sd2.require_host()
    # The pack may have been imported before the host was on sys.path (collection order): register now.
    assert pack.nodes.host.register_model_folders() is True
    return base


@pytest.fixture(scope="module")
def model(host_env):
    return tiny_sd2.tiny_model(seed=0)


@pytest.fixture(scope="module")
def conds(host_env):
    return {
        "original": tiny_sd2.random_conditioning(seed=1),
        "target": tiny_sd2.random_conditioning(seed=2),
        "negative": tiny_sd2.random_conditioning(seed=3),
    }


def capture(
    pack,
    model,
    positive,
    negative,
    latent,
    stop_at,
    *,
    seed=SEED,
    sampler="euler",
    scheduler="normal",
    stop_step=0,
):
    node = pack.NODE_CLASS_MAPPINGS["AVICaptureLatentAtStep"]()
    with torch.inference_mode():  # ComfyUI's executor runs every node under inference mode
        return node.capture(
            model,
            "enable",
            seed,
            STEPS,
            7.5,
            sampler,
            scheduler,
            positive,
            negative,
            latent,
            stop_at,
            stop_step,
        )


def resume(model, positive, negative, latent, start, seed=SEED):
    with torch.inference_mode():
        return tiny_sd2.ksampler_advanced(
            model, positive, negative, latent, seed=seed, steps=STEPS, start=start, add_noise=False
        )["samples"]


def test_capture_at_0_8T_equals_ksampler_advanced(pack, model, conds):
    latent = tiny_sd2.empty_latent(batch=2)
    out, step = capture(pack, model, conds["original"], conds["negative"], latent, 0.8)
    assert step == 10
    with torch.inference_mode():
        reference = tiny_sd2.ksampler_advanced(
            model,
            conds["original"],
            conds["negative"],
            latent,
            seed=SEED,
            steps=STEPS,
            end=10,
            leftover_noise=True,
        )
    assert torch.equal(out["samples"], reference["samples"])  # bit for bit
    record = out["avi_capture"]
    assert (record["step"], record["steps"], record["T"], record["timestep"]) == (10, 50, 1000, 795)
    assert record["scale_factor"] == pytest.approx(0.18215) and record["seed"] == SEED and record["batch"] == 2
    assert (record["height"], record["width"], record["sampler"], record["scheduler"]) == (
        16,
        16,
        "euler",
        "normal",
    )
    assert "avi_capture" not in latent and torch.isfinite(out["samples"]).all()


def test_capture_record_sigma_is_the_sampler_sigma(pack, model, conds):
    """The sigma in the record is the one the resuming KSamplerAdvanced evaluates the model at first."""
    latent = tiny_sd2.empty_latent()
    out, step = capture(pack, model, conds["original"], conds["negative"], latent, 0.8)
    seen = []

    def wrapper(apply_model, args):
        seen.append(float(args["timestep"].flatten()[0]))
        return apply_model(args["input"], args["timestep"], **args["c"])

    spy = model.clone()
    spy.set_model_unet_function_wrapper(wrapper)
    resume(spy, conds["original"], conds["negative"], out, step)
    assert seen[0] == out["avi_capture"]["sigma"]
    sampling = model.get_model_object("model_sampling")
    assert int(sampling.timestep(torch.tensor([seen[0]])).item()) == out["avi_capture"]["timestep"]


@pytest.mark.parametrize(
    "sampler, scheduler, fraction, step, timestep",
    [
        ("euler", "normal", 0.5, 24, 510),  # 510 is nearer to 500 than step 25's 489
        ("ddim", "ddim_uniform", 0.8, 9, 801),  # 801 is nearer to 800 than step 10's 781
        ("dpm_2", "normal", 0.8, 10, None),  # a sampler that drops the penultimate sigma
    ],
)
def test_capture_follows_the_sampler_schedule(pack, model, conds, sampler, scheduler, fraction, step, timestep):
    latent = tiny_sd2.empty_latent()
    out, got = capture(
        pack,
        model,
        conds["original"],
        conds["negative"],
        latent,
        fraction,
        sampler=sampler,
        scheduler=scheduler,
    )
    assert got == step
    if timestep is not None:
        assert out["avi_capture"]["timestep"] == timestep
    with torch.inference_mode():
        reference = tiny_sd2.ksampler_advanced(
            model,
            conds["original"],
            conds["negative"],
            latent,
            seed=SEED,
            steps=STEPS,
            end=step,
            leftover_noise=True,
            sampler_name=sampler,
            scheduler=scheduler,
        )
    assert torch.equal(out["samples"], reference["samples"])


def test_capture_explicit_step(pack, model, conds):
    out, step = capture(pack, model, conds["original"], conds["negative"], tiny_sd2.empty_latent(), 0.8, stop_step=7)
    assert step == 7 and out["avi_capture"]["step"] == 7


def test_flow_model_is_refused(pack, host_env, conds):
    import avi_pack.avi_core as core

    with pytest.raises(core.UnsupportedModelError, match="flow model"):
        capture(pack, tiny_sd2.flow_model(), conds["original"], conds["negative"], tiny_sd2.empty_latent(), 0.8)


def test_merge_anchored_rho0_resumes_to_the_unedited_image(pack, model, conds):
    import avi_pack.avi_core as core

    latent = tiny_sd2.empty_latent(batch=2)
    x, step = capture(pack, model, conds["original"], conds["negative"], latent, 0.8)
    z, _ = capture(pack, model, conds["target"], conds["negative"], latent, 0.5)
    torch.manual_seed(0)
    head = core.AttributeHead(16, 16, hidden=32)
    merge = pack.NODE_CLASS_MAPPINGS["AVIMerge"]()
    with torch.inference_mode():
        (same,) = merge.merge(x, z, head, 0.0, 0, "anchored", "")
        (edited,) = merge.merge(x, z, head, 1.0, 0, "anchored", "")
    unedited = resume(model, conds["original"], conds["negative"], x, step)
    from_same = resume(model, conds["original"], conds["negative"], same, step)
    from_edited = resume(model, conds["original"], conds["negative"], edited, step)
    rel_same = float((from_same - unedited).norm() / unedited.norm())
    rel_edited = float((from_edited - unedited).norm() / unedited.norm())
    print(f"anchored rho=0: relative difference {rel_same:.2e}; rho=1: {rel_edited:.2e}")
    assert rel_same < 1e-4
    assert rel_edited > 1e-2


def test_merge_sweep_resumes_as_one_batch(pack, model, conds):
    import avi_pack.avi_core as core

    latent = tiny_sd2.empty_latent(batch=1)
    x, step = capture(pack, model, conds["original"], conds["negative"], latent, 0.8)
    z, _ = capture(pack, model, conds["target"], conds["negative"], latent, 0.5)
    torch.manual_seed(0)
    head = core.AttributeHead(16, 16, hidden=32)
    with torch.inference_mode():
        (sweep,) = pack.NODE_CLASS_MAPPINGS["AVIMerge"]().merge(x, z, head, 1.0, 0, "anchored", "0, 0.5, 1")
    images = resume(model, conds["original"], conds["negative"], sweep, step)
    assert images.shape == (3, 4, 16, 16) and torch.isfinite(images).all()
    unedited = resume(model, conds["original"], conds["negative"], x, step)
    assert float((images[0] - unedited[0]).norm() / unedited.norm()) < 1e-4


def train_tiny_head(pack, name, description, x, z):
    """AVI Train Attribute Head on captured LATENTs: 1 epoch of batch 64, hidden 32, the paper's other defaults."""
    node = pack.NODE_CLASS_MAPPINGS["AVITrainAttributeHead"]()
    return node.train(
        name=name,
        description=description,
        epochs=1,
        batch_size=64,
        learning_rate=1e-3,
        k=0,
        lambda1=3.0,
        lambda2=10.0,
        lambda3=10.0,
        lambda4=10.0,
        hidden=32,
        seed=0,
        original=x,
        target=z,
    )


def test_train_in_inference_mode_then_load(pack, model, conds, host_env):
    import comfy.utils
    import folder_paths

    latent = tiny_sd2.empty_latent(batch=2)
    x, _ = capture(pack, model, conds["original"], conds["negative"], latent, 0.8)
    z, _ = capture(pack, model, conds["target"], conds["negative"], latent, 0.5)
    ticks = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: ticks.append((value, total)))
    try:
        with torch.inference_mode():
            head, plot = train_tiny_head(pack, "host smile", "original -> target", x, z)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    assert len(ticks) == 79 and ticks[-1] == (79, 79)
    assert plot.shape == (1, 320, 512, 3)
    saved = os.path.join(host_env, "models", "avi_heads", "host smile.safetensors")
    assert os.path.isfile(saved)
    assert "host smile.safetensors" in folder_paths.get_filename_list("avi_heads")
    load = pack.NODE_CLASS_MAPPINGS["AVILoadAttributeHead"]
    assert "host smile.safetensors" in load.INPUT_TYPES()["required"]["head_name"][0]
    loaded, info = load().load("host smile.safetensors")
    for name, value in head.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value)
    assert "2 pairs" in info and "timestep 795" in info and "original -> target" in info


def test_cancel_stops_training(pack, model, conds, host_env):
    import comfy.model_management
    import comfy.utils

    latent = tiny_sd2.empty_latent(batch=1)
    x, _ = capture(pack, model, conds["original"], conds["negative"], latent, 0.8)
    z, _ = capture(pack, model, conds["target"], conds["negative"], latent, 0.5)
    ticks = []

    def hook(value, total, preview, node_id=None):
        ticks.append(value)
        if value == 3:
            comfy.model_management.interrupt_current_processing(True)  # what the page's Cancel button does

    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        with torch.inference_mode(), pytest.raises(comfy.model_management.InterruptProcessingException):
            train_tiny_head(pack, "cancelled", "", x, z)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        comfy.model_management.interrupt_current_processing(False)
    assert ticks == [1, 2, 3]
    assert not os.path.exists(os.path.join(host_env, "models", "avi_heads", "cancelled.safetensors"))


def test_pack_loads_through_comfyui_custom_node_loader(host_env, tmp_path):
    import comfy.samplers
    import folder_paths

    comfy_nodes = tiny_sd2.host_nodes()
    # A folder an extra_model_paths.yaml named (registered before custom nodes load) must stay first; the
    # pack appends models/avi_heads after it.
    saved = folder_paths.folder_names_and_paths.pop("avi_heads")
    folder_paths.add_model_folder_path("avi_heads", str(tmp_path / "yaml_heads"))
    custom_nodes = tmp_path / "custom_nodes"
    custom_nodes.mkdir()
    link = custom_nodes / "avi-attribute-vectors"
    link.symlink_to(tiny_sd2.REPO_ROOT, target_is_directory=True)
    before = set(comfy_nodes.NODE_CLASS_MAPPINGS)
    assert asyncio.run(comfy_nodes.load_custom_node(str(link))) is True
    added = set(comfy_nodes.NODE_CLASS_MAPPINGS) - before
    assert {"AVICaptureLatentAtStep", "AVIMerge", "AVITrainAttributeHead", "AVILoadAttributeHead"} <= added
    assert comfy_nodes.NODE_DISPLAY_NAME_MAPPINGS["AVIMerge"] == "AVI Merge"

    capture_inputs = comfy_nodes.NODE_CLASS_MAPPINGS["AVICaptureLatentAtStep"].INPUT_TYPES()["required"]
    assert capture_inputs["sampler_name"][0] == comfy.samplers.KSampler.SAMPLERS
    assert capture_inputs["scheduler"][0] == comfy.samplers.KSampler.SCHEDULERS
    assert list(capture_inputs)[:10] == [
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
    ]
    merge_inputs = comfy_nodes.NODE_CLASS_MAPPINGS["AVIMerge"].INPUT_TYPES()["required"]
    assert list(merge_inputs) == ["original", "target", "head", "rho", "k", "mode", "rho_list"]
    train = comfy_nodes.NODE_CLASS_MAPPINGS["AVITrainAttributeHead"].INPUT_TYPES()
    assert set(train["optional"]) == {"original", "target", "dataset"}
    assert comfy_nodes.NODE_CLASS_MAPPINGS["AVILoadAttributeHead"].RETURN_TYPES == ("AVI_HEAD", "STRING")

    try:
        paths, extensions = folder_paths.folder_names_and_paths["avi_heads"]
        assert paths == [str(tmp_path / "yaml_heads"), os.path.join(str(host_env), "models", "avi_heads")]
        assert extensions == {".safetensors"}
        assert folder_paths.get_folder_paths("avi_datasets")[-1] == os.path.join(
            str(host_env), "models", "avi_datasets"
        )
    finally:
        folder_paths.folder_names_and_paths["avi_heads"] = saved


# --- through ComfyUI's real executor ---

STORE: dict = {}


class AVITestValue:
    """Test-only node: returns an object the test put in STORE (a LATENT or an AVI_HEAD)."""

    RETURN_TYPES = ("*",)
    FUNCTION = "get"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"key": ("STRING", {"default": ""})}}

    def get(self, key):
        return (STORE[key],)


class AVITestLatentValue(AVITestValue):
    RETURN_TYPES = ("LATENT",)


class AVITestHeadValue(AVITestValue):
    RETURN_TYPES = ("AVI_HEAD",)


class AVITestSink:
    """Test-only output node: keeps the LATENT it receives."""

    RETURN_TYPES = ()
    FUNCTION = "keep"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"latent": ("LATENT",)}}

    def keep(self, latent):
        STORE["sink"] = latent
        return {}


@pytest.fixture(scope="module")
def executor_nodes(pack, host_env):
    comfy_nodes = tiny_sd2.host_nodes()
    added = {
        "AVITestLatentValue": AVITestLatentValue,
        "AVITestHeadValue": AVITestHeadValue,
        "AVITestSink": AVITestSink,
    }
    for node_id, cls in {**pack.NODE_CLASS_MAPPINGS, **added}.items():
        comfy_nodes.NODE_CLASS_MAPPINGS.setdefault(node_id, cls)
    yield
    for node_id in added:
        comfy_nodes.NODE_CLASS_MAPPINGS.pop(node_id, None)


@pytest.fixture(scope="module")
def captured_pair(pack, model, conds):
    latent = tiny_sd2.empty_latent(batch=2)
    x, _ = capture(pack, model, conds["original"], conds["negative"], latent, 0.8)
    z, _ = capture(pack, model, conds["target"], conds["negative"], latent, 0.5)
    return x, z


def merge_prompt(rho_list=""):
    return {
        "1": {"class_type": "AVITestLatentValue", "inputs": {"key": "x"}},
        "2": {"class_type": "AVITestLatentValue", "inputs": {"key": "z"}},
        "3": {"class_type": "AVITestHeadValue", "inputs": {"key": "head"}},
        "4": {
            "class_type": "AVIMerge",
            "inputs": {
                "original": ["1", 0],
                "target": ["2", 0],
                "head": ["3", 0],
                "rho": 1.0,
                "k": 0,
                "mode": "paper",
                "rho_list": rho_list,
            },
        },
        "5": {"class_type": "AVITestSink", "inputs": {"latent": ["4", 0]}},
    }


def _latent(x, **changes):
    out = dict(x)
    out["avi_capture"] = dict(x["avi_capture"], **{k: v for k, v in changes.items() if k != "samples"})
    if "samples" in changes:
        out["samples"] = changes["samples"]
    return out


USER_ERRORS = {
    "head for another size": ("HeadSizeMismatchError", "trained on 8x8"),
    "no capture record": ("CaptureRecordError", "has no AVI capture record"),
    "different seeds": ("CaptureRecordError", "with seed 42 but the target with seed 43"),
    "different batch sizes": ("CaptureRecordError", "batch of 2 but the target a batch of 1"),
    "x captured after z": ("CaptureRecordError", "must be captured earlier"),
}


@pytest.mark.parametrize("case", list(USER_ERRORS))
def test_user_errors_stop_the_run_with_their_message(executor_nodes, captured_pair, case):
    import avi_pack.avi_core as core

    x, z = captured_pair
    torch.manual_seed(0)
    STORE.update(x=x, z=z, head=core.AttributeHead(16, 16, hidden=32))
    if case == "head for another size":
        STORE["head"] = core.AttributeHead(8, 8, hidden=8)
    elif case == "no capture record":
        STORE["x"] = {"samples": x["samples"]}
    elif case == "different seeds":
        STORE["z"] = _latent(z, seed=43)
    elif case == "different batch sizes":
        STORE["z"] = _latent(z, samples=z["samples"][:1], batch=1)
    elif case == "x captured after z":
        STORE.update(x=z, z=x)
    executor, server = tiny_sd2.run_prompt(merge_prompt())
    error = tiny_sd2.execution_error(server)
    assert executor.success is False and error is not None
    kind, phrase = USER_ERRORS[case]
    assert error["node_type"] == "AVIMerge" and error["exception_type"].endswith(kind)
    assert phrase in error["exception_message"]
    print(f"\n[{case}] {error['exception_type']}: {error['exception_message']}")


def test_merge_and_train_run_in_the_executor(executor_nodes, captured_pair, host_env):
    import avi_pack.avi_core as core

    x, z = captured_pair
    torch.manual_seed(0)
    STORE.update(x=x, z=z, head=core.AttributeHead(16, 16, hidden=32))
    executor, server = tiny_sd2.run_prompt(merge_prompt("0, 1"))
    assert executor.success, tiny_sd2.execution_error(server)
    assert STORE["sink"]["samples"].shape == (4, 4, 16, 16)

    train = {
        "1": {"class_type": "AVITestLatentValue", "inputs": {"key": "x"}},
        "2": {"class_type": "AVITestLatentValue", "inputs": {"key": "z"}},
        "3": {
            "class_type": "AVITrainAttributeHead",
            "inputs": {
                "name": "executor_head",
                "description": "via PromptExecutor",
                "epochs": 1,
                "batch_size": 64,
                "learning_rate": 0.001,
                "k": 0,
                "lambda1": 3.0,
                "lambda2": 10.0,
                "lambda3": 10.0,
                "lambda4": 10.0,
                "hidden": 32,
                "seed": 0,
                "original": ["1", 0],
                "target": ["2", 0],
                "dataset": "",
            },
        },
    }
    executor, server = tiny_sd2.run_prompt(train)
    assert executor.success, tiny_sd2.execution_error(server)
    assert os.path.isfile(os.path.join(host_env, "models", "avi_heads", "executor_head.safetensors"))
    progress = [data for event, data in server.messages if event == "progress" and data["node"] == "3"]
    assert [p["value"] for p in progress] == list(range(1, 80)) and progress[-1]["max"] == 79
