"""Schema features that only newer ComfyUI hosts have, passed only where the running host accepts them.

- `advanced=True` on an input (newer `io.<Type>.Input(..., advanced=True)`): the page folds the input into
  the node's advanced section. ComfyUI 0.3.64's inputs have no such parameter.
- `search_aliases=[...]` on `io.Schema` (newer hosts): extra words the node search matches. 0.3.64's
  Schema has no such field.

Each helper takes the host's class and asks it (its signature, its dataclass fields), so the same node
definition runs on both. Host-free: no ComfyUI import here.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Sequence
from typing import Any

ADVANCED = "advanced"
SEARCH_ALIASES = "search_aliases"


@functools.cache
def accepts_keyword(factory: Any, keyword: str) -> bool:
    """Whether `factory(...)` (a class or a function) names `keyword` among its parameters.

    A bare `**kwargs` does not count: hosts that do not know a keyword may swallow it without effect.
    """
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    parameter = parameters.get(keyword)
    return parameter is not None and parameter.kind is not inspect.Parameter.VAR_KEYWORD


def has_field(schema_class: Any, name: str) -> bool:
    """Whether the dataclass `schema_class` (the host's io.Schema) has the field `name`."""
    return dataclasses.is_dataclass(schema_class) and any(f.name == name for f in dataclasses.fields(schema_class))


def advanced_input(input_class: Any, *args: Any, **kwargs: Any) -> Any:
    """`input_class(*args, **kwargs)`, marked advanced where the host supports advanced inputs.

    For rarely changed settings (loss weights, widths, learning rate, seeds): on hosts without the feature the
    input is an ordinary one, in the same place.
    """
    if accepts_keyword(input_class, ADVANCED):
        kwargs[ADVANCED] = True
    return input_class(*args, **kwargs)


def schema(schema_class: Any, *, search_aliases: Sequence[str] = (), **fields: Any) -> Any:
    """`schema_class(**fields)`, with `search_aliases` where the host's Schema has that field."""
    if search_aliases and has_field(schema_class, SEARCH_ALIASES):
        fields[SEARCH_ALIASES] = list(search_aliases)
    return schema_class(**fields)
