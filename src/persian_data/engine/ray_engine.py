"""The Ray engine: the prepare stages' units of work as Ray tasks on a cluster.

The same units the local engine gives its worker processes (pieces of the chat files, row-group
runs and tar members of the speech splits, the near-duplicate bands and confirmations), each a
Ray task of one CPU. The stages consume the results in unit order, exactly as they do locally, so
the output bytes do not depend on which node finished first; placing the outputs (atomic renames,
records, gates) stays in the driver.

- **Retries.** A task whose worker or node dies runs again elsewhere (`MAX_RETRIES`; Ray also
  re-runs a finished task whose result was lost with its node). The units are pure functions of
  their inputs (a speech unit run again over a dead run's clips writes apart and renames over
  them: `prepare.speech_units`), so a rerun gives the same bytes. A unit's own error (a damaged
  file, a bug) is not retried: it is the same error everywhere.
- **Results.** Chat units return theirs through Ray; speech units set theirs aside under the root
  (every node sees it) and return its file name (`prepare.speech_units`).
- **Shared root.** Every task checks the driver's marker under the root first (`shared_root`).
- **Connection.** `ray.init(address)`: `--ray-address HOST:PORT`, else `RAY_ADDRESS`, else a cluster
  started on this machine with `ray start`, else Ray starts one for this run. Begun in a thread
  when the prepare stages start (`start`): importing Ray (~0.5 s), the handshake with the head and
  the nodes starting their workers (~0.5-1 s more) overlap the stages' own start (imports,
  reading the sources' indexes, planning); the first use waits for it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import uuid
from collections import deque
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import EngineError, ExtraMissingError
from ..layout import Layout
from .shared_root import RootMarker, remove_marker, write_marker
from .tasks import TaskSetup

log = logging.getLogger("persian_data.engine")

MAX_RETRIES = 3  # tries after the first when a task's worker or node dies
CONNECT_TIMEOUT = 5.0  # seconds to reach the head's GCS port before giving up
CANCEL_WAIT_SECONDS = 10.0  # after an abort: how long to wait for cancelled tasks to stop


def import_ray():
    """Ray, or a one-line error naming the extra that brings it."""
    try:
        import ray
    except ImportError as exc:
        raise ExtraMissingError("--engine ray needs Ray, which is not installed here: pip install "
                                "'persian-data[scale]' (on every node of the cluster)") from exc
    return ray


class RayJob:
    """One submitted unit: the subset of `concurrent.futures.Future` the stages use."""

    def __init__(self, ref, executor: "RayExecutor") -> None:
        self.ref = ref
        self._executor = executor
        self._future = ref.future()
        self._cancelled = False

    def result(self, timeout: float | None = None) -> Any:
        try:
            return self._future.result(timeout)
        except Exception as exc:  # noqa: BLE001 - translated: the stage sees what a local worker would raise
            err = _translate(exc)
            if err is exc:
                raise
            raise err from exc
        finally:
            self._executor._forget(self)

    def exception(self) -> BaseException | None:
        try:
            self.result()
        except BaseException as exc:  # noqa: BLE001
            return exc
        return None

    def done(self) -> bool:
        return self._future.done()

    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self, force: bool = False) -> bool:
        if not self._future.done():
            self._cancelled = True
            self._executor.ray.cancel(self.ref, force=force)
        return self._cancelled

    def add_done_callback(self, fn: Callable[["RayJob"], Any]) -> None:
        self._future.add_done_callback(lambda _future: fn(self))


def _check_reachable(address: str | None) -> None:
    """A HOST:PORT that nothing answers on fails in seconds here (Ray itself retries for minutes)."""
    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise EngineError(f"--ray-address {address!r} is not HOST:PORT (the head's GCS address, printed by "
                          "`ray start --head`)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        raise EngineError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): is its head "
                          f"running (`ray start --head --port {port}`) and reachable from here? "
                          "See README 'Scaling out'") from exc


def _exit_on_sigterm(signum, frame) -> None:
    sys.exit(signum)  # what Ray's own handler does


class _NotMainThread(logging.Filter):
    """Drops Ray's warning that it did not set its SIGTERM handler (ray.init in `start`'s thread):
    `start` set the same handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def _import_all(modules: tuple[str, ...]) -> None:
    import importlib

    for name in modules:
        importlib.import_module(name)


