"""The local engine: the prepare stages' units of work in worker processes on this machine.

What the stages ran before there was a choice of engine, unchanged: a `ProcessPoolExecutor` whose
workers die with the run (`workers.exit_with`), started by fork for the chat stage and from a
forkserver that has the readers' modules imported for the speech stage.

- fork (chat): spawn and forkserver re-import the caller's __main__ in each worker, which breaks
  scripts without an `if __name__ == "__main__"` guard. The workers are started before the stage
  starts any thread; they only compute (no logging, no I/O), so locks held by other threads of the
  caller cannot block them.
- forkserver (speech, `preload`): workers fork from a clean server (never from this process and
  its threads) that has already imported the readers' modules, so each starts in milliseconds.

A worker that dies makes the run fail (BrokenProcessPool), never hang: nothing is retried here.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Callable, Iterable, Iterator

from ..workers import exit_with


def _init_worker(run_pid: int, initializer: Callable | None, initargs: tuple) -> None:
    exit_with(run_pid)  # a killed run leaves no worker behind
    if initializer is not None:
        initializer(*initargs)


def _context(preload: Iterable[str] | None, start: bool = False):
    if preload is None:
        methods = multiprocessing.get_all_start_methods()
        return multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    if start:
        from multiprocessing import forkserver

        forkserver.ensure_running()
    return context


class LocalExecutor:
    """`workers` processes; `submit` returns a `concurrent.futures.Future`."""

    def __init__(self, workers: int, initializer: Callable | None, initargs: tuple,
                 preload: Iterable[str] | None) -> None:
        self.slots = workers
        self._pool = ProcessPoolExecutor(workers, mp_context=_context(preload), initializer=_init_worker,
                                         initargs=(os.getpid(), initializer, initargs))
        if preload is None:  # fork: the first task starts every worker, before the caller starts a thread
            self._pool.submit(int).result()

    def submit(self, fn: Callable, *args: Any) -> Future:
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        """Wait for the running units; cancel those not started."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Stop now: units still running would write into staging the caller is about to clear."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in list((getattr(self._pool, "_processes", None) or {}).values()):
            process.terminate()


class LocalEngine:
    """Worker processes on this machine (the default)."""

    name = "local"
    local = True
    retries = False  # a unit runs once; a worker that dies fails the run

    def executor(self, workers: int, *, initializer: Callable | None = None, initargs: tuple = (),
                 preload: Iterable[str] | None = None) -> LocalExecutor:
        """`workers` processes, each running `initializer(*initargs)` first; from a forkserver that
        has imported `preload` when it is given, else forked from this process."""
        return LocalExecutor(workers, initializer, initargs, preload)

    def warm_up(self, preload: Iterable[str]) -> None:
        """Start the forkserver now, so its imports overlap the caller's planning."""
        _context(preload, start=True)

    def map(self, fn: Callable, items: Iterable[Any], *shared: Any) -> Iterator[Any]:
        """`fn(item, *shared)` for each item, in order, in this process."""
        return (fn(item, *shared) for item in items)

    def close(self) -> None:
        pass
