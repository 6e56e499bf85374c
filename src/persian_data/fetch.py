"""Plan, download, verify and place the sources' files, through huggingface_hub.

How a file travels:
  1. The plan lists the repo tree at one resolved commit (`HfApi.repo_info`, `list_repo_tree`):
     every file's size and Hub hash (sha256 for LFS files, git blob sha1 otherwise) is known
     before a byte is downloaded, so no per-file HEAD request is needed.
  2. A file already in the layout is checked against that hash through the hash cache
     (path, size, mtime, inode); unchanged files are never re-read.
  3. A missing or wrong file is streamed (huggingface_hub's URL, headers, session and error
     types) into `.persian-data/staging/<hash>.part`, hashed while it streams, resumed with
     a Range request after a transient failure, and retried with exponential backoff and jitter
     (honouring `Retry-After`; a 429 halves the number of parallel downloads).
  4. Only a complete file whose hash matches reaches its final path, by an atomic rename. A
     mismatch is downloaded once more from scratch; a second mismatch fails loudly.

Why not `hf_hub_download`/`snapshot_download`: with `local_dir` they keep bookkeeping in
`local_dir/.cache/huggingface` (inside the data folders the specification counts), verify
sizes only, need a HEAD per file, and cannot hash while streaming.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from huggingface_hub import HfApi, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, filter_repo_objects, get_session, hf_raise_for_status

from . import __version__
from .atomic import EarlyWriteback
from .catalog import Source
from .errors import DiskSpaceError, DownloadError, HostilePathError, IntegrityError, PlanError
from .integrity import Digests, HashCache, LockedFile, LockedSource, StreamHasher
from .layout import Layout
from .progress import progress

try:  # huggingface_hub 2.x talks through httpx2; keep working on an httpx-based release too.
    import httpx2 as _httpx
except ImportError:  # pragma: no cover
    import httpx as _httpx  # type: ignore[no-redef]

log = logging.getLogger("persian_data.fetch")

DEFAULT_ENDPOINT = "https://huggingface.co"
READ_CHUNK = 1024 * 1024
SOCKET_READ = 1024 * 1024  # bytes one recv() of a download may return (httpcore's default: 64 KiB)
DISK_MARGIN = 64 * 1024 * 1024  # keep this much free beyond the plan


@dataclass(frozen=True)
class FetchOptions:
    endpoint: str | None = None  # None: HF_ENDPOINT or the public Hub
    token: str | None = None  # None: HF_TOKEN / the huggingface_hub login
    full: bool = False
    locked: bool = False
    dry_run: bool = False
    workers: int = 8
    max_tries: int = 5  # per file, for transient failures
    timeout: float = 30.0  # seconds without a byte before a read is abandoned
    connect_timeout: float = 10.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0  # cap of our own jittered backoff
    retry_after_max: float = 300.0  # a server's Retry-After is obeyed up to this (a hostile value cannot hang us)

    def resolved_endpoint(self) -> str:
        return (self.endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")

    def resolved_token(self) -> str | None:
        return self.token or os.environ.get("HF_TOKEN") or None


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    lfs: bool
    hub_hash: str  # sha256 (LFS) or git blob sha1

    @property
    def hash_kind(self) -> str:
        return "sha256" if self.lfs else "git-sha1"


@dataclass
class SourcePlan:
    source: Source
    revision: str  # resolved commit sha
    files: list[RemoteFile]
    patterns: tuple[str, ...] | None  # the selection the files came from (None: whole repo)
    present: list[RemoteFile] = field(default_factory=list)  # already in place and verified
    needed: list[RemoteFile] = field(default_factory=list)  # to download
    unexpected: list[Path] = field(default_factory=list)  # in the content folder but not in the plan
    known_sha256: dict[str, str] = field(default_factory=dict)  # path -> sha256 of present files

    @property
    def bytes_total(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def bytes_needed(self) -> int:
        return sum(f.size for f in self.needed)


@dataclass
class FetchReport:
    plans: list[SourcePlan]
    downloaded: dict[str, list[str]] = field(default_factory=dict)  # source key -> paths
    failed: dict[str, list[str]] = field(default_factory=dict)  # source key -> error lines
    bytes_downloaded: int = 0

    @property
    def ok(self) -> bool:
        return not any(self.failed.values())


# -- safety ----------------------------------------------------------------------------------

def safe_relpath(path: str, repo: str) -> str:
    """Refuse remote names that could escape the content folder."""
    reason = None
    if not path or "\x00" in path:
        reason = "empty name or NUL byte"
    elif "\\" in path:
        reason = "backslash in name"
    elif path.startswith("/") or PurePosixPath(path).is_absolute():
        reason = "absolute path"
    elif any(part in ("..", ".", "") for part in path.split("/")):
        reason = "'..', '.' or empty path component"
    elif any(ord(c) < 32 for c in path):
        reason = "control character in name"
    if reason:
        raise HostilePathError(f"{repo}: refusing remote file {path!r}: {reason}")
    return path


# -- planning ---------------------------------------------------------------------------------

def _hub_error(exc: Exception, source: Source, revision: str, endpoint: str) -> PlanError:
    where = f"{source.repo_type} {source.repo_id!r} at {endpoint}"
    if isinstance(exc, RevisionNotFoundError):
        return PlanError(f"revision {revision!r} of {where} was not found on the Hub")
    if isinstance(exc, GatedRepoError):
        return PlanError(f"{where} is gated: accept its terms on the Hub and pass a token (--token or HF_TOKEN)")
    if isinstance(exc, RepositoryNotFoundError):
        return PlanError(f"{where} was not found, or revision {revision!r} does not exist there (some mirrors "
                         f"answer 'repo not found' for a missing revision), or it is private and needs a token")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        return PlanError(f"the Hub answered HTTP {status} for {where}: {str(exc).splitlines()[0]}")
    return PlanError(f"could not reach {endpoint} for {where}: {type(exc).__name__}: {exc}")


def list_remote(api: HfApi, source: Source, revision: str, patterns: tuple[str, ...] | None,
                endpoint: str) -> tuple[str, list[RemoteFile]]:
    """Resolve `revision` to a commit and list the files matching `patterns` at that commit."""
    try:
        info = api.repo_info(source.repo_id, repo_type=source.repo_type, revision=revision)
        sha = info.sha
        if not sha:
            raise PlanError(f"{source.repo_id}: the Hub did not report a commit sha for {revision!r}")
        entries = [e for e in api.list_repo_tree(source.repo_id, repo_type=source.repo_type, revision=sha,
                                                 recursive=True) if hasattr(e, "blob_id")]
    except PlanError:
        raise
    except Exception as exc:  # noqa: BLE001 - every Hub failure becomes one clear PlanError
        raise _hub_error(exc, source, revision, endpoint) from exc
    chosen = filter_repo_objects(entries, allow_patterns=list(patterns) if patterns else None, key=lambda e: e.path)
    files = []
    for entry in chosen:
        safe_relpath(entry.path, source.repo_id)
        if entry.lfs is not None:
            files.append(RemoteFile(entry.path, int(entry.size), True, entry.lfs.sha256))
        else:
            files.append(RemoteFile(entry.path, int(entry.size), False, entry.blob_id))
    if not files:
        raise PlanError(f"{source.repo_id}@{sha[:12]}: no file matches {list(patterns or ['*'])}")
    return sha, sorted(files, key=lambda f: f.path)


def _matches(remote: RemoteFile, digests: Digests) -> bool:
    return (digests.sha256 if remote.lfs else digests.blob_sha1) == remote.hub_hash


def check_local(layout: Layout, plan: SourcePlan, cache: HashCache) -> None:
    """Split the plan's files into present (verified) and needed; find strays."""
    content = layout.content_dir(plan.source)
    wanted = {f.path for f in plan.files}
    to_hash: list[tuple[RemoteFile, Path]] = []
    for remote in plan.files:
        final = content / remote.path
        try:
            st = final.stat()
        except FileNotFoundError:
            plan.needed.append(remote)
            continue
        if not final.is_file() or final.is_symlink() or st.st_size != remote.size:
            plan.needed.append(remote)
            continue
        cached = cache.lookup(final, st)
        if cached and (remote.lfs or cached.blob_sha1):
            (plan.present if _matches(remote, cached) else plan.needed).append(remote)
            if _matches(remote, cached):
                plan.known_sha256[remote.path] = cached.sha256
        else:
            to_hash.append((remote, final))
    if to_hash:
        log.info("%s: checking %d file(s) already on disk", plan.source.key, len(to_hash))
        non_lfs = {final for remote, final in to_hash if not remote.lfs}  # only these need the git sha1
        digests = cache.digests_many([p for _, p in to_hash], blob_sha1=lambda p: p in non_lfs)
        for remote, final in to_hash:
            if _matches(remote, digests[final]):
                plan.present.append(remote)
                plan.known_sha256[remote.path] = digests[final].sha256
            else:
                log.warning("%s: %s on disk does not match the Hub's %s; it will be replaced",
                            plan.source.key, layout.relative(final), remote.hash_kind)
                plan.needed.append(remote)
    if content.exists():
        for path in sorted(content.rglob("*")):
            rel = path.relative_to(content).as_posix()
            if (path.is_file() or path.is_symlink()) and rel not in wanted:
                plan.unexpected.append(path)
    plan.needed.sort(key=lambda f: f.path)


