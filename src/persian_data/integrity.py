"""Hashes, the hash cache and the lock file.

- `Digests` carries what we know of a file's bytes: sha256 always, and the git blob sha1 when
  the Hub identifies the file by it (non-LFS files).
- `HashCache` remembers digests keyed by path, size, mtime and inode, so a rerun re-hashes
  nothing unchanged. It lives in the state folder and is only ever an optimisation: a missing
  or damaged cache means "hash again", never "trust".
- `Lock` is the reproducibility record: per source, the resolved commit and every file with
  its size and Hub hash. `fetch --locked` replays it.
"""

from __future__ import annotations

import gc
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import orjson

from .atomic import atomic_write_bytes
from .errors import LockFileError

CHUNK = 4 * 1024 * 1024
LOCK_VERSION = 1


def git_blob_header(size: int) -> bytes:
    return b"blob %d\0" % size


@dataclass(frozen=True)
class Digests:
    sha256: str
    blob_sha1: str | None = None


class StreamHasher:
    """Hash bytes as they stream past (download), so nothing is read twice."""

    def __init__(self, size: int | None, blob_sha1: bool) -> None:
        self._sha256 = hashlib.sha256()
        self._sha1 = None
        if blob_sha1:
            if size is None:
                raise ValueError("the git blob sha1 needs the size up front")
            self._sha1 = hashlib.sha1(git_blob_header(size))

    def update(self, chunk: bytes | memoryview) -> None:
        self._sha256.update(chunk)
        if self._sha1 is not None:
            self._sha1.update(chunk)

    def digests(self) -> Digests:
        return Digests(self._sha256.hexdigest(), self._sha1.hexdigest() if self._sha1 else None)


def hash_file(path: Path, blob_sha1: bool = False, on_bytes: Callable[[int], None] | None = None) -> Digests:
    """sha256 (and optionally git blob sha1) of a file, read once in large chunks.

    hashlib releases the GIL on large updates, so threads hash files truly in parallel.
    """
    size = os.path.getsize(path)
    hasher = StreamHasher(size, blob_sha1)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buf):
            hasher.update(view[:n])
            if on_bytes:
                on_bytes(n)
    return hasher.digests()


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


CACHE_VERSION = 2
# A cache entry is one string, "<sha256> <size> <mtime_ns> <inode>[ <blob sha1>]": one object per
# file where version 1 had a dict, a list and four more. A prepared Common Voice root's 49k entries
# parse in ~32 ms instead of ~75, at the start of every command. Version 1 files are read and
# converted (their digests stay good); the next save writes version 2.


def _pack(sha256: str, stat: list[int], blob_sha1: str | None = None) -> str:
    text = "%s %d %d %d" % (sha256, stat[0], stat[1], stat[2])
    return f"{text} {blob_sha1}" if blob_sha1 else text


def _stat_text(st: os.stat_result) -> str:
    return "%d %d %d" % (st.st_size, st.st_mtime_ns, st.st_ino)


def _sha256_if_stat(value, stat_text: str) -> str | None:
    """The entry's sha256 when it was taken with this stat (`_stat_text`), else None: `_unpack`'s
    answer for every entry `_pack` writes, without building its list (a number edited by hand into
    another form, such as 007, is not matched: that file is hashed again)."""
    if type(value) is not str:
        return None  # not an entry this version writes: unknown, so hashed again
    sha256, _, rest = value.partition(" ")
    if not sha256 or not rest.startswith(stat_text):
        return None
    tail = rest[len(stat_text):]
    return sha256 if not tail or (tail[0] == " " and " " not in tail[1:]) else None


def _unpack(value) -> tuple[str, list[int], str | None] | None:
    """(sha256, [size, mtime_ns, inode], blob sha1) of an entry; None when it is not one."""
    if type(value) is not str:
        return None
    parts = value.split(" ")
    if len(parts) not in (4, 5) or not parts[0]:
        return None
    try:
        stat = [int(part) for part in parts[1:4]]
    except ValueError:
        return None
    return parts[0], stat, parts[4] if len(parts) == 5 else None


def _from_v1(entries) -> dict[str, str]:
    """Version 1's {"stat": [...], "sha256": ..., "blob_sha1": ...} entries as version 2's."""
    out: dict[str, str] = {}
    if not isinstance(entries, dict):
        return out
    for key, entry in entries.items():
        try:
            sha256, stat, blob = entry["sha256"], entry["stat"], entry.get("blob_sha1") or None
            if (type(sha256) is str and sha256 and " " not in sha256
                    and type(stat) is list and len(stat) == 3 and all(type(n) is int for n in stat)
                    and (blob is None or (type(blob) is str and " " not in blob))):
                out[key] = _pack(sha256, stat, blob)
        except (TypeError, KeyError):
            continue  # damaged: that file is hashed again
    return out


