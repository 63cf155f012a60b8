"""The "edit a photo" and "explore the latent" workflows (issue 11), host-free: wired the way spec 10 and 11 say.

The general checks (valid widget values, links, API twins, the builder's output) are tests/test_workflows.py's,
which covers every workflow; the real executor runs them in tests/host/test_inversion_host.py and
tests/host/test_explore_host.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
API_DIR = REPO_ROOT / "workflows" / "api"


def _api(name: str) -> dict[str, Any]:
    return json.loads((API_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _of(api: dict[str, Any], class_type: str) -> list[tuple[str, dict[str, Any]]]:
    return [(k, v) for k, v in api.items() if v["class_type"] == class_type]


def _value(api: dict[str, Any], ref: Any) -> Any:
    return api[ref[0]]["inputs"]["value"] if isinstance(ref, list) else ref


def test_edit_a_photo_inverts_the_photo_and_samples_z_from_its_noise():
    api = _api("avi_edit_photo")
    ((ckpt_id, ckpt),) = _of(api, "CheckpointLoaderSimple")
    assert ckpt["inputs"]["ckpt_name"] == "v2-1_512-ema-pruned.safetensors"
    ((photo_id, _),) = _of(api, "LoadImage")
    ((scale_id, scale),) = _of(api, "ImageScale")
    assert scale["inputs"]["image"] == [photo_id, 0]
    assert (scale["inputs"]["width"], scale["inputs"]["height"], scale["inputs"]["crop"]) == (512, 512, "center")
    ((encode_id, encode),) = _of(api, "VAEEncode")
    assert encode["inputs"] == {"pixels": [scale_id, 0], "vae": [ckpt_id, 2]}
    ((inv_id, inv),) = _of(api, "AVIInvert")
    x = inv["inputs"]
    assert x["encoded"] == [encode_id, 0] and "image" not in x and "vae" not in x
    assert x["stop_at"] == 0.8 and x["stop_step"] == 0 and x["sampler_name"] in ("euler", "ddim")
    assert _value(api, x["steps"]) == 50
    ((z_id, z),) = _of(api, "AVICaptureLatentAtStep")
    z = z["inputs"]
    assert z["stop_at"] == 0.5 and z["add_noise"] == "disable"
    assert z["latent_image"] == [inv_id, 2], "z is sampled from the fully inverted noise"
    assert z["noise_seed"] == [inv_id, 3], "z records the photo's seed, so Merge accepts the pair"
    assert z["positive"] != x["positive"], "z uses the target prompt"
    for key in ("steps", "cfg", "sampler_name", "scheduler", "model", "negative"):
        assert z[key] == x[key], key
    ((merge_id, merge),) = _of(api, "AVIMerge")
    assert merge["inputs"]["original"] == [inv_id, 0] and merge["inputs"]["target"] == [z_id, 0]
    resumed = {ks["inputs"]["latent_image"][0]: ks["inputs"] for _, ks in _of(api, "KSamplerAdvanced")}
    assert set(resumed) == {merge_id, inv_id}, "the edit and the unedited reconstruction"
    for inputs in resumed.values():
        assert inputs["add_noise"] == "disable" and inputs["start_at_step"] == [inv_id, 1]
        assert inputs["positive"] == x["positive"], "resume with the original prompt"
        for key in ("steps", "cfg", "sampler_name", "scheduler", "negative", "model"):
            assert inputs[key] == x[key], key
    titles = {v["_meta"]["title"] for _, v in _of(api, "SaveImage")}
    assert titles == {"Reconstruction (unedited)", "Edited"}


def test_explore_the_latent_draws_the_three_plots_from_one_trajectory():
    api = _api("avi_explore_latent")
    ((traj_id, traj),) = _of(api, "AVICaptureTrajectory")
    fractions = [float(v) for v in traj["inputs"]["at"].split(",")]
    assert fractions[0] == 1.0 and fractions[-1] == 0.0 and 0.8 in fractions and 0.5 in fractions
    ((_, latent),) = _of(api, "EmptyLatentImage")
    assert latent["inputs"]["batch_size"] > 1, "Figure 5 averages over a batch of seeds"
    plots = {}
    for kind in ("AVIPlotSingularSpectrum", "AVIPlotSubspaceDistance", "AVIRankOneViews"):
        ((node_id, node),) = _of(api, kind)
        plots[kind] = node_id
        source = node["inputs"]["trajectory" if kind != "AVIRankOneViews" else "latent"]
        assert source == [traj_id, 0 if kind != "AVIRankOneViews" else 1], kind
    assert api[plots["AVIPlotSubspaceDistance"]]["inputs"]["k"] == 4, "the paper's k"
    previewed = {v["inputs"]["images"][0] for _, v in _of(api, "PreviewImage")}
    assert set(plots.values()) <= previewed