def make_plans(layout: Layout, sources: list[Source], options: FetchOptions, cache: HashCache,
               lock: dict[str, LockedSource]) -> tuple[list[SourcePlan], dict[str, str]]:
    """One plan per source; a source whose plan fails is reported and the others go on."""
    api = HfApi(endpoint=options.resolved_endpoint(), token=options.resolved_token(), library_name="persian-data",
                library_version=__version__)
    plans, errors = [], {}

    def plan_one(source: Source) -> SourcePlan | PlanError:
        try:
            return plan_source(api, layout, source, options, cache, lock)
        except PlanError as exc:
            return exc

    # The Hub round trips (repo info + tree per source) dominate a rerun: ask for all sources at once.
    with ThreadPoolExecutor(max_workers=max(1, len(sources)), thread_name_prefix="plan") as pool:
        for source, result in zip(sources, pool.map(plan_one, sources)):
            if isinstance(result, PlanError):
                log.error("plan failed for %s: %s", source.key, result)
                errors[source.key] = str(result)
            else:
                plans.append(result)
    return plans, errors


def _transient(exc: BaseException | None) -> bool:
    if isinstance(exc, (_httpx.TransportError, _httpx.StreamError)):
        return True
    if isinstance(exc, HfHubHTTPError) and not isinstance(exc, (RepositoryNotFoundError, RevisionNotFoundError,
                                                                 EntryNotFoundError, GatedRepoError)):
        return exc.response is not None and exc.response.status_code in (408, 429, 500, 502, 503, 504)
    return False


