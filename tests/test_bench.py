"""`python -m avi_core bench`: the quick run works end to end and writes the figures as JSON."""

from __future__ import annotations

import json
import math

import pytest
import torch

from avi_core.app import bench


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "figures.json"
    code = bench.main(["--quick", "--device", "cpu", "--repeats", "2", "--no-progress", "--json", str(path)])
    assert code == 0
    return json.loads(path.read_text(encoding="utf-8"))


def test_quick_run_writes_the_expected_json(quick_report):
    report = quick_report
    assert report["schema"] == bench.SCHEMA
    assert report["quick"] is True
    assert report["machine"]["device"] == "cpu"
    assert report["machine"]["torch_version"] == torch.__version__
    assert report["machine"]["cpu_cores"] >= 1
    assert set(report["paper"]) == {"sampling_seconds", "edit_seconds", "training_seconds", "training_gpu"}
    assert [(row["n"], row["batch"]) for row in report["svd"]] == list(bench.QUICK_SVD_CASES)
    for row in report["svd"]:
        assert row["auto_backend"] in ("torch", "threads", "jacobi")
        for key in ("auto_ms", "torch_ms", "speedup"):
            assert row[key] > 0 and math.isfinite(row[key])
        assert row["speedup"] == pytest.approx(row["torch_ms"] / row["auto_ms"])
        assert row["max_rel_error"] < 1e-5
        assert row["floor_ms"] is None  # no floor on CPU
    assert [row["batch"] for row in report["merge"]] == [1, 4]
    for row in report["merge"]:
        assert row["ms"] > 0
        assert row["percent_of_sampling"] == pytest.approx(100 * row["ms"] / 1e3 / bench.PAPER_SAMPLING_SECONDS)
    training = report["training"]
    for key in ("seconds", "samples_per_second", "peak_memory_mb", "steps", "final_losses"):
        assert key in training
    assert training["steps"] == math.ceil(training["samples_per_epoch"] / training["batch_size"])
    assert training["samples_per_second"] == pytest.approx(
        training["samples_per_epoch"] * training["epochs"] / training["seconds"]
    )
    assert set(report["meanings"]) >= {"svd.speedup", "merge.ms", "training.peak_memory_mb"}


def test_skip_training_and_printed_report(capsys, tmp_path):
    path = tmp_path / "nested" / "f.json"
    code = bench.main(["--quick", "--skip-training", "--repeats", "1", "--device", "cpu", "--json", str(path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "device: cpu" in out and "SVD of [B, n, n]" in out and "Training: skipped" in out
    assert "What the figures mean:" in out
    assert json.loads(path.read_text(encoding="utf-8"))["training"] is None


def test_bad_options_return_an_error_code(capsys):
    assert bench.main(["--no-such-option"]) == 2
    assert bench.main(["--quick", "--repeats", "0", "--device", "cpu"]) == 2
    if not torch.cuda.is_available():
        assert bench.main(["--quick", "--device", "cuda"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err


def test_gpu_spec_table_options_and_unknown():
    assert bench.gpu_spec("NVIDIA H200", None, None) == {
        "bandwidth_gbs": 4800.0,
        "fp32_tflops": 67.0,
        "source": "table",
    }
    assert bench.gpu_spec("NVIDIA H100 PCIe", None, None)["bandwidth_gbs"] == 2000.0
    assert bench.gpu_spec("NVIDIA GeForce RTX 3090", None, None)["fp32_tflops"] == 35.6
    unknown = bench.gpu_spec("Some Future GPU", None, None)
    assert unknown["source"] == "unknown" and unknown["bandwidth_gbs"] is None
    given = bench.gpu_spec("Some Future GPU", 1000.0, 50.0)
    assert given == {"bandwidth_gbs": 1000.0, "fp32_tflops": 50.0, "source": "options"}
    assert bench.gpu_spec("NVIDIA H200", 4000.0, None)["source"] == "options and table"


def test_time_call_runs_warm_up_then_median():
    calls = []
    seconds, runs = bench.time_call(lambda: calls.append(1), torch.device("cpu"), repeats=3, budget_s=10.0)
    assert runs == 3 and len(calls) == 4 and seconds >= 0
