"""The application around the engine; nothing in the engine imports from here.

- `cli/`: the `avi` command line, a module per subcommand (train, merge, info, demo, bench), the options they
  share, and `fixes`, the advice it adds to engine errors.
- `bench`: the benchmark (`avi bench`); `demo`: the engine at work on synthetic latents (`avi demo`).
- `interrupt`: Ctrl+C handling (status 130, one line, no file); `output`: output files checked before the
  work and written whole or not at all; `progress`: the terminal progress bar of training.
"""
