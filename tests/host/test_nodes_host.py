"""The five V3 nodes inside a real ComfyUI (set COMFYUI_DIR; see tiny_sd2.SKIP_MESSAGE), with a tiny SD2 UNet.

Everything runs in-process on CPU against the host's own code: its comfy_api (the nodes are io.ComfyNode
classes, obtained through the pack's comfy_entrypoint), its samplers (nodes.common_ksampler,
KSamplerAdvanced), its model_sampling, its folder_paths (redirected into a temporary folder), its progress
bar and Cancel, its custom-node loader, and its validate_prompt / PromptExecutor.
"""

from __future__ import annotations

import asyncio
import math
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
def avi(pack, host_env):
    """{node id: V3 node class}, through the pack's comfy_entrypoint."""
    return tiny_sd2.avi_node_classes(pack)


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
    avi,
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
    with torch.inference_mode():  # ComfyUI's executor runs every node under inference mode
        out = avi["AVICaptureLatentAtStep"].execute(
            model=model,
            add_noise="enable",
            noise_seed=seed,
            steps=STEPS,
            cfg=7.5,
            sampler_name=sampler,
            scheduler=scheduler,
            positive=positive,
            negative=negative,
            latent_image=latent,
            stop_at=stop_at,
            stop_step=stop_step,
        )
    return out.args


def merge(avi, x, z, head, rho, mode, rho_list="", k=0):
    with torch.inference_mode():
        (out,) = (
            avi["AVIMerge"].execute(original=x, target=z, head=head, rho=rho, k=k, mode=mode, rho_list=rho_list).args
        )
    return out


def resume(model, positive, negative, latent, start, seed=SEED):
    with torch.inference_mode():
        return tiny_sd2.ksampler_advanced(
            model, positive, negative, latent, seed=seed, steps=STEPS, start=start, add_noise=False
        )["samples"]


def test_capture_at_0_8T_equals_ksampler_advanced(avi, model, conds):
    latent = tiny_sd2.empty_latent(batch=2)
    out, step = capture(avi, model, conds["original"], conds["negative"], latent, 0.8)
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


