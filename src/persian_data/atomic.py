"""Atomic writes: a file reaches its final path complete or not at all.

Temp files live in the state folder (`.persian-data/tmp`, same filesystem as the layout) so a
crash never leaves a half-written file, or even a temp file, inside the layout.
"""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator


_UMASK = os.umask(0)
os.umask(_UMASK)


def _load_sync_file_range():
    """libc's sync_file_range (Linux), or None. Python's os module does not expose it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_SYNC_FILE_RANGE = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2  # start writeback of dirty pages in the range; do not wait


class EarlyWriteback:
    """Asks the kernel to start writing a growing file to disk every `step` bytes, without waiting.

    A download is fsynced before its rename (a power cut must not leave a file that looks complete
    in the layout). With 24 GB of RAM the kernel would otherwise keep the whole download dirty in
    the page cache and write it all during that fsync: seconds per GB, after the network is done.
    Started early, the disk writes while the network streams and the fsync finds little left.
    Only an optimisation: a no-op where sync_file_range is missing or fails."""

    def __init__(self, fd: int, start: int = 0, step: int = 8 << 20) -> None:
        self.fd, self.step = fd, step
        self.flushed = self.written = start
        self.enabled = _SYNC_FILE_RANGE is not None

    def wrote(self, nbytes: int, flush: Callable[[], None]) -> None:
        self.written += nbytes
        if not self.enabled or self.written - self.flushed < self.step:
            return
        flush()  # from Python's buffer to the kernel, so the range is really dirty pages
        if _SYNC_FILE_RANGE(self.fd, self.flushed, self.written - self.flushed, _SYNC_FILE_RANGE_WRITE) != 0:
            self.enabled = False  # e.g. EINVAL on some filesystems: fall back to the final fsync
        self.flushed = self.written


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(final: Path, tmp_dir: Path, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """Open a temp file in `tmp_dir`; on clean exit fsync it and rename it onto `final`.

    On any exception the temp file is removed and `final` is left as it was.
    """
    final = Path(final)
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix=final.name[:40] + ".", suffix=".tmp")
    tmp = Path(tmp_name)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; layout files get the usual mode
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(final: Path, data: bytes, tmp_dir: Path) -> None:
    with atomic_writer(final, tmp_dir) as handle:
        handle.write(data)


def atomic_write_text(final: Path, text: str, tmp_dir: Path) -> None:
    atomic_write_bytes(final, text.encode("utf-8"), tmp_dir)


def write_if_changed(final: Path, text: str, tmp_dir: Path) -> bool:
    """Write only when the content differs, so a rerun leaves mtimes (and hash caches) alone."""
    data = text.encode("utf-8")
    try:
        if final.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    atomic_write_bytes(final, data, tmp_dir)
    return True
