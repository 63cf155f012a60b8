"""The nodes' advice table (nodes/fixes.py), host-free: every error the engine raises gets advice in a ComfyUI
user's words, the advice formats with the details the engine gives, and the messages read as "facts. Fix."

The engine's raise sites are found by reading its source (ast), so a new reason added to the engine without
advice fails here.
"""

from __future__ import annotations

import ast
import json
import re
import string
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
ENGINE = REPO_ROOT / "avi_core"


@pytest.fixture(scope="module")
def errors(pack):
    import avi_pack.avi_core.errors as errors

    return errors


@pytest.fixture(scope="module")
def fixes(pack):
    import avi_pack.nodes.fixes as fixes

    return fixes


# --- the engine's raise sites ------------------------------------------------------------------------------

# Calls that build an error without naming its class: (function or method name) -> (class name, default reason,
# details the call adds).
_BUILDERS = {
    "refuse": ("FileFormatError", "damaged", {"path", "kind"}),  # FileKind.refuse
    "_refuse": ("LatentFileError", "damaged", {"path", "kind"}),  # files.latent_files._refuse
    "write_error": ("OutputPathError", None, {"path", "cause"}),  # files.atomic.write_error
}
# Reasons computed at run time, by the call that computes them.
_DYNAMIC_REASONS = {
    ("refuse", "sniffed"): {"truncated", "pickle", "foreign"},  # files.safetensors_io.sniff_not_safetensors
}


