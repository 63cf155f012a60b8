"""avi_core must never import ComfyUI: it is used on machines without the host."""

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "avi_core"
HOST_MODULES = {
    "comfy",
    "comfy_extras",
    "folder_paths",
    "nodes",
    "execution",
    "server",
    "comfy_execution",
    "latent_preview",
}


def test_no_source_file_imports_the_host():
    offenders = []
    for source in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{source.name}: {n}" for n in names if n.split(".")[0] in HOST_MODULES]
    assert not offenders, offenders


def test_importing_avi_core_loads_no_host_module():
    code = (
        "import sys, avi_core, avi_core.app.cli\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {sorted(HOST_MODULES)!r}]\n"
        "print(bad); assert not bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=CORE.parent)
