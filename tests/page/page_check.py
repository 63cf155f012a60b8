"""Load the pack's workflows into the real ComfyUI page (host server + official frontend + headless Chromium).

    COMFYUI_DIR=/path/to/ComfyUI python tests/page/page_check.py [--out DIR] [--screenshots docs/images]

starts `$COMFYUI_DIR/.venv/bin/python main.py --cpu` on a free port with a temporary base directory (the pack
linked into its custom_nodes/, placeholder model files, an in-memory database, so nothing is written into the
host tree), opens the page in Debian's chromium through Playwright, drops each UI workflow file onto the
page as a user would, and records what the page shows: dialogs (the missing-nodes warning), every node's
type and whether the page knows it, nodes flagged with errors, console errors, the prompt the page would
queue (compared with the API twin in workflows/api/) and the server's validation of that prompt
(POST /prompt). A screenshot of each workflow is saved. tests/page/test_page.py runs this under pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = REPO_ROOT / "workflows"
PACK_FOLDER_NAME = "avi-attribute-vectors"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PLACEHOLDER_MODELS = {
    "checkpoints": ["v2-1_512-ema-pruned.safetensors"],
    "avi_heads": ["smile.safetensors"],
    "avi_boundaries": ["smile.safetensors"],  # boundary
}
PAGE_SETTINGS = {
    "Comfy.TutorialCompleted": True,  # no first-run template dialog
    "LiteGraph.Canvas.MinFontSizeForLOD": 0,  # draw widgets and text at any zoom (readable screenshots)
    "Comfy.Minimap.Visible": False,
}
VIEWPORT = {"width": 2600, "height": 1400}
CANVAS_AREA = (60, 80, VIEWPORT["width"] - 80, VIEWPORT["height"] - 120)
"""left, top, width, height of the canvas region free of the page's bars, in CSS pixels."""
THUMBNAIL_AREA = (60, 80, 640, 420)


def comfyui_dir() -> Path | None:
    value = os.environ.get("COMFYUI_DIR", "").strip()
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    return path if (path / "main.py").is_file() and (path / "server.py").is_file() else None


def host_python(host: Path) -> Path:
    venv = host / ".venv" / "bin" / "python"
    return venv if venv.is_file() else Path(sys.executable)


def chromium_path() -> str | None:
    explicit = os.environ.get("AVI_CHROMIUM", "").strip()
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return next((c for c in CHROMIUM_CANDIDATES if Path(c).is_file()), None)


def what_is_missing() -> str | None:
    """None when the page check can run, else a message saying what to install or set."""
    if comfyui_dir() is None:
        return (
            "page test: set COMFYUI_DIR to a ComfyUI checkout with its venv (.venv) holding the pinned "
            "comfyui-frontend-package, e.g. COMFYUI_DIR=/path/to/ComfyUI python -m pytest tests/page"
        )
    if chromium_path() is None:
        return "page test: install Chromium (apt-get install -y chromium) or set AVI_CHROMIUM to its path"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "page test: install Playwright for Python (pip install playwright)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(url: str, data: Any = None, timeout: float = 30) -> Any:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode() or "null")
    except urllib.error.HTTPError as err:  # /prompt answers 400 with a JSON body naming the errors
        return json.loads(err.read().decode() or "null")


def http_content_type(url: str) -> str | None:
    """The Content-Type of a GET answered with 200, else None."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
            return response.headers.get_content_type()
    except urllib.error.URLError:
        return None


@contextlib.contextmanager
def comfy_server(host: Path, log_path: Path) -> Iterator[tuple[str, Path]]:
    """Run the host's server with the pack installed into a temporary base directory; yields (url, base)."""
    base = Path(tempfile.mkdtemp(prefix="avi-page-"))
    try:
        (base / "custom_nodes").mkdir()
        (base / "custom_nodes" / PACK_FOLDER_NAME).symlink_to(REPO_ROOT, target_is_directory=True)
        for folder, names in PLACEHOLDER_MODELS.items():
            (base / "models" / folder).mkdir(parents=True)
            for name in names:  # empty files: listed in the dropdowns, never loaded (nothing is run)
                (base / "models" / folder / name).write_bytes(b"")
        settings = base / "user" / "default" / "comfy.settings.json"
        settings.parent.mkdir(parents=True)
        settings.write_text(json.dumps(PAGE_SETTINGS))
        port = free_port()
        cmd = [
            str(host_python(host)),
            "main.py",
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(port),
            "--base-directory",
            str(base),
            "--database-url",
            "sqlite:///:memory:",
        ]
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, cwd=host, stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"ComfyUI exited ({proc.returncode}); see {log_path}")
                try:
                    http_json(url + "/system_stats", timeout=5)
                    break
                except (OSError, ValueError):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"ComfyUI did not answer within 300 s; see {log_path}") from None
                    time.sleep(1)
            yield url, base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        link = base / "custom_nodes" / PACK_FOLDER_NAME
        if link.is_symlink():
            link.unlink()  # never follow the link into the repository when cleaning up
        shutil.rmtree(base, ignore_errors=True)


