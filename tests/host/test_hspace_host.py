"""The h-space nodes (issue 9) inside a real ComfyUI (set COMFYUI_DIR; see tiny_sd2.SKIP_MESSAGE), tiny SD2 UNet.

What the spec asks of the hook is checked against the model itself, with forward hooks the test puts on the
UNet: the patch sees exactly the middle block's output (what Capture h stores is bit for bit what the middle
block returned), the edit lands exactly on h (the first output block receives h + strength * scale * d),
strength 0 reproduces plain sampling bit for bit, the step window is honoured (h unchanged outside it), Cancel
stops the Jacobian with comfy's own exception, and the errors a user can cause name the fix.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import tiny_sd2
import torch

pytestmark = pytest.mark.host

STEPS, SEED, CFG = 8, 42, 7.5


@pytest.fixture(scope="module")
def host_env(pack):
    base = tiny_sd2.require_host()
    assert pack.nodes.host.register_model_folders() is True
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
        "plain": tiny_sd2.random_conditioning(seed=1),
        "smiling": tiny_sd2.random_conditioning(seed=2),
        "negative": tiny_sd2.random_conditioning(seed=3),
    }


def core():
    import avi_pack.avi_core as core

    return core


def hspace():
    import avi_pack.avi_core.hspace as hspace

    return hspace


def collections_root(host_env) -> Path:
    return Path(host_env) / "models" / "avi_hspace_collections"


def directions_root(host_env) -> Path:
    return Path(host_env) / "models" / "avi_directions"


def run(avi, node_id, **inputs):
    with torch.inference_mode():  # ComfyUI's executor runs every node under inference mode
        return avi[node_id].execute(**inputs).args


def sample(model, positive, negative, latent, *, seed=SEED, steps=STEPS, cfg=CFG, sampler="euler"):
    with torch.inference_mode():
        return tiny_sd2.ksampler_advanced(
            model, positive, negative, latent, seed=seed, steps=steps, cfg=cfg, sampler_name=sampler
        )["samples"]


def capture(avi, model, collection, label="", steps="all", pass_="cond"):
    (patched,) = run(
        avi, "AVIHSpaceCapture", model=model, collection=collection, label=label, steps=steps, **{"pass": pass_}
    )
    return patched


def apply(avi, model, directions, strength=1.0, *, direction=1, start=0.0, end=1.0, target="both", **lists):
    return run(
        avi,
        "AVIHSpaceApplyDirection",
        model=model,
        directions=directions,
        strength=strength,
        direction=direction,
        start=start,
        end=end,
        target=target,
        **lists,
    )


class UNetSpy:
    """Forward hooks on the UNet: per model evaluation, the timestep, the middle block's output, and the input of
    the first output block's first layer (cat([h, skip]): its first channels are the h the decoder receives)."""

    def __init__(self, model) -> None:
        self.unet = model.model.diffusion_model
        self.calls: list[dict] = []
        self.handles = [
            self.unet.register_forward_pre_hook(self._start, with_kwargs=True),
            self.unet.middle_block[-1].register_forward_hook(self._middle),  # its last layer gives h
            self.unet.output_blocks[0][0].register_forward_pre_hook(self._decoder),
        ]

    def _start(self, module, args, kwargs):
        timesteps = kwargs.get("timesteps", args[1] if len(args) > 1 else None)
        self.calls.append({"t": float(timesteps.reshape(-1)[0])})

    def _middle(self, module, args, output):
        self.calls[-1]["h"] = output.detach().clone()

    def _decoder(self, module, args):
        x = args[0]
        self.calls[-1]["decoder_h"] = x[:, : self.calls[-1]["h"].shape[1]].detach().clone()

    def close(self):
        for handle in self.handles:
            handle.remove()


def schedule_timesteps(model, steps=STEPS, sampler="euler"):
    import avi_pack.nodes.host as host

    sigmas = host.ksampler_sigmas(model, steps, sampler, "normal")
    sampling = model.get_model_object("model_sampling")
    return sigmas, [float(sampling.timestep(sigmas[i : i + 1]).reshape(-1)[0]) for i in range(steps)]


