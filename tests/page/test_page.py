"""The workflows in the real ComfyUI page: the host's server with the pack installed, its pinned official
frontend, headless Chromium. Skips with a message when COMFYUI_DIR, Chromium or Playwright is missing.

    COMFYUI_DIR=/path/to/ComfyUI python -m pytest tests/page -s

Screenshots and the report (page-report.json: what the page showed for each workflow) go to a temporary
folder printed at the end; with AVI_UPDATE_SCREENSHOTS=1 the screenshots replace docs/images/*.png and the
template browser's card images, workflows/*.jpg.

A second browser loads the controls, so their tabs never show in the template browser's screenshot:
- a deliberately broken copy of a workflow (one node type renamed): the checker must see a missing node;
- the workflows as they were saved before the nodes became V3 nodes (from git, PRE_V3_REVISIONS): they must
  load with every node known, as saved workflows of users do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import page_check
import pytest

pytestmark = pytest.mark.host

WORKFLOWS = sorted(page_check.WORKFLOWS_DIR.glob("*.json"))
DOCS_IMAGES = page_check.REPO_ROOT / "docs" / "images"
BROKEN = "broken_copy"
PRE_V3_REVISIONS = ("8fd65c5", "bd965c7")
"""Commits whose workflows were saved with the V1 nodes: the first with workflows, and the last before V3."""


def _git_show(revision: str, path: str) -> str | None:
    try:
        run = subprocess.run(
            ["git", "-C", str(page_check.REPO_ROOT), "show", f"{revision}:{path}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return run.stdout if run.returncode == 0 else None


def pre_v3_workflows(folder: Path) -> list[Path]:
    """The workflows (and API twins, in folder/api) of PRE_V3_REVISIONS, as `<revision>_<name>.json`."""
    out = []
    (folder / "api").mkdir(parents=True, exist_ok=True)
    for revision in PRE_V3_REVISIONS:
        for path in WORKFLOWS:
            ui = _git_show(revision, f"workflows/{path.name}")
            api = _git_show(revision, f"workflows/api/{path.name}")
            if ui is None or api is None:
                continue
            (folder / f"{revision}_{path.name}").write_text(ui, encoding="utf-8")
            (folder / "api" / f"{revision}_{path.name}").write_text(api, encoding="utf-8")
            out.append(folder / f"{revision}_{path.name}")
    return out


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    missing = page_check.what_is_missing()
    if missing:
        pytest.skip(missing)
    out = tmp_path_factory.mktemp("page")
    broken = out / "broken" / f"{BROKEN}.json"
    broken.parent.mkdir()
    data = json.loads((page_check.WORKFLOWS_DIR / "avi_learn_attribute.json").read_text(encoding="utf-8"))
    node = next(n for n in data["nodes"] if n["type"] == "AVITrainAttributeHead")
    node["type"] = "AVIDoesNotExist"
    broken.write_text(json.dumps(data))
    old = pre_v3_workflows(out / "pre_v3")
    with page_check.comfy_server(page_check.comfyui_dir(), out / "server.log") as (url, _base):
        results = page_check.check_workflows(url, out / "screenshots", WORKFLOWS)
        controls = page_check.check_workflows(url, out / "controls", [broken, *old], template_browser=False)
    results.update(controls)
    results["_pre_v3"] = [p.stem for p in old]
    report = out / "page-report.json"
    report.write_text(json.dumps(results, indent=2))
    print(f"\npage report: {report}")
    for name, item in results.items():
        if not name.startswith("_"):
            print(
                f"{name}: {item['nodes_on_page']}/{item['nodes_in_file']} nodes, "
                f"unknown {item['unknown_types']}, in error {item['nodes_with_errors']}, "
                f"dialogs {[d[:80] for d in item['dialogs']]}, "
                f"queued prompt = API twin: {item['queued_prompt_matches_api_twin']}, "
                f"server: {'refused' if item['server_validation'].get('error') else 'accepted'}"
            )
    print(f"template browser over: {results['_shown_tab']}")
    if os.environ.get("AVI_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        for path in WORKFLOWS:
            shutil.copyfile(out / "screenshots" / f"{path.stem}.png", DOCS_IMAGES / f"{path.stem}.png")
            # the template browser shows workflows/<name>.jpg on the workflow's card
            shutil.copyfile(out / "screenshots" / f"{path.stem}.jpg", path.with_suffix(".jpg"))
        shutil.copyfile(out / "screenshots" / "template_browser.png", DOCS_IMAGES / "template_browser.png")
    return results


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_loads_in_the_page_without_missing_or_broken_nodes(page, path):
    item = page[path.stem]
    assert item["nodes_on_page"] == item["nodes_in_file"]
    assert item["unknown_types"] == [], "the page would show these as missing (red) nodes"
    assert item["nodes_with_errors"] == []
    assert item["dialogs"] == [], "a dialog opened on load (missing nodes or models?)"
    assert item["console_errors"] == []
    assert item["links_on_page"] == len(json.loads(path.read_text(encoding="utf-8"))["links"])
    assert Path(item["screenshot"]).stat().st_size > 10_000


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_the_page_queues_the_api_twin_and_the_server_accepts_it(page, path):
    item = page[path.stem]
    assert item["queued_prompt_matches_api_twin"], "graphToPrompt differs from workflows/api/"
    validation = item["server_validation"]
    assert "error" not in validation and validation.get("node_errors") == {}, validation


def test_template_browser_lists_every_workflow(page):
    browser = page["_template_browser"]
    names = sorted(p.stem for p in WORKFLOWS)
    assert sorted(browser["listed"]) == names
    assert browser["dialog_cards"] == names, "the Templates dialog's section for the pack"
    assert browser["served_card_images"] == names, "workflows/<name>.jpg, the cards' images"
    assert browser["card_images_loaded"] >= len(names)


def test_the_check_sees_a_missing_node(page):
    item = page[BROKEN]
    assert item["unknown_types"] == ["AVIDoesNotExist"]
    assert any("AVIDoesNotExist" in d for d in item["dialogs"]), item["dialogs"]


def test_the_template_browser_screenshot_shows_a_real_workflow(page):
    shown = page["_shown_tab"]
    assert shown["title"].lstrip("*").startswith("avi_learn_attribute"), shown
    assert BROKEN not in " ".join(shown["tabs"]), shown


@pytest.mark.parametrize("revision", PRE_V3_REVISIONS)
def test_workflows_saved_before_the_v3_nodes_load_unchanged(page, revision):
    names = [n for n in page["_pre_v3"] if n.startswith(f"{revision}_")]
    if not names:
        pytest.skip(f"git history with {revision} is not available here")
    # every workflow that revision had (later methods added workflows of their own)
    then = {p.stem for p in WORKFLOWS if _git_show(revision, f"workflows/{p.name}") is not None}
    assert {n.removeprefix(f"{revision}_") for n in names} == then and len(then) >= 5
    for name in names:
        item = page[name]
        assert item["unknown_types"] == [] and item["nodes_with_errors"] == [] and item["dialogs"] == [], name
        assert item["nodes_on_page"] == item["nodes_in_file"] and item["console_errors"] == [], name
        assert item["queued_prompt_matches_api_twin"], f"{name}: the page queues what was saved with it"
        validation = item["server_validation"]
        assert "error" not in validation and validation.get("node_errors") == {}, (name, validation)
