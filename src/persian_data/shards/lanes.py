"""Writing a run's pending files in a few processes at once ("lanes"), each file whole in one lane.

Each shard file is independent once the plan has said which sample goes where, so the files are
dealt into lanes (biggest first, to the lane with the fewest bytes so far), each written by a child
forked from this process (it inherits the plan: nothing is pickled but the outcome). Threads could
not do this: the per-sample work (headers, small reads and writes) holds the GIL, and with threads
the 48,904 Common Voice clips used one core. The bytes of a file do not depend on its lane, so the
output is the same for any --workers.

While the splits of a run are planned one after another (smallest first), each planned split
starts writing in a child of its own; the last split's files are dealt into `--workers` lanes,
one child each (with --workers 1 the parent writes everything itself, in order, and forks nothing).
The parent is the only writer of the journal: a child sends, per finished file, its sha256 and stat
(and bytes written, for the progress bar) over a pipe, and the parent journals it. The first
failure stops every lane (a child's exception is raised here, as it was raised there). A child
stops on its own when its parent is gone (killed), so no orphan keeps writing; its temp file is
removed, or cleared by the next run.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
from pathlib import Path
from typing import Callable

from ..errors import PersianDataError
from ..layout import Layout
from .formats import PlannedFile

Pending = tuple[PlannedFile, Path, "Journal"]  # noqa: F821  (write.Journal: the file's set's journal)
WriteOne = Callable[[Layout, PlannedFile, Path, Callable[[], bool], Callable[[int], None]], tuple[str, os.stat_result]]
_PROGRESS_EVERY = 8 << 20  # a child reports its bytes this often


def deal(pending: list[Pending], lanes: int) -> list[list[Pending]]:
    """`pending` in at most `lanes` lanes of nearly equal bytes (biggest file first; a lane keeps
    that order). Never an empty lane."""
    out: list[list[Pending]] = [[] for _ in range(max(1, min(lanes, len(pending))))]
    load = [0] * len(out)
    for item in sorted(pending, key=lambda item: -_bytes(item[0])):
        lane = load.index(min(load))
        out[lane].append(item)
        load[lane] += _bytes(item[0])
    return out


def _bytes(planned: PlannedFile) -> int:
    return planned.size if planned.size is not None else sum(map(len, planned.lines or ()))


class Lanes:
    """Files being written: in forked children (`start`, `deal`) and in this process (`deal`'s first
    lane). Used as a context manager: leaving it waits for every lane, and raises the first failure
    (on an exception inside it, every lane is stopped first)."""

    def __init__(self, layout: Layout, write_one: WriteOne, workers: int) -> None:
        self.layout, self.write_one = layout, write_one
        self.workers = workers if hasattr(os, "fork") else 1
        self.failed: list[BaseException] = []
        self._stop = threading.Event()
        self._children: list[tuple] = []
        self._readers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._early = 0  # bytes reported before a progress bar was attached
        self._on_bytes: Callable[[int], None] | None = None

    def start(self, lane: list[Pending]) -> None:
        """Write `lane` in a child from now on (the caller goes on planning)."""
        if not lane:
            return
        process, conn = _start(self.layout, lane, self.write_one)
        self._children.append((process, conn))
        reader = threading.Thread(target=_listen, args=(conn, lane, self.on_bytes, self.failed, self.halt),
                                  daemon=True)
        self._readers.append(reader)
        reader.start()

    def attach(self, on_bytes: Callable[[int], None]) -> None:
        with self._lock:
            self._on_bytes, early, self._early = on_bytes, self._early, 0
        on_bytes(early)

    def on_bytes(self, n: int) -> None:
        with self._lock:
            if self._on_bytes is None:
                self._early += n
                return
        self._on_bytes(n)

    def deal(self, pending: list[Pending]) -> None:
        """`pending` in `workers` lanes, each in a child; with one worker, written here (returns
        when it is done). This process has planned every split meanwhile: given a lane too, it
        would finish last (measured: ~0.3 s later on the 48,904 clips)."""
        if self.workers > 1:
            for lane in deal(pending, self.workers):
                self.start(lane)
            return
        for planned, staging, journal in pending:
            sha, st = self.write_one(self.layout, planned, staging / planned.name, self._stop.is_set, self.on_bytes)
            journal.record(planned.name, planned.digest, sha, st)

    def halt(self) -> None:
        """The first failure anywhere: every lane stops at its next member."""
        self._stop.set()
        for process, _ in self._children:
            if process.is_alive():
                process.terminate()

    def __enter__(self) -> Lanes:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if exc is not None:  # this lane failed or was interrupted: the children stop too
            if not isinstance(exc, Stopped):
                self.failed.insert(0, exc)
            self.halt()
        for reader in self._readers:
            reader.join()
        for process, conn in self._children:
            process.join()
            conn.close()
        if self.failed and (exc is None or isinstance(exc, Stopped)):
            raise self.failed[0]


class Stopped(Exception):
    """Another lane failed: this file stops early (its temp file is removed)."""


def _start(layout: Layout, lane: list[Pending], write_one: WriteOne):
    parent, child = multiprocessing.get_context("fork").Pipe(duplex=False)
    process = multiprocessing.get_context("fork").Process(target=_child, args=(layout, lane, write_one, child),
                                                          name="shards-lane", daemon=True)
    process.start()
    child.close()
    return process, parent


def _child(layout: Layout, lane: list[Pending], write_one: WriteOne, conn) -> None:
    """A lane in a forked child: each file written and reported; an exception reported, then exit."""
    signal.signal(signal.SIGTERM, _terminated)
    parent = os.getppid()
    unreported = 0

    def on_bytes(n: int) -> None:
        nonlocal unreported
        unreported += n
        if unreported >= _PROGRESS_EVERY:
            conn.send(("bytes", unreported))
            unreported = 0

    try:
        for number, (planned, staging, _) in enumerate(lane):
            sha, st = write_one(layout, planned, staging / planned.name, lambda: os.getppid() != parent, on_bytes)
            conn.send(("done", number, sha, st, unreported))
            unreported = 0
    except BaseException as exc:  # noqa: BLE001  (sent to the parent, which raises it)
        try:
            pickle.loads(pickle.dumps(exc))  # it must arrive as itself
        except Exception:  # its message, as the base error
            exc = PersianDataError(f"{type(exc).__name__}: {exc}")
        conn.send(("failed", exc))
    finally:
        conn.close()


def _terminated(signum, frame) -> None:
    raise Stopped()


def _listen(conn, lane: list[Pending], on_bytes: Callable[[int], None], failed: list[BaseException],
            halt: Callable[[], None]) -> None:
    """The parent's side of one child: progress, journal entries, its failure (which stops the rest)."""
    done = 0
    while done < len(lane):
        try:
            message = conn.recv()
        except Exception:  # noqa: BLE001  (EOF: the child ended, or was killed, without finishing its lane)
            failed.append(PersianDataError(f"a shard writer process ended with {len(lane) - done} file(s) "
                                           f"unwritten; run the same command again"))
            halt()
            return
        if message[0] == "bytes":
            on_bytes(message[1])
        elif message[0] == "done":
            _, number, sha, st, tail = message
            planned, _, journal = lane[number]
            journal.record(planned.name, planned.digest, sha, st)
            on_bytes(tail)
            done += 1
        else:
            if not isinstance(message[1], Stopped):
                failed.append(message[1])
            halt()
            return