def test_capture_record_sigma_is_the_sampler_sigma(avi, model, conds):
    """The sigma in the record is the one the resuming KSamplerAdvanced evaluates the model at first."""
    latent = tiny_sd2.empty_latent()
    out, step = capture(avi, model, conds["original"], conds["negative"], latent, 0.8)
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
def test_capture_follows_the_sampler_schedule(avi, model, conds, sampler, scheduler, fraction, step, timestep):
    latent = tiny_sd2.empty_latent()
    out, got = capture(
        avi,
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


def test_capture_explicit_step(avi, model, conds):
    out, step = capture(avi, model, conds["original"], conds["negative"], tiny_sd2.empty_latent(), 0.8, stop_step=7)
    assert step == 7 and out["avi_capture"]["step"] == 7


def test_capture_refuses_to_stop_before_the_first_step(avi, model, conds):
    # stop_at 1.0 would be step 0, where the host's sampler returns the empty latent unchanged.
    import avi_pack.avi_core as core

    with pytest.raises(core.ParameterError, match=r"resolves to step 0 of 50.*between 0 and 0\.9") as err:
        capture(avi, model, conds["original"], conds["negative"], tiny_sd2.empty_latent(), 1.0)
    assert "Change stop_at on the node to a value within that range." in str(err.value)


def test_flow_model_is_refused_with_advice(avi, host_env, conds):
    import avi_pack.avi_core as core

    with pytest.raises(core.UnsupportedModelError, match="flow model") as err:
        capture(avi, tiny_sd2.flow_model(), conds["original"], conds["negative"], tiny_sd2.empty_latent(), 0.8)
    assert str(err.value).endswith("Use a Stable Diffusion 1.x, 2.x or SDXL checkpoint: AVI's maths needs noise added "
                                   "as x0 + sigma * eps.")  # fmt: skip


def test_merge_anchored_rho0_resumes_to_the_unedited_image(avi, model, conds):
    import avi_pack.avi_core as core

    latent = tiny_sd2.empty_latent(batch=2)
    x, step = capture(avi, model, conds["original"], conds["negative"], latent, 0.8)
    z, _ = capture(avi, model, conds["target"], conds["negative"], latent, 0.5)
    torch.manual_seed(0)
    head = core.AttributeHead(16, 16, hidden=32)
    same = merge(avi, x, z, head, 0.0, "anchored")
    edited = merge(avi, x, z, head, 1.0, "anchored")
    unedited = resume(model, conds["original"], conds["negative"], x, step)
    from_same = resume(model, conds["original"], conds["negative"], same, step)
    from_edited = resume(model, conds["original"], conds["negative"], edited, step)
    rel_same = float((from_same - unedited).norm() / unedited.norm())
    rel_edited = float((from_edited - unedited).norm() / unedited.norm())
    print(f"anchored rho=0: relative difference {rel_same:.2e}; rho=1: {rel_edited:.2e}")
    assert rel_same < 1e-4
    assert rel_edited > 1e-2


def test_merge_sweep_resumes_as_one_batch(avi, model, conds):
    import avi_pack.avi_core as core

    latent = tiny_sd2.empty_latent(batch=1)
    x, step = capture(avi, model, conds["original"], conds["negative"], latent, 0.8)
    z, _ = capture(avi, model, conds["target"], conds["negative"], latent, 0.5)
    torch.manual_seed(0)
    head = core.AttributeHead(16, 16, hidden=32)
    sweep = merge(avi, x, z, head, 1.0, "anchored", "0, 0.5, 1")
    images = resume(model, conds["original"], conds["negative"], sweep, step)
    assert images.shape == (3, 4, 16, 16) and torch.isfinite(images).all()
    unedited = resume(model, conds["original"], conds["negative"], x, step)
    assert float((images[0] - unedited[0]).norm() / unedited.norm()) < 1e-4


def train_tiny_head(avi, name, description, x, z):
    """AVI Train Attribute Head on captured LATENTs: 1 epoch of batch 64, hidden 32, the paper's other defaults."""
    return avi["AVITrainAttributeHead"].execute(
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


def test_train_in_inference_mode_then_load(avi, model, conds, host_env):
    import comfy.utils
    import folder_paths

    latent = tiny_sd2.empty_latent(batch=2)
    x, _ = capture(avi, model, conds["original"], conds["negative"], latent, 0.8)
    z, _ = capture(avi, model, conds["target"], conds["negative"], latent, 0.5)
    ticks = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: ticks.append((value, total)))
    try:
        with torch.inference_mode():
            out = train_tiny_head(avi, "host smile", "original -> target", x, z)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    head, plot = out.args
    assert len(ticks) == 79 and ticks[-1] == (79, 79)
    assert plot.shape == (1, 320, 512, 3)
    # The node shows its loss plot itself (an output node), as a preview image in the temp folder.
    (shown,) = out.ui.as_dict()["images"]
    assert shown["type"] == "temp" and os.path.isfile(
        os.path.join(folder_paths.get_temp_directory(), shown["filename"])
    )
    saved = os.path.join(host_env, "models", "avi_heads", "host smile.safetensors")
    assert os.path.isfile(saved)
    assert "host smile.safetensors" in folder_paths.get_filename_list("avi_heads")
    load = avi["AVILoadAttributeHead"]
    assert "host smile.safetensors" in load.INPUT_TYPES()["required"]["head_name"][1]["options"]
    assert load.validate_inputs(head_name="host smile.safetensors") is True
    loaded, info = load.execute(head_name="host smile.safetensors").args
    for name, value in head.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value)
    assert "2 pair(s)" in info and "timestep 795" in info and "original -> target" in info
    assert load.fingerprint_inputs(head_name="host smile.safetensors") == os.path.getmtime(saved)


def test_cancel_stops_training(avi, model, conds, host_env):
    import comfy.model_management
    import comfy.utils

    latent = tiny_sd2.empty_latent(batch=1)
    x, _ = capture(avi, model, conds["original"], conds["negative"], latent, 0.8)
    z, _ = capture(avi, model, conds["target"], conds["negative"], latent, 0.5)
    ticks = []

    def hook(value, total, preview, node_id=None):
        ticks.append(value)
        if value == 3:
            comfy.model_management.interrupt_current_processing(True)  # what the page's Cancel button does

    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        with torch.inference_mode(), pytest.raises(comfy.model_management.InterruptProcessingException):
            train_tiny_head(avi, "cancelled", "", x, z)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        comfy.model_management.interrupt_current_processing(False)
    assert ticks == [1, 2, 3]
    assert not os.path.exists(os.path.join(host_env, "models", "avi_heads", "cancelled.safetensors"))