def step_of_call(call, timesteps) -> int:
    return min(range(len(timesteps)), key=lambda i: abs(timesteps[i] - call["t"]))


# --- capture ---


def test_capture_stores_exactly_the_middle_block_output(avi, model, conds, host_env):
    patched = capture(avi, model, "spy", label="plain", steps="all", pass_="both")
    spy = UNetSpy(model)
    try:
        sample(patched, conds["plain"], conds["negative"], tiny_sd2.empty_latent(batch=2))
    finally:
        spy.close()
    data = hspace().read_collection(collections_root(host_env) / "spy")
    _, timesteps = schedule_timesteps(model)
    assert len(spy.calls) == STEPS and data.samples == STEPS * 2 * 2  # steps x passes x images
    assert data.steps == list(range(STEPS)) and data.labels == ["plain"]
    assert {r["seed"] for r in data.records} == {SEED} and data.runs[0]["model"] == "SD20"
    for call in spy.calls:
        step = step_of_call(call, timesteps)
        assert abs(call["t"] - timesteps[step]) < 1e-3
        h = call["h"]  # [cond_or_uncond chunks x 2 images, C, H, W]
        for pass_ in ("cond", "uncond"):
            stored = data.select(step=step, pass_=pass_)
            assert [r["batch_index"] for r in stored.records] == [0, 1]
            assert stored.records[0]["timestep"] == pytest.approx(timesteps[step], abs=1e-3)
            # the chunk of this pass, as ComfyUI ordered it: one of the two halves, bit for bit (float16 storage)
            halves = [h[:2].to(torch.float16).float(), h[2:].to(torch.float16).float()]
            assert any(torch.equal(stored.h, half) for half in halves), (step, pass_)
        assert torch.equal(call["decoder_h"], call["h"])  # capture never changes h


def test_capture_chosen_steps_cond_pass_and_one_shard_per_sampling(avi, model, conds, host_env):
    patched = capture(avi, model, "two steps", label="", steps="0, 5")
    for seed in (1, 2):
        sample(patched, conds["plain"], conds["negative"], tiny_sd2.empty_latent(batch=3), seed=seed)
    folder = collections_root(host_env) / "two steps"
    data = hspace().read_collection(folder)
    assert len(data.shards) == 2 and data.samples == 2 * 2 * 3
    assert data.steps == [0, 5] and {r["pass"] for r in data.records} == {"cond"}
    assert data.labels == ["two steps"]  # empty label: the collection's name
    assert sorted({r["seed"] for r in data.records}) == [1, 2]


def test_an_interrupted_sampling_writes_no_shard(avi, model, conds, host_env):
    import comfy.model_management

    patched = capture(avi, model, "interrupted")
    calls = []

    def stop_on_third(apply_model, args):
        calls.append(1)
        if len(calls) == 3:
            comfy.model_management.interrupt_current_processing(True)
            comfy.model_management.throw_exception_if_processing_interrupted()
        return apply_model(args["input"], args["timestep"], **args["c"])

    patched.set_model_unet_function_wrapper(stop_on_third)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            sample(patched, conds["plain"], conds["negative"], tiny_sd2.empty_latent())
    finally:
        comfy.model_management.interrupt_current_processing(False)
    assert not (collections_root(host_env) / "interrupted").exists()


# --- apply ---


def unit_direction(shape, seed=0, **info):
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(shape, generator=g)
    return hspace().DirectionSet((d / d.norm()).unsqueeze(0), torch.tensor([2.5]), "custom", "norm", None, info)


H_SHAPE = (64, 8, 8)  # the tiny UNet's bottleneck for a 16 x 16 latent