def _translate(exc: BaseException) -> BaseException:
    from ray import exceptions as rx

    if isinstance(exc, rx.TaskCancelledError):
        return CancelledError()
    if isinstance(exc, rx.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException) and not isinstance(cause, rx.RayError):
            return cause  # the unit's own error, as a local worker would raise it
    if isinstance(exc, rx.RayError):
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return EngineError(f"a unit of work failed on the Ray cluster after {MAX_RETRIES} retries "
                           f"({type(exc).__name__}: {first}); nothing was placed. Check the cluster "
                           "(`ray status`) and run again")
    return exc


class RayExecutor:
    """Units as Ray tasks; `slots`: the cluster's CPUs (how many units run at once)."""

    def __init__(self, engine: "RayEngine", setup_ref) -> None:
        self.ray = engine.ray
        self.slots = engine.slots
        self._task = engine.task
        self._setup = setup_ref
        self._outstanding: dict[int, RayJob] = {}

    def submit(self, fn: Callable, *args: Any) -> RayJob:
        job = RayJob(self._task.remote(self._setup, fn, *args), self)
        self._outstanding[id(job)] = job
        return job

    def _forget(self, job: RayJob) -> None:
        self._outstanding.pop(id(job), None)

    def close(self) -> None:
        """Cancel the units not yet consumed (none after a run that went well)."""
        for job in list(self._outstanding.values()):
            job.cancel()
        self._outstanding.clear()

    def abort(self) -> None:
        """Stop every unit now, running ones included (they would write into staging the caller is
        about to clear), and wait a little for them to stop."""
        jobs = list(self._outstanding.values())
        for job in jobs:
            job.cancel(force=True)
        if jobs:
            self.ray.wait([job.ref for job in jobs], num_returns=len(jobs), timeout=CANCEL_WAIT_SECONDS)
        self._outstanding.clear()


