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


def _absolute_imports(text: str, relative_path: Path) -> list[str]:
    """The modules a file at avi_core/`relative_path` imports, relative imports resolved (avi_core.x.y)."""
    package = ["avi_core", *relative_path.parent.parts]
    found = []
    for node in ast.walk(ast.parse(text, filename=str(relative_path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append(node.module or "")
                continue
            base = package[: len(package) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
            found += [module] if node.module else [f"{module}.{alias.name}" for alias in node.names]
    return found


def test_the_engine_never_imports_the_app():
    # Import direction: app -> engine and nodes -> engine, never back (issue 8).
    offenders = []
    for source in CORE.rglob("*.py"):
        if source.relative_to(CORE).parts[0] in ("app", "__main__.py"):
            continue
        offenders += [
            f"{source.relative_to(CORE)}: {name}"
            for name in _absolute_imports(source.read_text(), source.relative_to(CORE))
            if name == "avi_core.app" or name.startswith("avi_core.app.")
        ]
    assert not offenders, offenders


def test_the_import_check_resolves_relative_imports():
    text = "from ..app import output\nfrom .. import app\nfrom .svd import channel_svd\nimport avi_core.app.cli\n"
    names = _absolute_imports(text, Path("latent") / "probe.py")
    assert names == ["avi_core.app", "avi_core.app", "avi_core.latent.svd", "avi_core.app.cli"]