def test_the_edit_lands_exactly_on_the_middle_block_output(avi, model, conds):
    directions = unit_direction(H_SHAPE, model="SD20")
    patched, _ = apply(avi, model, directions, 1.5)
    spy = UNetSpy(model)
    try:
        sample(patched, conds["plain"], conds["negative"], tiny_sd2.empty_latent(batch=2))
    finally:
        spy.close()
    delta = 1.5 * 2.5 * directions.directions[0]
    assert len(spy.calls) == STEPS
    for call in spy.calls:
        assert call["h"].shape == (4, *H_SHAPE)  # cond and uncond of two images
        assert torch.allclose(call["decoder_h"], call["h"] + delta, atol=1e-5, rtol=0)
        assert not torch.equal(call["decoder_h"], call["h"])


def test_strength_zero_reproduces_plain_sampling_bit_for_bit(avi, model, conds):
    latent = tiny_sd2.empty_latent(batch=2)
    plain = sample(model, conds["plain"], conds["negative"], latent)
    zero, _ = apply(avi, model, unit_direction(H_SHAPE), 0.0)
    assert torch.equal(sample(zero, conds["plain"], conds["negative"], latent), plain)
    edited, _ = apply(avi, model, unit_direction(H_SHAPE), 2.0)
    assert not torch.equal(sample(edited, conds["plain"], conds["negative"], latent), plain)


@pytest.mark.parametrize("start, end, edited_steps", [(0.5, 1.0, {4, 5, 6, 7}), (0.0, 0.25, {0, 1}), (0.3, 0.3, {2})])
def test_the_step_window_is_honoured(avi, model, conds, start, end, edited_steps):
    directions = unit_direction(H_SHAPE, seed=1)
    patched, _ = apply(avi, model, directions, -1.0, start=start, end=end)
    spy = UNetSpy(model)
    try:
        sample(patched, conds["plain"], conds["negative"], tiny_sd2.empty_latent())
    finally:
        spy.close()
    _, timesteps = schedule_timesteps(model)
    seen = set()
    for call in spy.calls:
        step = step_of_call(call, timesteps)
        if step in edited_steps:
            seen.add(step)
            assert torch.allclose(call["decoder_h"], call["h"] - 2.5 * directions.directions[0], atol=1e-5, rtol=0)
        else:
            assert torch.equal(call["decoder_h"], call["h"]), f"step {step} is outside the window but h changed"
    assert seen == edited_steps


def test_target_cond_edits_only_the_prompts_pass(avi, model, conds):
    directions = unit_direction(H_SHAPE, seed=2)
    patched, _ = apply(avi, model, directions, 1.0, target="cond")
    spy = UNetSpy(model)
    try:
        sample(patched, conds["plain"], conds["negative"], tiny_sd2.empty_latent())
    finally:
        spy.close()
    for call in spy.calls:
        changed = [not torch.equal(call["decoder_h"][i], call["h"][i]) for i in range(2)]
        assert sorted(changed) == [False, True]  # one chunk edited, the other untouched


def test_directions_stack(avi, model, conds):
    first, second = unit_direction(H_SHAPE, seed=3), unit_direction(H_SHAPE, seed=4)
    once, _ = apply(avi, model, first, 1.0)
    twice, _ = apply(avi, once, second, -2.0)
    spy = UNetSpy(model)
    try:
        sample(twice, conds["plain"], conds["negative"], tiny_sd2.empty_latent())
    finally:
        spy.close()
    expected = 2.5 * first.directions[0] - 5.0 * second.directions[0]
    for call in spy.calls:
        assert torch.allclose(call["decoder_h"], call["h"] + expected, atol=1e-5, rtol=0)


def test_a_strength_list_sweeps_in_one_sampling_with_the_same_noise(avi, model, conds):
    latent = tiny_sd2.empty_latent(batch=1)
    directions = unit_direction(H_SHAPE, seed=5)
    patched, repeated = apply(avi, model, directions, 1.0, strength_list="0, 1, -1", latent=latent)
    assert repeated["samples"].shape[0] == 3 and repeated["batch_index"] == [0, 0, 0]
    with torch.inference_mode():
        swept = tiny_sd2.ksampler_advanced(
            patched, conds["plain"], conds["negative"], repeated, seed=SEED, steps=STEPS, cfg=CFG
        )["samples"]
    plain = sample(model, conds["plain"], conds["negative"], latent)
    # strength 0: the plain image (same noise; a batch of 3 rounds a little differently from a batch of 1)
    assert torch.allclose(swept[0:1], plain, rtol=1e-4, atol=1e-3)
    single, _ = apply(avi, model, directions, -1.0)
    assert torch.allclose(swept[2:3], sample(single, conds["plain"], conds["negative"], latent), rtol=1e-4, atol=1e-3)
    assert (swept[1] - swept[0]).abs().mean() > 1e-3


