"""Host-free tests of the four nodes: plain LATENT dicts, small tensors, small heads.

ComfyUI is not imported here; the few host services the nodes use (device, progress bar, Cancel check,
models folders) are replaced by minimal fakes through `avi_pack.nodes.host`.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from helpers import synthetic_pairs

SIGMA_X, SIGMA_Z, SCALE = 5.4, 1.9, 0.18215


@pytest.fixture(scope="module")
def core(pack):
    import avi_pack.avi_core as core
    import avi_pack.avi_core.avi.describe  # noqa: F401

    return core


@pytest.fixture(scope="module")
def nodes(pack):
    import avi_pack.nodes as nodes

    return nodes


class FakeBar:
    def __init__(self, total):
        self.total = total
        self.updates = []

    def update_absolute(self, value, total=None):
        self.updates.append((value, total))


@pytest.fixture
def fake_host(nodes, monkeypatch, tmp_path):
    """The host services the nodes use, pointing into tmp_path."""
    host = nodes.host
    heads = tmp_path / "avi_heads"
    datasets = tmp_path / "avi_datasets"
    heads.mkdir()
    datasets.mkdir()
    state = {"bars": [], "interrupt_checks": 0, "heads": heads, "datasets": datasets, "interrupt_at": None}

    def progress_bar(total):
        bar = FakeBar(total)
        state["bars"].append(bar)
        return bar

    def throw_if_interrupted():
        state["interrupt_checks"] += 1
        if state["interrupt_at"] is not None and state["interrupt_checks"] >= state["interrupt_at"]:
            raise KeyboardInterrupt("cancelled by the test")

    def head_path(filename):
        path = heads / filename
        if not path.is_file():
            raise FileNotFoundError(filename)
        return str(path)

    monkeypatch.setattr(host, "torch_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(host, "progress_bar", progress_bar)
    monkeypatch.setattr(host, "throw_if_interrupted", throw_if_interrupted)
    monkeypatch.setattr(host, "heads_save_folder", lambda: str(heads))
    monkeypatch.setattr(host, "head_files", lambda: sorted(p.name for p in heads.glob("*.safetensors")))
    monkeypatch.setattr(host, "head_path", head_path)
    monkeypatch.setattr(host, "dataset_roots", lambda: [str(datasets)])
    return state


def captured(core, paper, sigma, *, seed=7, step=10, steps=50, timestep=795, extra=None):
    """A LATENT dict as the capture node makes it, from paper-space latents [B, C, H, W]."""
    latent = {"samples": core.from_paper_space(paper, sigma, SCALE).float()}
    latent["avi_capture"] = core.capture.make_record(
        step=step,
        steps=steps,
        sigma=sigma,
        timestep=timestep,
        num_timesteps=1000,
        scale_factor=SCALE,
        seed=seed,
        batch=paper.shape[0],
        sampler="euler",
        scheduler="normal",
        shape=tuple(paper.shape),
    )
    latent.update(extra or {})
    return latent


def pair(core, batch=2, size=16, **kwargs):
    x, z = synthetic_pairs(batch, size=size, seed=3)
    return (
        captured(core, x, SIGMA_X, step=10, timestep=795, **kwargs),
        captured(core, z, SIGMA_Z, step=25, timestep=489, **kwargs),
        x,
        z,
    )


@pytest.fixture(scope="module")
def head(core):
    torch.manual_seed(0)
    return core.AttributeHead(16, 16, hidden=16)


def run_merge(nodes, x, z, head, rho=1.0, k=0, mode="paper", rho_list=""):
    (out,) = nodes.NODE_CLASS_MAPPINGS["AVIMerge"]().merge(x, z, head, rho, k, mode, rho_list)
    return out


# --- registry and schema ---


def test_pack_registers_the_four_nodes(pack, nodes):
    expected = {
        "AVICaptureLatentAtStep": "AVI Capture Latent at Step",
        "AVIMerge": "AVI Merge",
        "AVITrainAttributeHead": "AVI Train Attribute Head",
        "AVILoadAttributeHead": "AVI Load Attribute Head",
    }
    assert nodes.IMPORT_ERRORS == {}
    for node_id, display in expected.items():
        assert pack.NODE_CLASS_MAPPINGS[node_id].__name__ == node_id
        assert pack.NODE_DISPLAY_NAME_MAPPINGS[node_id] == display
    assert all(node_id.startswith("AVI") for node_id in pack.NODE_CLASS_MAPPINGS)


@pytest.mark.parametrize(
    "node_id", ["AVICaptureLatentAtStep", "AVIMerge", "AVITrainAttributeHead", "AVILoadAttributeHead"]
)
def test_every_input_has_a_tooltip_and_every_node_a_description(pack, node_id):
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    assert cls.DESCRIPTION and cls.CATEGORY == "latent/avi"
    assert callable(getattr(cls, cls.FUNCTION))
    assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES)
    spec = cls.INPUT_TYPES()
    for section in spec.values():
        for name, (_kind, *options) in section.items():
            assert options and options[0].get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_merge_inputs_match_the_issue(pack):
    spec = pack.NODE_CLASS_MAPPINGS["AVIMerge"].INPUT_TYPES()["required"]
    assert spec["rho"][1]["min"] == 0.0 and spec["rho"][1]["max"] == 2.0 and spec["rho"][1]["default"] == 1.0
    assert spec["rho"][1]["display"] == "slider"
    assert spec["mode"][0] == ["paper", "anchored"] and spec["k"][1]["default"] == 0
    assert spec["head"][0] == "AVI_HEAD"


def test_capture_defaults(pack):
    spec = pack.NODE_CLASS_MAPPINGS["AVICaptureLatentAtStep"].INPUT_TYPES()["required"]
    assert spec["stop_at"][1]["default"] == 0.8 and spec["stop_step"][1]["default"] == 0
    assert pack.NODE_CLASS_MAPPINGS["AVICaptureLatentAtStep"].RETURN_TYPES == ("LATENT", "INT")


# --- merge ---


def test_merge_runs_in_paper_space_and_returns_at_x_sigma(core, nodes, head):
    x_lat, z_lat, x, z = pair(core)
    out = run_merge(nodes, x_lat, z_lat, head, rho=0.7)
    expected = core.from_paper_space(core.merge(x, z, head, rho=0.7), SIGMA_X, SCALE)
    torch.testing.assert_close(out["samples"], expected.float(), rtol=1e-4, atol=1e-4)
    # The same merge done on the raw ComfyUI latents (the mistake spec section 1 warns about) differs.
    raw = core.merge(x_lat["samples"], z_lat["samples"], head, rho=0.7)
    assert (raw - out["samples"]).abs().max() > 0.1 * out["samples"].abs().max()


def test_anchored_rho_zero_returns_x_in_comfy_convention(core, nodes, head):
    x_lat, z_lat, _, _ = pair(core)
    out = run_merge(nodes, x_lat, z_lat, head, rho=0.0, mode="anchored")
    rel = (out["samples"] - x_lat["samples"]).norm() / x_lat["samples"].norm()
    assert rel < 1e-5
    changed = run_merge(nodes, x_lat, z_lat, head, rho=1.0, mode="anchored")
    assert (changed["samples"] - x_lat["samples"]).norm() / x_lat["samples"].norm() > 1e-2


def test_merge_keeps_x_record_and_keys(core, nodes, head):
    mask = torch.rand(2, 1, 16, 16)
    x_lat, z_lat, _, _ = pair(core, extra={"batch_index": [4, 5], "noise_mask": mask})
    out = run_merge(nodes, x_lat, z_lat, head)
    assert out["batch_index"] == [4, 5] and out["noise_mask"] is mask
    record = out["avi_capture"]
    for key, value in x_lat["avi_capture"].items():
        assert record[key] == value
    assert record["merged"] == {"rhos": [1.0], "mode": "paper", "k": head.k}
    assert out["samples"].dtype == x_lat["samples"].dtype and out["samples"].shape == x_lat["samples"].shape
    assert x_lat["samples"] is not out["samples"] and "merged" not in x_lat["avi_capture"]


def test_rho_list_returns_the_sweep_rho_major(core, nodes, head):
    mask = torch.rand(2, 1, 16, 16)
    x_lat, z_lat, _, _ = pair(core, extra={"noise_mask": mask})
    rhos = [0.0, 0.5, 1.0]
    out = run_merge(nodes, x_lat, z_lat, head, rho=0.3, rho_list="0, 0.5 ,1")
    assert out["samples"].shape[0] == 6
    for i, rho in enumerate(rhos):
        single = run_merge(nodes, x_lat, z_lat, head, rho=rho)
        torch.testing.assert_close(out["samples"][2 * i : 2 * i + 2], single["samples"], rtol=1e-5, atol=1e-4)
    assert out["batch_index"] == [0, 1, 0, 1, 0, 1]
    assert out["noise_mask"].shape[0] == 6 and torch.equal(out["noise_mask"][4:], mask)
    assert out["avi_capture"]["batch"] == 6 and out["avi_capture"]["merged"]["rhos"] == rhos


def test_k_override_changes_the_merge(core, nodes, head):
    x_lat, z_lat, _, _ = pair(core)
    default = run_merge(nodes, x_lat, z_lat, head)
    other = run_merge(nodes, x_lat, z_lat, head, k=4)
    assert not torch.allclose(default["samples"], other["samples"])
    assert other["avi_capture"]["merged"]["k"] == 4


# --- the user errors of issue 3 -----------------------------------------------------------------------------


def test_latent_without_record_names_the_capture_node(core, nodes, head):
    x_lat, z_lat, _, _ = pair(core)
    plain = {"samples": x_lat["samples"]}
    with pytest.raises(core.CaptureRecordError, match="AVI Capture Latent at Step") as err:
        run_merge(nodes, plain, z_lat, head)
    assert "original latent has no AVI capture record" in str(err.value)
    with pytest.raises(core.CaptureRecordError, match="target latent has no AVI capture record"):
        run_merge(nodes, x_lat, {"samples": z_lat["samples"]}, head)


def test_x_captured_after_z_is_refused(core, nodes, head):
    x_lat, z_lat, _, _ = pair(core)
    with pytest.raises(core.CaptureRecordError, match="must be captured earlier") as err:
        run_merge(nodes, z_lat, x_lat, head)
    assert "step 25 of 50" in str(err.value) and "swap the two inputs" in str(err.value)
    same = captured(core, synthetic_pairs(2, seed=3)[0], SIGMA_X)
    with pytest.raises(core.CaptureRecordError, match="must be captured earlier"):
        run_merge(nodes, same, same, head)


def test_different_seeds_are_refused(core, nodes, head):
    x_lat, _, _, z = pair(core)
    z_other = captured(core, z, SIGMA_Z, seed=8, step=25, timestep=489)
    with pytest.raises(core.CaptureRecordError, match="seed 7 but the target with seed 8"):
        run_merge(nodes, x_lat, z_other, head)


def test_different_batch_sizes_are_refused(core, nodes, head):
    x_lat, _, _, z = pair(core)
    z_one = captured(core, z[:1], SIGMA_Z, step=25, timestep=489)
    with pytest.raises(core.CaptureRecordError, match="batch of 2 but the target a batch of 1"):
        run_merge(nodes, x_lat, z_one, head)


def test_record_that_does_not_fit_its_batch_is_refused(core, nodes, head):
    x_lat, z_lat, _, _ = pair(core)
    cut = dict(x_lat, samples=x_lat["samples"][:1])
    with pytest.raises(core.CaptureRecordError, match="changed after 'AVI Capture Latent at Step'"):
        run_merge(nodes, cut, z_lat, head)


def test_head_size_mismatch_names_both_sizes(core, nodes):
    head64 = core.AttributeHead(64, 64, hidden=8)
    x, z = synthetic_pairs(1, size=96, seed=1)
    x_lat = captured(core, x, SIGMA_X)
    z_lat = captured(core, z, SIGMA_Z, step=25, timestep=489)
    with pytest.raises(core.HeadSizeMismatchError) as err:
        run_merge(nodes, x_lat, z_lat, head64)
    assert "64x64" in str(err.value) and "96x96" in str(err.value)


def test_bad_rho_list_says_how_to_write_it(core, nodes, head):
    x_lat, z_lat, _, _ = pair(core)
    with pytest.raises(ValueError, match="'half' is not a number"):
        run_merge(nodes, x_lat, z_lat, head, rho_list="0, half")


# --- capture helpers ---


def test_nearest_step_on_the_normal_schedule():
    from avi_pack.avi_core.latent.capture import nearest_step, resolve_stop_step

    # SD 2.1 `normal` scheduler, 50 steps: timesteps linspace(999, 0, 50), then a final sigma 0.
    timesteps = torch.linspace(999, 0, 50).tolist()
    assert nearest_step(timesteps, 0.8, 1000) == 10 and round(timesteps[10]) == 795
    # 0.5T: step 24 (timestep 510) is nearer to 500 than step 25 (489).
    assert nearest_step(timesteps, 0.5, 1000) == 24 and round(timesteps[24]) == 510
    assert nearest_step([10.0, 6.0], 0.008, 1000) == 0  # a tie goes to the noisier step
    sigmas = [14.6] + [1.0] * 49 + [0.0]
    assert resolve_stop_step(sigmas, timesteps + [0.0], 0.0, 1000) == 49  # never the sigma-0 end
    assert resolve_stop_step(sigmas, timesteps + [0.0], 0.8, 1000, explicit_step=12) == 12
    with pytest.raises(ValueError, match="leaves no noise"):
        resolve_stop_step(sigmas, timesteps + [0.0], 0.8, 1000, explicit_step=50)


def test_flow_models_are_refused(core, nodes):
    def flow_scaling(sigma, noise, latent_image):
        return sigma * noise + (1.0 - sigma) * latent_image

    def eps_scaling(sigma, noise, latent_image):
        return latent_image + sigma * noise

    core.capture.check_additive_noise(eps_scaling, lambda sigma, latent: latent)
    with pytest.raises(core.UnsupportedModelError, match="flow model"):
        core.capture.check_additive_noise(flow_scaling, lambda sigma, latent: latent / (1 - sigma))

    class FlowSampling:
        noise_scaling = staticmethod(flow_scaling)

        @staticmethod
        def inverse_noise_scaling(sigma, latent):
            return latent / (1.0 - sigma)

    class FakeModel:
        def get_model_object(self, name):
            assert name == "model_sampling"
            return FlowSampling()

    capture = nodes.NODE_CLASS_MAPPINGS["AVICaptureLatentAtStep"]()
    with pytest.raises(core.UnsupportedModelError, match="SD3 or Flux"):
        capture.capture(FakeModel(), "enable", 0, 50, 7.5, "euler", "normal", [], [], {}, 0.8, 0)


# --- names, plot, description ---


@pytest.mark.parametrize(
    "raw, safe",
    [
        ("smile", "smile"),
        ("../../etc/passwd", "etc_passwd"),
        ("a/b\\c", "a_b_c"),
        ("..hidden", "hidden"),
        ("old man.safetensors", "old man"),
        ("C:\\heads\\x", "C_heads_x"),
        ("a..b", "a_b"),
    ],
)
def test_head_names_are_sanitised(core, raw, safe):
    cleaned = core.head_info.sanitize_head_name(raw)
    assert cleaned == safe
    assert os.sep not in cleaned and "/" not in cleaned and ".." not in cleaned


@pytest.mark.parametrize("raw", ["", "  ", "..", "../..", "///"])
def test_unusable_head_names_are_refused(core, raw):
    with pytest.raises(ValueError, match="no usable characters"):
        core.head_info.sanitize_head_name(raw)


def test_loss_plot_draws_four_coloured_lines(core):
    from avi_pack.avi_core.plots.loss_plot import COLORS, render_loss_plot

    steps = torch.arange(1, 101, dtype=torch.float32)
    history = torch.stack([10 / steps, 1 / steps.sqrt(), 0.1 * torch.ones(100), 5 * torch.exp(-steps / 30)], 1)
    image = render_loss_plot(history)
    assert image.shape == (1, 320, 512, 3) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    for color in COLORS:
        hits = (image[0] - torch.tensor(color)).abs().sum(-1) < 1e-3
        assert hits.sum() > 200, color  # the line, not only the legend swatch
    # A constant term is a horizontal line: its colour occupies (nearly) one band of rows.
    green = ((image[0] - torch.tensor(COLORS[2])).abs().sum(-1) < 1e-3)[40:, 60:]
    assert green.any(1).sum() <= 3
    history[5, 0] = float("nan")
    history[6, 1] = 0.0
    assert torch.isfinite(render_loss_plot(history)).all()
    with pytest.raises(ValueError, match=r"\[steps, 4\]"):
        render_loss_plot(torch.ones(5, 3))


def test_describe_head_mentions_what_an_artist_needs(core):
    text = core.head_info.describe_head(
        {
            "height": 64,
            "width": 64,
            "rank": 64,
            "k": 32,
            "hidden": 4096,
            "pairs": 500,
            "description": "smiling",
            "x_timestep": 795,
            "z_timestep": 489,
            "x_step": 10,
            "z_step": 25,
            "x_steps": 50,
            "z_steps": 50,
            "T": 1000,
        },
        name="smile",
    )
    for part in ("'smile'", "smiling", "64x64", "512x512 px", "k = 32", "500 pairs", "timestep 795", "489"):
        assert part in text


# --- train and load ---


TRAIN_ARGS = dict(
    description="neutral -> smiling",
    epochs=1,
    batch_size=64,
    learning_rate=1e-3,
    k=0,
    lambda1=3.0,
    lambda2=10.0,
    lambda3=10.0,
    lambda4=10.0,
    hidden=16,
    seed=0,
)


def test_train_saves_a_head_that_load_lists_and_loads(core, nodes, fake_host):
    x_lat, z_lat, _, _ = pair(core, batch=3)
    train = nodes.NODE_CLASS_MAPPINGS["AVITrainAttributeHead"]()
    with torch.inference_mode():  # as ComfyUI's executor runs nodes
        head, plot = train.train("../smile/v1", original=x_lat, target=z_lat, **TRAIN_ARGS)
    path = fake_host["heads"] / "smile_v1.safetensors"
    assert path.is_file() and sorted(os.listdir(fake_host["heads"])) == ["smile_v1.safetensors"]
    steps = math.ceil(5000 / 64)
    (bar,) = fake_host["bars"]
    assert bar.total == steps and bar.updates[-1] == (steps, steps) and len(bar.updates) == steps
    assert fake_host["interrupt_checks"] == steps
    assert plot.shape == (1, 320, 512, 3)
    assert head.height == 16 and head.k == 8 and not any(p.requires_grad for p in head.parameters())

    meta = core.read_head_metadata(path)
    assert meta["x_timestep"] == 795 and meta["z_timestep"] == 489 and meta["x_sigma"] == SIGMA_X
    assert meta["scale_factor"] == SCALE and meta["pairs"] == 3 and meta["description"] == "neutral -> smiling"

    load = nodes.NODE_CLASS_MAPPINGS["AVILoadAttributeHead"]
    assert load.INPUT_TYPES()["required"]["head_name"][0] == ["smile_v1.safetensors"]
    loaded, info = load().load("smile_v1.safetensors")
    for name, value in head.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)
    assert "neutral -> smiling" in info and "3 pairs" in info and "timestep 795" in info
    # The trained head merges (same k, same size).
    out = run_merge(nodes, x_lat, z_lat, loaded)
    assert torch.isfinite(out["samples"]).all()


def test_cancel_stops_training_and_writes_nothing(core, nodes, fake_host):
    x_lat, z_lat, _, _ = pair(core)
    fake_host["interrupt_at"] = 3
    with pytest.raises(KeyboardInterrupt, match="cancelled by the test"):
        nodes.NODE_CLASS_MAPPINGS["AVITrainAttributeHead"]().train(
            "cancelled", original=x_lat, target=z_lat, **TRAIN_ARGS
        )
    assert fake_host["interrupt_checks"] == 3 and list(fake_host["heads"].iterdir()) == []


def test_train_from_a_dataset(core, nodes, fake_host):
    x, z = synthetic_pairs(4, seed=5)
    records = {
        "x": captured(core, x, SIGMA_X)["avi_capture"],
        "z": captured(core, z, SIGMA_Z, step=25, timestep=489)["avi_capture"],
    }
    core.datasets.append_shard(fake_host["datasets"] / "smiles", x, z, records=records)
    head, _ = nodes.NODE_CLASS_MAPPINGS["AVITrainAttributeHead"]().train("from_data", dataset="smiles", **TRAIN_ARGS)
    meta = core.read_head_metadata(fake_host["heads"] / "from_data.safetensors")
    assert meta["pairs"] == 4 and meta["x_timestep"] == 795 and "dataset 'smiles'" in meta["source"]


def test_train_input_errors(core, nodes, fake_host):
    train = nodes.NODE_CLASS_MAPPINGS["AVITrainAttributeHead"]()
    x_lat, z_lat, _, _ = pair(core)
    with pytest.raises(ValueError, match="connect both the original"):
        train.train("a", original=x_lat, **TRAIN_ARGS)
    with pytest.raises(ValueError, match="both latents and a dataset"):
        train.train("a", original=x_lat, target=z_lat, dataset="smiles", **TRAIN_ARGS)
    with pytest.raises(core.DatasetError, match="no dataset named 'nope'"):
        train.train("a", dataset="nope", **TRAIN_ARGS)
    with pytest.raises(core.CaptureRecordError, match="must be captured earlier"):
        train.train("a", original=z_lat, target=x_lat, **TRAIN_ARGS)
    with pytest.raises(ValueError, match="no usable characters"):
        train.train("..", original=x_lat, target=z_lat, **TRAIN_ARGS)
    assert list(fake_host["heads"].iterdir()) == []


def test_registering_folders_without_comfyui_is_a_no_op(nodes):
    try:
        import folder_paths  # noqa: F401
    except ImportError:
        assert nodes.host.register_model_folders() is False
    else:
        pytest.skip("folder_paths is importable here (running inside a ComfyUI environment)")