def _atomic_reasons() -> set[str]:
    tree = ast.parse((ENGINE / "files" / "atomic.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_REASONS" for t in node.targets):
            return {value.elts[0].value for value in node.value.values} | {"os"}
    raise AssertionError("files/atomic.py has no _REASONS table")


def _reasons(node: ast.expr | None, call_name: str) -> set[str] | None:
    """The literal reasons a `reason=` argument can take; None when it is not literal (a pass-through)."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        body, orelse = _reasons(node.body, call_name), _reasons(node.orelse, call_name)
        return None if body is None or orelse is None else body | orelse
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        return _DYNAMIC_REASONS.get((call_name, node.value.id))
    return None


def _sources() -> list[Path]:
    """The engine (but its app, the command line, which has its own advice) and the nodes."""
    engine = [p for p in ENGINE.rglob("*.py") if p.relative_to(ENGINE).parts[0] != "app"]
    return sorted(engine) + sorted((REPO_ROOT / "nodes").rglob("*.py"))


def engine_raise_sites(errors) -> list[tuple[str, type, str, frozenset[str]]]:
    """(where, error class, reason, detail names) of every AVIError built in avi_core (but its app) and nodes/."""
    names = {name: obj for name, obj in vars(errors).items() if isinstance(obj, type) and issubclass(obj, Exception)}
    sites = []
    for path in _sources():
        rel = path.relative_to(REPO_ROOT)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            call = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            keywords = {kw.arg: kw.value for kw in node.keywords if kw.arg}
            where = f"{rel}:{node.lineno}"
            if call in names and issubclass(names[call], errors.AVIError):
                cls, default, extra = names[call], "", set()
            elif call in _BUILDERS:
                cls_name, default, extra = _BUILDERS[call]
                cls = names[cls_name]
            elif call == "version_error":  # FileKind's newer-version error
                cls, default, extra = names["FileVersionError"], "", set()
            elif call == "error" and "reason" in keywords:  # FileKind's error type (kind.error(...))
                cls, default, extra = names["FileFormatError"], "", set()
            else:
                continue
            if "reason" in keywords:
                reasons = _reasons(keywords["reason"], call)
                if reasons is None:  # reason=reason: passes its caller's reason on (FileKind.refuse itself)
                    continue
            elif call == "write_error":
                reasons = _atomic_reasons()
            else:
                reasons = {default}
            details = frozenset((set(keywords) - {"reason"}) | extra)
            sites.extend((where, cls, reason, details) for reason in sorted(reasons))
    return sites


def _entry(table, cls: type, reason: str) -> tuple[type, str, str] | None:
    """The table entry add_fix uses for (cls, reason): most specific type first, its reason before ""."""
    for base in cls.__mro__:
        for key in (reason, ""):
            if (base, key) in table:
                return base, key, table[(base, key)]
    return None


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_the_scan_finds_the_engines_errors(errors):
    sites = engine_raise_sites(errors)
    found = {(cls.__name__, reason) for _, cls, reason, _ in sites}
    for expected in [
        ("CaptureRecordError", "missing"),
        ("PairMismatchError", "seed"),
        ("PairMismatchError", "order"),
        ("HeadSizeMismatchError", ""),
        ("ParameterError", "range"),
        ("ParameterError", "list"),
        ("UnsupportedModelError", "flow"),
        ("DatasetError", "unknown"),
        ("FileFormatError", "pickle"),
        ("FileFormatError", "truncated"),
        ("FileVersionError", "newer"),
        ("OutputPathError", "full"),
        ("NonFiniteError", "diverged"),
        ("ParameterError", "no_pairs"),
    ]:
        assert expected in found, expected
    assert len(sites) > 60


def test_every_error_the_engine_raises_has_node_advice(errors, fixes):
    missing = []
    for where, cls, reason, _details in engine_raise_sites(errors):
        entry = _entry(fixes.NODE_FIXES, cls, reason)
        if entry is None or entry[0] is errors.AVIError:
            missing.append(f"{where}: {cls.__name__} reason {reason!r}")
    assert not missing, "no advice in nodes/fixes.py for:\n" + "\n".join(missing)


def test_the_advice_quotes_only_details_the_engine_gives(errors, fixes):
    wrong = []
    for where, cls, reason, details in engine_raise_sites(errors):
        entry = _entry(fixes.NODE_FIXES, cls, reason)
        unknown = _fields(entry[2]) - details if entry else set()
        if unknown:
            wrong.append(f"{where}: {cls.__name__} {reason!r} gives {sorted(details)}, the fix quotes {unknown}")
    assert not wrong, "\n".join(wrong)


def test_the_table_is_well_formed(errors, fixes):
    for (cls, reason), text in fixes.NODE_FIXES.items():
        assert issubclass(cls, errors.AVIError) and cls is not errors.AVIError, cls
        assert isinstance(reason, str)
        assert text[0].isupper() or text[0] in "'`", f"{cls.__name__} {reason!r}: a fix starts a sentence"
        assert text.endswith("."), f"{cls.__name__} {reason!r}: a fix ends a sentence"
        assert "  " not in text and ".." not in text.replace("...", ""), text
        for name in _fields(text):
            assert re.fullmatch(r"\w+(:\w+)?", name) or name.isidentifier(), name


def test_every_node_named_in_the_advice_exists(fixes):
    text = " ".join(fixes.NODE_FIXES.values())
    named = set(re.findall(r"'(AVI [A-Za-z ]+)'", text))
    assert named == {
        "AVI Capture Latent at Step",
        "AVI Train Attribute Head",
        "AVI Load Attribute Head",
        "AVI Append To Dataset",
        "AVI Collect Boundary Samples",  # boundary
        "AVI Load Boundary",  # boundary
    }
    snapshot = json.loads((REPO_ROOT / "tools" / "node_info.json").read_text(encoding="utf-8"))
    assert named <= {info["display_name"] for info in snapshot.values()}


# --- the messages a user reads --------------------------------------------------------------------------------


def _message(fixes, raise_it) -> str:
    with pytest.raises(Exception) as caught:
        with fixes.user_errors():
            raise_it()
    return str(caught.value)


def test_messages_read_as_facts_then_the_fix(pack, fixes):
    core = pack.avi_core
    from avi_pack.avi_core.avi.head import check_k
    from avi_pack.avi_core.files.names import sanitize_name
    from avi_pack.avi_core.latent.capture import check_pair, get_record, make_record
    from avi_pack.avi_core.values import parse_number_list

    def record(**changes):
        fields = dict(step=10, steps=50, sigma=5.4, timestep=795, num_timesteps=1000, scale_factor=0.18215)
        fields.update(seed=7, batch=2, sampler="euler", scheduler="normal")
        fields.update(changes)
        return make_record(**fields)

    cases = {
        "missing record": (
            lambda: get_record({"samples": torch.zeros(1, 4, 8, 8)}, "original"),
            "the original latent has no capture record, so its noise level is unknown. Produce it with 'AVI Capture "
            "Latent at Step' (not KSampler / KSamplerAdvanced / Empty Latent Image) and connect that node's LATENT "
            "output directly or through nodes that keep the latent's extra keys.",
        ),
        "seeds": (
            lambda: check_pair(record(), record(seed=8, sigma=1.9, step=24, timestep=510)),
            "the original latent was sampled with seed 7 but the target with seed 8: a pair must come from the same "
            "noise. Give both 'AVI Capture Latent at Step' nodes the same noise_seed: connect one seed (an Int "
            "node, as the workflows do) to both noise_seed inputs.",
        ),
        "order": (
            lambda: check_pair(record(sigma=1.9, step=24, timestep=510), record()),
            "Set the original's stop_at higher (paper: 0.8) than the target's (paper: 0.5), or swap the two inputs.",
        ),
        "head size": (
            lambda: core.AttributeHead(64, 64, hidden=8).check_latent_size(96, 96),
            "this attribute head was trained on 64x64 (a 512x512 px image for Stable Diffusion) latents, but the "
            "latent given is 96x96 (a 768x768 px image for Stable Diffusion). Generate at 512x512 px (the Empty "
            "Latent Image's width and height), or train a head at this size with 'AVI Train Attribute Head'.",
        ),
        "rho list": (
            lambda: parse_number_list("0, half", "rho_list"),
            "rho_list: 'half' is not a number. Write rho_list as numbers separated by commas, for example '0, 0.25, "
            "0.5, 0.75, 1', or clear it to use the single value.",
        ),
        "k range": (
            lambda: check_k(40, 32),
            "k runs from 1 to 31 (the paper uses r/2 = 16). Change k on the node to a value within that range.",
        ),
        "name": (
            lambda: sanitize_name("..", "head"),
            "the head name '..' has no usable characters. Type a head name made of letters, digits, '-' or '_' (for "
            "example 'smile').",
        ),
    }
    for label, (raise_it, expected) in cases.items():
        message = _message(fixes, raise_it)
        assert expected in message, f"{label}: {message}"
        assert message.endswith(".") and "{" not in message and ". ." not in message, message
        print(f"[{label}] {message}")


def test_file_errors_say_to_download_or_update(pack, fixes, tmp_path):
    core = pack.avi_core
    pickle_file = tmp_path / "old.safetensors"
    torch.save({"w": torch.zeros(2)}, pickle_file)
    message = _message(fixes, lambda: core.load_head(pickle_file))
    assert "pickle" in message and "never loaded" in message and "AVI Train Attribute Head" in message

    head = core.AttributeHead(8, 8, hidden=4)
    newer = tmp_path / "newer.safetensors"
    core.save_head(head, newer)
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(newer), "pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        meta = dict(handle.metadata(), format_version="99")
    save_file(tensors, str(newer), metadata=meta)
    message = _message(fixes, lambda: core.load_head(newer))
    assert "written by a newer version of the pack" in message
    assert message.endswith("Update the pack (ComfyUI-Manager > Update, or git pull in "
                            "custom_nodes/avi-attribute-vectors) and restart ComfyUI.")  # fmt: skip

    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(newer.read_bytes()[:100])
    message = _message(fixes, lambda: core.load_head(truncated))
    assert "download it again, or train it again with 'AVI Train Attribute Head'" in message


def test_missing_dataset_names_the_workflow_that_builds_one(pack, fixes, tmp_path):
    from avi_pack.avi_core.files.datasets import find_dataset

    message = _message(fixes, lambda: find_dataset([tmp_path], "smile"))
    assert message.startswith(f"no dataset named 'smile' in {tmp_path} (there is no dataset yet).")
    assert "queue the 'build a dataset' workflow (AVI Append To Dataset)" in message


def test_user_errors_re_raises_the_same_object_and_lets_interrupts_through(errors, fixes):
    original = errors.PairMismatchError("facts", reason="seed")
    with pytest.raises(errors.PairMismatchError) as caught:
        with fixes.user_errors():
            raise original
    assert caught.value is original and original.fix and str(original).startswith("facts. Give both")

    class InterruptProcessingException(Exception):  # what comfy.model_management raises on Cancel
        pass

    for interrupt in (InterruptProcessingException(), KeyboardInterrupt()):
        with pytest.raises(type(interrupt)) as caught:
            with fixes.user_errors():
                raise interrupt
        assert caught.value is interrupt and not hasattr(interrupt, "fix")

    @fixes.explains_errors
    def execute(cls, value):
        raise errors.ParameterError(f"k = {value} is out of range", reason="range", name="k", low=1, high=31)

    with pytest.raises(errors.ParameterError, match=r"out of range\. Change k on the node to a value within that"):
        execute(object, 40)
    assert execute.__avi_explains_errors__ and execute.__name__ == "execute"


def test_an_error_without_advice_keeps_its_facts(errors, fixes):
    err = errors.AVIError("something unexpected", reason="whatever")
    with pytest.raises(errors.AVIError) as caught:
        with fixes.user_errors():
            raise err
    assert str(caught.value) == "something unexpected"