def test_a_grid_of_directions_by_strengths(avi, model, conds):
    latent = tiny_sd2.empty_latent(batch=2)
    made = hspace().DirectionSet(
        torch.stack([unit_direction(H_SHAPE, seed=s).directions[0] for s in (6, 7)]),
        torch.tensor([1.0, 3.0]),
        "pca",
    )
    patched, repeated = apply(avi, model, made, 1.0, strength_list="-1, 1", direction_list="1, 2", latent=latent)
    assert repeated["samples"].shape[0] == 8 and repeated["batch_index"] == [0, 1] * 4
    spy = UNetSpy(model)
    try:
        with torch.inference_mode():
            tiny_sd2.ksampler_advanced(patched, conds["plain"], conds["negative"], repeated, seed=SEED, steps=2)
    finally:
        spy.close()
    d = made.directions
    expected = [-1 * d[0], -1 * d[0], d[0], d[0], -3 * d[1], -3 * d[1], 3 * d[1], 3 * d[1]]  # direction-major
    call = spy.calls[0]
    for row in range(8):
        for chunk in range(2):
            r = chunk * 8 + row
            assert torch.allclose(call["decoder_h"][r], call["h"][r] + expected[row], atol=1e-5, rtol=0), row


def test_wrong_size_direction_stops_sampling_with_the_fix(avi, model, conds):
    patched, _ = apply(avi, model, unit_direction((64, 4, 4)), 1.0)
    with pytest.raises(core().ShapeMismatchError) as err:
        sample(patched, conds["plain"], conds["negative"], tiny_sd2.empty_latent())
    message = str(err.value)
    assert "(64, 4, 4)" in message and "(2, 64, 8, 8)" in message
    assert "find directions again at this size" in message


def test_directions_of_another_model_family_are_refused(avi, model):
    with pytest.raises(core().ShapeMismatchError) as err:
        apply(avi, model, unit_direction(H_SHAPE, model="SDXL"), 1.0)
    assert str(err.value) == (
        "these h-space directions were made with a SDXL model, but the model given is SD20. Load directions made "
        "with a SD20 checkpoint in 'AVI Load h-space Direction', or load a SDXL checkpoint to use these."
    )


def test_a_sweep_without_the_latent_says_to_connect_it(avi, model):
    with pytest.raises(core().ParameterError, match="Connect the Empty Latent Image to 'AVI Apply h-space Direction'"):
        apply(avi, model, unit_direction(H_SHAPE), 1.0, strength_list="0, 1")


# --- find: PCA and supervised ---


