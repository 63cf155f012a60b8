"""Atomic file writes: write to a temporary name in the target folder, fsync, then rename into place.

A crash, a full disk or a concurrent reader never sees a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def temporary_sibling(path: Path) -> Path:
    """A unique hidden name next to `path` that readers of the folder recognise as temporary."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path` atomically, on error it is removed."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = temporary_sibling(final)
    try:
        yield temp
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call `write(temp_path)` and move the result to `path` atomically; returns the final path."""
    with atomic_path(path) as temp:
        write(temp)
    return Path(path)
