"""Writing planned files: tars from the layout's audio bytes, JSON-lines sidecars; the run journal.

Each file is written to a temp file in `.persian-data/tmp`, fsynced and renamed into the set's
staging folder; the journal (`.persian-data/shards/.../<split>.journal.json`) then records its
plan digest, sha256, size and stat. A killed run leaves finished files in staging (or already in
place) with their journal entries, and a temp file the next run clears: the rerun writes only
what is missing. Files are written by a few processes, one file each (lanes.py).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Callable

import orjson

from ..atomic import atomic_write_bytes, fsync_dir
from ..layout import Layout
from . import gz
from .errors import ShardsDataError
from .formats import PlannedFile
from .lanes import Stopped
from .samples import Sample
from .tarwrite import TarFileWriter

JOURNAL_VERSION = 1
_UMASK = os.umask(0)
os.umask(_UMASK)


class Journal:
    """Finished files of one set: name -> {digest, sha256, bytes, stat}. Saved after each file."""

    def __init__(self, path: Path, tmp_dir: Path) -> None:
        self.path, self.tmp_dir = path, tmp_dir
        self._lock = threading.Lock()
        try:
            data = orjson.loads(path.read_bytes())
            self.files: dict[str, dict] = data["files"] if data.get("version") == JOURNAL_VERSION else {}
        except (FileNotFoundError, orjson.JSONDecodeError, KeyError, TypeError, AttributeError, OSError):
            self.files = {}

    def finished(self, planned: PlannedFile, *places: Path) -> tuple[Path, dict] | None:
        """Where a finished file with this plan is (the first of `places` whose stat is the one
        recorded when it was written), and its entry; None when it must be written."""
        entry = self.files.get(planned.name)
        if entry is None or entry.get("digest") != planned.digest:
            return None
        for place in places:
            try:
                st = os.stat(place)
            except FileNotFoundError:
                continue
            if [st.st_size, st.st_mtime_ns, st.st_ino] == entry["stat"]:
                return place, entry
        return None

    def record(self, name: str, digest: str, sha256: str, st: os.stat_result) -> None:
        with self._lock:
            self.files[name] = {"digest": digest, "sha256": sha256, "bytes": st.st_size,
                                "stat": [st.st_size, st.st_mtime_ns, st.st_ino]}
            self._save()

    def keep_only(self, names: set[str]) -> None:
        with self._lock:
            if set(self.files) - names:
                self.files = {k: v for k, v in self.files.items() if k in names}
                self._save()

    def _save(self) -> None:
        data = orjson.dumps({"version": JOURNAL_VERSION, "files": self.files}, option=orjson.OPT_SORT_KEYS)
        atomic_write_bytes(self.path, data, self.tmp_dir)


def copy_clip(layout: Layout, writer: TarFileWriter, name: str, sample: Sample) -> None:
    """Copy a clip into the tar as member `name`, checked against the manifest's sha256 on the way
    (unless the hash cache vouches for this very file, unchanged since it was hashed)."""
    try:
        fd = os.open(sample.path, os.O_RDONLY)
    except FileNotFoundError:
        raise ShardsDataError(f"{layout.relative(sample.path)} is missing; run `persian-data verify` to see what "
                              f"else is, then `persian-data prepare speech`") from None
    try:
        st = os.fstat(fd)
        if st.st_size != sample.size and sample.trusted:  # planned by the size hashed as the manifest's sha256
            raise ShardsDataError(f"{layout.relative(sample.path)}: {st.st_size} bytes, {sample.size} when it was "
                                  f"hashed as its manifest's sha256: the clip changed after `prepare speech`; run "
                                  f"`persian-data verify`, then `persian-data prepare speech` to rebuild it")
        if st.st_size != sample.size:
            raise ShardsDataError(f"{layout.relative(sample.path)} changed while sharding ({st.st_size} bytes, "
                                  f"{sample.size} when planned); run the same command again")
        trusted = sample.trusted and (st.st_size, st.st_mtime_ns, st.st_ino) == sample.stat
        check = None if trusted else hashlib.sha256()
        got = writer.add_from(name, fd, sample.size, check)
    finally:
        os.close(fd)
    if got != sample.size:
        raise ShardsDataError(f"{layout.relative(sample.path)} shrank while sharding; run the same command again")
    if check is not None and check.hexdigest() != sample.sha256:
        raise ShardsDataError(f"{layout.relative(sample.path)}: sha256 {check.hexdigest()}, its manifest says "
                              f"{sample.sha256}: the clip changed after `prepare speech`; run `persian-data verify`, "
                              f"then `persian-data prepare speech` to rebuild it")


_RUN = 64  # samples the C loop writes between two checks of `stopped`


def _write_samples(layout: Layout, writer: TarFileWriter, samples: list[Sample], stopped: Callable[[], bool]) -> None:
    """Every sample's members, in order: runs of them in C (`add_samples`), and here each sample it
    leaves (a clip to hash on the way, a changed or missing one, a long name) and every sample
    without the C extension."""
    at, count = 0, len(samples)
    while at < count:
        if stopped():
            raise Stopped()
        stop = min(at + _RUN, count)
        at = writer.add_samples(samples, at, stop)
        if at < 0:
            raise ShardsDataError(f"{layout.relative(samples[-1 - at].path)} shrank while sharding; run the same "
                                  f"command again")
        if at < stop:
            for name, data in samples[at].members:
                if data is None:
                    copy_clip(layout, writer, name, samples[at])
                else:
                    writer.add(name, data)
            at += 1


def write_tar(layout: Layout, planned: PlannedFile, target: Path, stopped: Callable[[], bool],
              on_bytes: Callable[[int], None]) -> tuple[str, os.stat_result]:
    """Write a planned tar to `target` (temp file, fsync, rename); (sha256, stat of the placed file)."""
    layout.tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=layout.tmp_dir, prefix=target.name[:40] + ".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        writer = TarFileWriter(fd, on_bytes)
        _write_samples(layout, writer, planned.samples, stopped)
        writer.close()
        if writer.size != planned.size:  # the planner and the writer disagree: never place such a file
            raise AssertionError(f"{planned.name}: wrote {writer.size} bytes, planned {planned.size}")
        os.fsync(fd)
        os.close(fd)
        fd = -1
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return writer.sha256.hexdigest(), os.stat(target)


def write_lines(layout: Layout, planned: PlannedFile, target: Path) -> tuple[str, os.stat_result]:
    data = b"".join(planned.lines or ())
    if planned.name.endswith(".gz"):
        data = gz.compress(data)
    atomic_write_bytes(target, data, layout.tmp_dir)
    return hashlib.sha256(data).hexdigest(), os.stat(target)


def write_one(layout: Layout, planned: PlannedFile, target: Path, stopped: Callable[[], bool],
              on_bytes: Callable[[int], None]) -> tuple[str, os.stat_result]:
    if planned.lines is None:
        return write_tar(layout, planned, target, stopped, on_bytes)
    return write_lines(layout, planned, target)