def test_pca_and_supervised_from_captured_collections_then_load(avi, model, conds, host_env):
    plain = capture(avi, model, "plain", steps="0, 3")
    smiling = capture(avi, model, "smiling", steps="0, 3")
    for seed in (10, 11):
        sample(plain, conds["plain"], conds["negative"], tiny_sd2.empty_latent(batch=3), seed=seed)
        sample(smiling, conds["smiling"], conds["negative"], tiny_sd2.empty_latent(batch=3), seed=seed)

    made, plot, info = run(
        avi,
        "AVIHSpaceFindPCA",
        collection="plain",
        name="plain pca",
        count=3,
        step=-1,
        description="test",
        **{"pass": "cond"},
    )
    assert made.method == "pca" and made.per_step and made.directions.shape == (2, 3, *H_SHAPE)
    assert plot.shape == (1, 320, 512, 3) and float(plot.std()) > 0
    assert "3 PCA (unsupervised)" in info and "one per step (2 steps)" in info and "12 h" in info
    data = hspace().read_collection(collections_root(host_env) / "plain", step=3)
    reference = hspace().principal_components(data.h, 3)
    # the same directions as the PCA of that step alone, up to the sign that keeps consecutive steps agreeing
    cosines = (made.directions[1].reshape(3, -1).double() * reference.directions.reshape(3, -1).double()).sum(1)
    assert torch.allclose(cosines.abs(), torch.ones(3, dtype=torch.float64), atol=1e-4)

    one, _, _ = run(
        avi, "AVIHSpaceFindPCA", collection="plain", name="plain pca step 3", count=2, step=3, **{"pass": "cond"}
    )
    assert not one.per_step and one.info["step"] == 3 and one.info["model"] == "SD20"

    direction, plot, info = run(
        avi,
        "AVIHSpaceFindSupervised",
        collection_a="plain",
        collection_b="smiling",
        name="smile",
        step=0,
        disentangle=one,
        **{"pass": "cond"},
    )
    assert direction.method == "supervised" and direction.directions.shape == (1, *H_SHAPE)
    flat = direction.directions.reshape(1, -1).double()
    assert float((flat @ one.directions.reshape(2, -1).double().T).abs().max()) < 1e-5  # disentangled
    a = hspace().read_collection(collections_root(host_env) / "plain", step=0, pass_="cond").h
    b = hspace().read_collection(collections_root(host_env) / "smiling", step=0, pass_="cond").h
    raw = hspace().mean_difference_direction(a, b)
    assert float(raw.reshape(-1).double() @ flat[0]) > 0.5  # still points from plain towards smiling
    assert "A: plain" not in info and "smile" in info and plot.shape == (1, 320, 512, 3)

    path = directions_root(host_env) / "smile.safetensors"
    assert path.is_file()
    loaded, text = run(avi, "AVIHSpaceLoadDirection", direction_name="smile.safetensors")
    assert torch.allclose(loaded.directions, direction.directions) and "supervised (two sets)" in text
    assert "distance between the two sets" in text
    assert avi["AVIHSpaceLoadDirection"].validate_inputs(direction_name="smile.safetensors") is True
    missing = avi["AVIHSpaceLoadDirection"].validate_inputs(direction_name="gone.safetensors")
    assert "not in the avi_directions folders" in missing and "Press R to refresh" in missing


def test_empty_collection_and_one_image_pca_name_the_fix(avi, model, conds, host_env):
    (collections_root(host_env) / "empty one").mkdir(parents=True, exist_ok=True)
    with pytest.raises(core().DatasetError) as err:
        run(avi, "AVIHSpaceFindPCA", collection="empty one", name="x", count=1, step=-1, **{"pass": "cond"})
    assert "holds no shards" in str(err.value)
    assert "Queue a workflow whose sampler uses the MODEL of 'AVI Capture h'" in str(err.value)
    with pytest.raises(core().DatasetError) as err:
        run(avi, "AVIHSpaceFindPCA", collection="never made", name="x", count=1, step=-1, **{"pass": "cond"})
    assert "does not exist" in str(err.value) and "Check the collection name" in str(err.value)

    single = capture(avi, model, "single", steps="2")
    sample(single, conds["plain"], conds["negative"], tiny_sd2.empty_latent(batch=1))
    with pytest.raises(core().DatasetError) as err:
        run(avi, "AVIHSpaceFindPCA", collection="single", name="x", count=1, step=-1, **{"pass": "cond"})
    message = str(err.value)
    assert "PCA needs at least 2 samples, the collection holds 1 at step 2" in message
    assert "until the collection holds at least 2 images per step" in message
    assert not (directions_root(host_env) / "x.safetensors").exists()


# --- find: Jacobian ---


def noisy_latent(model, conds, step=3):
    with torch.inference_mode():
        return tiny_sd2.ksampler_advanced(
            model, conds["plain"], conds["negative"], tiny_sd2.empty_latent(), seed=SEED, steps=STEPS, end=step,
            leftover_noise=True,
        )  # fmt: skip