class RayEngine:
    """Ray tasks on a cluster whose nodes all see the root at the same path."""

    name = "ray"
    local = False
    retries = True  # a unit may run more than once (a node died): units must be safe to rerun

    def __init__(self, layout: Layout, address: str | None = None) -> None:
        self.layout = layout
        self.address = address
        self.ray = None
        self.task = None
        self._remote = None
        self.slots = 0
        self._marker: RootMarker | None = None
        self._shutdown = False
        self._warming: list = []
        self._preload: tuple[str, ...] | None = None  # warm_up asked for before the connection was made
        self._connecting: threading.Thread | None = None
        self._handover = threading.Lock()
        self._failed: BaseException | None = None

    def start(self) -> None:
        """Begin connecting in a thread (the caller goes on); `connect` waits for it. Called from
        the main thread: Ray sets its SIGTERM handler (exit, so a run stopped that way still logs
        its outcome) only when ray.init runs there, so it is set here."""
        if self.ray is not None or self._connecting is not None:
            return
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        self._connecting = threading.Thread(target=self._connect_in_thread, name="ray-connect", daemon=True)
        self._connecting.start()

    def _connect_in_thread(self) -> None:
        try:
            self._connect_now()
            with self._handover:  # after this, warm_up sees self.ray set and warms up itself
                preload = self._preload
            if preload is not None:
                self._warm(preload)
        except BaseException as exc:  # noqa: BLE001 - raised again where the connection is first needed
            self._failed = exc

    def connect(self) -> None:
        """Connect (once, or wait for `start`'s thread), count the CPUs, write the root's marker."""
        if self._connecting is not None and self._connecting is not threading.current_thread():
            self._connecting.join()
            self._connecting = None
        if self._failed is not None:
            failed, self._failed = self._failed, None
            raise failed
        if self.ray is None:
            self._connect_now()

    def _connect_now(self) -> None:
        ray = import_ray()
        worker_log = logging.getLogger("ray._private.worker")
        if not any(isinstance(f, _NotMainThread) for f in worker_log.filters):
            worker_log.addFilter(_NotMainThread())
        where = self.address or "RAY_ADDRESS, or a cluster on this machine"
        if ray.is_initialized():  # a program that already connected (its connection, its shutdown)
            self._shutdown = False
        else:
            _check_reachable(self.address or os.environ.get("RAY_ADDRESS"))
            # A driver's core worker waits at shutdown for its last task events (the dashboard's and
            # `ray list tasks`' history) to be flushed, up to this timeout: ~0.25 s at the end of every
            # run, measured here, for records this command never reads. A user who wants them sets it.
            os.environ.setdefault("RAY_task_events_shutdown_flush_timeout_ms", "0")
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING,
                         configure_logging=False)
            except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError...
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise EngineError(f"cannot connect to the Ray cluster at {where}: {first}. Start one with "
                                  "`ray start --head` (README 'Scaling out') or check --ray-address") from exc
            self._shutdown = True
        cpus = int(ray.cluster_resources().get("CPU", 0))
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        if cpus < 1:
            raise EngineError(f"the Ray cluster at {where} has no CPU for tasks ({nodes} node(s)); "
                              "start nodes with --num-cpus 1 or more")
        from .tasks import run_task

        self._remote = ray.remote(run_task)
        self.task = self._remote.options(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)
        self.slots = cpus
        self._marker = write_marker(self.layout)
        self.ray = ray
        log.info("ray: connected to %s: %d node(s), %d CPU(s); root marker %s", where, nodes, cpus,
                 self.layout.relative(Path(self._marker.path)))

    def cpus(self) -> int:
        """How many units run at once: the cluster's CPUs (connects first)."""
        self.connect()
        return self.slots

    def executor(self, workers: int = 0, *, initializer: Callable | None = None, initargs: tuple = (),
                 preload: Iterable[str] | None = None) -> RayExecutor:
        """Units as tasks; every task runs `initializer(*initargs)` first in a worker that has not
        yet. `workers` and `preload` are the local engine's: the cluster's CPUs set the pace."""
        self.connect()
        setup = TaskSetup(uuid.uuid4().hex, self._marker, initializer, initargs)
        return RayExecutor(self, self.ray.put(setup))

    def warm_up(self, preload: Iterable[str]) -> None:
        """Start a worker on each CPU of the cluster importing `preload`, while the caller plans (the
        tasks are spread over the nodes; their results are not waited for). While `start`'s thread
        is still connecting, that thread does it once connected: this returns at once."""
        with self._handover:
            if self._connecting is not None and self.ray is None:
                self._preload = tuple(preload)
                return
        self._warm(tuple(preload))

    def _warm(self, modules: tuple[str, ...]) -> None:
        ex = self.executor()
        spread = self._remote.options(num_cpus=1, max_retries=MAX_RETRIES, scheduling_strategy="SPREAD")
        self._warming = [spread.remote(ex._setup, _import_all, modules) for _ in range(self.slots)]

    def map(self, fn: Callable, items: Iterable[Any], *shared: Any) -> Iterator[Any]:
        """`fn(item, *shared)` for each item as tasks, results in order; `shared` goes to the object
        store once (numpy arrays are read there without a copy)."""
        ex = self.executor()
        shared_refs = [self.ray.put(value) for value in shared]
        pending: deque[RayJob] = deque()
        try:
            for item in items:
                pending.append(ex.submit(fn, item, *shared_refs))
                if len(pending) > 2 * self.slots:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            ex.close()

    def close(self) -> None:
        if self._connecting is not None:  # a run that ended before its first unit
            self._connecting.join()
            self._connecting = None
        if self._marker is not None:
            remove_marker(self._marker)
            self._marker = None
        if self.ray is not None and self._shutdown:
            self.ray.shutdown()
        self.ray = None