def test_load_names_a_missing_head_at_queue_time(avi):
    load = avi["AVILoadAttributeHead"]
    message = load.validate_inputs(head_name="smile.safetensors")
    assert message.startswith("attribute head 'smile.safetensors' is not in the avi_heads folders (")
    assert message.endswith(
        "Press R to refresh the list and pick a head in 'AVI Load Attribute Head', or train one with 'AVI Train "
        "Attribute Head' (the 'learn an attribute' workflow)."
    )
    assert math.isnan(load.fingerprint_inputs(head_name="smile.safetensors"))
    import avi_pack.avi_core as core

    with pytest.raises(core.HeadFileError, match="Press R to refresh"):
        load.execute(head_name="smile.safetensors")


def _captured(samples, *, step, sigma, timestep, seed=7):
    import avi_pack.avi_core.latent.capture as capture_records

    record = capture_records.make_record(
        step=step,
        steps=50,
        sigma=sigma,
        timestep=timestep,
        num_timesteps=1000,
        scale_factor=0.18215,
        seed=seed,
        batch=samples.shape[0],
        sampler="euler",
        scheduler="normal",
        shape=samples.shape,
    )
    return {"samples": samples, capture_records.CAPTURE_KEY: record, "batch_index": [0, 1]}


def test_append_writes_one_shard_per_run_and_shows_what_it_wrote(avi, host_env, monkeypatch, tmp_path):
    import avi_pack.avi_core.files.datasets as datasets
    from avi_pack.nodes import host

    monkeypatch.setattr(host, "dataset_roots", lambda: [str(tmp_path / "first"), str(tmp_path / "second")])
    node = avi["AVIAppendToDataset"]
    assert node.GET_SCHEMA().is_output_node is True
    xs, zs = torch.randn(2, 4, 8, 8) * 20, torch.randn(2, 4, 8, 8) * 3
    original = _captured(xs, step=10, sigma=14.6, timestep=795)
    target = _captured(zs, step=25, sigma=1.9, timestep=489)
    with torch.inference_mode():
        out1 = node.execute(original=original, target=target, dataset="../my smile")
        out2 = node.execute(original=original, target=target, dataset="../my smile")
    folder = tmp_path / "first" / "my smile"
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in datasets.iter_shard_paths(folder))
    assert len(list(folder.iterdir())) == 2 and not (tmp_path / "second").exists()
    assert out1.args[0].startswith("added 2 pair(s) to dataset 'my smile': now 2 pair(s) in 1 shard(s)")
    assert "now 4 pair(s) in 2 shard(s)" in out2.args[0]
    assert out2.ui.as_dict() == {"text": (out2.args[0],)}
    assert datasets.read_dataset(folder).pairs == 4


def test_train_from_a_dataset_reruns_after_appending_with_unchanged_widgets(avi, host_env, monkeypatch, tmp_path):
    # The Train node's fingerprint (ComfyUI's cache key beside the inputs) follows the dataset's shards.
    from avi_pack.nodes import host

    monkeypatch.setattr(host, "dataset_roots", lambda: [str(tmp_path)])
    append, train = avi["AVIAppendToDataset"], avi["AVITrainAttributeHead"]
    original = _captured(torch.randn(1, 4, 8, 8) * 20, step=10, sigma=14.6, timestep=795)
    target = _captured(torch.randn(1, 4, 8, 8) * 3, step=25, sigma=1.9, timestep=489)
    assert train.fingerprint_inputs(dataset="") == train.fingerprint_inputs(dataset="") == ""
    with torch.inference_mode():
        append.execute(original=original, target=target, dataset="smile")
        before = train.fingerprint_inputs(name="h", dataset="smile")
        assert train.fingerprint_inputs(name="h", dataset="smile") == before
        append.execute(original=original, target=target, dataset="smile")
    assert train.fingerprint_inputs(name="h", dataset="smile") != before


