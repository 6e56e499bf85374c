"""Writing a run's pending files in a few processes at once ("lanes"), each file whole in one lane.

Each shard file is independent once the plan has said which sample goes where, so the files are
dealt into lanes (biggest first, to the lane with the fewest bytes so far), each written by a child
forked from this process (it inherits the plan: nothing is pickled but the outcome). Threads could
not do this: the per-sample work (headers, small reads and writes) holds the GIL, and with threads
the 48,904 Common Voice clips used one core. The bytes of a file do not depend on its lane, so the
output is the same for any --workers.

With 2+ workers every split of a run is planned and written in a child of its own (the splits
are planned at once, and the command that forked them holds none of their samples); a split's
files are dealt into its share of the lanes, the first written by that child, the others by
children it forks. With --workers 1 everything is written in the command's process, in order, and
nothing is forked. A split's journal has one writer, the child of that split: a lane sends, per
finished file, its sha256 and stat (and bytes written, for the progress bar) over a pipe. The
first failure stops every child (an exception is raised in the command as it was raised where it
happened). A child stops on its own when its parent is gone (killed), so no orphan keeps writing;
its temp file is removed, or cleared by the next run.
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
Task = Callable[[Callable[[tuple], None]], None]  # runs in a child; its argument sends a message to the parent
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
    """Work in forked children (`spawn`, `start`, `deal`) and in this process (`deal(here=True)`'s
    first lane). Used as a context manager: leaving it waits for every child, and raises the first
    failure (on an exception inside it, every child is stopped first)."""

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
        self._parent = _PARENT  # in a child: stop when the parent that forked it is gone

    def stopped(self) -> bool:
        return self._stop.is_set() or (self._parent is not None and _gone(self._parent))

    def spawn(self, task: Task, handle: Callable[[tuple], bool]) -> None:
        """Run `task(send)` in a forked child; each message it sends is given to `handle` here (in
        a thread), which returns True after the last one. "bytes" messages go to the progress bar;
        a failure there stops every child and is raised when the work is left."""
        parent, child = _CONTEXT.Pipe(duplex=False)
        # Not daemonic: a split's child forks its own lanes (and every child is joined on the way out).
        process = _CONTEXT.Process(target=_child, args=(task, child), name="shards-worker")
        process.start()
        child.close()
        self._children.append((process, parent))
        reader = threading.Thread(target=self._listen, args=(parent, handle), daemon=True)
        self._readers.append(reader)
        reader.start()

    def start(self, lane: list[Pending]) -> None:
        """Write `lane` in a child from now on (the caller goes on with other work)."""
        if not lane:
            return
        done = [0]

        def task(send: Callable[[tuple], None]) -> None:
            parent = os.getppid()
            reporter = _Reporter(send)
            for number, (planned, staging, _) in enumerate(lane):
                sha, st = self.write_one(self.layout, planned, staging / planned.name,
                                         lambda: _gone(parent), reporter)  # gone: stop
                reporter.flush()
                send(("file", number, sha, st))

        def handle(message: tuple) -> bool:
            _, number, sha, st = message
            planned, _, journal = lane[number]
            journal.record(planned.name, planned.digest, sha, st)
            done[0] += 1
            return done[0] == len(lane)

        self.spawn(task, handle)

    def deal(self, pending: list[Pending], *, here: bool = False) -> None:
        """`pending` in `workers` lanes, each in a child, or with `here` the first in this process
        (returns when it is done); with one worker, all written here, in order."""
        lanes = deal(pending, self.workers) if self.workers > 1 else [pending]
        for lane in lanes[1 if here or self.workers == 1 else 0:]:
            self.start(lane)
        if here or self.workers == 1:
            for planned, staging, journal in lanes[0]:
                sha, st = self.write_one(self.layout, planned, staging / planned.name, self.stopped, self.on_bytes)
                journal.record(planned.name, planned.digest, sha, st)

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

    def halt(self) -> None:
        """The first failure anywhere: every child stops at its next member."""
        self._stop.set()
        for process, _ in self._children:
            if process.is_alive():
                process.terminate()

    def _listen(self, conn, handle: Callable[[tuple], bool]) -> None:
        """This process's side of one child: progress, its results, its failure (which stops the rest)."""
        while True:
            try:
                message = conn.recv()
            except Exception:  # noqa: BLE001  (EOF: the child ended, or was killed, before its last result)
                if not self._stop.is_set():
                    self.failed.append(PersianDataError("a shard writer process ended before its work was done; run "
                                                        "the same command again"))
                self.halt()
                return
            if message[0] == "bytes":
                self.on_bytes(message[1])
            elif message[0] == "failed":
                if not isinstance(message[1], Stopped):
                    self.failed.append(message[1])
                self.halt()
                return
            elif handle(message):
                return

    def __enter__(self) -> Lanes:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if exc is not None:  # this process failed or was interrupted: the children stop too
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


_CONTEXT = multiprocessing.get_context("fork") if hasattr(os, "fork") else None
_PARENT: int | None = None  # in a forked child: the pid of the process that forked it


class _Reporter:
    """A child's progress: bytes sent to its parent every few MB (and at `flush`)."""

    def __init__(self, send: Callable[[tuple], None]) -> None:
        self.send, self.unreported = send, 0

    def __call__(self, n: int) -> None:
        self.unreported += n
        if self.unreported >= _PROGRESS_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.unreported:
            self.send(("bytes", self.unreported))
            self.unreported = 0


def _child(task: Task, conn) -> None:
    """A forked child: `task` runs with a `send` to the parent; an exception is sent too, then exit."""
    global _PARENT
    _PARENT = os.getppid()
    signal.signal(signal.SIGTERM, _terminated)
    _terminate_with_parent()
    lock = threading.Lock()  # the task's own children report from threads

    def send(message: tuple) -> None:
        with lock:
            conn.send(message)

    try:
        task(send)
    except BaseException as exc:  # noqa: BLE001  (sent to the parent, which raises it)
        try:
            pickle.loads(pickle.dumps(exc))  # it must arrive as itself
        except Exception:  # its message, as the base error
            exc = PersianDataError(f"{type(exc).__name__}: {exc}")
        send(("failed", exc))
    finally:
        conn.close()


_STOPPING = False  # in a child: it is stopping (its cleanup must run to the end)


def _gone(parent: int) -> bool:
    """The process that forked this one is gone: stop (and let no SIGTERM cut the cleanup short)."""
    global _STOPPING
    if os.getppid() != parent:
        _STOPPING = True
    return _STOPPING


def _terminated(signum, frame) -> None:
    """SIGTERM (a sibling failed, or the parent died: PR_SET_PDEATHSIG): stop once. The parent's death
    comes twice, as this signal and as `_gone`; a second Stopped raised while the first one removes
    the temp file would leave it behind."""
    global _STOPPING
    if _STOPPING:
        return
    _STOPPING = True
    raise Stopped()


def _terminate_with_parent() -> None:
    """SIGTERM when the parent dies (Linux's PR_SET_PDEATHSIG): a split's child may be only waiting
    for its lanes, and would not see its parent gone at a next sample. Elsewhere the writers' own
    check (the parent's pid) still stops them."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != _PARENT:  # gone before the line above
        raise Stopped()
