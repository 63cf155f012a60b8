"""The application around the engine: the `avi` command line, the benchmark, the demo, terminal progress.
Nothing in the engine imports from here."""
