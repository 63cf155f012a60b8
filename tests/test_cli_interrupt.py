"""Ctrl+C at any moment of `python -m avi_core train`, with real processes and a real SIGINT.

Whatever the process is doing when the signal lands (importing torch, reading the latents, the data SVDs,
training, saving, shutting down), it must end with status 130, exactly one line on stderr and no file (no
head, no temporary file), unless the head was already complete and in place, in which case the run is over
(status 0, the whole head). The first few tens of milliseconds of a process are Python's own start-up, before
the pack's handler is in place (`avi_core/__main__.py` installs it first); a signal that lands there is sent
again, later.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from avi_core import read_head_metadata
from avi_core.files.latent_files import write_latent_file

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
INTERRUPTED = "interrupted (Ctrl+C); no file was written"
PROGRESS = "training ["  # the progress bar's lines (stderr is not a terminal here)
# Trains for minutes: every delay lands before the head is saved.
LONG = "--hidden 64 --epochs 1 --batch-size 8 --samples-per-epoch 400000".split()
# Two steps of a wider head (a 10 MB file): the delays are spread over its whole run, saving included.
SHORT = "--hidden 1024 --epochs 1 --batch-size 32 --samples-per-epoch 64".split()


@pytest.fixture(scope="module")
def latents(tmp_path_factory):
    folder = tmp_path_factory.mktemp("latents")
    g = torch.Generator().manual_seed(0)
    x = write_latent_file(folder / "x.latent", 20 * torch.randn(3, 4, 16, 16, generator=g))
    z = write_latent_file(folder / "z.latent", 5 * torch.randn(3, 4, 16, 16, generator=g))
    return x, z


def python_start_up() -> float:
    """Seconds this interpreter takes to start and exit doing nothing (the best of three)."""
    times = []
    for _ in range(3):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.monotonic() - started)
    return min(times)


def in_python_start_up(code: int, stderr: str) -> bool:
    """Whether SIGINT ended the process before the pack's handler was installed: Python's own start-up (and
    the first import of `avi_core/__main__.py`), where Python's default handling applies."""
    if code == -signal.SIGINT and not stderr:
        return True  # before Python had installed its own handler
    ours = ", in _handle\n" in stderr or ", in check\n" in stderr  # raised by the pack's handler
    return "KeyboardInterrupt" in stderr and not ours


def train(latents, out: Path, options: list[str], delay: float | None) -> tuple[int, str, str]:
    """Run `python -m avi_core train`, send SIGINT after `delay` seconds (None: never); (status, out, err).

    A signal that lands in Python's own start-up (a busy machine starts slowly) is sent again, later.
    """
    for _ in range(10):
        code, stdout, stderr = _train_once(latents, out, options, delay)
        if delay is None or not in_python_start_up(code, stderr):
            return code, stdout, stderr
        delay += 0.05
    pytest.fail("the interpreter never got past its start-up")


def _train_once(latents, out: Path, options: list[str], delay: float | None) -> tuple[int, str, str]:
    x, z = latents
    command = [sys.executable, "-m", "avi_core", "train", "--original", str(x), "--target", str(z),
               "--sigma-x", "3", "--sigma-z", "1", "--out", str(out), "--device", "cpu", *options]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if delay is not None:
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"SIGINT after {delay} s was lost: the run went on for 300 s\n{stderr[-2000:]}")
    return process.returncode, stdout, stderr


def phase(stdout: str, stderr: str) -> str:
    """How far a run got: 'start-up' (imports, data, SVDs), 'training' or 'saved'."""
    if "saved " in stdout:
        return "saved"
    return "training" if "training [" in stderr else "start-up"


def assert_interrupted(code: int, stdout: str, stderr: str, folder: Path, delay: float) -> None:
    where = f"SIGINT after {delay:.2f} s ({phase(stdout, stderr)}): status {code}\n{stderr[-3000:]}"
    assert code == 130, where
    messages = [line for line in stderr.splitlines() if line.strip() and not line.startswith(PROGRESS)]
    assert messages == [INTERRUPTED], where  # one line besides the progress bar, no traceback
    assert list(folder.iterdir()) == [], where


@pytest.fixture(scope="module")
def reference(latents, tmp_path_factory):
    """(Python's start-up, the seconds of a whole uninterrupted SHORT run): the time scale of the delays."""
    folder = tmp_path_factory.mktemp("reference")
    started = time.monotonic()
    code, _, stderr = train(latents, folder / "h.safetensors", SHORT, None)
    assert code == 0, stderr
    return python_start_up(), time.monotonic() - started


def test_ctrl_c_before_the_head_is_saved_exits_130_with_one_line_and_no_file(latents, reference, tmp_path):
    start_up, whole_run = reference
    # Fixed delays for the imports, then fractions of a whole run: reading, SVDs, and well into training.
    delays = [0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0] + [f * whole_run for f in (0.3, 0.5, 0.7, 0.9, 1.1, 1.5)]
    phases = []
    for i, delay in enumerate(delays):
        folder = tmp_path / f"run{i}"
        folder.mkdir()
        delay = max(delay, start_up)
        code, stdout, stderr = train(latents, folder / "h.safetensors", LONG, delay)
        assert_interrupted(code, stdout, stderr, folder, delay)
        phases.append((round(delay, 2), phase(stdout, stderr)))
    print(f"python start-up {start_up:.3f} s, whole run {whole_run:.2f} s; interrupted at {phases}")


def test_ctrl_c_while_saving_or_exiting_leaves_the_whole_head_or_nothing(latents, reference, tmp_path):
    _, whole_run = reference
    outcomes = []
    for i, fraction in enumerate((0.6, 0.7, 0.8, 0.9, 1.0, 1.1)):
        folder = tmp_path / f"run{i}"
        folder.mkdir()
        delay = fraction * whole_run
        code, stdout, stderr = train(latents, folder / "h.safetensors", SHORT, delay)
        if code == 0:  # the signal came after the head was in place: the run was over
            assert "saved " in stdout and "Traceback" not in stderr, stderr
            assert [p.name for p in folder.iterdir()] == ["h.safetensors"]
            assert read_head_metadata(folder / "h.safetensors")["hidden"] == 1024
        else:
            assert_interrupted(code, stdout, stderr, folder, delay)
        outcomes.append((round(delay, 2), code, phase(stdout, stderr)))
    print(f"whole run {whole_run:.2f} s; outcomes: {outcomes}")
