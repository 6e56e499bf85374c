"""Atomic writes: a file reaches its final path complete or not at all.

Temp files live in the state folder (`.persian-data/tmp`, same filesystem as the layout) so a
crash never leaves a half-written file, or even a temp file, inside the layout.
"""

from __future__ import annotations

import ctypes
import hashlib
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


OnPlaced = Callable[[Path, str], None]
"""Told (final path, sha256 hex) once a file is in place: the digest of the bytes as they were
written, so whoever keeps hashes (the run's hash cache) never has to read the file back."""


class HashingWriter:
    """A binary file handle that hashes every byte written through it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.sha256 = hashlib.sha256()

    def write(self, data) -> int:
        self.sha256.update(data)
        return self._handle.write(data)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def truncate_to(self, position: int) -> None:
        """Roll the file back to `position` (a writer taking back what it wrote); the digest is
        rebuilt from the bytes that stay. Rare (a damaged input), so reading them back is fine."""
        self._handle.flush()
        self._handle.truncate(position)
        self._handle.seek(position)
        digest, fd, offset = hashlib.sha256(), self._handle.fileno(), 0
        while offset < position:
            block = os.pread(fd, min(8 << 20, position - offset), offset)
            if not block:
                raise OSError(f"{self._handle.name}: shorter than {position} bytes while rolling back")
            digest.update(block)
            offset += len(block)
        self.sha256 = digest

    def __getattr__(self, name):
        return getattr(self._handle, name)


@contextmanager
def atomic_writer(final: Path, tmp_dir: Path, mode: str = "wb", on_placed: OnPlaced | None = None,
                  **open_kwargs) -> Iterator[IO]:
    """Open a temp file in `tmp_dir`; on clean exit fsync it and rename it onto `final`.

    On any exception the temp file is removed and `final` is left as it was. With `on_placed`
    (binary modes only) the bytes are hashed as they are written and the digest is handed over
    once the file is in place.
    """
    if on_placed is not None and "b" not in mode:
        raise ValueError("on_placed needs a binary mode")
    final = Path(final)
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix=final.name[:40] + ".", suffix=".tmp")
    tmp = Path(tmp_name)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; layout files get the usual mode
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            writer = HashingWriter(handle) if on_placed is not None else handle
            yield writer
            handle.flush()
            os.fsync(handle.fileno())
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if on_placed is not None:
        on_placed(final, writer.sha256.hexdigest())


def atomic_write_bytes(final: Path, data: bytes, tmp_dir: Path, on_placed: OnPlaced | None = None) -> None:
    with atomic_writer(final, tmp_dir, on_placed=on_placed) as handle:
        handle.write(data)


def atomic_write_text(final: Path, text: str, tmp_dir: Path, on_placed: OnPlaced | None = None) -> None:
    atomic_write_bytes(final, text.encode("utf-8"), tmp_dir, on_placed)


def place_if_changed(staged: Path, final: Path, sha256: str, on_placed: OnPlaced | None = None) -> bool:
    """Move `staged` (complete, fsynced, on the layout's filesystem, its bytes hashed as they were
    written: `sha256`) onto `final`, unless `final` already holds the same bytes: then `staged` is
    dropped and `final` keeps its mtime (and its hash cache entry). Returns whether it moved."""
    final = Path(final)
    try:
        same = os.path.getsize(final) == os.path.getsize(staged) and sha256_of(final) == sha256
    except FileNotFoundError:
        same = False
    if same:
        os.unlink(staged)
    else:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, final)
        fsync_dir(final.parent)
    if on_placed is not None:
        on_placed(final, sha256)
    return not same


def sha256_of(path: Path) -> str:
    """sha256 hex of a file's bytes, read in 4 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def write_if_changed(final: Path, text: str | bytes, tmp_dir: Path, on_placed: OnPlaced | None = None) -> bool:
    """Write only when the content differs, so a rerun leaves mtimes (and hash caches) alone.
    `on_placed` hears of the file either way (its bytes are in memory: nothing is read twice)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        same = os.path.getsize(final) == len(data) and Path(final).read_bytes() == data
    except FileNotFoundError:
        same = False
    if not same:
        atomic_write_bytes(final, data, tmp_dir)
    if on_placed is not None:
        on_placed(Path(final), hashlib.sha256(data).hexdigest())
    return not same