# Runs in the page after a drop: what the page shows.
_INSPECT_JS = """
() => {
  const app = window.app, LG = window.LiteGraph;
  const nodes = app.graph._nodes.map((n) => ({
    id: n.id, type: n.type, title: n.title,
    known: !!LG.registered_node_types[n.type],
    fromServer: !!(n.constructor && n.constructor.nodeData),
    hasErrors: !!n.has_errors,
    widgets: (n.widgets || []).map((w) => [w.name, w.value]),
  }));
  const dialogs = [...document.querySelectorAll('.p-dialog')]
    .filter((d) => d.offsetParent !== null)
    .map((d) => d.innerText.trim().slice(0, 500));
  const tabs = [...document.querySelectorAll('.workflow-tabs .workflow-label, .workflow-tabs span')]
    .map((t) => t.innerText.trim()).filter((t) => t);
  return {nodes, dialogs, links: Object.keys(app.graph.links || {}).length,
          groups: (app.graph._groups || []).length, tabs};
}
"""

# Zoom and pan so the whole graph fills the area right of the side bar and below the top bar; returns the
# screen rectangle it occupies (for the screenshot's clip).
_FRAME_JS = """
([left, top, width, height, margin]) => {
  const app = window.app;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  const grow = (x, y, w, h) => {
    x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + w); y1 = Math.max(y1, y + h);
  };
  for (const n of app.graph._nodes) grow(n.pos[0], n.pos[1] - 30, n.size[0], n.size[1] + 30);
  for (const g of app.graph._groups || []) {
    const b = g._bounding || g.bounding;
    if (b) grow(b[0], b[1], b[2], b[3]);
  }
  const scale = Math.min(1, (width - 2 * margin) / (x1 - x0), (height - 2 * margin) / (y1 - y0));
  const ds = app.canvas.ds;
  const rect = app.canvas.canvas.getBoundingClientRect();  // the canvas may start below/right of the bars
  ds.scale = scale;
  ds.offset[0] = (left - rect.left + margin) / scale - x0;
  ds.offset[1] = (top - rect.top + margin) / scale - y0;
  app.canvas.setDirty(true, true);
  app.canvas.draw(true, true);
  return {x: left, y: top, width: Math.ceil((x1 - x0) * scale + 2 * margin),
          height: Math.ceil((y1 - y0) * scale + 2 * margin), scale};
}
"""

_DROP_JS = """
async ([name, text]) => {
  const dt = new DataTransfer();
  dt.items.add(new File([text], name, {type: 'application/json'}));
  const event = new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true});
  document.dispatchEvent(event);
}
"""


def _normalise_prompt(prompt: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any]:
    """Class, title and the DECLARED inputs of each node (the page also sends frontend-only widgets, such
    as Preview Any's 'preview', which the server ignores)."""
    out = {}
    for node_id, node in prompt.items():
        info = object_info.get(node["class_type"], {}).get("input", {})
        declared = set(info.get("required", {})) | set(info.get("optional", {}))
        out[node_id] = {
            "class_type": node["class_type"],
            "inputs": {k: v for k, v in node["inputs"].items() if k in declared},
            "title": node.get("_meta", {}).get("title"),
        }
    return out


