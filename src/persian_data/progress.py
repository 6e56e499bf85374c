"""Progress for long work: a tqdm bar on a terminal, plain log lines otherwise.

Every stage uses `progress(...)` the same way; when stderr is not a TTY the bar is disabled and
the stage logs a line every `log_every` seconds instead, so CI logs and the download log stay
readable.
"""

from __future__ import annotations

import logging
import sys
import threading
import time


def is_interactive() -> bool:
    return sys.stderr.isatty()


class Progress:
    """Thread-safe counter with a tqdm bar (TTY) or periodic log lines (pipe)."""

    def __init__(self, total: float | None, desc: str, unit: str = "it", *, logger: logging.Logger,
                 unit_scale: bool = False, log_every: float = 10.0) -> None:
        self.total, self.desc, self.unit, self.logger = total, desc, unit, logger
        self.done = 0.0
        self._lock = threading.Lock()
        self._log_every = log_every
        self._last_log = time.monotonic()
        self._bar = _bar(total=total, desc=desc, unit=unit, unit_scale=unit_scale, leave=False,
                         dynamic_ncols=True) if is_interactive() else None

    def update(self, n: float = 1) -> None:
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.update(n)
                return
            now = time.monotonic()
            if now - self._last_log >= self._log_every:
                self._last_log = now
                if self.unit == "B":  # bytes as people read them
                    of = f" of {human_bytes(self.total)}" if self.total else ""
                    self.logger.info("%s: %s%s", self.desc, human_bytes(self.done), of)
                else:
                    of = f"/{self.total:,.0f}" if self.total else ""
                    self.logger.info("%s: %s%s %s", self.desc, f"{self.done:,.0f}", of, self.unit)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _bar(**kw):
    """A tqdm bar. Imported here, on a terminal only: tqdm (with asyncio, which tqdm.auto pulls in)
    is ~35 ms of every command's start, and a command whose stderr is a pipe never draws a bar."""
    from tqdm.auto import tqdm

    return tqdm(**kw)


def human_bytes(n: float) -> str:
    """A byte count as people read it: 312 B, 118.2 KB, 1.2 GB (powers of 1000, as the Hub shows sizes)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def counts_text(counts: dict) -> str:
    """A mapping as a log line shows it: `a 3, b 1` (never a Python dict repr); `none` when empty."""
    return ", ".join(f"{key} {value}" for key, value in counts.items()) or "none"


def progress(total: float | None, desc: str, unit: str = "it", *, logger: logging.Logger, **kw) -> Progress:
    return Progress(total, desc, unit, logger=logger, **kw)
