"""Names typed by a user that become file or folder names (heads, datasets, directions, boundaries)."""

from __future__ import annotations

import re

from ..errors import InvalidNameError

SAFETENSORS_SUFFIX = ".safetensors"
MAX_NAME = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def sanitize_name(name: str, what: str, suffix: str = SAFETENSORS_SUFFIX) -> str:
    """A name safe as one file or folder name, without `suffix`.

    Path separators, '..', leading dots and characters other than letters, digits, '.', '_', '-' and space
    become '_' (so 'a/../../b' cannot leave its folder); a trailing `suffix` is dropped; at most MAX_NAME
    characters. what: how messages name the thing ("head", "dataset"). Raises InvalidNameError when nothing
    usable is left.
    """
    if not isinstance(name, str):
        raise InvalidNameError(f"the {what} name must be text, got {type(name).__name__}", name=what, value=name)
    cleaned = name.strip()
    if suffix and cleaned.lower().endswith(suffix):
        cleaned = cleaned[: -len(suffix)]
    cleaned = _UNSAFE.sub("_", cleaned).replace("..", "_")
    cleaned = re.sub(r"_+", "_", cleaned).strip(" ._")
    if not cleaned:
        raise InvalidNameError(f"the {what} name {name!r} has no usable characters", name=what, value=name)
    return cleaned[:MAX_NAME].rstrip(" .")
