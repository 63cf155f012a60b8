"""`python -m avi_core`: the AVI command line (see avi_core.app.cli).

The Ctrl+C handler goes in first (`app.interrupt` needs only the standard library); the command line, and
torch with it, are imported after it."""

from .app.interrupt import GUARD, leave_interrupted

GUARD.install()
try:
    from .app.cli import console_main
except KeyboardInterrupt:
    leave_interrupted()

console_main()