def test_append_refuses_latents_without_records_with_advice(avi, host_env, monkeypatch, tmp_path):
    import avi_pack.avi_core as core
    from avi_pack.nodes import host

    monkeypatch.setattr(host, "dataset_roots", lambda: [str(tmp_path)])
    node = avi["AVIAppendToDataset"]
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    with pytest.raises(core.CaptureRecordError, match="Produce it with 'AVI Capture Latent at Step'"):
        node.execute(original=latent, target=latent, dataset="smile")
    with pytest.raises(core.errors.InvalidNameError, match="Type a dataset name made of letters"):
        node.execute(original=latent, target=latent, dataset="../..")
    assert list(tmp_path.iterdir()) == []


def test_train_source_errors_say_what_to_connect(avi, host_env, captured_pair):
    import avi_pack.avi_core as core

    x, z = captured_pair
    train = avi["AVITrainAttributeHead"]
    args = dict(name="a", description="", epochs=1, batch_size=64, learning_rate=1e-3, k=0, hidden=8, seed=0)
    args.update(lambda1=3.0, lambda2=10.0, lambda3=10.0, lambda4=10.0)
    with pytest.raises(core.ParameterError, match="or type a dataset name into dataset"):
        train.execute(original=x, **args)
    with pytest.raises(core.ParameterError, match="Disconnect the original and target inputs"):
        train.execute(original=x, target=z, dataset="smiles", **args)
    with pytest.raises(core.DatasetError, match=r"no dataset named 'nope'.*build a dataset"):
        train.execute(dataset="nope", **args)


def test_every_node_explains_its_errors(avi):
    for node_id, cls in avi.items():
        assert getattr(cls.execute, "__avi_explains_errors__", False), f"{node_id}.execute lacks @explains_errors"


def test_pack_loads_through_comfyui_custom_node_loader(host_env, tmp_path, avi):
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
    # Other host tests (the benchmarks' in-process runs) may have put the pack's nodes into the mappings already:
    # set them aside, so that this load is the one that adds them.
    earlier = {n: comfy_nodes.NODE_CLASS_MAPPINGS.pop(n) for n in set(avi) & set(comfy_nodes.NODE_CLASS_MAPPINGS)}
    before = set(comfy_nodes.NODE_CLASS_MAPPINGS)
    try:
        assert asyncio.run(comfy_nodes.load_custom_node(str(link))) is True
        added = set(comfy_nodes.NODE_CLASS_MAPPINGS) - before
        assert added >= {
            "AVICaptureLatentAtStep",
            "AVIMerge",
            "AVITrainAttributeHead",
            "AVILoadAttributeHead",
            "AVIAppendToDataset",
            # boundary
            "AVICollectBoundarySamples",
            "AVIFitBoundary",
            "AVILoadBoundary",
            "AVIBoundaryEdit",
            "AVIInvert",  # inversion
            "AVICaptureTrajectory",  # explore
            "AVIPlotSingularSpectrum",
            "AVIRankOneViews",
            "AVIPlotSubspaceDistance",
            # digits
            "AVILoadDigitModel",
            "AVIDigitPrompt",
            "AVIEmptyDigitLatent",
        }
        assert added == set(avi)  # and every other method's nodes
        from comfy_api.latest import io

        assert all(issubclass(comfy_nodes.NODE_CLASS_MAPPINGS[n], io.ComfyNode) for n in added), "V3 nodes"
        assert comfy_nodes.NODE_DISPLAY_NAME_MAPPINGS["AVIMerge"] == "AVI Merge"
        assert (
            comfy_nodes.NODE_CLASS_MAPPINGS["AVIMerge"].RELATIVE_PYTHON_MODULE == "custom_nodes.avi-attribute-vectors"
        )

        capture_inputs = comfy_nodes.NODE_CLASS_MAPPINGS["AVICaptureLatentAtStep"].INPUT_TYPES()["required"]
        assert capture_inputs["sampler_name"][1]["options"] == comfy.samplers.KSampler.SAMPLERS
        assert capture_inputs["scheduler"][1]["options"] == comfy.samplers.KSampler.SCHEDULERS
        assert comfy_nodes.NODE_CLASS_MAPPINGS["AVILoadAttributeHead"].RETURN_TYPES == ["AVI_HEAD", "STRING"]

        paths, extensions = folder_paths.folder_names_and_paths["avi_heads"]
        assert paths == [str(tmp_path / "yaml_heads"), os.path.join(str(host_env), "models", "avi_heads")]
        assert extensions == {".safetensors"}
        assert folder_paths.get_folder_paths("avi_datasets")[-1] == os.path.join(
            str(host_env), "models", "avi_datasets"
        )
    finally:
        folder_paths.folder_names_and_paths["avi_heads"] = saved
        for node_id in set(comfy_nodes.NODE_CLASS_MAPPINGS) - before:
            comfy_nodes.NODE_CLASS_MAPPINGS.pop(node_id)
        comfy_nodes.NODE_CLASS_MAPPINGS.update(earlier)


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