def jacobian(avi, model, conds, latent, name="jac", count=2, iterations=30, step=3):
    return run(
        avi,
        "AVIHSpaceFindJacobian",
        model=model,
        positive=conds["plain"],
        latent=latent,
        name=name,
        steps=STEPS,
        step=step,
        sampler_name="euler",
        scheduler="normal",
        count=count,
        iterations=iterations,
        tolerance=1e-5,
        seed=0,
        batch_index=0,
        description="",
    )


def eps_with_h(model, conds, latent, step, h):
    """The model's noise prediction at that step with the bottleneck replaced by h (the test's own f)."""
    sigmas, _ = schedule_timesteps(model)
    sigma = sigmas[step : step + 1]
    unet = model.model.diffusion_model

    def replace(hh, hsp, transformer_options):
        return (h.to(hh.dtype) if transformer_options["block"] == ("output", 0) else hh), hsp

    with torch.no_grad():
        x = model.model.process_latent_in(latent["samples"])
        xc = model.model.model_sampling.calculate_input(sigma, x)
        t = model.model.model_sampling.timestep(sigma).float()
        context = conds["plain"][0][0]
        options = {"patches": {"output_block_patch": [replace]}} if h is not None else {}
        return unet(xc, t, context=context, transformer_options=options)


def test_jacobian_finds_the_directions_that_change_the_prediction_most(avi, model, conds, host_env):
    latent = noisy_latent(model, conds)
    made, plot, info = jacobian(avi, model, conds, latent)
    assert made.method == "jacobian" and made.directions.shape == (2, *H_SHAPE)
    assert plot.shape == (1, 320, 512, 3) and (directions_root(host_env) / "jac.safetensors").is_file()
    values = made.info["singular_values"]
    assert values[0] >= 0.97 * values[1] > 0  # non-increasing up to what 30 iterations settle
    d = made.directions.reshape(2, -1).double()
    assert torch.allclose(d @ d.T, torch.eye(2, dtype=torch.float64), atol=1e-4)
    # Check against finite differences of the test's own f: |J u1| = sigma_1, and no random direction does better.
    captured = {}

    def record(hh, hsp, transformer_options):
        if transformer_options["block"] == ("output", 0):
            captured["h"] = hh.clone()
        return hh, hsp

    sigmas, _ = schedule_timesteps(model)
    with torch.no_grad():
        x = model.model.process_latent_in(latent["samples"])
        sigma = sigmas[3:4]
        model.model.diffusion_model(
            model.model.model_sampling.calculate_input(sigma, x),
            model.model.model_sampling.timestep(sigma).float(),
            context=conds["plain"][0][0],
            transformer_options={"patches": {"output_block_patch": [record]}},
        )
    h0 = captured["h"]
    assert torch.allclose(h0[0].norm(), made.scales[0], rtol=1e-4)  # h_norm unit
    eps = 1e-2
    base = eps_with_h(model, conds, latent, 3, h0)

    def gain(u):
        return float((eps_with_h(model, conds, latent, 3, h0 + eps * u.reshape(h0.shape)) - base).norm() / eps)

    assert gain(made.directions[0]) == pytest.approx(values[0], rel=0.05)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        v = torch.randn(H_SHAPE, generator=g)
        assert gain(v / v.norm()) < values[0]
    assert "converged" in info


def test_jacobian_works_with_weights_loaded_in_inference_mode(avi, conds, host_env):
    """ComfyUI loads checkpoints inside a node, under torch.inference_mode: autograd must still run."""
    model = tiny_sd2.tiny_model(seed=0)
    unet = model.model.diffusion_model
    with torch.inference_mode():
        state = {k: v.clone() for k, v in unet.state_dict().items()}
        unet.load_state_dict(state, assign=True)
    weight = unet.output_blocks[0][0].in_layers[2].weight
    assert weight.is_inference() and weight.requires_grad  # as a checkpoint loaded inside a node is
    made, _, _ = jacobian(avi, model, conds, noisy_latent(model, conds), name="jac inference", count=1, iterations=5)
    assert made.directions.shape == (1, *H_SHAPE) and torch.isfinite(made.directions).all()
    assert unet.output_blocks[0][0].in_layers[2].weight is weight and weight.requires_grad  # the originals are back