def list_remote_with_retries(api: HfApi, source: Source, revision: str, patterns, options: FetchOptions):
    """`list_remote`, retried with backoff on a dead link, a 5xx or a 429 (not on a missing repo)."""
    for attempt in range(1, options.max_tries + 1):
        try:
            return list_remote(api, source, revision, patterns, options.resolved_endpoint())
        except PlanError as exc:
            if attempt == options.max_tries or not _transient(exc.__cause__):
                raise
            wait = min(options.backoff_max, random.uniform(0, options.backoff_base * 2 ** (attempt - 1)))
            log.warning("%s: %s; retry %d/%d in %.1fs", source.key, exc, attempt, options.max_tries - 1, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def plan_source(api: HfApi, layout: Layout, source: Source, options: FetchOptions, cache: HashCache,
                lock: dict[str, LockedSource]) -> SourcePlan:
    if options.locked:
        locked = lock.get(source.key)
        if locked is None:
            raise PlanError(f"--locked: the lock file has no entry for {source.key!r} "
                            f"({layout.relative(layout.lock_file)}); run fetch without --locked first")
        try:
            sha, files = list_remote_with_retries(api, source, locked.revision, locked.patterns, options)
        except PlanError as exc:
            raise PlanError(f"--locked: cannot reproduce {source.key} at commit {locked.revision}: {exc}") from exc
        files = [f for f in files if f.path in locked.files]
        drift = sorted(set(locked.files) - {f.path for f in files}) + [
            f.path for f in files if locked.files[f.path].hub_hash != f.hub_hash]
        if drift:
            raise PlanError(f"--locked: {source.key} at {sha} differs from the lock for {drift[:5]}")
    else:
        patterns = source.patterns(options.full)
        sha, files = list_remote_with_retries(api, source, source.revision, patterns, options)
    plan = SourcePlan(source, sha, files, locked.patterns if options.locked else patterns)
    check_local(layout, plan, cache)
    return plan


def staged_bytes(layout: Layout, plans: list[SourcePlan]) -> int:
    total = 0
    for plan in plans:
        for remote in plan.needed:
            part = staging_path(layout, remote)
            if part.exists():
                total += min(part.stat().st_size, remote.size)
    return total


def check_disk_space(layout: Layout, plans: list[SourcePlan], enforce: bool = True) -> tuple[int, int]:
    """(bytes still to download, free bytes); raise DiskSpaceError when they don't fit."""
    need = sum(p.bytes_needed for p in plans) - staged_bytes(layout, plans)
    probe = layout.root
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need > 0 and need + DISK_MARGIN > free:
        if not enforce:
            log.warning("the plan needs %s but only %s is free", human(need), human(free))
            return need, free
        raise DiskSpaceError(f"not enough free space under {layout.root}: the plan needs {human(need)} "
                             f"(+{human(DISK_MARGIN)} margin), {human(free)} is free")
    return need, free


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


# -- downloading ------------------------------------------------------------------------------

def staging_path(layout: Layout, remote: RemoteFile) -> Path:
    # Keyed by content hash: a partial download resumes even across commits and sources.
    return layout.staging_dir / f"{remote.hub_hash}.part"


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None, rate_limited: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class AdaptiveLimit:
    """A concurrency limit that halves on HTTP 429 (never below one)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._active = 0
        self._cond = threading.Condition()

    def __enter__(self) -> "AdaptiveLimit":
        with self._cond:
            while self._active >= self.limit:
                self._cond.wait()
            self._active += 1
        return self

    def __exit__(self, *exc) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def back_off(self) -> int:
        with self._cond:
            if self.limit > 1:
                self.limit = max(1, self.limit // 2)
                log.warning("rate limited by the Hub (HTTP 429): parallel downloads reduced to %d", self.limit)
            return self.limit


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class Downloader:
    def __init__(self, layout: Layout, options: FetchOptions, cache: HashCache) -> None:
        self.layout, self.options, self.cache = layout, options, cache
        self.endpoint = options.resolved_endpoint()
        self.headers = build_hf_headers(token=options.resolved_token(), library_name="persian-data",
                                        library_version=__version__)
        self.timeout = _httpx.Timeout(options.timeout, connect=options.connect_timeout)
        self.limit = AdaptiveLimit(options.workers)
        self.bytes_downloaded = 0
        self._count_lock = threading.Lock()
        self.cancelled = threading.Event()  # set on Ctrl-C: workers stop at the next chunk

    def _stream_once(self, source: Source, revision: str, remote: RemoteFile, part: Path, bar) -> Digests:
        """One GET (resuming from `part` if it holds bytes). Returns the digests of the whole file."""
        url = hf_hub_url(source.repo_id, remote.path, repo_type=source.repo_type, revision=revision,
                         endpoint=self.endpoint)
        have = part.stat().st_size if part.exists() else 0
        if have > remote.size:
            part.unlink()
            have = 0
        hasher = StreamHasher(remote.size, blob_sha1=not remote.lfs)
        if have:
            with open(part, "rb") as handle:  # re-hash what an earlier attempt already wrote
                while chunk := handle.read(READ_CHUNK * 4):
                    hasher.update(chunk)
        if have == remote.size and remote.size > 0:
            return hasher.digests()
        headers = dict(self.headers)
        if have:
            headers["Range"] = f"bytes={have}-"
        session = get_session()
        try:
            with session.stream("GET", url, headers=headers, timeout=self.timeout, follow_redirects=True) as resp:
                status = resp.status_code
                if status == 429:
                    raise _Retryable("HTTP 429 Too Many Requests", _retry_after(resp), rate_limited=True)
                if status in (408, 500, 502, 503, 504):
                    raise _Retryable(f"HTTP {status}", _retry_after(resp))
                if status == 416 and have:
                    part.unlink(missing_ok=True)
                    raise _Retryable("HTTP 416 for a resumed range; starting over")
                hf_raise_for_status(resp)
                mode = "ab"
                if have and status != 206:
                    # Server ignored the Range (e.g. the olah mirror): start over.
                    hasher = StreamHasher(remote.size, blob_sha1=not remote.lfs)
                    if bar:
                        bar.update(-have)
                    have, mode = 0, "wb"
                with open(part, mode) as out:
                    writeback = EarlyWriteback(out.fileno(), start=have)
                    for chunk in resp.iter_bytes():  # as received, so a cut loses nothing already read
                        if self.cancelled.is_set():
                            raise KeyboardInterrupt
                        if have + len(chunk) > remote.size:
                            raise _Retryable(f"server sent more than the expected {remote.size} bytes")
                        out.write(chunk)
                        writeback.wrote(len(chunk), out.flush)
                        hasher.update(chunk)
                        have += len(chunk)
                        if bar:
                            bar.update(len(chunk))
                        with self._count_lock:
                            self.bytes_downloaded += len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
        except (_httpx.TransportError, _httpx.StreamError) as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc or 'connection problem'}") from exc
        if have != remote.size:
            raise _Retryable(f"body ended after {have} of {remote.size} bytes")
        return hasher.digests()

    def download(self, source: Source, revision: str, remote: RemoteFile, bar=None) -> Digests:
        """Download, verify and place one file. Raises DownloadError/IntegrityError when it can't."""
        final = self.layout.content_dir(source) / remote.path
        part = staging_path(self.layout, remote)
        part.parent.mkdir(parents=True, exist_ok=True)
        where = f"{source.repo_id}@{revision[:12]}:{remote.path}"
        tries, mismatches, last = 0, 0, ""
        while True:
            if self.cancelled.is_set():
                raise KeyboardInterrupt
            tries += 1
            delay = None
            try:
                with self.limit:
                    digests = self._stream_once(source, revision, remote, part, bar)
            except _Retryable as exc:
                last = str(exc)
                if exc.rate_limited:
                    self.limit.back_off()
                delay = exc.retry_after
                if tries >= self.options.max_tries:
                    raise DownloadError(f"{where}: gave up after {tries} tries; last error: {last}") from None
                # The server's Retry-After is an instruction, not a hint: obey it (bounded), and
                # fall back to our own jittered exponential backoff only when it gives none.
                wait = (min(self.options.retry_after_max, delay) if delay is not None else
                        min(self.options.backoff_max,
                            random.uniform(0, self.options.backoff_base * 2 ** (tries - 1))))
                log.warning("%s: %s; retry %d/%d in %.1fs", where, last, tries, self.options.max_tries - 1, wait)
                if self.cancelled.wait(wait):
                    raise KeyboardInterrupt
                continue
            except EntryNotFoundError as exc:
                raise DownloadError(f"{where}: the Hub has no such file ({str(exc).splitlines()[0]})") from None
            except HfHubHTTPError as exc:
                status = exc.response.status_code if exc.response is not None else "?"
                raise DownloadError(f"{where}: HTTP {status}: {str(exc).splitlines()[0]}") from None
            if _matches(remote, digests):
                break
            part.unlink(missing_ok=True)
            mismatches += 1
            got = digests.sha256 if remote.lfs else digests.blob_sha1
            if bar:
                bar.update(-remote.size)
            if mismatches >= 2:
                raise IntegrityError(f"{where}: downloaded twice and both times the {remote.hash_kind} was "
                                     f"{got}, the Hub says {remote.hub_hash}; the file was not placed")
            log.warning("%s: %s mismatch (got %s, expected %s); downloading again", where, remote.hash_kind,
                        got, remote.hub_hash)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.is_dir() and not final.is_symlink():
            raise DownloadError(f"{where}: {self.layout.relative(final)} is a folder; remove it and rerun")
        os.replace(part, final)
        self.cache.put(final, digests)
        return digests


def place_copy(layout: Layout, source: Source, remote: RemoteFile, origin: Path, digests: Digests,
               cache: HashCache) -> None:
    """Place a file whose identical bytes were just downloaded for another path (same Hub hash)."""
    final = layout.content_dir(source) / remote.path
    part = layout.staging_dir / f"{remote.hub_hash}.{os.getpid()}.{threading.get_ident()}.copy"
    shutil.copyfile(origin, part)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, final)
    cache.put(final, digests)


