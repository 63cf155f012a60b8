"""Ctrl+C for the command line: at any moment, one line on stderr, exit status 130 and no partial file.

Python's own SIGINT handling raises KeyboardInterrupt at whatever bytecode the main thread runs next. In a
command that imports torch, reads data, runs a thread pool of SVDs and writes a file, that moment may be:

- inside `import torch` (before the command's `try` exists): a traceback;
- inside a finaliser, a weakref or garbage-collector callback, or C code that clears errors: Python prints
  "Exception ignored in ..." (a traceback) and goes on, so the run finishes and saves: the interrupt is lost;
- inside a write's clean-up: a temporary file is left behind;
- during interpreter shutdown, with pool threads or native libraries still running: an abort (status 134).

`InterruptGuard` replaces that with one rule. Its handler (installed by the command line before it imports
torch) records the interrupt, and raises KeyboardInterrupt once, in the main thread (Python runs signal
handlers only there, so worker threads never see it), unless a shielded section is running. A raise that was
swallowed is not lost: the flag stays set, `check()` raises again at the command's checkpoints (between
phases and after every training step), an unraisable-exception hook keeps the swallowed one silent, and
`main` turns a flag still set at the end into status 130. Writes run shielded (`shielded()`): an interrupt
during a write waits until the temporary file is complete, then cancels it before it is renamed into place.
The process entry leaves with `os._exit` after an interrupt, so no finaliser or native destructor runs with
threads still busy.

Standard library only: it is imported before torch.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: this module runs before everything
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from types import FrameType
    from typing import Any

EXIT_INTERRUPTED = 130


class InterruptGuard:
    """The state of Ctrl+C handling for one run of the command line (see the module docstring).

    pending: an interrupt arrived. finished: the command has written its result; later interrupts are only
    recorded. committed: files renamed into place during this run (complete, kept after an interrupt).
    """

    def __init__(self) -> None:
        self.pending = False
        self.finished = False
        self.committed: list[Path] = []
        self._raised = False
        self._shield_depth = 0
        self._previous: Any = None
        self._previous_hook: Callable[[Any], Any] | None = None
        self._installed = False

    # ----------------------------------------------------------------------------------------- handler

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.pending = True
        if self._raised or self.finished or self._shield_depth:
            return
        self._raised = True
        raise KeyboardInterrupt

    def _unraisable(self, unraisable: Any) -> None:
        # A KeyboardInterrupt raised by our handler inside a finaliser or callback is swallowed by Python; the
        # pending flag keeps it, so it is re-raised at the next checkpoint instead of printing a traceback.
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and self.pending:
            self._raised = False
            return
        if self._previous_hook is not None:
            self._previous_hook(unraisable)

    @property
    def installed(self) -> bool:
        """Whether the handler is in place."""
        return self._installed

    def install(self) -> bool:
        """Take over SIGINT (main thread only; elsewhere nothing changes). True if this call installed it."""
        if self._installed:
            return False
        if threading.current_thread() is not threading.main_thread():
            return False
        self._previous = signal.signal(signal.SIGINT, self._handle)
        self._previous_hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        self._installed = True
        return True

    def uninstall(self) -> None:
        """Give SIGINT and the unraisable hook back to what they were before `install`."""
        if not self._installed:
            return
        signal.signal(signal.SIGINT, self._previous)
        if sys.unraisablehook == self._unraisable:
            sys.unraisablehook = self._previous_hook or sys.__unraisablehook__
        self._installed = False

    def reset(self) -> None:
        """Forget the previous run's interrupt and files (the handler stays as it is)."""
        self.pending = self.finished = self._raised = False
        self._shield_depth = 0
        self.committed = []

    # --------------------------------------------------------------------------------------- checkpoints

    def check(self) -> None:
        """Raise KeyboardInterrupt if an interrupt arrived and was not acted on yet (a safe point)."""
        if self.pending and not self.finished:
            self._raised = True
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """A section no interrupt breaks into (a write and its rename); interrupts are recorded meanwhile."""
        self._shield_depth += 1
        try:
            yield
        finally:
            self._shield_depth -= 1

    def finish(self) -> None:
        """The command's result is in place: later interrupts are recorded, never raised."""
        self.finished = True


GUARD = InterruptGuard()
"""The guard of this process's command line."""


def interrupted_message(guard: InterruptGuard) -> str:
    """The one line printed on an interrupt: whether any (complete) file was kept."""
    if guard.committed:
        kept = ", ".join(dict.fromkeys(str(p) for p in guard.committed))
        return f"interrupted (Ctrl+C); kept {kept}, complete as last written"
    return "interrupted (Ctrl+C); no file was written"


def flush_output() -> None:
    """Flush stdout and stderr (a closed pipe is not an error here)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def leave_process(code: int) -> None:
    """End the process now with `code`, once stdout and stderr are flushed.

    `os._exit` skips the interpreter's shutdown: no finaliser, atexit function or native destructor runs while
    the SVD thread pool or torch's threads may still be busy (which could abort with status 134), and a Ctrl+C
    cannot land in a shutdown that has already given SIGINT back to the system (status -2, no message). Every
    file the command wrote is already complete and closed (`app.output`).
    """
    flush_output()
    os._exit(code)


def leave_interrupted(guard: InterruptGuard = GUARD) -> None:
    """Print the one line of an interrupt and end the process with status 130."""
    guard.finish()
    print(interrupted_message(guard), file=sys.stderr)
    leave_process(EXIT_INTERRUPTED)
