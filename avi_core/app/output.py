"""The command line's output files: checked before the work, written whole or not at all, even on Ctrl+C.

`check_output(path, suffix)` refuses, before any long work, a path that cannot take the file: the wrong
suffix, a folder, a missing folder (never created: a missing folder is more often a typo than a wish), a
file where a folder should be, no permission, a read-only or virtual file system. `commit_output(path,
write)` has `write(temp)` produce the file under a temporary name beside `path` and renames it into place,
all shielded from Ctrl+C (`interrupt.InterruptGuard.shielded`): an interrupt that arrives meanwhile cancels
the file before the rename, so the final name holds the complete file or nothing, and no temporary file is
left. Every failure is an `OutputPathError` naming the final path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import AVIError, OutputPathError
from ..files.atomic import check_writable, temporary_sibling, write_error
from .interrupt import GUARD, InterruptGuard


def check_output(path: Path, suffix: str | None = None, option: str = "--out") -> Path:
    """`path` when a file ending in `suffix` can be written there now, else OutputPathError (nothing is left)."""
    if suffix is not None and path.suffix.lower() != suffix:
        raise OutputPathError(
            f"{option} {path} does not end in {suffix}", reason="suffix", path=str(path), suffix=suffix, option=option
        )
    with GUARD.shielded():  # the probe file must not outlive an interrupt
        try:
            check_writable(path)
        except OutputPathError as err:
            err.details.setdefault("option", option)
            err.details.setdefault("folder", str(path.parent))
            raise
    return path


def _about_final(err: AVIError, temp: Path, final: Path) -> AVIError:
    """`err`, raised while writing `temp`, made to name `final` instead (same type, reason and details)."""
    err.facts = err.facts.replace(str(temp), str(final))
    err.args = (err.facts,)
    if "path" in err.details:
        err.details["path"] = str(final)
    return err


def commit_output(
    path: Path, write: Callable[[Path], object], *, last: bool = True, guard: InterruptGuard = GUARD
) -> Path:
    """Write a file through `write(temp_path)` and rename it to `path`, or leave nothing; returns `path`.

    last: this file is the command's result, so an interrupt after the rename is too late to cancel anything
    (`guard.finish()`); the benchmark, which rewrites its figures after every case, passes False.
    Raises KeyboardInterrupt (after removing the temporary file) when Ctrl+C came before the rename.
    """
    temp = temporary_sibling(path)
    with guard.shielded():
        try:
            try:
                write(temp)
                guard.check()
                os.replace(temp, path)
            except AVIError as err:
                raise _about_final(err, temp, path) from None
            except OSError as err:
                raise write_error(path, err) from None
            guard.committed.append(path)
            if last:
                guard.finish()
        finally:
            with contextlib.suppress(OSError):
                temp.unlink()
    return path