@contextmanager
def larger_socket_reads(nbytes: int = SOCKET_READ) -> Iterator[None]:
    """Let huggingface_hub's HTTP client (httpx over httpcore) take up to `nbytes` per recv().

    httpcore reads 64 KiB at a time, and above ~150 MB/s the Python work per read (h11 events,
    buffer slicing) is what limits a download: one stream of the 530 MB corpus file went from
    491 to 1021 MB/s with 1 MiB reads, and a whole 2.5 GB fetch from ~14 s to ~11 s. The size is
    a class attribute; raising it changes only how much one recv() may return, never the bytes.
    Restored afterwards, and skipped for an httpcore without it."""
    saved = []
    for name in ("httpcore2._sync.http11", "httpcore._sync.http11"):  # huggingface_hub 2.x / 0.x
        module = sys.modules.get(name)
        cls = getattr(module, "HTTP11Connection", None)
        current = getattr(cls, "READ_NUM_BYTES", None)
        if isinstance(current, int) and current < nbytes:
            saved.append((cls, current))
            cls.READ_NUM_BYTES = nbytes
    try:
        yield
    finally:
        for cls, current in saved:
            cls.READ_NUM_BYTES = current


def run_downloads(layout: Layout, plans: list[SourcePlan], options: FetchOptions, cache: HashCache,
                  report: FetchReport) -> None:
    # Files with the same Hub hash (identical bytes) are downloaded once and copied: they would
    # otherwise share one staging file.
    groups: dict[str, list[tuple[SourcePlan, RemoteFile]]] = {}
    for plan in plans:
        for remote in plan.needed:
            groups.setdefault(remote.hub_hash, []).append((plan, remote))
    if not groups:
        return
    downloader = Downloader(layout, options, cache)
    total = sum(r.size for members in groups.values() for _, r in members[:1])

    def fetch_group(members: list[tuple[SourcePlan, RemoteFile]]) -> Digests:
        plan, remote = members[0]
        digests = downloader.download(plan.source, plan.revision, remote, bar)
        origin = layout.content_dir(plan.source) / remote.path
        for other_plan, other in members[1:]:
            place_copy(layout, other_plan.source, other, origin, digests, cache)
        return digests

    with progress(total, "download", "B", logger=log, unit_scale=True) as bar, larger_socket_reads():
        pool = ThreadPoolExecutor(max_workers=max(1, options.workers), thread_name_prefix="fetch")
        try:
            futures = {pool.submit(fetch_group, members): members for members in groups.values()}
            for future in as_completed(futures):
                members = futures[future]
                try:
                    digests = future.result()
                except (DownloadError, OSError) as exc:
                    message = str(exc) if isinstance(exc, DownloadError) else (
                        f"{members[0][0].source.repo_id}:{members[0][1].path}: {type(exc).__name__}: {exc}")
                    log.error("FAILED %s", message)
                    for plan, _ in members:
                        report.failed.setdefault(plan.source.key, []).append(message)
                    continue
                for plan, remote in members:
                    plan.known_sha256[remote.path] = digests.sha256
                    report.downloaded.setdefault(plan.source.key, []).append(remote.path)
                    log.info("ok %s/%s (%s, %s verified)", layout.relative(layout.content_dir(plan.source)),
                             remote.path, human(remote.size), remote.hash_kind)
        except BaseException:
            # Ctrl-C (or any crash): stop the workers at their next chunk; partial downloads stay in
            # staging and resume on the next run.
            downloader.cancelled.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    report.bytes_downloaded = downloader.bytes_downloaded


