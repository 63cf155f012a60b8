"""The `avi` command line (`python -m avi_core`, or the `avi` script): train, merge, info, demo and bench.

    avi demo
    avi train --original x.latent --target z.latent --sigma-x 6.2 --sigma-z 1.6 --out smile.safetensors
    avi train --pairs PAIRS_DIR --sigma-x 6.2 --sigma-z 1.6 --out smile.safetensors
    avi train --dataset ComfyUI/models/avi_datasets/smile --out smile.safetensors
    avi merge --original x.latent --target z.latent --head smile.safetensors \\
        --sigma-x 6.2 --sigma-z 1.6 --rho-list 0,0.5,1 --out merged.latent
    avi info smile.safetensors

One module per subcommand (`train`, `merge`, `info`, `demo`, `bench`); `options` holds what they share,
`fixes` the advice added to engine errors, `parser` puts them together.

`.latent` files are what ComfyUI's SaveLatent node writes (ComfyUI's unscaled convention); they carry no
noise level, so the sigmas they were saved at are options. A folder of pairs (`--pairs`) holds
`NAME.x.latent` (the original-prompt latent(s) at Tx) next to `NAME.z.latent` (the target-prompt latent(s)
at Tz, same seeds), for any number of NAMEs, all at the same two sigmas. Dataset folders (`--dataset`) are
already in paper space.

Exit status: 0 done; 1 a demo check failed; 2 an error a user can cause (one line, `error: facts. Advice.`,
no traceback; output paths are checked before any long work); 130 Ctrl+C, at any moment: one line, and no
output file or temporary file left (`app.interrupt`). This module imports nothing heavy, so that the Ctrl+C
handler is in place before torch is imported.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from ..interrupt import EXIT_INTERRUPTED, GUARD, interrupted_message, leave_process

logger = logging.getLogger("avi.cli")

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_ERROR = 2

__all__ = ["EXIT_CHECK_FAILED", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "console_main", "main"]


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("avi").setLevel(logging.DEBUG if verbose else logging.WARNING)


def _error(message: str) -> int:
    GUARD.finish()  # the command is over: a late Ctrl+C must not interrupt the message
    print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _run(argv: list[str]) -> int:
    # Imported here, after the Ctrl+C handler is in place: the parser imports torch. Shielded: a KeyboardInterrupt
    # raised inside a C extension's first import (numpy's, under torch's) can leave it half-initialised, and the
    # next import then fails with "cannot load module more than once per process". The interrupt is recorded and
    # acted on by the check right after.
    with GUARD.shielded():
        from ...errors import AVIError
        from .fixes import error_line
        from .parser import build_parser
    GUARD.check()

    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and args.command != "bench":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exit_:  # argparse: --help, --version, or a usage error (already printed)
        return exit_.code if isinstance(exit_.code, int) else EXIT_ERROR
    _configure_logging(args.verbose)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    GUARD.check()
    try:
        if args.command == "bench":
            from . import bench

            code = bench.run(extra)
        else:
            code = args.run(args)
        GUARD.check()  # an interrupt swallowed by a finaliser is still an interrupt, unless the result is saved
        return code
    except AVIError as err:
        logger.debug("%s failed", args.command, exc_info=True)
        return _error(error_line(err))
    except (ValueError, OSError) as err:
        logger.debug("%s failed", args.command, exc_info=True)
        return _error(str(err))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line in this process; returns the exit status (0, 1, 2 or 130, see the module doc).

    Takes over SIGINT for the run (main thread only) and gives it back afterwards, unless it was already taken
    (`console_main`).
    """
    owned = GUARD.install()
    if owned:  # a fresh run in this process; under console_main an interrupt may already be pending
        GUARD.reset()
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        GUARD.finish()
        print(interrupted_message(GUARD), file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if owned:
            GUARD.uninstall()


def console_main() -> None:
    """The process entry of `avi` and `python -m avi_core`: ends the process with main()'s status.

    The Ctrl+C handler is installed first, before torch is imported (`python -m avi_core` installs it even
    before this module is imported). The process ends with `interrupt.leave_process` (`os._exit` once the
    output is flushed), so nothing runs after the command's last line, whatever its status.
    """
    GUARD.install()
    code = main()
    GUARD.finish()  # a Ctrl+C from here on is recorded, never raised
    leave_process(code)
