"""`python -m avi_core`: the AVI command line (see avi_core.cli)."""

from .cli import main

raise SystemExit(main())
