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
    args = ["--quick", "--skip-training", "--repeats", "1", "--device", "cpu", "--no-progress", "--json", str(path)]
    assert bench.main(args) == 2  # the folder of --json is never created
    err = capsys.readouterr().err
    assert f"the folder {path.parent} does not exist" in err and "--json" in err and "Traceback" not in err
    assert not path.parent.exists()
    path.parent.mkdir()
    code = bench.main(args)
    assert code == 0
    out = capsys.readouterr().out
    assert "device: cpu" in out and "SVD of [B, n, n]" in out and "Training: skipped" in out
    assert "What the figures mean:" in out
    report = json.loads(path.read_text(encoding="utf-8"))
    assert report["training"] is None and report["complete"] is True
    assert out.startswith(bench.render(report)), "the streamed report is the report of the finished run"


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


# ------------------------------------------------------------------ issue 8: progress and figures as they come


def test_each_figure_is_printed_and_saved_as_soon_as_it_is_measured(tmp_path, capsys, monkeypatch):
    path = tmp_path / "figures.json"
    seen: list[tuple[int, int, str]] = []  # (svd rows, merge rows, stdout so far) when each case starts
    real_time_call = bench.time_call

    def spying_time_call(fn, device, repeats, budget_s):
        if path.exists():
            saved = json.loads(path.read_text(encoding="utf-8"))
            seen.append((len(saved["svd"]), len(saved["merge"]), capsys.readouterr().out))
        return real_time_call(fn, device, 1, budget_s)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl+C during the last case

    monkeypatch.setattr(bench, "time_call", spying_time_call)
    monkeypatch.setattr(bench, "training_figures", killed)
    try:
        code = bench.main(["--quick", "--device", "cpu", "--repeats", "1", "--json", str(path)])
    except KeyboardInterrupt:
        pytest.fail("Ctrl+C escaped bench.main as a traceback")
    assert code == 130
    out, err = capsys.readouterr()
    assert "interrupted (Ctrl+C)" in err and f"the figures measured so far are in {path}" in err
    assert "Traceback" not in err
    # every case was saved, and its line printed, before the next one started
    svd_counts = [count for count, _, _ in seen]
    assert svd_counts[0] == 0 and svd_counts[-1] == len(bench.QUICK_SVD_CASES)
    assert sorted(set(svd_counts)) == list(range(len(bench.QUICK_SVD_CASES) + 1))
    printed = "".join(text for _, _, text in seen) + out
    assert printed.count(" ms = ") == 2 and "SVD of [B, n, n]" in printed
    report = json.loads(path.read_text(encoding="utf-8"))
    assert report["complete"] is False and report["training"] is None
    assert len(report["svd"]) == len(bench.QUICK_SVD_CASES) and len(report["merge"]) == 2
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_progress_names_each_case_on_stderr(capsys):
    code = bench.main(["--quick", "--skip-training", "--device", "cpu", "--repeats", "1"])
    assert code == 0
    err = capsys.readouterr().err
    for n, batch in bench.QUICK_SVD_CASES:
        assert f"svd n={n} B={batch}" in err
    assert "merge [4, 4, 16, 16]" in err and f"{len(bench.QUICK_SVD_CASES) + 2}/{len(bench.QUICK_SVD_CASES) + 2}" in err
