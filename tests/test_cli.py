"""The `avi` command line (`python -m avi_core`), run in-process through `main([...])`, tiny sizes on CPU."""

import io
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import avi_core.app.demo as demo
from avi_core import __version__, from_paper_space, read_head_metadata, to_paper_space
from avi_core.app.cli import main
from avi_core.app.progress import TerminalProgress
from avi_core.files.datasets import append_shard
from avi_core.files.latent_files import read_latent_file, read_latent_metadata, write_latent_file

REPO_ROOT = Path(__file__).resolve().parent.parent
SIGMA_X, SIGMA_Z, SCALE = 3.0, 1.2, 0.18215
# Two steps of a head of width 32: enough to exercise every path, in well under a second.
TINY = "--hidden 32 --epochs 1 --batch-size 32 --samples-per-epoch 64 --device cpu".split()


def paper_pairs(pairs=3, size=16, seed=0):
    """Paper-space x, z [pairs, 4, size, size]: low-rank structure plus noise, z = x plus a fixed pattern."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(pairs, 4, size, 2, generator=g) @ torch.randn(pairs, 4, 2, size, generator=g) / 2
    x = x + 0.3 * torch.randn(pairs, 4, size, size, generator=g)
    pattern = torch.randn(4, size, 1, generator=g) @ torch.randn(4, 1, size, generator=g)
    return x, 0.8 * x + 0.5 * pattern


@pytest.fixture
def latents(tmp_path):
    """original.latent / target.latent in ComfyUI's convention at SIGMA_X / SIGMA_Z."""
    x, z = paper_pairs()
    x_path = write_latent_file(tmp_path / "original.latent", from_paper_space(x, SIGMA_X, SCALE))
    z_path = write_latent_file(tmp_path / "target.latent", from_paper_space(z, SIGMA_Z, SCALE))
    return x_path, z_path


@pytest.fixture
def head_file(tmp_path, latents):
    x_path, z_path = latents
    out = tmp_path / "heads" / "smile.safetensors"
    out.parent.mkdir()  # output folders are never created
    code = main(
        ["train", "--original", str(x_path), "--target", str(z_path), "--sigma-x", str(SIGMA_X),
         "--sigma-z", str(SIGMA_Z), "--out", str(out), "--description", "a smile", "--timestep-x", "795",
         "--timestep-z", "489", "--steps", "50", *TINY]
    )  # fmt: skip
    assert code == 0
    return out


