"""Download, verify and place the planned files, from the best endpoint that has them.

How a file travels:
  1. The plan (`plan.py`) fixed, per source, one commit and every file's size and Hub hash
     (sha256 for LFS files, git blob sha1 otherwise), from the source of truth; other endpoints
     (mirrors) may supply the bytes, never the hashes.
  2. A missing or wrong file is streamed (huggingface_hub's URL, headers, session and error types)
     from the best-ranked endpoint into `.persian-data/staging/<hash>.part`, hashed while it
     streams. After a transient failure (error, timeout, stall) it moves to the next endpoint and
     resumes with a Range request; when every endpoint failed it, it waits with exponential backoff
     and jitter (honouring `Retry-After`; a 429 halves the number of parallel downloads) and tries
     again. A download also moves when another endpoint is measured several times faster.
  3. Only a complete file whose hash matches reaches its final path, by an atomic rename. A
     mismatch is downloaded once more from scratch (from another endpoint, if there is one; the
     endpoint that served the wrong bytes is demoted for the run); a second mismatch everywhere
     fails loudly.

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
from pathlib import Path
from typing import Callable, Iterator

from huggingface_hub import hf_hub_url
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError
from huggingface_hub.utils import get_session, hf_raise_for_status

from .atomic import EarlyWriteback
from .catalog import Source
from .endpoints import Endpoint, EndpointPool, measure_throughput
from .errors import DownloadError, IntegrityError
from .integrity import Digests, HashCache, LockedFile, LockedSource, StreamHasher
from .layout import Layout
from .plan import (  # noqa: F401 - FetchOptions, RemoteFile, SourcePlan, safe_relpath are this module's API too
    FetchOptions,
    RemoteFile,
    SourcePlan,
    _matches,
    check_disk_space,
    log_endpoints,
    log_plan,
    make_plans,
    remove_unexpected,
    safe_relpath,
    staging_path,
)
from .progress import human_bytes, progress

try:  # huggingface_hub 2.x talks through httpx2; keep working on an httpx-based release too.
    import httpx2 as _httpx
except ImportError:  # pragma: no cover
    import httpx as _httpx  # type: ignore[no-redef]

log = logging.getLogger("persian_data.fetch")

READ_CHUNK = 1024 * 1024
SOCKET_READ = 1024 * 1024  # bytes one recv() of a download may return (httpcore's default: 64 KiB)
SWITCH_CHECK = 1.0  # seconds between checks whether a download should move to a faster endpoint


@dataclass
class FetchReport:
    plans: list[SourcePlan]
    downloaded: dict[str, list[str]] = field(default_factory=dict)  # source key -> paths
    failed: dict[str, list[str]] = field(default_factory=dict)  # source key -> error lines
    bytes_downloaded: int = 0
    endpoints: EndpointPool | None = None  # who served what (None: nothing was planned)

    def endpoint_lines(self) -> list[str]:
        """Per endpoint: files and bytes served, and why it was demoted or left out (several endpoints only)."""
        return self.endpoints.served_lines() if self.endpoints is not None and self.endpoints.several else []

    @property
    def ok(self) -> bool:
        return not any(self.failed.values())


# -- downloading ------------------------------------------------------------------------------

class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None, rate_limited: bool = False,
                 slow: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited
        self.slow = slow  # not a failure: another endpoint is much faster


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
    def __init__(self, layout: Layout, options: FetchOptions, cache: HashCache, pool: EndpointPool) -> None:
        self.layout, self.options, self.cache, self.pool = layout, options, cache, pool
        self.headers = {ep.url: ep.headers() for ep in pool.endpoints}  # each endpoint gets its own token only
        self.timeout = _httpx.Timeout(options.timeout, connect=options.connect_timeout)
        self.limit = AdaptiveLimit(options.workers)
        self.bytes_downloaded = 0
        self._count_lock = threading.Lock()
        self.cancelled = threading.Event()  # set on Ctrl-C: workers stop at the next chunk

    def _stream_once(self, ep: Endpoint, source: Source, revision: str, remote: RemoteFile, part: Path, bar,
                     origin: set[str], avoid: set[str]) -> Digests:
        """One GET from `ep` (resuming from `part` if it holds bytes). Returns the digests of the whole
        file. `origin` collects the endpoints whose bytes are in `part`."""
        url = hf_hub_url(source.repo_id, remote.path, repo_type=source.repo_type, revision=revision,
                         endpoint=ep.url)
        have = part.stat().st_size if part.exists() else 0
        if have > remote.size:
            part.unlink()
            have = 0
        if not have:
            origin.clear()
        hasher = StreamHasher(remote.size, blob_sha1=not remote.lfs)
        if have:
            with open(part, "rb") as handle:  # re-hash what an earlier attempt already wrote
                while chunk := handle.read(READ_CHUNK * 4):
                    hasher.update(chunk)
        if have == remote.size and remote.size > 0:
            return hasher.digests()
        headers = dict(self.headers[ep.url])
        if have:
            headers["Range"] = f"bytes={have}-"
        session = get_session()
        self.pool.started(ep)
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
                    origin.clear()
                origin.add(ep.url)
                check_at = time.monotonic() + SWITCH_CHECK if self.pool.several else float("inf")
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
                        self.pool.received(ep, len(chunk))
                        with self._count_lock:
                            self.bytes_downloaded += len(chunk)
                        if time.monotonic() >= check_at:
                            check_at = time.monotonic() + SWITCH_CHECK
                            better = self.pool.better_than(source.key, ep, avoid)
                            if better is not None and remote.size - have > READ_CHUNK:
                                out.flush()
                                os.fsync(out.fileno())
                                raise _Retryable(f"{ep} is slow ({(self.pool.rate(ep) or 0) / 1e6:.1f} MB/s, "
                                                 f"{better} {(self.pool.rate(better) or 0) / 1e6:.1f} MB/s)",
                                                 slow=True)
                    out.flush()
                    os.fsync(out.fileno())
        except (_httpx.TransportError, _httpx.StreamError) as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc or 'connection problem'}") from exc
        finally:
            self.pool.stopped(ep)
        if have != remote.size:
            raise _Retryable(f"body ended after {have} of {remote.size} bytes")
        return hasher.digests()

    def download(self, source: Source, revision: str, remote: RemoteFile, bar=None) -> Digests:
        """Download, verify and place one file, from the best endpoint that can serve it.
        Raises DownloadError/IntegrityError when it can't."""
        final = self.layout.content_dir(source) / remote.path
        part = staging_path(self.layout, remote)
        part.parent.mkdir(parents=True, exist_ok=True)
        where = f"{source.repo_id}@{revision[:12]}:{remote.path}"
        by_url = {ep.url: ep for ep in self.pool.endpoints}
        alone = len(self.pool.usable(source.key)) == 1  # one endpoint: exactly the single-endpoint rules
        earlier = "an earlier run"
        origin: set[str] = {earlier} if part.exists() and part.stat().st_size else set()
        failed: dict[str, str] = {}  # this round: endpoint -> its last transient error
        refused: dict[str, str] = {}  # endpoints that answered 4xx for this file
        wrong: dict[str, str] = {}  # endpoints that served bytes with another hash
        tries = rounds = mismatches = 0
        delay: float | None = None
        while True:
            if self.cancelled.is_set():
                raise KeyboardInterrupt
            usable = self.pool.usable(source.key)
            live = [ep for ep in usable if ep.url not in refused and ep.url not in wrong]
            candidates = [ep for ep in live if ep.url not in failed]
            if not live:
                if wrong:
                    raise IntegrityError(f"{where}: every endpoint served bytes with another {remote.hash_kind} ("
                                         + ", ".join(f"{by_url[u]}: {h}" for u, h in wrong.items())
                                         + f"), the source of truth says {remote.hub_hash}; the file was not placed")
                raise DownloadError(f"{where}: no endpoint can serve it: "
                                    + "; ".join(f"{by_url[u]}: {why}" for u, why in refused.items()))
            if not candidates:  # every endpoint failed this file once: back off, then another round
                rounds += 1
                last = "; ".join(f"{by_url[u]}: {why}" for u, why in failed.items()) if len(failed) > 1 \
                    else next(iter(failed.values()))
                if rounds >= self.options.max_tries:
                    if len(failed) > 1:
                        raise DownloadError(f"{where}: gave up after {tries} tries on {len(failed)} endpoints; "
                                            f"last errors: {last}") from None
                    raise DownloadError(f"{where}: gave up after {tries} tries; last error: {last}") from None
                # The server's Retry-After is an instruction, not a hint: obey it (bounded), and
                # fall back to our own jittered exponential backoff only when it gives none.
                wait = (min(self.options.retry_after_max, delay) if delay is not None else
                        min(self.options.backoff_max,
                            random.uniform(0, self.options.backoff_base * 2 ** (rounds - 1))))
                log.warning("%s: %s; retry %d/%d in %.1fs", where, last, rounds, self.options.max_tries - 1, wait)
                if self.cancelled.wait(wait):
                    raise KeyboardInterrupt
                failed.clear()
                delay = None
                continue
            ep = candidates[0]
            tries += 1
            try:
                with self.limit:
                    digests = self._stream_once(ep, source, revision, remote, part, bar, origin,
                                                 set(failed) | set(refused) | set(wrong))
            except _Retryable as exc:
                if exc.rate_limited:
                    self.limit.back_off()
                if exc.retry_after is not None:
                    delay = max(delay or 0.0, exc.retry_after)
                failed[ep.url] = str(exc)
                following = [e for e in candidates if e.url not in failed]
                if following:
                    log.warning("%s: %s from %s; continuing from %s%s", where, exc, ep, following[0],
                                " (Range resume)" if part.exists() and part.stat().st_size else "")
                continue
            except HfHubHTTPError as exc:  # a definite answer (no such file, 4xx/5xx): not retried here
                first = str(exc).splitlines()[0]
                if isinstance(exc, EntryNotFoundError):
                    message = f"the Hub has no such file ({first})"
                else:
                    status = exc.response.status_code if exc.response is not None else "?"
                    message = f"HTTP {status}: {first}"
                if alone:
                    raise DownloadError(f"{where}: {message}") from None
                refused[ep.url] = message
                log.warning("%s: %s answers: %s", where, ep, message)
                continue
            if _matches(remote, digests):
                self.pool.served(ep, remote.size)
                break
            part.unlink(missing_ok=True)
            mismatches += 1
            got = digests.sha256 if remote.lfs else digests.blob_sha1
            if bar:
                bar.update(-remote.size)
            culprit = next(iter(origin)) if len(origin) == 1 and earlier not in origin else None
            origin.clear()
            if culprit is not None:
                self.pool.demote(by_url[culprit], f"it served {source.repo_id}:{remote.path} with {remote.hash_kind} "
                                                  f"{got}, the source of truth says {remote.hub_hash}")
            if alone:
                if mismatches >= 2:
                    raise IntegrityError(f"{where}: downloaded twice and both times the {remote.hash_kind} was "
                                         f"{got}, the Hub says {remote.hub_hash}; the file was not placed")
            elif culprit is not None:
                wrong[culprit] = got
            elif mismatches > len(usable) + 1:
                raise IntegrityError(f"{where}: downloaded {mismatches} times and never got the {remote.hash_kind} "
                                     f"{remote.hub_hash}; the file was not placed")
            log.warning("%s: %s mismatch (got %s, expected %s)%s; downloading again", where, remote.hash_kind,
                        got, remote.hub_hash, f" from {by_url[culprit]}" if culprit and not alone else "")
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


