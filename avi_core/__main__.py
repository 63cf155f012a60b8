"""`python -m avi_core`: the AVI command line (see avi_core.cli)."""

from .app.cli import main

raise SystemExit(main())
