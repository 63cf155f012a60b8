"""What the nodes do, host-free: the engine functions each node calls, fed LATENT dicts as ComfyUI passes them.

The nodes themselves are V3 classes that need ComfyUI's comfy_api; they are thin adapters (ComfyUI types in,
one engine call, ComfyUI types out) and are tested in the real host by tests/host/test_nodes_host.py. Here:

- AVI Merge        -> avi_core.avi.latent_merge.merge_latents (+ values.values_or_default for rho_list)
- AVI Train        -> avi_core.avi.training_data.training_pairs, then avi.training.train_head
- AVI Capture      -> avi_core.latent.schedule (check_schedule, step_timesteps), latent.capture.resolve_stop_step
- AVI Load         -> avi_core.avi.head_files.load_head, avi.describe.describe_head
- names, the loss plot
"""

from __future__ import annotations

import os

import pytest
import torch
from helpers import synthetic_pairs

SIGMA_X, SIGMA_Z, SCALE = 5.4, 1.9, 0.18215


@pytest.fixture(scope="module")
def core(pack):
    import avi_pack.avi_core as core
    import avi_pack.avi_core.avi.describe  # noqa: F401
    import avi_pack.avi_core.avi.latent_merge  # noqa: F401
    import avi_pack.avi_core.avi.training_data  # noqa: F401
    import avi_pack.avi_core.files.datasets  # noqa: F401
    import avi_pack.avi_core.latent.capture  # noqa: F401
    import avi_pack.avi_core.latent.schedule  # noqa: F401

    return core