def test_cancel_stops_the_jacobian_with_comfys_exception(avi, model, conds, host_env):
    import comfy.model_management
    import comfy.utils

    latent = noisy_latent(model, conds)
    ticks = []

    def hook(value, total, preview, node_id=None):
        ticks.append(value)
        if value == 3:
            comfy.model_management.interrupt_current_processing(True)  # what the page's Cancel button does

    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            jacobian(avi, model, conds, latent, name="cancelled", count=3, iterations=50)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        comfy.model_management.interrupt_current_processing(False)
    assert ticks == [1, 2, 3]
    assert not os.path.exists(directions_root(host_env) / "cancelled.safetensors")


def test_jacobian_step_out_of_range_names_the_range(avi, model, conds):
    with pytest.raises(core().ParameterError, match=r"step = 8 is outside the 8 noisy steps.*Change step on the node"):
        jacobian(avi, model, conds, noisy_latent(model, conds), step=8)


def test_every_hspace_node_explains_its_errors(avi):
    ids = [k for k in avi if k.startswith("AVIHSpace") or k == "AVIImageGrid"]
    assert sorted(ids) == sorted(
        [
            "AVIHSpaceCapture",
            "AVIHSpaceFindPCA",
            "AVIHSpaceFindSupervised",
            "AVIHSpaceFindJacobian",
            "AVIHSpaceLoadDirection",
            "AVIHSpaceApplyDirection",
            "AVIImageGrid",
        ]
    )
    for node_id in ids:
        assert getattr(avi[node_id].execute, "__avi_explains_errors__", False), node_id


def test_image_grid_lays_the_batch_out_row_by_row(avi):
    images = torch.stack([torch.full((4, 6, 3), i / 10) for i in range(5)])
    (grid,) = run(avi, "AVIImageGrid", images=images, columns=2, gap=1)
    assert grid.shape == (1, 3 * 4 + 2, 2 * 6 + 1, 3)
    assert torch.equal(grid[0, 5:9, 7:13], images[3]) and torch.equal(grid[0, 10:14, 0:6], images[4])
    assert float(grid[0, 10:14, 7:13].min()) == 1.0 and float(grid[0, 4, :].min()) == 1.0  # empty cell, gap
    with pytest.raises(core().ShapeMismatchError, match="Connect a batch of images"):
        run(avi, "AVIImageGrid", images=torch.zeros(4, 6, 3), columns=0, gap=0)


# --- the workflows, through ComfyUI's real executor ---