class HashCache:
    """Digests keyed by root-relative path and (size, mtime_ns, inode)."""

    def __init__(self, file: Path, root: Path) -> None:
        self.file, self.root = Path(file), Path(root).absolute()
        self._prefix = os.fspath(self.root).rstrip("/") + "/"
        self._lock = threading.Lock()
        self._entries: dict[str, str] = {}  # root-relative path -> entry (see CACHE_VERSION)
        self._dirty = False
        self._memo: dict[str, str] = {}  # results of expensive checks, keyed by the content they saw
        try:
            data = _loads_acyclic(self.file.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError, OSError):
            data = None
        if isinstance(data, dict) and data.get("version") in (1, CACHE_VERSION):
            entries, memo = data.get("entries"), data.get("memo")
            if data["version"] == 1:
                entries, self._dirty = _from_v1(entries), True
            self._entries = entries if isinstance(entries, dict) else {}
            self._memo = memo if isinstance(memo, dict) else {}

    def _key(self, path: Path | str) -> str:
        text = os.fspath(path)
        if text.startswith(self._prefix) and "/./" not in text and "/../" not in text:
            return text[len(self._prefix):]  # ~20x cheaper than building Path objects, per file
        return Path(path).absolute().relative_to(self.root).as_posix()

    def lookup(self, path: Path | str, st: os.stat_result | None = None) -> Digests | None:
        """Cached digests if the file is unchanged since they were taken, else None."""
        try:
            st = st or os.stat(path)
        except FileNotFoundError:
            return None
        entry = _unpack(self._entries.get(self._key(path)))
        if entry is None or entry[1] != _stat_key(st):
            return None
        return Digests(entry[0], entry[2])

    def known_sha256(self, found: list[tuple[str, os.stat_result]]) -> list[str | None]:
        """`lookup`'s sha256 for many (path, stat) pairs at once (None where unknown or changed):
        the checksum file's 49k clips after a stage, one dict probe each, no object per file."""
        entries, prefix, key = self._entries, self._prefix, self._key
        cut = len(prefix)
        out: list[str | None] = []
        for path, st in found:
            entry = entries.get(path[cut:] if path.startswith(prefix) and "/." not in path else key(path))
            out.append(None if entry is None else _sha256_if_stat(entry, _stat_text(st)))
        return out

    def recorded(self, path: str) -> tuple[str, list[int]] | None:
        """(sha256, [size, mtime_ns, inode]) as recorded for `path` (absolute, under the root), with
        no stat: for a caller that compares that stat itself when it opens the file (its fstat)."""
        entry = self._entries.get(path[len(self._prefix):] if path.startswith(self._prefix) and "/." not in path
                                  else self._key(path))
        unpacked = None if entry is None else _unpack(entry)
        return None if unpacked is None else unpacked[:2]

    def entries_view(self) -> tuple[str, dict]:
        """(the root prefix, the entries by root-relative path) for a compiled reader of many
        entries at once (shards.documents.line_planner: `recorded` per clip, in C). Read only; each
        entry is a string as CACHE_VERSION says."""
        return self._prefix, self._entries

    def put(self, path: Path, digests: Digests, st: os.stat_result | None = None) -> None:
        st = st or os.stat(path)
        entry = _pack(digests.sha256, _stat_key(st), digests.blob_sha1)
        with self._lock:
            self._entries[self._key(path)] = entry
            self._dirty = True

    def placed(self, path: Path, sha256: str) -> None:
        """A file the tool has just put in place, with the sha256 of the bytes it wrote (hashed
        while writing): remembered against the file's stat now, so records and gates after the
        stage cost a stat(), not a read. A later change (size, mtime or inode) is still caught."""
        self.put(path, Digests(sha256))

    def placed_many(self, folder: Path, items: Iterable[tuple]) -> None:
        """`placed` for many files of one folder. Items are (file name, sha256), stat'ed here, or
        (file name, sha256, size, mtime_ns, inode) as the writer saw the file right after writing
        it (the writer's own fstat: no second stat, and a change made since is not trusted)."""
        base = os.fspath(folder).rstrip("/") + "/"
        key_base = self._key(Path(base + "x"))[:-1]
        entries = {}
        for item in items:
            name, sha256 = item[0], item[1]
            key = list(item[2:5]) if len(item) == 5 else _stat_key(os.stat(base + name))
            entries[key_base + name] = _pack(sha256, key)
        with self._lock:
            self._entries.update(entries)
            self._dirty = self._dirty or bool(entries)

    def forget(self, path: Path) -> None:
        with self._lock:
            if self._entries.pop(self._key(path), None) is not None:
                self._dirty = True

    def digests(self, path: Path, blob_sha1: bool = False, on_bytes: Callable[[int], None] | None = None) -> Digests:
        """Cached digests, or hash the file now and remember the result."""
        st = os.stat(path)
        cached = self.lookup(path, st)
        if cached and (cached.blob_sha1 or not blob_sha1):
            return cached
        fresh = hash_file(path, blob_sha1, on_bytes)
        # The file must not have changed while we read it; otherwise don't remember anything.
        if _stat_key(os.stat(path)) == _stat_key(st):
            self.put(path, fresh, st)
        return fresh

    def digests_many(self, paths: Iterable[Path], *, blob_sha1: Callable[[Path], bool] = lambda p: False,
                     workers: int | None = None, on_bytes: Callable[[int], None] | None = None) -> dict[Path, Digests]:
        paths = list(paths)
        if not paths:
            return {}
        workers = workers or min(8, (os.cpu_count() or 2))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hash") as pool:
            return dict(zip(paths, pool.map(lambda p: self.digests(p, blob_sha1(p), on_bytes), paths)))

    def memo_get(self, key: str) -> str | None:
        return self._memo.get(key)

    def memo_put(self, key: str, value: str) -> None:
        with self._lock:
            if self._memo.get(key) != value:
                self._memo[key] = value
                self._dirty = True

    def prune(self, keep: Callable[[str], bool]) -> None:
        with self._lock:
            for key in [k for k in self._entries if not keep(k)]:
                del self._entries[key]
                self._dirty = True

    def save(self, tmp_dir: Path) -> None:
        with self._lock:
            if not self._dirty:
                return
            data = orjson.dumps({"version": CACHE_VERSION, "entries": self._entries, "memo": self._memo})
            self._dirty = False
        atomic_write_bytes(self.file, data, tmp_dir)