def captured(core, paper, sigma, *, seed=7, step=10, steps=50, timestep=795, extra=None):
    """A LATENT dict as the capture node makes it, from paper-space latents [B, C, H, W]."""
    latent = {"samples": core.from_paper_space(paper, sigma, SCALE).float()}
    latent["avi_capture"] = core.latent.capture.make_record(
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


def run_merge(core, x, z, head, rho=1.0, k=0, mode="paper", rho_list=""):
    """What AVI Merge's execute does."""
    rhos = core.values.values_or_default(rho_list, "rho_list", rho, *core.RHO_RANGE)
    return core.avi.latent_merge.merge_latents(x, z, head, rhos, k=k, mode=mode)


# --- merge ---


def test_merge_runs_in_paper_space_and_returns_at_x_sigma(core, head):
    x_lat, z_lat, x, z = pair(core)
    out = run_merge(core, x_lat, z_lat, head, rho=0.7)
    expected = core.from_paper_space(core.merge(x, z, head, rho=0.7), SIGMA_X, SCALE)
    torch.testing.assert_close(out["samples"], expected.float(), rtol=1e-4, atol=1e-4)
    # The same merge done on the raw ComfyUI latents (the mistake spec section 1 warns about) differs.
    raw = core.merge(x_lat["samples"], z_lat["samples"], head, rho=0.7)
    assert (raw - out["samples"]).abs().max() > 0.1 * out["samples"].abs().max()


def test_merge_is_the_engine_merge_bit_for_bit(core, head):
    """merge_latents is the conversion, Algorithm 1 and the way back, nothing else (same numbers as before)."""
    x_lat, z_lat, _, _ = pair(core)
    x = core.to_paper_space(x_lat["samples"], SIGMA_X, SCALE)
    z = core.to_paper_space(z_lat["samples"], SIGMA_Z, SCALE)
    for rhos, mode in (([1.0], "paper"), ([0.0, 0.5, 2.0], "anchored")):
        expected = core.from_paper_space(core.merge_sweep(x, z, head, rhos, mode=mode), SIGMA_X, SCALE)
        out = core.avi.latent_merge.merge_latents(x_lat, z_lat, head, rhos, mode=mode)
        assert torch.equal(out["samples"], expected.to(x_lat["samples"].dtype))


def test_anchored_rho_zero_returns_x_in_comfy_convention(core, head):
    x_lat, z_lat, _, _ = pair(core)
    out = run_merge(core, x_lat, z_lat, head, rho=0.0, mode="anchored")
    rel = (out["samples"] - x_lat["samples"]).norm() / x_lat["samples"].norm()
    assert rel < 1e-5
    changed = run_merge(core, x_lat, z_lat, head, rho=1.0, mode="anchored")
    assert (changed["samples"] - x_lat["samples"]).norm() / x_lat["samples"].norm() > 1e-2


def test_merge_keeps_x_record_and_keys(core, head):
    mask = torch.rand(2, 1, 16, 16)
    x_lat, z_lat, _, _ = pair(core, extra={"batch_index": [4, 5], "noise_mask": mask})
    out = run_merge(core, x_lat, z_lat, head)
    assert out["batch_index"] == [4, 5] and out["noise_mask"] is mask
    record = out["avi_capture"]
    for key, value in x_lat["avi_capture"].items():
        assert record[key] == value
    assert record["merged"] == {"rhos": [1.0], "mode": "paper", "k": head.k}
    assert out["samples"].dtype == x_lat["samples"].dtype and out["samples"].shape == x_lat["samples"].shape
    assert x_lat["samples"] is not out["samples"] and "merged" not in x_lat["avi_capture"]


def test_rho_list_returns_the_sweep_rho_major(core, head):
    mask = torch.rand(2, 1, 16, 16)
    x_lat, z_lat, _, _ = pair(core, extra={"noise_mask": mask})
    rhos = [0.0, 0.5, 1.0]
    out = run_merge(core, x_lat, z_lat, head, rho=0.3, rho_list="0, 0.5 ,1")
    assert out["samples"].shape[0] == 6
    for i, rho in enumerate(rhos):
        single = run_merge(core, x_lat, z_lat, head, rho=rho)
        torch.testing.assert_close(out["samples"][2 * i : 2 * i + 2], single["samples"], rtol=1e-5, atol=1e-4)
    assert out["batch_index"] == [0, 1, 0, 1, 0, 1]
    assert out["noise_mask"].shape[0] == 6 and torch.equal(out["noise_mask"][4:], mask)
    assert out["avi_capture"]["batch"] == 6 and out["avi_capture"]["merged"]["rhos"] == rhos


def test_k_override_changes_the_merge(core, head):
    x_lat, z_lat, _, _ = pair(core)
    default = run_merge(core, x_lat, z_lat, head)
    other = run_merge(core, x_lat, z_lat, head, k=4)
    assert not torch.allclose(default["samples"], other["samples"])
    assert other["avi_capture"]["merged"]["k"] == 4
    with pytest.raises(core.ParameterError, match="k = 16 is out of range for latents of rank 16") as err:
        run_merge(core, x_lat, z_lat, head, k=16)
    assert err.value.reason == "range" and err.value.details["high"] == 15


# --- the user errors of issue 3 (the node adds its advice: tests/test_node_fixes.py) ---


def test_latent_without_record_is_refused(core, head):
    x_lat, z_lat, _, _ = pair(core)
    with pytest.raises(core.CaptureRecordError, match="original latent has no capture record") as err:
        run_merge(core, {"samples": x_lat["samples"]}, z_lat, head)
    assert err.value.reason == "missing" and err.value.details == {"role": "original"}
    with pytest.raises(core.CaptureRecordError, match="target latent has no capture record"):
        run_merge(core, x_lat, {"samples": z_lat["samples"]}, head)


def test_x_captured_after_z_is_refused(core, head):
    x_lat, z_lat, _, _ = pair(core)
    with pytest.raises(core.PairMismatchError, match="must be captured earlier") as err:
        run_merge(core, z_lat, x_lat, head)
    assert "step 25 of 50" in str(err.value) and err.value.reason == "order"
    same = captured(core, synthetic_pairs(2, seed=3)[0], SIGMA_X)
    with pytest.raises(core.PairMismatchError, match="must be captured earlier"):
        run_merge(core, same, same, head)


def test_different_seeds_and_batches_are_refused(core, head):
    x_lat, _, _, z = pair(core)
    z_other = captured(core, z, SIGMA_Z, seed=8, step=25, timestep=489)
    with pytest.raises(core.PairMismatchError, match="seed 7 but the target with seed 8"):
        run_merge(core, x_lat, z_other, head)
    z_one = captured(core, z[:1], SIGMA_Z, step=25, timestep=489)
    with pytest.raises(core.PairMismatchError, match="batch of 2 but the target a batch of 1"):
        run_merge(core, x_lat, z_one, head)
    cut = dict(x_lat, samples=x_lat["samples"][:1])
    with pytest.raises(core.CaptureRecordError, match="holds 1 latents but its capture record says 2"):
        run_merge(core, cut, z_one, head)


def test_head_size_mismatch_names_both_sizes(core):
    head64 = core.AttributeHead(64, 64, hidden=8)
    x, z = synthetic_pairs(1, size=96, seed=1)
    x_lat = captured(core, x, SIGMA_X)
    z_lat = captured(core, z, SIGMA_Z, step=25, timestep=489)
    with pytest.raises(core.HeadSizeMismatchError) as err:
        run_merge(core, x_lat, z_lat, head64)
    assert "64x64" in str(err.value) and "96x96" in str(err.value) and err.value.details["head_px"] == "512x512"


def test_bad_rho_list_names_the_entry(core, head):
    x_lat, z_lat, _, _ = pair(core)
    with pytest.raises(core.ParameterError, match="rho_list: 'half' is not a number"):
        run_merge(core, x_lat, z_lat, head, rho_list="0, half")
    with pytest.raises(core.ParameterError, match=r"rho_list = 3 is outside the supported range -1\.\.2"):
        run_merge(core, x_lat, z_lat, head, rho_list="0, 3")


# --- capture: the schedule ---


def test_nearest_step_on_the_normal_schedule(core):
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
    with pytest.raises(core.ParameterError, match="leaves no noise") as err:
        resolve_stop_step(sigmas, timesteps + [0.0], 0.8, 1000, explicit_step=50)
    assert err.value.reason == "no_noise" and err.value.details["high"] == 49


def test_a_capture_never_stops_before_the_first_sampling_step(core):
    # Step 0 is before any sampling: ComfyUI's sampler would return the empty latent with a record claiming
    # sigma[0]. stop_at near 1 is refused, naming the largest stop_at that reaches step 1.
    from avi_pack.avi_core.latent.capture import nearest_step, resolve_capture_step

    timesteps = torch.linspace(999, 0, 50).tolist() + [0.0]
    sigmas = [14.6] + [1.0] * 49 + [0.0]
    assert resolve_capture_step(sigmas, timesteps, 0.8, 1000) == 10
    with pytest.raises(core.ParameterError, match="resolves to step 0 of 50") as err:
        resolve_capture_step(sigmas, timesteps, 1.0, 1000)
    high = err.value.details["high"]
    assert err.value.reason == "range" and err.value.details["name"] == "stop_at"
    assert nearest_step(timesteps[:50], high, 1000) == 1 and nearest_step(timesteps[:50], high + 0.001, 1000) == 0
    assert resolve_capture_step(sigmas, timesteps, high, 1000) == 1
    with pytest.raises(core.ParameterError, match="no step with noise left") as err:
        resolve_capture_step([14.6, 0.0], [999.0, 0.0], 0.8, 1000)
    assert err.value.details["name"] == "steps"


class DiscreteSampling:
    """A model_sampling like ComfyUI's ModelSamplingDiscrete + EPS: T = 1000, sigma grows with the timestep."""

    num_timesteps = 1000

    def __init__(self, numbering=(0, 999)):
        self.sigmas = torch.linspace(0.03, 14.6, self.num_timesteps)
        self.first, self.last = numbering

    def noise_scaling(self, sigma, noise, latent_image):
        return latent_image + sigma * noise

    def inverse_noise_scaling(self, sigma, latent):
        return latent

    def timestep(self, sigma):
        index = (self.sigmas - sigma.reshape(-1, 1)).abs().argmin(dim=1)
        return self.first + index * (self.last - self.first) / (self.num_timesteps - 1)


class FlowSampling(DiscreteSampling):
    def noise_scaling(self, sigma, noise, latent_image):
        return sigma * noise + (1.0 - sigma) * latent_image

    def inverse_noise_scaling(self, sigma, latent):
        return latent / (1.0 - sigma)


def test_schedule_checks_and_timesteps(core):
    schedule = core.latent.schedule
    sampling = DiscreteSampling()
    assert schedule.check_schedule(sampling) == 1000
    sigmas = torch.tensor([14.6, 7.0, 1.0, 0.0])
    timesteps = schedule.step_timesteps(sampling, sigmas)
    assert timesteps[0] == 999 and timesteps[-1] == 0.0 and timesteps[1] > timesteps[2] > 0
    with pytest.raises(core.UnsupportedModelError, match="flow model such as SD3 or Flux") as err:
        schedule.check_schedule(FlowSampling())
    assert err.value.reason == "flow" and "(sampling: DiscreteSampling)" in str(err.value)  # its base classes
    with pytest.raises(core.UnsupportedModelError, match="does not number its timesteps 0..999") as err:
        schedule.check_schedule(DiscreteSampling(numbering=(1, 1000)))
    assert err.value.reason == "numbering"
    continuous = DiscreteSampling()
    continuous.sigmas = continuous.sigmas[:10]
    with pytest.raises(core.UnsupportedModelError, match="no discrete schedule") as err:
        schedule.check_schedule(continuous)
    assert err.value.reason == "continuous"


# --- train: where the pairs come from ---


def test_training_pairs_from_the_captured_latents(core):
    x_lat, z_lat, x, z = pair(core, batch=3)
    pairs = core.avi.training_data.training_pairs(x_lat, z_lat, "  ", roots=[])
    torch.testing.assert_close(pairs.x, x, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pairs.z, z, rtol=1e-5, atol=1e-6)
    assert pairs.info["source"] == "captured latents" and pairs.info["x_timestep"] == 795
    assert pairs.info["z_sigma"] == SIGMA_Z and pairs.info["scale_factor"] == SCALE and pairs.skipped == []


def test_training_pairs_from_a_dataset(core, tmp_path):
    x, z = synthetic_pairs(4, seed=5)
    records = {
        "x": captured(core, x, SIGMA_X)["avi_capture"],
        "z": captured(core, z, SIGMA_Z, step=25, timestep=489)["avi_capture"],
    }
    core.files.datasets.append_shard(tmp_path / "second" / "smiles", x, z, records=records)
    pairs = core.avi.training_data.training_pairs(None, None, "smiles", roots=[tmp_path / "first", tmp_path / "second"])
    assert pairs.x.shape == (4, 4, 16, 16) and pairs.info["x_timestep"] == 795
    assert pairs.info["source"] == "dataset 'smiles' (1 shard(s))"


def test_training_needs_exactly_one_source(core, tmp_path):
    training_pairs = core.avi.training_data.training_pairs
    x_lat, z_lat, _, _ = pair(core)
    with pytest.raises(core.ParameterError, match="training needs pairs: only the original latent was given") as err:
        training_pairs(x_lat, None, "", roots=[tmp_path])
    assert err.value.reason == "no_pairs"
    with pytest.raises(core.ParameterError, match="training needs pairs: no latent was given"):
        training_pairs(None, None, "", roots=[tmp_path])
    with pytest.raises(core.ParameterError, match=r"both latents \(original and target\) and a dataset") as err:
        training_pairs(x_lat, z_lat, "smiles", roots=[tmp_path])
    assert err.value.reason == "two_sources"
    with pytest.raises(core.DatasetError, match="no dataset named 'nope'"):
        training_pairs(None, None, "nope", roots=[tmp_path])
    with pytest.raises(core.PairMismatchError, match="must be captured earlier"):
        training_pairs(z_lat, x_lat, "", roots=[])


def test_a_head_trained_on_captured_pairs_loads_and_describes_itself(core, tmp_path):
    """What Train then Load do (the node adds the device, the progress bar and Cancel)."""
    x_lat, z_lat, _, _ = pair(core, batch=3)
    pairs = core.avi.training_data.training_pairs(x_lat, z_lat, "", roots=[])
    with torch.inference_mode():  # as ComfyUI's executor runs nodes; the node leaves it to train
        x, z = pairs.x, pairs.z
    with torch.inference_mode(False), torch.enable_grad():
        result = core.train_head(x.clone(), z.clone(), epochs=1, batch_size=64, hidden=16, seed=0)
    head = result.head.eval()
    head.metadata.update(pairs.info)
    head.metadata.update(name="smile", description="neutral -> smiling")
    path = tmp_path / "smile.safetensors"
    core.save_head(head, path)
    loaded = core.load_head(path)
    for name, value in head.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)
    info = core.avi.describe.describe_head(loaded.metadata, name="smile")
    assert "neutral -> smiling" in info and "3 pair(s)" in info and "timestep 795" in info


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
    from avi_pack.avi_core.files.names import sanitize_name

    cleaned = sanitize_name(raw, "head")
    assert cleaned == safe
    assert os.sep not in cleaned and "/" not in cleaned and ".." not in cleaned


