"""Issue 11 item 3 on the trained digit model inside a real ComfyUI (set COMFYUI_DIR; see tiny_sd2.SKIP_MESSAGE):
held-out real digits inverted by 'AVI Invert' to 0.8T and resumed by KSamplerAdvanced with the same prompt
reconstruct within the PSNR measured by tools/inversion_benchmark.py (pinned with a margin on its --quick subset);
its real-digit edit rows follow the edit benchmark's schema; tools/explore_digits.py --quick makes the three
explorer plots through the explorer nodes, finite, with finite numbers.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny_sd2

pytestmark = pytest.mark.host

REPO_ROOT = Path(__file__).resolve().parents[2]

# Measured on the committed digit weights with `tools/inversion_benchmark.py --quick` (the first 20 held-out
# digits, 2 of each; euler, normal, 20 steps, CFG 3, x at 0.8T = step 4, prompt = digit + measured style,
# refine 0): see BENCHMARKS.md, "Real digits: inversion". Pinned a margin below.
QUICK_PSNR_MEAN = 20.38
QUICK_PSNR_P5 = 15.43
MARGIN_DB = 1.5
# With AVI Invert's refinement (3 fixed-point iterations per step) the reconstruction is near exact: 49.6 dB at
# worst over 100 held-out digits (mean 53.9 dB), against 21.5 dB without.
REFINED_PSNR_FLOOR = 45.0


@pytest.fixture(scope="module")
def host_env(pack):
    base = tiny_sd2.require_host()
    assert pack.nodes.host.register_model_folders() is True
    return base


def _tools():
    if str(REPO_ROOT / "tools") not in sys.path:
        sys.path.insert(0, str(REPO_ROOT / "tools"))


def test_real_digits_reconstruct_within_the_pinned_psnr(host_env, tmp_path):
    _tools()
    import inversion_benchmark

    assert inversion_benchmark.main(["--out", str(tmp_path), "--quick", "--edit", "--threads", "1"]) == 0
    result = json.loads((tmp_path / "inversion.json").read_text())
    (row,) = result["settings"]
    assert (row["cfg"], row["refine"], row["step"], row["n"], row["style"]) == (3.0, 0, 4, 20, "measured")
    assert sorted(result["config"]["labels"]) == sorted(list(range(10)) * 2)
    assert all(math.isfinite(v) for v in row["psnr"])
    assert row["mean"] >= QUICK_PSNR_MEAN - MARGIN_DB, row
    assert row["p5"] >= QUICK_PSNR_P5 - MARGIN_DB, row
    assert row["mean"] <= 45.0  # plain DDIM inversion is not exact: a near-perfect number would mean no resume
    assert (tmp_path / "reconstructions.png").is_file() and (tmp_path / "side_by_side.png").is_file()
    # the real-digit edit rows, in the edit benchmark's results.json schema
    results = json.loads((tmp_path / "results.json").read_text())
    methods = {"original_real", "unedited_real", "prompt_switch_real", "avi_real", "avi_real_anchored"}
    assert {e["method"] for e in results["images"]} == methods
    for e in results["images"]:
        assert (tmp_path / e["path"]).is_file()
        assert {"path", "method", "pair", "seed", "digit"} <= set(e)
        assert ("rho" in e) == e["method"].startswith("avi_")
        assert ("attribute" in e) == (":" in e["pair"])
        if e["method"] == "unedited_real":
            assert e["scores"]["ssim"] == pytest.approx(1.0, abs=1e-4)
        assert 0 <= e["scores"]["feature_distance"] <= 2 and -1 <= e["scores"]["ssim"] <= 1


def test_refined_inversion_of_real_digits_is_exact(host_env, tmp_path):
    _tools()
    import inversion_benchmark

    argv = ["--out", str(tmp_path), "--count", "10", "--cfgs", "3", "--refines", "3", "--threads", "1"]
    assert inversion_benchmark.main(argv) == 0
    (row,) = json.loads((tmp_path / "inversion.json").read_text())["settings"]
    assert row["refine"] == 3 and row["n"] == 10
    assert row["min"] >= REFINED_PSNR_FLOOR, row


def test_explorer_quick_run_makes_finite_plots(host_env, tmp_path):
    _tools()
    import explore_digits
    from PIL import Image

    assert explore_digits.main(["--out", str(tmp_path), "--quick", "--threads", "1"]) == 0
    for name in explore_digits.DOC_NAMES.values():
        image = np.asarray(Image.open(tmp_path / name).convert("L"), dtype=np.float32)
        assert image.shape[0] >= 100 and image.shape[1] >= 100, name
        assert image.std() > 5.0, name  # a drawn plot, not a blank canvas
    numbers = json.loads((tmp_path / "explore.json").read_text())
    # 1, 0.9, ..., 0.1 T (steps nearest them, distinct at 10 steps) and the finished latent
    assert [r["step"] for r in numbers["spectrum"]] == numbers["config"]["labels"]
    assert len(numbers["config"]["labels"]) >= 8 and numbers["config"]["labels"][-1] == "end"
    flat = json.dumps(numbers)
    assert "NaN" not in flat and "Infinity" not in flat
    for k, d in numbers["distance"].items():
        assert 0.0 < d["random_pair"] < d["largest"], k
        assert all(0.0 <= c["mean"] <= d["largest"] for c in d["consecutive"]), k