def probe_throughput(plans: list[SourcePlan], pool: EndpointPool, options: FetchOptions) -> None:
    """Rank the endpoints by throughput before the downloads start: each reads the first bytes of
    the largest needed file of a source it may serve, all at once."""
    if not pool.several:
        return
    targets = []
    for ep in pool.endpoints:
        choices = [(remote.size, plan, remote) for plan in plans if ep in pool.usable(plan.source.key)
                   for remote in plan.needed if remote.size > 0]
        if choices:
            _, plan, remote = max(choices, key=lambda c: c[0])
            targets.append((ep, hf_hub_url(plan.source.repo_id, remote.path, repo_type=plan.source.repo_type,
                                           revision=plan.revision, endpoint=ep.url), remote.size))
    measure_throughput(pool, targets, timeout=options.connect_timeout)


def run_downloads(layout: Layout, plans: list[SourcePlan], options: FetchOptions, cache: HashCache,
                  report: FetchReport, endpoints: EndpointPool) -> None:
    # Files with the same Hub hash (identical bytes) are downloaded once and copied: they would
    # otherwise share one staging file.
    groups: dict[str, list[tuple[SourcePlan, RemoteFile]]] = {}
    for plan in plans:
        for remote in plan.needed:
            groups.setdefault(remote.hub_hash, []).append((plan, remote))
    if not groups:
        return
    probe_throughput(plans, endpoints, options)
    downloader = Downloader(layout, options, cache, endpoints)
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
                             remote.path, human_bytes(remote.size), remote.hash_kind)
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


