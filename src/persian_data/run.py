"""One command's hold on a root: `Run`.

It holds the root's lock (exclusive for a command that writes, so two runs never interleave their
writes; shared for `verify`), sends every log line to stderr and to `logs/dataset_download.log`,
clears temp files a killed run may have left, and saves the hash cache at the end. Whatever ends
the run, the log ends with its outcome: the summary block (written by the pipeline), or a FAIL
block naming the error (an unreachable endpoint, an unreadable file, Ctrl-C).

`Run(read_only=True)` (verify): a shared lock (several verifies at once, none while a run writes),
and on a root it may not write (a read-only copy) no lock, no log and no cache at all.
`Run(create=True)` (fetch, run) may make the root; every other command needs one that exists.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import shutil
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

from .errors import PersianDataError, RunLockedError
from .gates import release_warm
from .integrity import HashCache
from .layout import Layout, require_root
from .progress import is_interactive
from .records import append_summary, counts, summary_block

log = logging.getLogger("persian_data")

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

_LEFT_TO_EXIT: list | None = None
"""Set by `process_ends_after_run`: the runs' hash caches, kept until the process ends."""


def process_ends_after_run() -> None:
    """The console script ends the process with os._exit right after its command (cli.entry): a
    run's hash cache, ~300k objects for a prepared Common Voice root, is then left to the exit
    rather than freed object by object (~25 ms). A library caller's runs free theirs as usual."""
    global _LEFT_TO_EXIT
    _LEFT_TO_EXIT = []


