"""The digit model inside a real ComfyUI (set COMFYUI_DIR; see tiny_sd2.SKIP_MESSAGE): it loads through the pack's
nodes as ComfyUI's SD20 class, its VAE is exact through VAEEncode / VAEDecode, it samples the prompted digit, a
whole workflow of ComfyUI's own nodes runs on it, and the edit benchmark's quick run finishes with sane numbers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import tiny_sd2
import torch

pytestmark = pytest.mark.host

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def host_env(pack):
    base = tiny_sd2.require_host()
    assert pack.nodes.host.register_model_folders() is True
    return base


@pytest.fixture(scope="module")
def avi(pack, host_env):
    return tiny_sd2.avi_node_classes(pack)


@pytest.fixture(scope="module")
def loaded(avi):
    with torch.inference_mode():
        return avi["AVILoadDigitModel"].execute(weights="digit_unet.safetensors").args


def test_model_is_comfyuis_sd20_class(loaded):
    import comfy.supported_models

    model, _ = loaded
    assert isinstance(model.model.model_config, comfy.supported_models.SD20)
    assert model.get_model_object("latent_format").scale_factor == pytest.approx(0.18215)
    sampling = model.get_model_object("model_sampling")
    assert len(sampling.sigmas) == 1000
    assert model.model.model_config.unet_config["context_dim"] == 64


def test_vae_is_exact_through_comfyuis_nodes(loaded):
    comfy_nodes = tiny_sd2.host_nodes()
    _, vae = loaded
    torch.manual_seed(0)
    grey = torch.rand(2, 64, 64, 1)
    image = grey.expand(-1, -1, -1, 3)
    (latent,) = comfy_nodes.VAEEncode().encode(vae, image)
    assert latent["samples"].shape == (2, 4, 32, 32)
    (back,) = comfy_nodes.VAEDecode().decode(vae, latent)
    assert back.shape == (2, 64, 64, 3)
    torch.testing.assert_close(back, image, rtol=0, atol=1e-6)


def test_it_samples_the_prompted_digit(avi, loaded, pack):
    from avi_pack.avi_core.digits import classifier, latent_map

    model, vae = loaded
    negative = avi["AVIDigitPrompt"].execute(text="").args[0]
    scorer = classifier.load_classifier()
    right, total = 0, 0
    for digit in (0, 3, 7):
        positive = avi["AVIDigitPrompt"].execute(text=f"a handwritten {digit}").args[0]
        with torch.inference_mode():
            out = tiny_sd2.ksampler_advanced(
                model, positive, negative, {"samples": latent_map.blank(4)}, seed=7 + digit, steps=20, cfg=5.0
            )
        pixels = vae.decode(out["samples"])[..., 0][:, None]
        assert torch.isfinite(pixels).all()
        read = classifier.predict(scorer, pixels)
        right += int((read == digit).sum())
        total += 4
    print(f"classifier reads {right} of {total} samples as the prompted digit")
    assert right >= 0.75 * total


def test_a_workflow_of_comfyuis_own_nodes_runs_on_it(avi):
    comfy_nodes = tiny_sd2.host_nodes()
    for node_id, cls in avi.items():
        comfy_nodes.NODE_CLASS_MAPPINGS.setdefault(node_id, cls)
    prompt = {
        "1": {"class_type": "AVILoadDigitModel", "inputs": {"weights": "digit_unet.safetensors"}},
        "2": {"class_type": "AVIDigitPrompt", "inputs": {"text": "a thick handwritten 5, slanted right"}},
        "3": {"class_type": "AVIDigitPrompt", "inputs": {"text": ""}},
        "4": {"class_type": "AVIEmptyDigitLatent", "inputs": {"batch_size": 1}},
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "seed": 3,
                "steps": 8,
                "cfg": 5.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 1]}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }
    executor, server = tiny_sd2.run_prompt(prompt)
    assert tiny_sd2.execution_error(server) is None
    assert executor.success


def test_benchmark_quick_run_is_sane(host_env, tmp_path):
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    import edit_benchmark

    assert edit_benchmark.main(["--out", str(tmp_path), "--quick"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    methods = {"unedited", "target_prompt", "prompt_switch", "avi_paper", "avi_anchored"}
    assert {e["method"] for e in results["images"]} == methods
    for e in results["images"]:
        assert (tmp_path / e["path"]).is_file()
        assert {"path", "method", "pair", "seed", "digit"} <= set(e)
        assert ("rho" in e) == e["method"].startswith("avi_")
        assert ("attribute" in e) == (":" in e["pair"])
        if e["method"] == "unedited":
            assert e["scores"]["ssim"] == pytest.approx(1.0, abs=1e-4)
        assert 0 <= e["scores"]["feature_distance"] <= 2 and -1 <= e["scores"]["ssim"] <= 1
    by_method = {(r["kind"], r["method"], r["rho"]): r for r in results["summary"]}
    # the target prompt regenerates: it shows the target digit most of the time
    assert by_method[("digit", "target_prompt", None)]["success"] >= 0.5
    assert (tmp_path / "side_by_side.png").is_file()


def test_the_benchmark_finding_avi_keeps_the_digit_but_does_not_change_it(host_env, tmp_path):
    """The finding of BENCHMARKS.md ("Edit quality on the digit model"), pinned with margins on one digit change.

    Measured (13 pairs, 8 images each): AVI at the paper's settings (k = r/2, Tx 0.8T, Tz 0.5T) keeps the original
    digit (classifier feature distance to the unedited image about 0.1, against 0.9 for regenerating with the
    target prompt) but does not put the digit change in (3 % success, the unedited rate), while regenerating
    with the target prompt does (88 %). A change that makes AVI's edits drift from the original (identity lost)
    or that makes the target prompt stop working fails here; so does one that makes AVI succeed: then the
    benchmark, BENCHMARKS.md and the README's advice must be updated.
    """
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    import edit_benchmark

    args = ["--out", str(tmp_path), "--pairs", "3->8", "--train-pairs", "30", "--test-images", "6", "--rhos", "0.5,1"]
    assert edit_benchmark.main(args) == 0
    summary = json.loads((tmp_path / "results.json").read_text())["summary"]
    row = {(r["method"], r["rho"]): r for r in summary}
    paper, target = row[("avi_paper", 1.0)], row[("target_prompt", None)]
    print({k: (v["success"], v["ssim"], v["feature_distance"]) for k, v in row.items()})
    assert target["success"] >= 0.5
    assert paper["success"] <= 0.34
    assert paper["feature_distance"] < target["feature_distance"] - 0.3
    assert row[("avi_anchored", 0.5)]["feature_distance"] < target["feature_distance"] - 0.3
    assert paper["ssim"] > 0.45
