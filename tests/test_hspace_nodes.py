"""The h-space nodes (issue 9), host-free: what they tell ComfyUI (tools/node_info.json), their advice table
(nodes/hspace/fixes.py) for every error the h-space engine raises, and the node helpers that need no host."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_INFO = json.loads((REPO_ROOT / "tools" / "node_info.json").read_text(encoding="utf-8"))

HSPACE_NODES = {
    "AVIHSpaceCapture": "AVI Capture h",
    "AVIHSpaceFindPCA": "AVI Find h-space Directions (PCA)",
    "AVIHSpaceFindSupervised": "AVI Find h-space Direction (Supervised)",
    "AVIHSpaceFindJacobian": "AVI Find h-space Directions (Jacobian)",
    "AVIHSpaceLoadDirection": "AVI Load h-space Direction",
    "AVIHSpaceApplyDirection": "AVI Apply h-space Direction",
    "AVIImageGrid": "AVI Image Grid",
}
OUTPUTS = {
    "AVIHSpaceCapture": [("model", "MODEL")],
    "AVIHSpaceFindPCA": [("directions", "AVI_H_DIRECTIONS"), ("plot", "IMAGE"), ("info", "STRING")],
    "AVIHSpaceFindSupervised": [("directions", "AVI_H_DIRECTIONS"), ("plot", "IMAGE"), ("info", "STRING")],
    "AVIHSpaceFindJacobian": [("directions", "AVI_H_DIRECTIONS"), ("plot", "IMAGE"), ("info", "STRING")],
    "AVIHSpaceLoadDirection": [("directions", "AVI_H_DIRECTIONS"), ("info", "STRING")],
    "AVIHSpaceApplyDirection": [("model", "MODEL"), ("latent", "LATENT")],
    "AVIImageGrid": [("grid", "IMAGE")],
}


def _inputs(info):
    for section in ("required", "optional"):
        for name in info["input_order"].get(section, []):
            yield section, name, info["input"][section][name]


def test_the_hspace_nodes_are_registered_with_their_names():
    assert {k: NODE_INFO[k]["display_name"] for k in HSPACE_NODES if k in NODE_INFO} == HSPACE_NODES
    for node_id in HSPACE_NODES:
        assert NODE_INFO[node_id]["category"] == "latent/avi/h-space"
        outputs = list(zip(NODE_INFO[node_id]["output_name"], NODE_INFO[node_id]["output"], strict=True))
        assert outputs == OUTPUTS[node_id], node_id
    finders = {"AVIHSpaceFindPCA", "AVIHSpaceFindSupervised", "AVIHSpaceFindJacobian"}
    assert {k for k in HSPACE_NODES if NODE_INFO[k]["output_node"]} == finders


@pytest.mark.parametrize("node_id", HSPACE_NODES)
def test_every_hspace_node_says_what_it_does_with_tooltips_everywhere(node_id):
    info = NODE_INFO[node_id]
    assert len(info["description"]) > 150
    for section, name, entry in _inputs(info):
        assert len(entry) == 2 and len(entry[1].get("tooltip", "")) > 20, f"{node_id}.{name} ({section})"
    assert len(info["output_tooltips"]) == len(info["output"]) and all(info["output_tooltips"])


def test_the_defaults_are_haas_et_al():
    apply = {name: entry for _, name, entry in _inputs(NODE_INFO["AVIHSpaceApplyDirection"])}
    strength = apply["strength"][1]
    assert strength["display"] == "slider" and strength["min"] < 0 < strength["max"] and strength["default"] == 1.0
    assert (apply["start"][1]["default"], apply["end"][1]["default"]) == (0.0, 1.0)
    assert apply["target"][1]["options"] == ["both", "cond", "uncond"] and apply["target"][1]["default"] == "both"
    assert (
        apply["latent"][0] == "LATENT" and "latent" in NODE_INFO["AVIHSpaceApplyDirection"]["input_order"]["optional"]
    )
    jacobian = {name: entry[1] for _, name, entry in _inputs(NODE_INFO["AVIHSpaceFindJacobian"])}
    assert (jacobian["count"]["default"], jacobian["iterations"]["default"], jacobian["tolerance"]["default"]) == (
        3,
        50,
        1e-5,
    )
    capture = {name: entry[1] for _, name, entry in _inputs(NODE_INFO["AVIHSpaceCapture"])}
    assert capture["pass"]["default"] == "cond" and capture["steps"]["default"] == "all"
    load = NODE_INFO["AVIHSpaceLoadDirection"]["input"]["required"]["direction_name"][1]
    assert load["options"] == "<avi_directions files>"  # the host's list, replaced in the snapshot


# --- advice ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hfixes(pack):
    import avi_pack.nodes.hspace.fixes as hfixes

    return hfixes


def test_every_error_the_hspace_engine_raises_gets_hspace_advice(pack, hfixes):
    import avi_pack.avi_core.errors as errors
    import test_node_fixes

    missing, wrong = [], []
    hspace_sites = [
        site
        for site in test_node_fixes.engine_raise_sites(errors)
        if site[0].startswith(("avi_core/hspace/", "nodes/hspace/"))
    ]
    assert len(hspace_sites) > 60
    for where, cls, reason, details in hspace_sites:
        entry = test_node_fixes._entry(hfixes.HSPACE_FIXES, cls, reason)
        if entry is None:
            missing.append(f"{where}: {cls.__name__} {reason!r}")
            continue
        unknown = test_node_fixes._fields(entry[2]) - details
        if unknown:
            wrong.append(f"{where}: {cls.__name__} {reason!r} gives {sorted(details)}, the fix quotes {unknown}")
    assert not missing, "no h-space advice for:\n" + "\n".join(missing)
    assert not wrong, "\n".join(wrong)


def test_the_hspace_table_is_well_formed_and_names_real_nodes(hfixes):
    for (cls, reason), text in hfixes.HSPACE_FIXES.items():
        assert text[0].isupper() or text[0] in "'`", (cls, reason)
        assert text.endswith(".") and "  " not in text, (cls, reason)
    named = set(re.findall(r"'(AVI [A-Za-z -()]+?)'", " ".join(hfixes.HSPACE_FIXES.values())))
    assert named and named <= set(HSPACE_NODES.values()), named - set(HSPACE_NODES.values())


def test_hspace_advice_does_not_leak_into_the_other_methods(pack, hfixes):
    import avi_pack.nodes.fixes as fixes
    from avi_pack.avi_core.errors import DatasetError

    # an empty AVI dataset keeps AVI's advice, an empty h collection gets the h-space one
    avi_text = fixes.NODE_FIXES[(DatasetError, "empty")]
    assert "build a dataset" in avi_text and hfixes.HSPACE_TABLE[(DatasetError, "empty")] != avi_text
    assert not any("Capture h" in text for text in fixes.NODE_FIXES.values())


def test_messages_read_as_facts_then_the_fix(pack, hfixes, tmp_path):
    from avi_pack.avi_core.errors import AVIError
    from avi_pack.avi_core.hspace import principal_components, read_collection

    def message(raise_it) -> str:
        with pytest.raises(AVIError) as caught:
            with hfixes.hspace_errors():
                raise_it()
        return str(caught.value)

    text = message(lambda: read_collection(tmp_path / "nothing"))
    assert text.startswith(f"the collection folder {tmp_path / 'nothing'} does not exist. Check the collection name")
    text = message(lambda: principal_components(torch.randn(3, 4), 5))
    assert "count = 5 exceeds the 2 principal directions" in text and "Lower count on the node to 2 or less" in text
    with pytest.raises(KeyboardInterrupt):  # anything that is not the engine's passes through untouched
        with hfixes.hspace_errors():
            raise KeyboardInterrupt
