"""Atomic file writes: write to a temporary name in the target folder, fsync, then rename into place.

A crash, a full disk or a concurrent reader never sees a half-written file under the final name. The target
folder must exist (callers that own a folder, such as a model folder, create it first): a missing folder is
more often a typo than a wish. Every failure to write is an `OutputPathError` naming the path and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import OutputPathError

TEMP_SUFFIX = ".tmp"

_REASONS = {
    errno.ENOSPC: ("full", "the disk is full"),
    errno.EDQUOT: ("full", "the disk quota is exceeded"),
    errno.EACCES: ("permission", "permission denied"),
    errno.EPERM: ("permission", "the operation is not permitted"),
    errno.EROFS: ("permission", "the file system is read-only"),
    errno.ENOTDIR: ("not_folder", "a part of the path is a file, not a folder"),
    errno.ENOENT: ("no_folder", "the folder does not exist"),
    errno.EISDIR: ("is_folder", "the path is a folder"),
}


def temporary_sibling(path: Path) -> Path:
    """A unique hidden name next to `path` that readers of the folder recognise as temporary."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")


def write_error(path: Path, err: OSError) -> OutputPathError:
    """An OutputPathError for `err` raised while writing `path`: reason and cause from its errno."""
    reason, cause = _REASONS.get(err.errno or 0, ("os", err.strerror or str(err)))
    if err.errno == errno.ENOENT and path.parent.is_dir():
        # The folder is there but refuses new names: a virtual file system such as /proc or /sys.
        reason, cause = "refused", f"the folder {path.parent} does not accept new files"
    return OutputPathError(f"cannot write {path}: {cause}", reason=reason, path=str(path), cause=cause)


def _as_os_error(err: Exception) -> OSError:
    """safetensors reports I/O failures as SafetensorError('... Os { code: 28, ... }'): recover the errno."""
    found = re.search(r"code: (\d+)", str(err))
    return OSError(int(found.group(1)) if found else 0, str(err))


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Raise OutputPathError unless a file can be written at `path` now (its folder exists and accepts a file).

    Tries a real temporary file, so permissions, read-only and full file systems are caught before long work.
    """
    final = Path(path)
    if final.is_dir():
        raise OutputPathError(f"cannot write {final}: it is a folder", reason="is_folder", path=str(final))
    parent = final.parent
    if not parent.exists():
        raise OutputPathError(
            f"cannot write {final}: the folder {parent} does not exist", reason="no_folder", path=str(final)
        )
    if not parent.is_dir():
        raise OutputPathError(
            f"cannot write {final}: {parent} is a file, not a folder", reason="not_folder", path=str(final)
        )
    probe = temporary_sibling(final)
    try:
        with open(probe, "wb") as handle:
            handle.write(b"\0")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        raise write_error(final, err) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return final


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path` atomically, on error it is removed.

    OSErrors (no folder, no permission, disk full) become OutputPathError naming `path`.
    """
    final = Path(path)
    if not final.parent.is_dir():
        check_writable(final)  # raises with the precise cause
    temp = temporary_sibling(final)
    try:
        try:
            yield temp
            with open(temp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temp, final)
        except OSError as err:
            raise write_error(final, err) from None
        except Exception as err:
            if type(err).__name__ != "SafetensorError":
                raise
            raise write_error(final, _as_os_error(err)) from None
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call `write(temp_path)` and move the result to `path` atomically; returns the final path."""
    with atomic_path(path) as temp:
        write(temp)
    return Path(path)