def run(capsys, *argv):
    """main(argv) -> (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(code, err, *words):
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]


# ---------------------------------------------------------------------------------- train / info / merge


def test_train_writes_a_head_with_its_story(head_file, latents, capsys):
    meta = read_head_metadata(head_file)
    assert (meta["height"], meta["width"], meta["hidden"], meta["k"]) == (16, 16, 32, 8)
    assert meta["pairs"] == 3 and meta["epochs"] == 1
    assert meta["x_sigma"] == SIGMA_X and meta["z_sigma"] == SIGMA_Z and meta["scale_factor"] == SCALE
    assert meta["x_timestep"] == 795 and meta["z_timestep"] == 489
    assert meta["x_steps"] == meta["z_steps"] == 50
    assert meta["description"] == "a smile" and meta["name"] == "smile"
    assert meta["source_files"] == [str(p) for p in latents]
    assert set(meta["final_losses"]) == {"L1", "L2", "L3", "L4", "total"}
    assert [p.name for p in head_file.parent.iterdir()] == ["smile.safetensors"]


def test_train_prints_progress_and_a_summary(tmp_path, latents, capsys):
    x_path, z_path = latents
    out = tmp_path / "h.safetensors"
    code, stdout, stderr = run(
        capsys, "train", "--original", x_path, "--target", z_path, "--sigma-x", SIGMA_X, "--sigma-z", SIGMA_Z,
        "--out", out, "--half", *TINY,
    )  # fmt: skip
    assert code == 0
    assert "training [" in stderr and "2/2 100.0%" in stderr
    assert "final losses" in stdout and f"saved {out}" in stdout
    assert read_head_metadata(out)["storage_dtype"] == "float16"


def test_info_describes_the_head(head_file, capsys):
    code, out, err = run(capsys, "info", head_file)
    assert code == 0, err
    assert "16x16" in out and "k = 8" in out and "hidden width 32" in out
    assert "a smile" in out and "timestep 795" in out and "timestep 489" in out and "sigma 3" in out
    assert "float32" in out and "MiB" in out and "final losses" in out and "created" in out
    code, out, _ = run(capsys, "info", head_file, "--json")
    assert code == 0 and '"description": "a smile"' in out


def test_anchored_merge_at_rho_0_reproduces_the_original_latent(head_file, latents, tmp_path, capsys):
    x_path, z_path = latents
    out = tmp_path / "merged.latent"
    code, stdout, err = run(
        capsys, "merge", "--original", x_path, "--target", z_path, "--head", head_file, "--sigma-x", SIGMA_X,
        "--sigma-z", SIGMA_Z, "--rho", "0", "--mode", "anchored", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    original, merged = read_latent_file(x_path), read_latent_file(out)
    assert merged.shape == original.shape
    assert float((merged - original).norm() / original.norm()) < 1e-5
    assert '"mode": "anchored"' in read_latent_metadata(out)["avi_merge"]


def test_merge_with_a_rho_list_is_rho_major_and_matches_the_engine(head_file, latents, tmp_path, capsys):
    from avi_core import load_head, merge

    x_path, z_path = latents
    out = tmp_path / "sweep.latent"
    code, stdout, err = run(
        capsys, "merge", "--original", x_path, "--target", z_path, "--head", head_file, "--sigma-x", SIGMA_X,
        "--sigma-z", SIGMA_Z, "--rho-list", "0, 0.5,1", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    merged = read_latent_file(out)
    x_comfy, z_comfy = read_latent_file(x_path), read_latent_file(z_path)
    assert merged.shape == (9, 4, 16, 16)
    head = load_head(head_file)
    x, z = to_paper_space(x_comfy, SIGMA_X, SCALE), to_paper_space(z_comfy, SIGMA_Z, SCALE)
    for i, rho in enumerate((0.0, 0.5, 1.0)):
        expected = from_paper_space(merge(x, z, head, rho=rho), SIGMA_X, SCALE)
        torch.testing.assert_close(merged[3 * i : 3 * i + 3], expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(merged[:3], merged[6:])


def test_merge_takes_the_scale_factor_the_head_was_trained_with(latents, tmp_path, capsys, caplog):
    import json

    x_path, z_path = latents
    head = tmp_path / "sdxl.safetensors"
    common = ["--original", x_path, "--target", z_path, "--sigma-x", SIGMA_X, "--sigma-z", SIGMA_Z]
    assert run(capsys, "train", *common, "--scale-factor", "0.13025", "--out", head, *TINY)[0] == 0
    assert read_head_metadata(head)["scale_factor"] == 0.13025
    out = tmp_path / "y.latent"
    code, _, err = run(capsys, "merge", *common, "--head", head, "--out", out)
    assert code == 0, err
    assert json.loads(read_latent_metadata(out)["avi_merge"])["scale_factor"] == 0.13025
    caplog.clear()
    code, _, err = run(capsys, "merge", *common, "--head", head, "--out", out, "--scale-factor", SCALE)
    assert code == 0, err
    assert json.loads(read_latent_metadata(out)["avi_merge"])["scale_factor"] == SCALE
    assert any("trained with scale factor 0.13025" in r.getMessage() for r in caplog.records)


def test_merge_with_a_single_target_for_a_batch(head_file, latents, tmp_path, capsys):
    x_path, z_path = latents
    one_z = write_latent_file(tmp_path / "one.latent", read_latent_file(z_path)[:1])
    out = tmp_path / "y.latent"
    code, _, err = run(
        capsys, "merge", "--original", x_path, "--target", one_z, "--head", head_file, "--sigma-x", SIGMA_X,
        "--sigma-z", SIGMA_Z, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert read_latent_file(out).shape == (3, 4, 16, 16)


def test_train_from_a_pairs_folder(tmp_path, capsys):
    folder = tmp_path / "pairs"
    folder.mkdir()
    for name, seed in (("a", 1), ("b", 2)):
        x, z = paper_pairs(pairs=2, seed=seed)
        write_latent_file(folder / f"{name}.x.latent", from_paper_space(x, SIGMA_X, SCALE))
        write_latent_file(folder / f"{name}.z.latent", from_paper_space(z, SIGMA_Z, SCALE))
    out = tmp_path / "h.safetensors"
    code, stdout, err = run(
        capsys, "train", "--pairs", folder, "--sigma-x", SIGMA_X, "--sigma-z", SIGMA_Z, "--out", out, *TINY
    )
    assert code == 0, err
    meta = read_head_metadata(out)
    assert meta["pairs"] == 4
    names = [Path(p).name for p in meta["source_files"]]
    assert names == ["a.x.latent", "a.z.latent", "b.x.latent", "b.z.latent"]


def test_pairs_folder_with_a_missing_partner_is_refused(tmp_path, capsys):
    folder = tmp_path / "pairs"
    folder.mkdir()
    x, z = paper_pairs(pairs=1)
    write_latent_file(folder / "a.x.latent", x)
    write_latent_file(folder / "a.z.latent", z)
    write_latent_file(folder / "b.x.latent", x)
    out = tmp_path / "h.safetensors"
    code, _, err = run(capsys, "train", "--pairs", folder, "--sigma-x", 3, "--sigma-z", 1, "--out", out)
    assert_clean_error(code, err, "b.z.latent")
    assert not out.exists()


def test_empty_pairs_folder_is_refused(tmp_path, capsys):
    (tmp_path / "pairs").mkdir()
    write_latent_file(tmp_path / "pairs" / "ComfyUI_00001_.latent", torch.zeros(1, 4, 8, 8))
    code, _, err = run(
        capsys, "train", "--pairs", tmp_path / "pairs", "--sigma-x", "3", "--sigma-z", "1",
        "--out", tmp_path / "h.safetensors", *TINY,
    )  # fmt: skip
    assert_clean_error(code, err, "NAME.x.latent")


def test_train_from_a_dataset_folder(tmp_path, capsys):
    x, z = paper_pairs(pairs=2)
    record = {"step": 10, "steps": 50, "sigma": SIGMA_X, "timestep": 795.0, "T": 1000, "scale_factor": SCALE,
              "seed": 1, "batch": 2}  # fmt: skip
    target = {**record, "step": 25, "timestep": 489.0, "sigma": SIGMA_Z}
    append_shard(tmp_path / "smile", x, z, records={"x": record, "z": target})
    out = tmp_path / "h.safetensors"
    code, _, err = run(capsys, "train", "--dataset", tmp_path / "smile", "--out", out, *TINY)
    assert code == 0, err
    meta = read_head_metadata(out)
    assert meta["pairs"] == 2 and "dataset 'smile'" in meta["source"]
    assert meta["x_timestep"] == 795.0 and meta["z_timestep"] == 489.0 and meta["x_sigma"] == SIGMA_X

    code, _, err = run(capsys, "train", "--dataset", tmp_path / "smile", "--sigma-x", 1, "--out", out, *TINY)
    assert_clean_error(code, err, "--sigma-x", "paper space")


# ------------------------------------------------------------------------------------------ errors


def test_train_needs_the_sigmas(latents, tmp_path, capsys):
    x_path, z_path = latents
    out = tmp_path / "h.safetensors"
    code, _, err = run(capsys, "train", "--original", x_path, "--target", z_path, "--out", out)
    assert_clean_error(code, err, "--sigma-x", "--sigma-z")


def test_train_needs_exactly_one_source(latents, tmp_path, capsys):
    x_path, z_path = latents
    out = tmp_path / "h.safetensors"
    code, _, err = run(capsys, "train", "--out", out, "--sigma-x", "3", "--sigma-z", "1")
    assert_clean_error(code, err, "exactly one source")
    code, _, err = run(
        capsys, "train", "--original", x_path, "--target", z_path, "--pairs", tmp_path, "--out", out,
        "--sigma-x", "3", "--sigma-z", "1",
    )  # fmt: skip
    assert_clean_error(code, err, "--original", "--pairs")
    code, _, err = run(capsys, "train", "--original", x_path, "--out", out, "--sigma-x", 3, "--sigma-z", 1)
    assert_clean_error(code, err, "--target")


def test_head_output_must_be_safetensors(latents, tmp_path, capsys):
    x_path, z_path = latents
    code, _, err = run(
        capsys, "train", "--original", x_path, "--target", z_path, "--sigma-x", "3", "--sigma-z", "1",
        "--out", tmp_path / "head.pt", *TINY,
    )  # fmt: skip
    assert_clean_error(code, err, ".safetensors")


def test_mismatched_training_latents_are_refused(latents, tmp_path, capsys):
    x_path, _ = latents
    other = write_latent_file(tmp_path / "other.latent", torch.randn(3, 4, 8, 8))
    code, _, err = run(
        capsys, "train", "--original", x_path, "--target", other, "--sigma-x", "3", "--sigma-z", "1",
        "--out", tmp_path / "h.safetensors", *TINY,
    )  # fmt: skip
    assert_clean_error(code, err, "(3, 4, 16, 16)", "(3, 4, 8, 8)", "same number")


def test_pickle_latent_is_refused(head_file, latents, tmp_path, capsys):
    _, z_path = latents
    evil = tmp_path / "evil.latent"
    torch.save({"latent_tensor": torch.zeros(1, 4, 16, 16)}, evil)
    code, _, err = run(
        capsys, "merge", "--original", evil, "--target", z_path, "--head", head_file, "--sigma-x", "3",
        "--sigma-z", "1", "--out", tmp_path / "y.latent",
    )  # fmt: skip
    assert_clean_error(code, err, "evil.latent", "pickle")
    assert not (tmp_path / "y.latent").exists()


def test_damaged_head_is_refused(latents, tmp_path, capsys):
    x_path, z_path = latents
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    code, _, err = run(
        capsys, "merge", "--original", x_path, "--target", z_path, "--head", bad, "--sigma-x", "3",
        "--sigma-z", "1", "--out", tmp_path / "y.latent",
    )  # fmt: skip
    assert_clean_error(code, err, "bad.safetensors")
    code, _, err = run(capsys, "info", bad)
    assert_clean_error(code, err, "bad.safetensors")
    code, _, err = run(capsys, "info", tmp_path / "missing.safetensors")
    assert_clean_error(code, err, "missing.safetensors")
    other = tmp_path / "not-a-head.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    code, _, err = run(capsys, "info", other)
    assert_clean_error(code, err, "not an AVI attribute head", "avi train")


def test_head_of_another_size_is_refused_naming_both_sizes(head_file, tmp_path, capsys):
    small = write_latent_file(tmp_path / "small.latent", torch.randn(1, 4, 8, 8))
    code, _, err = run(
        capsys, "merge", "--original", small, "--target", small, "--head", head_file, "--sigma-x", "3",
        "--sigma-z", "1", "--out", tmp_path / "y.latent",
    )  # fmt: skip
    assert_clean_error(code, err, "16x16", "8x8")


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--rho-list", "0,a"], ["--rho-list", "'a'", "e.g. '0,0.5,1'"]),
        (["--rho-list", "0,2.5"], ["--rho-list = 2.5", "range -1..2", "Give --rho-list between -1 and 2"]),
        (["--rho", "5"], ["rho = 5", "range -1..2", "Give --rho between -1 and 2"]),
        (["--k", "16"], ["k = 16", "Give --k between 1 and 15"]),
    ],
)
def test_bad_merge_options_are_refused(head_file, latents, tmp_path, capsys, extra, words):
    x_path, z_path = latents
    out = tmp_path / "y.latent"
    code, _, err = run(
        capsys, "merge", "--original", x_path, "--target", z_path, "--head", head_file, "--sigma-x", "3",
        "--sigma-z", "1", "--out", out, *extra,
    )  # fmt: skip
    assert_clean_error(code, err, *words)
    assert not out.exists()


def test_usage_errors_exit_2_with_argparse_message(capsys):
    code, _, err = run(capsys, "merge", "--rho", "1")
    assert code == 2 and "required" in err and "Traceback" not in err
    code, _, err = run(capsys, "frobnicate")
    assert code == 2 and "invalid choice" in err
    code, _, err = run(capsys, "info", "x.safetensors", "--bogus")
    assert code == 2 and "--bogus" in err
    code, _, err = run(capsys, "train", "--sigma-x", "-1", "--out", "h.safetensors")
    assert code == 2 and "sigma" in err
    assert run(capsys)[0] == 2


def test_help_and_version_exit_0(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "demo" in out and "train" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and __version__ in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused(latents, tmp_path, capsys):
    x_path, z_path = latents
    code, _, err = run(
        capsys, "train", "--original", x_path, "--target", z_path, "--sigma-x", "3", "--sigma-z", "1",
        "--out", tmp_path / "h.safetensors", "--device", "cuda",
    )  # fmt: skip
    assert_clean_error(code, err, "CUDA")


def test_ctrl_c_during_training_exits_130_and_writes_nothing(latents, tmp_path, capsys, monkeypatch):
    x_path, z_path = latents
    original_call = TerminalProgress.__call__

    def interrupt_at_step_2(self, step, total, losses):
        original_call(self, step, total, losses)
        if step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(TerminalProgress, "__call__", interrupt_at_step_2)
    out_dir = tmp_path / "heads"
    out_dir.mkdir()
    code, _, err = run(
        capsys, "train", "--original", x_path, "--target", z_path, "--sigma-x", "3", "--sigma-z", "1",
        "--out", out_dir / "h.safetensors", "--hidden", "32", "--epochs", "1", "--batch-size", "8",
        "--samples-per-epoch", "64",
    )  # fmt: skip
    assert code == 130
    assert "interrupted" in err and "Traceback" not in err
    assert list(out_dir.iterdir()) == []


def test_ctrl_c_while_saving_leaves_no_partial_head(latents, tmp_path, capsys, monkeypatch):
    import avi_core.files.safetensors_io as safetensors_io

    def interrupted_save(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors_io, "save_file", interrupted_save)
    x_path, z_path = latents
    out_dir = tmp_path / "heads"
    out_dir.mkdir()
    code, _, err = run(
        capsys, "train", "--original", x_path, "--target", z_path, "--sigma-x", "3", "--sigma-z", "1",
        "--out", out_dir / "h.safetensors", *TINY,
    )  # fmt: skip
    assert code == 130
    assert err.splitlines()[-1] == "interrupted (Ctrl+C); no file was written" and "Traceback" not in err
    assert list(out_dir.iterdir()) == []


def test_ctrl_c_during_the_write_lets_it_finish_then_removes_it(latents, tmp_path, capsys, monkeypatch):
    import signal

    import avi_core.files.safetensors_io as safetensors_io

    real_save = safetensors_io.save_file
    written = []

    def save_interrupted_midway(tensors, filename, metadata=None):
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl+C, in the middle of the write
        real_save(tensors, filename, metadata=metadata)
        written.append(Path(filename).stat().st_size)  # the write was not broken into

    monkeypatch.setattr(safetensors_io, "save_file", save_interrupted_midway)
    out_dir = tmp_path / "heads"
    out_dir.mkdir()
    code, stdout, err = run(capsys, *train_args(latents, out_dir / "h.safetensors"))
    assert code == 130 and err.splitlines()[-1] == "interrupted (Ctrl+C); no file was written"
    assert "Traceback" not in err and "saved" not in stdout
    assert written and written[0] > 0
    assert list(out_dir.iterdir()) == []  # cancelled before the rename; the temporary file removed


def test_bench_forwards_its_arguments(monkeypatch, capsys):
    seen = []
    fake = types.ModuleType("avi_core.app.bench")
    fake.main = lambda argv: seen.append(list(argv)) or 0
    monkeypatch.setitem(sys.modules, "avi_core.app.bench", fake)
    monkeypatch.setattr(sys.modules["avi_core.app"], "bench", fake, raising=False)
    assert main(["bench", "--help"]) == 0
    assert main(["bench", "--size", "64", "-v", "extra"]) == 0
    assert seen == [["--help"], ["--size", "64", "-v", "extra"]]


def test_bench_missing_is_a_clean_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "avi_core.app.bench", None)  # makes `import avi_core.app.bench` fail
    monkeypatch.delattr(sys.modules["avi_core.app"], "bench", raising=False)
    code, _, err = run(capsys, "bench")
    assert_clean_error(code, err, "bench")


# ---------------------------------------------------------------------------------- demo, -m, progress


@pytest.mark.slow
def test_demo_runs_and_checks_itself(tmp_path, capsys):
    started = time.perf_counter()
    code, out, err = run(capsys, "demo", "--out-dir", tmp_path, "--seed", "1")
    seconds = time.perf_counter() - started
    assert code == 0, out + err
    assert "demo ok" in out and "FAILED" not in out
    assert "demo settings, not the paper's" in out
    assert out.count("[ok]") == 8
    assert seconds < 60
    assert {p.name for p in tmp_path.iterdir()} == {"demo-head.safetensors", "x.latent", "z.latent"}
    assert read_head_metadata(tmp_path / "demo-head.safetensors")["hidden"] == demo.DEMO_HIDDEN
    assert torch.get_num_threads() >= 1


def test_python_dash_m_help():
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(
        [sys.executable, "-m", "avi_core", "--help"], capture_output=True, text=True, cwd=REPO_ROOT, env=env,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "usage: avi" in done.stdout and "demo" in done.stdout


def test_progress_in_a_log_prints_a_line_every_5_percent():
    stream = io.StringIO()
    clock = iter(range(10_000))
    bar = TerminalProgress("training", stream, is_tty=False, clock=lambda: float(next(clock)))
    for step in range(1, 1001):
        bar(step, 1000, {"L1": 1.0, "total": 2.0})
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 21  # step 1, then every 5% up to 100%
    assert "\r" not in stream.getvalue()
    assert "1000/1000 100.0%" in lines[-1] and "ETA 0:00" in lines[-1]
    assert "L1 1" in lines[-1] and "total 2" in lines[-1]
    assert "1.0 step/s" in lines[10]


def test_progress_on_a_terminal_redraws_in_place():
    stream = io.StringIO()
    now = [0.0]
    bar = TerminalProgress("training", stream, is_tty=True, refresh_seconds=0.125, clock=lambda: now[0])
    for step in range(1, 51):
        now[0] += 0.0625  # binary fractions: exact arithmetic
        bar(step, 50, {"L1": 0.5})
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert text.count("\r") == 26  # steps 1, 3, ..., 49 (every 0.125 s), and the last one
    assert "50/50 100.0%" in text


def test_progress_close_ends_an_interrupted_line():
    stream = io.StringIO()
    with TerminalProgress("training", stream, is_tty=True) as bar:
        bar(1, 10, {})
    assert stream.getvalue().endswith("\n") and stream.getvalue().count("\n") == 1


# ------------------------------------------------------------------ issue 8: one test per defect of the CLI


def train_args(latents, out, *extra):
    x_path, z_path = latents
    return ["train", "--original", x_path, "--target", z_path, "--sigma-x", SIGMA_X, "--sigma-z", SIGMA_Z,
            "--out", out, *TINY, *extra]  # fmt: skip


def assert_not_trained(out, err):
    assert "training on" not in out and "training [" not in err, "the run trained before refusing --out"


@pytest.mark.parametrize("where", ["missing_folder", "file_as_folder", "a_folder", "proc"])
def test_train_checks_that_out_can_be_written_before_training(latents, tmp_path, capsys, where):
    blocker = tmp_path / "existing_file"
    blocker.write_text("not a folder")
    out = {
        "missing_folder": tmp_path / "no" / "such" / "h.safetensors",
        "file_as_folder": blocker / "h.safetensors",
        "a_folder": tmp_path / "folder.safetensors",
        "proc": Path("/proc/h.safetensors"),
    }[where]
    if where == "a_folder":
        out.mkdir()
    if where == "proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    code, stdout, err = run(capsys, *train_args(latents, out))
    assert_clean_error(code, err, str(out), "--out")
    assert_not_trained(stdout, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["existing_file", "original.latent", "target.latent"] + (["folder.safetensors"] if where == "a_folder" else [])
    )


def test_a_missing_out_folder_is_named_and_never_created(head_file, latents, tmp_path, capsys):
    x_path, z_path = latents
    out = tmp_path / "missing" / "y.latent"
    code, _, err = run(
        capsys, "merge", "--original", x_path, "--target", z_path, "--head", head_file, "--sigma-x", SIGMA_X,
        "--sigma-z", SIGMA_Z, "--out", out,
    )  # fmt: skip
    assert_clean_error(code, err, f"the folder {out.parent} does not exist", f"mkdir -p {out.parent}")
    assert not out.parent.exists()


@pytest.mark.parametrize("failure", ["oserror", "safetensors"])
def test_a_full_disk_while_saving_is_one_error_line(latents, tmp_path, capsys, monkeypatch, failure):
    import errno

    import avi_core.files.safetensors_io as safetensors_io

    class SafetensorError(Exception):  # what safetensors raises, by name
        pass

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"the first bytes")
        if failure == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    monkeypatch.setattr(safetensors_io, "save_file", full_disk)
    out_dir = tmp_path / "heads"
    out_dir.mkdir()
    out = out_dir / "h.safetensors"
    code, _, err = run(capsys, *train_args(latents, out))
    assert_clean_error(code, err, f"cannot write {out}: the disk is full", "--out")
    assert list(out_dir.iterdir()) == []


def test_final_losses_name_the_weighted_total(latents, tmp_path, capsys):
    out = tmp_path / "h.safetensors"
    code, stdout, err = run(capsys, *train_args(latents, out))
    assert code == 0, err
    [line] = [line for line in stdout.splitlines() if line.startswith("final losses")]
    total = read_head_metadata(out)["final_losses"]["total"]
    assert "unweighted" in line and f"weighted total {total:.4g}" in line
    assert " total" not in line.replace("weighted total", "")


def test_info_uses_the_one_head_describer(head_file, capsys):
    from avi_core.avi.describe import describe_head

    code, out, err = run(capsys, "info", head_file)
    assert code == 0, err
    meta = read_head_metadata(head_file)
    assert describe_head(meta, full=True, file_size=head_file.stat().st_size) in out
    assert "weighted total" in out


def test_a_damaged_shard_is_warned_about_once(tmp_path, capsys, caplog):
    x, z = paper_pairs(pairs=2)
    record = {"step": 10, "steps": 50, "sigma": SIGMA_X, "timestep": 795.0, "T": 1000, "scale_factor": SCALE,
              "seed": 1, "batch": 2}  # fmt: skip
    append_shard(tmp_path / "smile", x, z, records={"x": record, "z": {**record, "step": 24, "sigma": SIGMA_Z}})
    damaged = tmp_path / "smile" / "shard-damaged.safetensors"
    damaged.write_bytes(b"\x00" * 100)
    out = tmp_path / "h.safetensors"
    code, _, err = run(capsys, "train", "--dataset", tmp_path / "smile", "--out", out, *TINY)
    assert code == 0, err
    mentions = [r.getMessage() for r in caplog.records if damaged.name in r.getMessage()]
    assert len(mentions) == 1, mentions


def test_train_help_gives_the_readme_timesteps(capsys):
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "510 for 0.5T: step 24 of 50" in text and "795 for 0.8T: step 10 of 50" in text
    assert "489" not in text
    readme = " ".join((REPO_ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "step 10 (timestep 795) and step 24 (timestep 510)" in readme


def test_pairs_given_a_file_says_it_is_a_file(latents, tmp_path, capsys):
    x_path, _ = latents
    code, _, err = run(
        capsys, "train", "--pairs", x_path, "--sigma-x", SIGMA_X, "--sigma-z", SIGMA_Z,
        "--out", tmp_path / "h.safetensors", *TINY,
    )  # fmt: skip
    assert_clean_error(code, err, f"--pairs {x_path} is a file, not a folder")
    assert "does not exist" not in err


def test_dataset_missing_names_the_option_and_the_node(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--dataset", tmp_path / "nope", "--out", tmp_path / "h.safetensors", *TINY)
    assert_clean_error(code, err, "does not exist", "Check --dataset", "'AVI Append To Dataset'")


@pytest.mark.parametrize("command", ["merge", "train"])
def test_x_captured_after_z_is_refused_like_the_nodes_do(head_file, latents, tmp_path, capsys, command):
    x_path, z_path = latents
    out = tmp_path / ("y.latent" if command == "merge" else "h.safetensors")
    swapped = ["--original", z_path, "--target", x_path, "--sigma-x", SIGMA_Z, "--sigma-z", SIGMA_X, "--out", out]
    extra = ["--head", head_file] if command == "merge" else TINY
    code, stdout, err = run(capsys, command, *swapped, *extra)
    assert_clean_error(code, err, "must be captured earlier", "Swap --original and --target")
    assert not out.exists()
    assert_not_trained(stdout, err)


@pytest.mark.parametrize("rho", ["-5", "2.5"])
def test_train_refuses_rho_outside_the_range_merge_accepts(latents, tmp_path, capsys, rho):
    out = tmp_path / "h.safetensors"
    code, stdout, err = run(capsys, *train_args(latents, out, "--rho", rho))
    assert_clean_error(code, err, f"rho = {float(rho):g}", "Give --rho between -1 and 2")
    assert_not_trained(stdout, err)
    assert not out.exists()


def test_the_rho_range_is_stated_in_the_help_and_the_readme(capsys):
    for command in ("train", "merge"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "-1 to 2" in " ".join(out.split()), command
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "`--rho` runs from -1 to 2" in readme


def test_the_out_folder_rule_and_exit_codes_are_stated(capsys):
    code, out, _ = run(capsys, "--help")
    text = " ".join(out.split())
    assert code == 0 and "never created" in text and "130" in text
    code, out, _ = run(capsys, "train", "--help")
    assert "never created" in " ".join(out.split())
    readme = " ".join((REPO_ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "never created" in readme and "| 130 |" in readme
