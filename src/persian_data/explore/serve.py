"""`persian-data explore --root R [--host 127.0.0.1 --port 8765]`: take the port, index, serve.

Order matters for the user: a busy port or a missing root fails first, in one line; then the
index is brought up to date with progress (a bar per input on a terminal, a line every few
seconds otherwise; the first build of 281k conversations takes a minute, later starts are a stat
per file); then the address is printed and the pages are served until Ctrl-C.
"""

from __future__ import annotations

import ipaddress
import logging
import sys
import time
from pathlib import Path

from ..errors import PersianDataError
from ..httpserve import bind, run
from ..progress import Progress, progress
from .builders import Input
from .index import Index

log = logging.getLogger("persian_data.explore")

DEFAULT_PORT = 8765


class ExploreError(PersianDataError):
    """explore cannot start (the root is missing or not a folder)."""


class _IndexProgress:
    """One progress bar (or line series) per input being indexed, in bytes."""

    def __init__(self) -> None:
        self._item: Input | None = None
        self._bar: Progress | None = None
        self._done = 0

    def __call__(self, item: Input, done: int, total: int) -> None:
        if item is not self._item:
            self.close()
            self._item, self._done = item, 0
            self._bar = progress(total, f"indexing {item.name}", "B", logger=log, unit_scale=True, log_every=5.0)
        if self._bar is not None and done > self._done:
            self._bar.update(done - self._done)
            self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def allowed_hosts(host: str) -> list[str] | None:
    """Host headers accepted when bound to loopback (so a web page elsewhere cannot reach in by DNS
    rebinding); None (any) when the user chose to serve on a network address."""
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host == "localhost"
    return ["127.0.0.1", "localhost", "::1", "[::1]", host] if loopback else None


def serve_explore(root: Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT, catalog=None) -> None:
    """Index the root (`catalog`: its corpora; default: the five and those its persian-data.toml declares), then
    serve the app on host:port until Ctrl-C."""
    from .app import create_app

    root = Path(root).absolute()
    if not root.is_dir():
        raise ExploreError(f"{root} is not a folder; point --root at a folder that `persian-data run` (or fetch and "
                           "prepare) has filled")
    sock = bind(host, port)
    try:
        began = time.perf_counter()
        index = Index(root, catalog=catalog)
        shown = _IndexProgress()
        try:
            rebuilt = index.refresh(on_progress=shown)
        finally:
            shown.close()
        for name, why in index.problems.items():
            print(f"explore: could not index {name}: {why}", file=sys.stderr)
        app = create_app(root, index=index, allowed_hosts=allowed_hosts(host))
        where = f"http://{'[' + host + ']' if ':' in host else host}:{sock.getsockname()[1]}/"
        print(f"explore: {where} (index {index.path}; {len(rebuilt)} input(s) indexed, ready in "
              f"{time.perf_counter() - began:.1f}s; Ctrl-C stops)", file=sys.stderr)
        if allowed_hosts(host) is None:
            print(f"explore: listening on {host}, not on loopback: anyone who can reach this address can read the "
                  "data under datasets/, evals/ and card/", file=sys.stderr)
        run(app, sock)
    finally:
        sock.close()