def fetch(layout: Layout, sources: list[Source], options: FetchOptions, cache: HashCache,
          lock: dict[str, LockedSource],
          on_plan: Callable[[list[SourcePlan]], None] | None = None) -> FetchReport:
    """Plan, check space, download what is missing, and update `lock` in place for every source
    that is now complete. The caller holds the run lock and writes the records.

    `on_plan(plans)` is called once the plan is known, before the first byte downloads (not on a
    dry run): the caller can start work that only needs to know what is coming."""
    pool = EndpointPool(options.endpoint_list())
    log.info("fetch: endpoint%s %s, sources %s%s%s", "s" if pool.several else "", ", ".join(map(str, pool.endpoints)),
             ",".join(s.key for s in sources), " (full mirrors)" if options.full else "",
             " (--locked)" if options.locked else "")
    plans, errors, found = make_plans(layout, sources, options, cache, lock, pool)
    if pool.several or options.dry_run:
        log_endpoints(pool, sources, found, plans)
    need, free = check_disk_space(layout, plans, enforce=not options.dry_run)
    log_plan(layout, plans, need, free)
    report = FetchReport(plans, failed={key: [message] for key, message in errors.items()}, endpoints=pool)
    if options.dry_run:
        return report
    if on_plan is not None:
        on_plan(plans)
    for plan in plans:
        remove_unexpected(layout, plan, cache)
    run_downloads(layout, plans, options, cache, report, pool)
    if pool.several:
        for line in pool.served_lines():
            log.info("endpoint %s", line)
    for plan in plans:
        if not report.failed.get(plan.source.key):
            lock[plan.source.key] = locked_source(plan)
    return report