def locked_source(plan: SourcePlan) -> LockedSource:
    files = {r.path: LockedFile(r.path, r.size, r.lfs, r.hub_hash, plan.known_sha256[r.path]) for r in plan.files}
    return LockedSource(plan.source.key, plan.source.repo_id, plan.source.repo_type, plan.source.revision,
                        plan.revision, plan.patterns, files)


def log_plan(layout: Layout, plans: list[SourcePlan], need: int, free: int) -> None:
    log.info("plan (%d source(s)):", len(plans))
    for plan in plans:
        log.info("  %-12s %s@%s  %d file(s), %s; in place %d, to fetch %d (%s)%s", plan.source.key,
                 plan.source.repo_id, plan.revision[:12], len(plan.files), human(plan.bytes_total),
                 len(plan.present), len(plan.needed), human(plan.bytes_needed),
                 f", {len(plan.unexpected)} unexpected" if plan.unexpected else "")
    log.info("  to download: %s; free disk: %s", human(need), human(free))


def remove_unexpected(layout: Layout, plan: SourcePlan, cache: HashCache) -> None:
    """Files in a content folder that the plan does not list would be counted and checksummed as
    data the lock cannot vouch for; move them out of the layout (to the state folder)."""
    if not plan.unexpected:
        return
    attic = layout.state_dir / "removed" / plan.source.key
    for path in plan.unexpected:
        rel = path.relative_to(layout.content_dir(plan.source))
        target = attic / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        cache.forget(path)
        log.warning("%s: %s is not part of %s@%s; moved to %s", plan.source.key, layout.relative(path),
                    plan.source.repo_id, plan.revision[:12], layout.relative(target))
    for folder in sorted({p.parent for p in plan.unexpected}, key=lambda p: len(p.parts), reverse=True):
        while folder != layout.content_dir(plan.source) and folder.exists() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


