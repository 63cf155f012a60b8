"""The edit benchmark's h-space and boundary rows (issues 9 and 10, item 4) in a real ComfyUI (set COMFYUI_DIR;
see tiny_sd2.SKIP_MESSAGE): the quick run with --methods all finishes, every row's images are written and scored
with finite, sane numbers, the swept values are under their own keys, and what the rows learned is recorded.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import tiny_sd2

pytestmark = pytest.mark.host

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick(pack, tmp_path_factory):
    tiny_sd2.require_host()
    assert pack.nodes.host.register_model_folders() is True
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    import edit_benchmark

    out = tmp_path_factory.mktemp("bench_rows")
    assert edit_benchmark.main(["--out", str(out), "--quick", "--methods", "all", "--pairs", "3->8"]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_rows_are_written_with_their_keys(quick):
    out, results = quick
    images = results["images"]
    by_method: dict[str, list[dict]] = {}
    for e in images:
        by_method.setdefault(e["method"], []).append(e)
        assert (out / e["path"]).is_file()
    assert {"hspace_supervised", "hspace_pca", "boundary"} <= set(by_method)
    batch = len(by_method["unedited"])
    for method, key, values in (
        ("hspace_supervised", "strength", [4.0, 16.0]),
        ("hspace_pca", "strength", [6.0]),
        ("boundary", "distance", [5.0, 20.0]),
    ):
        got = by_method[method]
        assert len(got) == batch * len(values), method
        assert sorted({e[key] for e in got}) == values, method
        for e in got:
            assert "rho" not in e and e["digit"] == 8 and e["pair"] == "3->8" and e["seed"] < 100000


def test_scores_are_finite_and_sane(quick):
    _, results = quick
    for e in results["images"]:
        s = e["scores"]
        assert math.isfinite(s["ssim"]) and math.isfinite(s["feature_distance"])
        assert -1 <= s["ssim"] <= 1 and 0 <= s["feature_distance"] <= 2
        assert 0 <= s["read_digit"] <= 9
    rows = {(r["method"], r["rho"]) for r in results["summary"]}
    assert {("hspace_supervised", 16.0), ("hspace_pca", 6.0), ("boundary", 20.0)} <= rows
    for r in results["summary"]:
        assert 0 <= r["success"] <= 1
        if r["method"] in ("hspace_supervised", "hspace_pca", "boundary"):
            # every edit changes the image (the unedited one has SSIM 1 exactly)
            assert r["ssim"] < 0.9999, r


def test_what_the_rows_learned_is_recorded(quick):
    out, results = quick
    (info,) = results["pairs"]
    h, b = info["hspace"], info["boundary"]
    assert h["train_images_per_side"] == 10 and 1 <= h["pca_chosen"] <= 4 and h["pca_sign"] in (1.0, -1.0)
    assert len(h["pca_separation"]) == 4 and all(math.isfinite(v) for v in h["pca_separation"])
    assert b["chosen_step"] in b["candidate_steps"]
    assert len(b["accuracy_by_step"]) == len(b["candidate_steps"])
    assert all(0 <= a <= 1 for a in b["accuracy_by_step"]) and 0 <= b["held_out_accuracy"] <= 1
    assert (out / b["plot"]).is_file()
    assert "moved to: 5, 20" in b["edit"]
