"""Worker processes that die with the run that started them.

A `ProcessPoolExecutor` worker whose parent is killed with SIGKILL waits forever: it holds the
write end of its own task queue, so it never sees end-of-file. A forkserver's workers also keep
the forkserver (and multiprocessing's resource tracker) alive. A run that is killed would leave
those processes behind for good. Each worker therefore watches the run's pid and exits when it
is gone.
"""

from __future__ import annotations

import os
import threading
import time

WATCH_INTERVAL = 0.5  # seconds between looks at the run's pid


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists (another user's process would only appear after pid reuse)
    try:  # a killed parent not yet reaped is a zombie: os.kill still succeeds on it
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
        return state in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def exit_with(pid: int) -> None:
    """Pool initializer: exit this process as soon as process `pid` (the run) no longer lives."""
    if pid == os.getpid():
        return

    def watch() -> None:
        while not _gone(pid):
            time.sleep(WATCH_INTERVAL)
        os._exit(1)  # nothing of ours to flush: the run that would read our results is dead

    threading.Thread(target=watch, name="exit-with-run", daemon=True).start()