def fetch(layout: Layout, sources: list[Source], options: FetchOptions, cache: HashCache,
          lock: dict[str, LockedSource],
          on_plan: Callable[[list[SourcePlan]], None] | None = None) -> FetchReport:
    """Plan, check space, download what is missing, and update `lock` in place for every source
    that is now complete. The caller holds the run lock and writes the records.

    `on_plan(plans)` is called once the plan is known, before the first byte downloads (not on a
    dry run): the caller can start work that only needs to know what is coming."""
    endpoint = options.resolved_endpoint()
    log.info("fetch: endpoint %s, sources %s%s%s", endpoint, ",".join(s.key for s in sources),
             " (full mirrors)" if options.full else "", " (--locked)" if options.locked else "")
    plans, errors = make_plans(layout, sources, options, cache, lock)
    need, free = check_disk_space(layout, plans, enforce=not options.dry_run)
    log_plan(layout, plans, need, free)
    report = FetchReport(plans, failed={key: [message] for key, message in errors.items()})
    if options.dry_run:
        return report
    if on_plan is not None:
        on_plan(plans)
    for plan in plans:
        remove_unexpected(layout, plan, cache)
    run_downloads(layout, plans, options, cache, report)
    for plan in plans:
        if not report.failed.get(plan.source.key):
            lock[plan.source.key] = locked_source(plan)
    return report
