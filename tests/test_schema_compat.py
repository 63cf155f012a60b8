"""nodes/schema_compat.py, host-free: `advanced` and `search_aliases` are passed only to hosts that take them.

Both branches are exercised with small stand-in classes shaped like the two generations of ComfyUI's
io.<Type>.Input and io.Schema (0.3.64 has neither keyword; newer hosts have both). The real host's classes
are checked in tests/host/test_node_schemas_host.py.
"""

from __future__ import annotations

import dataclasses

import pytest


@pytest.fixture(scope="module")
def compat(pack):
    import avi_pack.nodes.schema_compat as compat

    return compat


class OldInput:  # io.Int.Input of ComfyUI 0.3.64: no `advanced`
    def __init__(self, id, display_name=None, optional=False, tooltip=None, default=None, min=None, max=None):
        self.kwargs = {"id": id, "tooltip": tooltip, "default": default, "min": min, "max": max}


class NewInput(OldInput):  # newer hosts: `advanced: bool = None`
    def __init__(self, id, tooltip=None, default=None, min=None, max=None, advanced=None):
        super().__init__(id, tooltip=tooltip, default=default, min=min, max=max)
        self.kwargs["advanced"] = advanced


class SwallowingInput(OldInput):  # a **kwargs catch-all is not support for the keyword
    def __init__(self, id, **extra):
        super().__init__(id)
        self.extra = extra


@dataclasses.dataclass
class OldSchema:
    node_id: str
    display_name: str = None
    inputs: list = None


@dataclasses.dataclass
class NewSchema(OldSchema):
    search_aliases: list = dataclasses.field(default_factory=list)


def test_advanced_is_passed_only_where_the_input_takes_it(compat):
    old = compat.advanced_input(OldInput, "k", default=0, min=0, max=4096, tooltip="t")
    assert isinstance(old, OldInput) and "advanced" not in old.kwargs
    assert old.kwargs == {"id": "k", "tooltip": "t", "default": 0, "min": 0, "max": 4096}
    new = compat.advanced_input(NewInput, "k", default=0, min=0, max=4096, tooltip="t")
    assert new.kwargs["advanced"] is True and new.kwargs["default"] == 0
    swallowing = compat.advanced_input(SwallowingInput, "k")
    assert swallowing.extra == {}


def test_search_aliases_are_passed_only_where_the_schema_has_them(compat):
    old = compat.schema(OldSchema, node_id="AVIMerge", display_name="AVI Merge", search_aliases=["slider", "edit"])
    assert old == OldSchema("AVIMerge", "AVI Merge")
    new = compat.schema(NewSchema, node_id="AVIMerge", display_name="AVI Merge", search_aliases=("slider", "edit"))
    assert new.search_aliases == ["slider", "edit"]
    assert compat.schema(NewSchema, node_id="X").search_aliases == []


def test_keyword_detection(compat):
    assert compat.accepts_keyword(NewInput, "advanced") and not compat.accepts_keyword(OldInput, "advanced")
    assert not compat.accepts_keyword(SwallowingInput, "advanced")
    assert not compat.accepts_keyword(len, "advanced")  # a builtin without an inspectable signature
    assert compat.has_field(NewSchema, "search_aliases") and not compat.has_field(OldSchema, "search_aliases")
    assert not compat.has_field(dict, "search_aliases")
