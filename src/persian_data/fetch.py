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

One file's journey (2 and 3) is download.py's; this module plans, runs the downloads in parallel
(identical files once), and updates the lock.

Why not `hf_hub_download`/`snapshot_download`: with `local_dir` they keep bookkeeping in
`local_dir/.cache/huggingface` (inside the data folders the specification counts), verify
sizes only, need a HEAD per file, and cannot hash while streaming.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from huggingface_hub import hf_hub_url

from .catalog import Source
from .download import Downloader
from .endpoints import EndpointPool, measure_throughput
from .errors import DownloadError
from .integrity import Digests, HashCache, LockedFile, LockedSource
from .layout import Layout
from .plan import (  # noqa: F401 - FetchOptions, RemoteFile, SourcePlan, safe_relpath are this module's API too
    FetchOptions,
    RemoteFile,
    SourcePlan,
    check_disk_space,
    log_endpoints,
    log_plan,
    make_plans,
    remove_unexpected,
    safe_relpath,
)
from .progress import human_bytes, progress

log = logging.getLogger("persian_data.fetch")

SOCKET_READ = 1024 * 1024  # bytes one recv() of a download may return (httpcore's default: 64 KiB)


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
