"""Host tests skip, instead of erroring, when COMFYUI_DIR is set but the running Python cannot import ComfyUI
(the project's own venv, a CI venv without ComfyUI's requirements). Host-free: runs pytest in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HOST_TESTS = Path(__file__).resolve().parent / "host"

PROBE = """
import tiny_sd2


def test_probe():
    tiny_sd2.require_host()


def test_probe_again():
    tiny_sd2.require_host()
"""


def test_host_tests_skip_when_this_python_cannot_import_the_host(tmp_path):
    # A ComfyUI folder as comfyui_dir() recognises it, whose comfy package needs a module this Python lacks (the
    # way ComfyUI's own requirements are missing from a CI venv).
    host = tmp_path / "ComfyUI"
    (host / "comfy").mkdir(parents=True)
    (host / "comfy" / "__init__.py").write_text("")
    (host / "comfy" / "supported_models.py").write_text("")
    (host / "comfy" / "cli_args.py").write_text("import a_requirement_this_python_lacks\n")
    (host / "nodes.py").write_text("")
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = dict(os.environ, COMFYUI_DIR=str(host), PYTHONPATH=str(HOST_TESTS), PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(probe)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "2 skipped" in output and "error" not in output.lower().replace("modulenotfounderror", ""), output
    assert f"COMFYUI_DIR={host} is set, but this Python ({sys.executable}) cannot import ComfyUI" in output
    assert "a_requirement_this_python_lacks" in output and "with the host's python" in output