class RedactFilter(logging.Filter):
    """Keeps secrets (the Hub token) out of every log line."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


def redact(text: str, secrets: list[str | None]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


@dataclass
class Run:
    layout: Layout
    secrets: list[str] = field(default_factory=list)
    verbose: bool = False
    command: str = "run"  # what the outcome block names (fetch, prepare text, verify, ...)
    read_only: bool = False  # verify: shared lock; writes nothing where the root is not writable
    create: bool = False  # fetch/run: the root may be made; every other command needs it to exist
    _stack: ExitStack = field(default_factory=ExitStack)
    cache: HashCache | None = None
    endpoint_lines: list[str] = field(default_factory=list)  # several endpoints: who served what (summary)
    log_written: bool = False  # the log file is open for this run (False on a read-only root)

    def __enter__(self) -> "Run":
        layout = self.layout
        if self.create:
            layout.root.mkdir(parents=True, exist_ok=True)
        else:
            require_root(layout)
        try:
            try:
                layout.state_dir.mkdir(exist_ok=True)
            except OSError:
                if not self.read_only:
                    raise  # fetch into a root we may not write: the error says where
            self._take_root_lock()
            self._setup_logging()
        except BaseException:
            self._stack.close()
            raise
        if not self.read_only:  # a killed run may have left temp files; only ever ours, under the state folder
            shutil.rmtree(layout.tmp_dir, ignore_errors=True)
            layout.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.cache = self._load_cache()
        return self

    def _load_cache(self) -> HashCache:
        """The root's hash cache. In a process that ends after its run, its objects (~300k for a
        prepared Common Voice root) go to the collector's permanent generation: they live to the
        exit, and no collection walks them (the first one after the load alone took ~10-20 ms)."""
        collecting = gc.isenabled()
        gc.disable()
        try:
            cache = HashCache(self.layout.hash_cache, self.layout.root)
            if _LEFT_TO_EXIT is not None:
                gc.freeze()
            return cache
        finally:
            if collecting:
                gc.enable()

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc is not None:
                self._log_failure(exc)
            release_warm()
            if self.cache is not None:
                try:
                    self.cache.save(self.layout.tmp_dir)
                except OSError as err:  # only an optimisation (a read-only root cannot keep it)
                    if not self.read_only:
                        raise
                    log.debug("hash cache not saved: %s", err)
            if not self.read_only:
                shutil.rmtree(self.layout.tmp_dir, ignore_errors=True)
                staging = self.layout.staging_dir
                if staging.exists() and not any(staging.iterdir()):
                    staging.rmdir()
        finally:
            self._stack.close()
            if _LEFT_TO_EXIT is not None and self.cache is not None:
                _LEFT_TO_EXIT.append(self.cache)

    def append_summary(self, block: str) -> None:
        if self.log_written:
            append_summary(self.layout, block)

    def _log_failure(self, exc: BaseException) -> None:
        """The run stopped on an error: its outcome ends the log (never an earlier run's PASS)."""
        if not self.log_written:
            return
        if isinstance(exc, KeyboardInterrupt):
            what = "interrupted (Ctrl-C); run the same command again to resume"
        elif isinstance(exc, PersianDataError):
            what = str(exc)
        else:
            what = f"{type(exc).__name__}: {exc}"
        what = redact(" ".join(what.split()), self.secrets)
        _file_only(log, f"{self.command} stopped: {what}")
        try:
            meta = counts(self.layout)
            block = summary_block(self.layout, meta, [f"FAIL: {self.command} stopped: {what}"], False,
                                  endpoint_lines=self.endpoint_lines, status=f"NOT COMPLETE ({self.command} "
                                                                             "stopped on an error)")
        except OSError:
            block = (f"===== persian-data summary {time.strftime('%Y-%m-%dT%H:%M:%S%z')} =====\n"
                     f"status: NOT COMPLETE ({self.command} stopped on an error)\ngates:\n"
                     f"  FAIL: {self.command} stopped: {what}\n===== end of summary =====\n")
        try:
            append_summary(self.layout, block)
        except OSError:
            pass  # the disk that failed the run may refuse this too; stderr has the error

    def _open_lock(self):
        path = self.layout.run_lock
        try:
            return open(path, "a+")
        except OSError:
            if not self.read_only:
                raise
        try:  # a root we may not write: a lock file a writer left can still be share-locked
            return open(path, "r")
        except OSError:
            return None

    def _take_root_lock(self) -> None:
        path = self.layout.run_lock
        mode = fcntl.LOCK_SH if self.read_only else fcntl.LOCK_EX
        while True:
            handle = self._open_lock()
            if handle is None:  # read-only root, no lock file: nothing can be writing it through us
                return
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                raise RunLockedError(f"{self.layout.root} is in use by another persian-data run ({holder}); "
                                     f"wait for it to finish (the lock is {path})") from None
            # A writer unlinks the file as it releases it: a lock taken on that unlinked file guards
            # nothing, so take it again on the file the path names now.
            try:
                same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            handle.close()
        if not self.read_only:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}")
            handle.flush()

        def release() -> None:
            try:
                if self.read_only:  # the last reader out removes the file (if it may)
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink(missing_ok=True)  # unlink while still holding it: no stale file left
            except OSError:
                pass  # another reader still holds it, or the folder is read-only
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()

        self._stack.callback(release)

    def _setup_logging(self) -> None:
        root_logger = logging.getLogger("persian_data")
        root_logger.setLevel(logging.DEBUG if self.verbose else logging.INFO)
        redactor = RedactFilter(self.secrets)
        file_handler = None
        try:
            if not self.read_only:
                self.layout.download_log.parent.mkdir(parents=True, exist_ok=True)
            file_handler = logging.FileHandler(self.layout.download_log, encoding="utf-8")
        except OSError:
            if not self.read_only:
                raise
            print(f"note: {self.layout.root} is not writable here: {self.command} writes nothing (no log, no "
                  "hash cache); its verdict is on this screen only", file=sys.stderr)
        handlers = []
        if file_handler is not None:
            file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
            file_handler.addFilter(redactor)
            file_handler.setLevel(logging.INFO)
            handlers.append(file_handler)
            self.log_written = True
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(levelname)s %(message)s" if not is_interactive() else "%(message)s"))
        console.addFilter(redactor)
        handlers.append(console)
        for handler in handlers:
            root_logger.addHandler(handler)
        # huggingface_hub's own warnings (e.g. retries) go to the same places.
        hub_logger = logging.getLogger("huggingface_hub")
        if file_handler is not None:
            hub_logger.addHandler(file_handler)

        def teardown() -> None:
            for handler in handlers:
                root_logger.removeHandler(handler)
            if file_handler is not None:
                hub_logger.removeHandler(file_handler)
                file_handler.close()

        self._stack.callback(teardown)
        if is_interactive():  # tqdm only on a terminal, where bars are drawn (progress._bar)
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._stack.enter_context(logging_redirect_tqdm([root_logger]))


def _file_only(logger: logging.Logger, message: str) -> None:
    """An ERROR line for the log file alone (the CLI prints the error on stderr itself)."""
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
