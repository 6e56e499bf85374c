"""Writing a run's pending files in a few processes at once ("lanes"), each file whole in one lane.

Each shard file is independent once the plan has said which sample goes where, so the files are
dealt into lanes (biggest first, to the lane with the fewest bytes so far) and every lane but the
first is written by a child forked from this process (it inherits the plan: nothing is pickled but
the outcome). Threads could not do this: the per-sample work (headers, small reads and writes) holds
the GIL, and with threads the 48,904 Common Voice clips used one core. The bytes of a file do not
depend on its lane, so the output is the same for any --workers.

The parent writes the first lane itself and is the only writer of the journal: a child sends, per
finished file, its sha256 and stat (and bytes written, for the progress bar) over a pipe, and the
parent journals it. The first failure stops every lane (a child's exception is raised here, as it
was raised there). A child stops on its own when its parent is gone (killed), so no orphan keeps
writing; its temp file is removed, or cleared by the next run.
"""

from __future__ import annotations

import gc
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


def write_lanes(layout: Layout, lanes: list[list[Pending]], write_one: WriteOne,
                on_bytes: Callable[[int], None]) -> None:
    """Write every lane (lane 0 here, the others in forked children); journal each file as soon as
    it is placed. Raises the first failure of any lane after every lane has stopped."""
    failed: list[BaseException] = []
    stop = threading.Event()
    gc.freeze()  # the plan's objects stay out of the children's collections: fewer copied pages
    try:
        children = [_start(layout, lane, write_one) for lane in lanes[1:]]
    finally:
        gc.unfreeze()

    def halt() -> None:  # the first failure anywhere: every lane stops at its next member
        stop.set()
        for process, _ in children:
            if process.is_alive():
                process.terminate()

    readers = [threading.Thread(target=_listen, args=(conn, lane, on_bytes, failed, halt), daemon=True)
               for (_, conn), lane in zip(children, lanes[1:])]
    for reader in readers:
        reader.start()
    try:
        for planned, staging, journal in lanes[0]:
            sha, st = write_one(layout, planned, staging / planned.name, stop.is_set, on_bytes)
            journal.record(planned.name, planned.digest, sha, st)
    except BaseException as exc:  # this lane failed or was interrupted: the children stop too
        if not isinstance(exc, Stopped):
            failed.insert(0, exc)
        halt()
    finally:
        for reader in readers:
            reader.join()
        for process, conn in children:
            process.join()
            conn.close()
    if failed:
        raise failed[0]


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
