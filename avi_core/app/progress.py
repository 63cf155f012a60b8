"""A small terminal progress bar for training, usable as `train_head`'s progress callback.

On a terminal it redraws one line in place (carriage return), at most `refresh_seconds` apart; when the
stream is not a terminal (CI logs, a file) it prints one plain line each time another `log_every` fraction
of the steps is done, so logs stay readable. It writes to stderr by default and never stops training.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO


def format_duration(seconds: float) -> str:
    """'0:07', '12:03', '1:02:03'; '?' when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_losses(losses: dict[str, float]) -> str:
    """'L1 1.23e+00 L2 4.5e-01 ... total 9.87e+00' (the keys in the order given)."""
    return " ".join(f"{name} {value:.3g}" for name, value in losses.items())


class TerminalProgress:
    """Progress callback `(step, total, losses) -> None` drawing a bar with rate, ETA and the current losses.

    stream: where to write (stderr by default). is_tty: force terminal / log behaviour (default: ask the
    stream). log_every: the fraction of the steps between two lines when not on a terminal.
    """

    def __init__(
        self,
        label: str = "training",
        stream: TextIO | None = None,
        *,
        is_tty: bool | None = None,
        bar_width: int = 24,
        refresh_seconds: float = 0.1,
        log_every: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        if is_tty is None:
            isatty = getattr(self.stream, "isatty", None)
            is_tty = bool(isatty()) if callable(isatty) else False
        self.is_tty = is_tty
        self.bar_width = bar_width
        self.refresh_seconds = refresh_seconds
        if not 0 < log_every <= 1:
            raise ValueError(f"log_every must be a fraction in (0, 1], got {log_every}")
        self._buckets = max(1, round(1 / log_every))
        self.clock = clock
        self._created = clock()
        self._anchor: tuple[int, float] | None = None
        self._last_draw = -math.inf
        self._last_bucket = -1
        self._drawn = False
        self._finished = False
        self.lines_written = 0

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def render(self, step: int, total: int, losses: dict[str, float], elapsed: float, rate: float) -> str:
        """The text of one progress line (no carriage return, no newline); rate in steps/s, NaN if unknown."""
        fraction = min(step / total, 1.0) if total > 0 else 1.0
        filled = int(round(fraction * self.bar_width))
        bar = "#" * filled + "." * (self.bar_width - filled)
        known = math.isfinite(rate) and rate > 0
        eta = 0.0 if step >= total else ((total - step) / rate if known else math.nan)
        parts = [
            f"{self.label} [{bar}] {step}/{total} {100 * fraction:5.1f}%",
            f"{rate:.1f} step/s" if known else "- step/s",
            f"elapsed {format_duration(elapsed)}",
            f"ETA {format_duration(eta)}",
        ]
        if losses:
            parts.append(format_losses(losses))
        return "  ".join(parts)

    def __call__(self, step: int, total: int, losses: dict[str, float]) -> None:
        now = self.clock()
        if self._anchor is None:
            # Rates are timed from the first report on: the steps before it include start-up work (data SVDs).
            self._anchor = (step, now)
        anchor_step, anchor_time = self._anchor
        rate = (step - anchor_step) / (now - anchor_time) if step > anchor_step and now > anchor_time else math.nan
        line = self.render(step, total, losses, now - self._created, rate)
        last = step >= total
        if self.is_tty:
            if last or now - self._last_draw >= self.refresh_seconds:
                columns = max(shutil.get_terminal_size(fallback=(120, 24)).columns - 1, 20)
                self.stream.write("\r" + line[:columns].ljust(columns))
                self._drawn = True
                self._last_draw = now
                if last:
                    self._newline()
                self.stream.flush()
            return
        bucket = step * self._buckets // total if total > 0 else 0
        if last or self.lines_written == 0 or bucket > self._last_bucket:
            self._last_bucket = bucket
            self.stream.write(line + "\n")
            self.lines_written += 1
            self.stream.flush()
            if last:
                self._finished = True

    def _newline(self) -> None:
        self.stream.write("\n")
        self.lines_written += 1
        self._drawn = False
        self._finished = True

    def close(self) -> None:
        """End the in-place line (after an early stop or an error) so later output starts on a new line."""
        if self.is_tty and self._drawn and not self._finished:
            self._newline()
            self.stream.flush()