class AVITestTextSink(AVITestSink):
    """Test-only output node: takes a STRING."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"forceInput": True})}}

    def keep(self, text):
        STORE["text"] = text
        return {}


@pytest.fixture(scope="module")
def executor_nodes(avi, host_env):
    comfy_nodes = tiny_sd2.host_nodes()
    added = {
        **avi,
        "AVITestLatentValue": AVITestLatentValue,
        "AVITestHeadValue": AVITestHeadValue,
        "AVITestSink": AVITestSink,
        "AVITestTextSink": AVITestTextSink,
    }
    saved = {k: comfy_nodes.NODE_CLASS_MAPPINGS.get(k) for k in added}
    comfy_nodes.NODE_CLASS_MAPPINGS.update(added)
    yield
    for node_id, cls in saved.items():
        if cls is None:
            comfy_nodes.NODE_CLASS_MAPPINGS.pop(node_id, None)
        else:
            comfy_nodes.NODE_CLASS_MAPPINGS[node_id] = cls


@pytest.fixture(scope="module")
def captured_pair(avi, model, conds):
    latent = tiny_sd2.empty_latent(batch=2)
    x, _ = capture(avi, model, conds["original"], conds["negative"], latent, 0.8)
    z, _ = capture(avi, model, conds["target"], conds["negative"], latent, 0.5)
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


# case: (exception type, the facts, the node's advice)
USER_ERRORS = {
    "head for another size": (
        "HeadSizeMismatchError",
        "trained on 8x8",
        "Generate at 64x64 px (the Empty Latent Image's width and height), or train a head at this size with "
        "'AVI Train Attribute Head'.",
    ),
    "no capture record": (
        "CaptureRecordError",
        "the original latent has no capture record, so its noise level is unknown.",
        "Produce it with 'AVI Capture Latent at Step' (not KSampler / KSamplerAdvanced / Empty Latent Image)",
    ),
    "different seeds": (
        "PairMismatchError",
        "with seed 42 but the target with seed 43",
        "connect one seed (an Int node, as the workflows do) to both noise_seed inputs.",
    ),
    "different batch sizes": (
        "PairMismatchError",
        "batch of 2 but the target a batch of 1",
        "Feed both 'AVI Capture Latent at Step' nodes from the same Empty Latent Image",
    ),
    "x captured after z": (
        "PairMismatchError",
        "must be captured earlier",
        "Set the original's stop_at higher (paper: 0.8) than the target's (paper: 0.5), or swap the two inputs.",
    ),
}


@pytest.mark.parametrize("case", list(USER_ERRORS))
def test_user_errors_stop_the_run_with_facts_and_advice(executor_nodes, captured_pair, case):
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
    kind, facts, advice = USER_ERRORS[case]
    assert error["node_type"] == "AVIMerge" and error["exception_type"].endswith(kind)
    assert facts in error["exception_message"] and advice in error["exception_message"]
    print(f"\n[{case}] {error['exception_type']}: {error['exception_message']}")


def test_a_missing_head_fails_validation_with_advice(executor_nodes):
    import execution

    prompt = {
        "1": {"class_type": "AVILoadAttributeHead", "inputs": {"head_name": "nowhere.safetensors"}},
        "2": {"class_type": "AVITestTextSink", "inputs": {"text": ["1", 1]}},
    }
    valid = asyncio.run(execution.validate_prompt("avi-test", prompt, None))
    assert valid[0] is False
    (reason,) = valid[3]["1"]["errors"]
    assert reason["type"] == "custom_validation_failed"
    assert "head_name - attribute head 'nowhere.safetensors' is not in the avi_heads folders" in reason["details"]
    assert "Press R to refresh the list" in reason["details"]
    print(f"\n[missing head] {reason['message']}: {reason['details']}")


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
    shown = [data for event, data in server.messages if event == "executed" and data["node"] == "3"]
    assert shown and shown[0]["output"]["images"][0]["type"] == "temp", "the Train node shows its loss plot"