@pytest.mark.parametrize("raw", ["", "  ", "..", "../..", "///"])
def test_unusable_head_names_are_refused(core, raw):
    from avi_pack.avi_core.files.names import sanitize_name

    with pytest.raises(core.errors.InvalidNameError, match="no usable characters"):
        sanitize_name(raw, "head")


def test_loss_plot_draws_four_coloured_lines(core):
    from avi_pack.avi_core.plots.loss_plot import COLORS, render_loss_plot

    steps = torch.arange(1, 101, dtype=torch.float32)
    history = torch.stack([10 / steps, 1 / steps.sqrt(), 0.1 * torch.ones(100), 5 * torch.exp(-steps / 30)], 1)
    image = render_loss_plot(history)
    assert image.shape == (1, 320, 512, 3) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    rows = []
    for color in COLORS:
        rgb = torch.tensor([int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)])
        hits = (image[0] - rgb).abs().sum(-1) < 1e-3
        assert hits.sum() > 200, color  # the line, not only the legend swatch
        rows.append(int(hits.any(1).sum()))
    # A constant term is a horizontal line (plus its legend swatch): its colour occupies a few rows only,
    # while the falling terms cross many.
    assert rows[2] <= 5 and min(rows[0], rows[1], rows[3]) > 50, rows
    history[5, 0] = float("nan")
    history[6, 1] = 0.0
    assert torch.isfinite(render_loss_plot(history)).all()
    with pytest.raises(ValueError, match=r"\[steps, 4\]"):
        render_loss_plot(torch.ones(5, 3))


def test_describe_head_mentions_what_an_artist_needs(core):
    text = core.avi.describe.describe_head(
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
    for part in ("'smile'", "smiling", "64x64", "512x512 px", "k = 32", "500 pair(s)", "timestep 795", "489"):
        assert part in text