@pytest.fixture(scope="module")
def executor_host(pack, host_env, avi):
    """The host's executor with the pack's nodes and test_workflows_host's stand-ins (tiny checkpoint, prompts)."""
    import asyncio

    import test_workflows_host as wh

    import nodes as comfy_nodes

    asyncio.run(comfy_nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    added = {
        **avi,
        "AVITestTinyCheckpoint": wh.AVITestTinyCheckpoint,
        "AVITestRandomConditioning": wh.AVITestRandomConditioning,
    }
    saved = {k: comfy_nodes.NODE_CLASS_MAPPINGS.get(k) for k in added}
    comfy_nodes.NODE_CLASS_MAPPINGS.update(added)
    yield wh
    for key, value in saved.items():
        if value is None:
            comfy_nodes.NODE_CLASS_MAPPINGS.pop(key, None)
        else:
            comfy_nodes.NODE_CLASS_MAPPINGS[key] = value


WORKFLOW_STEPS = 12
"""The workflows' 50 steps cut to 12 (the shared steps box): the same graph, a quarter of the CPU time."""


def fewer_steps(prompt):
    (steps,) = [v for v in prompt.values() if v["_meta"]["title"].startswith("steps")]
    steps["inputs"]["value"] = WORKFLOW_STEPS
    return prompt


def run_workflow(wh, prompt):
    """Validate and execute with tiny_sd2.run_prompt; returns the history outputs (fails on any node error)."""
    executor, server = tiny_sd2.run_prompt(prompt)
    error = tiny_sd2.execution_error(server)
    assert executor.success and error is None, error
    return executor.history_result["outputs"]


def output_images(outputs, node):
    import folder_paths

    paths = []
    for item in outputs[node]["images"]:
        root = folder_paths.get_output_directory() if item["type"] == "output" else folder_paths.get_temp_directory()
        paths.append(Path(root) / item["subfolder"] / item["filename"])
    assert all(p.is_file() for p in paths), paths
    return paths


def test_learn_direction_workflow_runs_twice_and_sweeps(executor_host, host_env):
    wh = executor_host
    prompt = fewer_steps(wh.load_api("avi_hspace_learn_direction"))
    for name in ("plain", "smiling"):  # the earlier tests' collections of the same names
        shutil.rmtree(collections_root(host_env) / name, ignore_errors=True)
    seed = next(k for k, v in prompt.items() if v["_meta"]["title"].startswith("capture seed"))
    texts = []
    for run_index in range(2):  # two queue runs, the capture seed incremented as its control says
        prompt[seed]["inputs"]["value"] = 1000 + run_index
        outputs = run_workflow(wh, prompt)
        texts.append(outputs[wh.node_id(prompt, "PreviewAny")]["text"][0])
    for name in ("plain", "smiling"):
        data = hspace().read_collection(collections_root(host_env) / name)
        assert len(data.shards) == 2 and data.samples == 2 * 8 * WORKFLOW_STEPS and not data.skipped
        assert sorted({r["seed"] for r in data.records}) == [1000, 1001]
    assert "16 h" not in texts[0] and "from 4 shard(s)" in texts[1], texts  # the Find node ran again, on more
    made = hspace().load_directions(directions_root(host_env) / "smile.safetensors")
    assert made.method == "supervised" and made.per_step and made.directions.shape[:2] == (WORKFLOW_STEPS, 1)
    assert made.info["samples_a"] == [16] * WORKFLOW_STEPS and made.info["model"] == "SD20"
    sweep = output_images(outputs, wh.node_id(prompt, "SaveImage"))
    assert len(sweep) == 4
    first, unedited, last = (wh.pixels(sweep[i]) for i in (0, 1, 3))
    assert first.shape == (wh.IMAGE_SIZE, wh.IMAGE_SIZE, 3)
    assert abs(first - unedited).mean() > 0.5 and abs(last - unedited).mean() > 0.5, "the strengths must show"
    assert len(output_images(outputs, wh.node_id(prompt, "PreviewImage"))) == 1  # the projections plot


def test_pca_explorer_workflow_makes_the_grid(executor_host, host_env):
    wh = executor_host
    prompt = fewer_steps(wh.load_api("avi_hspace_pca_explorer"))
    outputs = run_workflow(wh, prompt)
    (grid,) = output_images(outputs, wh.node_id(prompt, "SaveImage"))
    image = wh.pixels(grid)
    size, gap = wh.IMAGE_SIZE, 4
    assert image.shape == (4 * size + 3 * gap, 3 * size + 2 * gap, 3)  # 4 directions x 3 strengths
    cell = [
        [
            image[r * (size + gap) : r * (size + gap) + size, c * (size + gap) : c * (size + gap) + size]
            for c in range(3)
        ]
        for r in range(4)
    ]
    for row in range(4):
        # the middle column is strength 0 in every row: the same unedited image (8-bit rounding of a batch)
        assert abs(cell[row][1] - cell[0][1]).max() <= 2
        assert abs(cell[row][0] - cell[row][1]).mean() > 0.5 and abs(cell[row][2] - cell[row][1]).mean() > 0.5
    made = hspace().load_directions(directions_root(host_env) / "explorer_pca.safetensors")
    assert made.method == "pca" and made.count == 4 and made.per_step