def check_workflows(
    url: str,
    screenshots: Path,
    workflows: list[Path] | None = None,
    *,
    template_browser: bool = True,
    show: str | None = "avi_learn_attribute",
) -> dict[str, Any]:
    """Drop each UI workflow onto the page (a fresh browser); return {workflow name: what the page showed}.

    template_browser: then open the Templates dialog, with the workflow named `show` as the open tab, and
    screenshot it (template_browser.png). Controls (a deliberately broken workflow) belong in a separate call, so
    that their tabs never appear in that screenshot.
    """
    from playwright.sync_api import sync_playwright

    workflows = workflows or sorted(WORKFLOWS_DIR.glob("*.json"))
    screenshots.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            console: list[str] = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.goto(url + "/", wait_until="load")
            page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=180_000)
            page.wait_for_timeout(2000)
            frontend = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ || null")
            object_info = http_json(url + "/object_info", timeout=120)
            for path in workflows:
                console.clear()
                text = path.read_text(encoding="utf-8")
                page.evaluate(_DROP_JS, [path.name, text])
                page.wait_for_timeout(2500)
                shown = page.evaluate(_INSPECT_JS)
                frame = page.evaluate(_FRAME_JS, [*CANVAS_AREA, 20])
                page.wait_for_timeout(800)
                shot = screenshots / f"{path.stem}.png"
                clip = {k: frame[k] for k in ("x", "y", "width", "height")}
                page.screenshot(path=str(shot), clip=clip)
                # A small JPEG: the template browser's card image (workflows/<name>.jpg).
                frame = page.evaluate(_FRAME_JS, [*THUMBNAIL_AREA, 10])
                page.wait_for_timeout(500)
                thumb = screenshots / f"{path.stem}.jpg"
                clip = {k: frame[k] for k in ("x", "y", "width", "height")}
                page.screenshot(path=str(thumb), clip=clip, type="jpeg", quality=80)
                queued = page.evaluate("async () => (await window.app.graphToPrompt()).output")
                api_path = path.parent / "api" / path.name
                api = json.loads(api_path.read_text(encoding="utf-8")) if api_path.is_file() else None
                validation = http_json(url + "/prompt", {"prompt": queued, "client_id": "avi-page-check"})
                errors = [c for c in console if c.startswith(("error", "pageerror"))]
                ui = json.loads(text)
                results[path.stem] = {
                    "file": str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path),
                    "frontend": frontend,
                    "nodes_in_file": len(ui["nodes"]),
                    "nodes_on_page": len(shown["nodes"]),
                    "links_on_page": shown["links"],
                    "groups_on_page": shown["groups"],
                    "unknown_types": sorted({n["type"] for n in shown["nodes"] if not n["known"]}),
                    "nodes_with_errors": [n["id"] for n in shown["nodes"] if n["hasErrors"]],
                    "dialogs": shown["dialogs"],
                    "node_types": sorted({n["type"] for n in shown["nodes"]}),
                    "console_errors": errors,
                    "queued_prompt_matches_api_twin": (
                        api is not None
                        and _normalise_prompt(queued, object_info) == _normalise_prompt(api, object_info)
                    ),
                    "queued_prompt": queued,
                    "server_validation": validation,
                    "screenshot": str(shot),
                    "thumbnail": str(thumb),
                    "widgets": {str(n["id"]): n["widgets"] for n in shown["nodes"]},
                }
                # Close any dialog so the next drop starts clean (and stop what the validation queued).
                page.keyboard.press("Escape")
                http_json(url + "/interrupt", {})
                http_json(url + "/queue", {"clear": True})
            if not template_browser:
                return results
            if show:
                results["_shown_tab"] = _activate_tab(page, show)
            templates = http_json(url + "/workflow_templates")
            listed = templates.get(PACK_FOLDER_NAME, [])
            results["_template_browser"] = {
                "listed": listed,
                "served_card_images": sorted(
                    name
                    for name in listed
                    if http_content_type(f"{url}/api/workflow_templates/{PACK_FOLDER_NAME}/{name}.jpg") == "image/jpeg"
                ),
                **_open_template_browser(page, screenshots / "template_browser.png"),
            }
        finally:
            browser.close()
    return results


def _activate_tab(page, name: str) -> dict[str, Any]:
    """Click the workflow tab `name` (one of the dropped files); returns the page's title and its tabs."""
    page.keyboard.press("Escape")
    page.locator(".workflow-tabs").get_by_text(name, exact=True).first.click()
    page.wait_for_timeout(1500)
    page.evaluate(_FRAME_JS, [*CANVAS_AREA, 20])  # the whole graph in view behind the dialog
    page.wait_for_timeout(500)
    return {"title": page.title(), "tabs": page.evaluate(_INSPECT_JS)["tabs"]}


def _open_template_browser(page, shot: Path) -> dict[str, Any]:
    """Open the Templates side bar, pick the pack's section; return the card titles the dialog shows."""
    page.keyboard.press("Escape")
    page.get_by_text("Templates", exact=True).first.click()
    page.wait_for_timeout(2000)
    page.get_by_text(PACK_FOLDER_NAME, exact=True).first.click()
    page.wait_for_timeout(2500)  # the card images (workflows/<name>.jpg) load
    page.screenshot(path=str(shot))
    text = page.evaluate("() => [...document.querySelectorAll('.p-dialog')].map((d) => d.innerText).join('\\n')")
    cards = sorted({line.strip() for line in text.splitlines() if line.strip().startswith("avi_")})
    loaded = page.evaluate(
        "() => [...document.querySelectorAll('.p-dialog img')].filter((i) => i.complete && i.naturalWidth > 0).length"
    )
    page.keyboard.press("Escape")
    return {"dialog_cards": cards, "card_images_loaded": loaded, "screenshot": str(shot)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "avi-page-check")
    parser.add_argument("--screenshots", type=Path, default=None, help="where to save the screenshots")
    args = parser.parse_args(argv)
    missing = what_is_missing()
    if missing:
        print(missing)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with comfy_server(comfyui_dir(), args.out / "server.log") as (url, _base):
        results = check_workflows(url, args.screenshots or args.out)
    (args.out / "page-report.json").write_text(json.dumps(results, indent=2))
    for name, item in results.items():
        if name.startswith("_"):
            print(name, item)
            continue
        print(
            f"{name}: {item['nodes_on_page']}/{item['nodes_in_file']} nodes, "
            f"unknown {item['unknown_types']}, errors {item['nodes_with_errors']}, "
            f"dialogs {item['dialogs']}, "
            f"prompt = API twin: {item['queued_prompt_matches_api_twin']}, "
            f"server: {'error' if item['server_validation'].get('error') else 'accepted'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