def _loads_acyclic(data: bytes):
    """orjson.loads with the cyclic collector paused: parsed JSON has no cycles, and the ~49k dicts of
    a version 1 cache (a prepared Common Voice root's) set off collections that find nothing (~25 of
    85 ms, at the start of every command)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return orjson.loads(data)
    finally:
        if collecting:
            gc.enable()


# -- lock file -----------------------------------------------------------------------------

@dataclass(frozen=True)
class LockedFile:
    path: str
    size: int
    lfs: bool
    hub_hash: str  # sha256 for LFS files, git blob sha1 otherwise: what the Hub itself reports
    sha256: str  # sha256 of the bytes, for every file (= hub_hash for LFS files)

    def matches(self, digests: Digests, size: int) -> bool:
        if size != self.size or digests.sha256 != self.sha256:
            return False
        return self.lfs or digests.blob_sha1 in (None, self.hub_hash)

    def to_json(self) -> dict:
        return {"size": self.size, "lfs": self.lfs, "hub_hash": self.hub_hash, "sha256": self.sha256}


@dataclass(frozen=True)
class LockedSource:
    key: str
    repo_id: str
    repo_type: str
    requested_revision: str
    revision: str  # resolved commit sha
    patterns: tuple[str, ...] | None
    files: dict[str, LockedFile]

    def to_json(self) -> dict:
        return {
            "repo_id": self.repo_id,
            "repo_type": self.repo_type,
            "requested_revision": self.requested_revision,
            "revision": self.revision,
            "patterns": list(self.patterns) if self.patterns is not None else None,
            "files": {p: f.to_json() for p, f in sorted(self.files.items())},
        }

    @classmethod
    def from_json(cls, key: str, data: dict) -> "LockedSource":
        files = {p: LockedFile(path=p, **f) for p, f in data["files"].items()}
        patterns = tuple(data["patterns"]) if data.get("patterns") is not None else None
        return cls(key, data["repo_id"], data["repo_type"], data.get("requested_revision", "main"),
                   data["revision"], patterns, files)


LOCK_REPAIR = ("; restore it from a copy, or delete it and run `persian-data fetch`, which checks every file in "
               "place against the Hub and writes it again")


def read_lock(path: Path) -> dict[str, LockedSource]:
    try:
        data = orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        return {}
    except orjson.JSONDecodeError as exc:
        raise LockFileError(f"{path}: not valid JSON ({exc}){LOCK_REPAIR}") from exc
    if not isinstance(data, dict) or data.get("version") != LOCK_VERSION:
        raise LockFileError(f"{path}: unknown lock format (expected version {LOCK_VERSION}){LOCK_REPAIR}")
    try:
        return {key: LockedSource.from_json(key, entry) for key, entry in data["sources"].items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise LockFileError(f"{path}: malformed entry ({type(exc).__name__}: {exc}){LOCK_REPAIR}") from exc


def write_lock(path: Path, sources: dict[str, LockedSource], tmp_dir: Path) -> None:
    from . import __version__

    data = {
        "version": LOCK_VERSION,
        "generator": f"persian-data {__version__}",
        "sources": {key: sources[key].to_json() for key in sorted(sources)},
    }
    atomic_write_bytes(path, orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n", tmp_dir)
