"""The plan: which files each source needs, at which commit, and which endpoints may supply them.

For each source every endpoint is asked at once which commit the revision is
(`endpoints.resolve_revisions`). The first endpoint in the order given that answers is the
source of truth (with `--locked`, the lock is): its commit and its tree (every file's size and
Hub hash: sha256 for LFS files, git blob sha1 otherwise) decide what the files must be. Another
endpoint supplies bytes for that source only if it resolves the same commit; one that resolves
another commit, or cannot be reached, is left out for that source and named in the log.

Then each planned file already in the layout is checked through the hash cache (path, size,
mtime, inode): unchanged files are never re-read, and only missing or wrong ones are needed.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from huggingface_hub import HfApi
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import filter_repo_objects

from .catalog import Source
from .endpoints import Endpoint, EndpointPool, Resolution, describe, endpoint_list, resolve_revisions
from .errors import DiskSpaceError, HostilePathError, PlanError
from .integrity import Digests, HashCache, LockedSource
from .layout import Layout
from .progress import human_bytes

try:  # huggingface_hub 2.x talks through httpx2; keep working on an httpx-based release too.
    import httpx2 as _httpx
except ImportError:  # pragma: no cover
    import httpx as _httpx  # type: ignore[no-redef]

log = logging.getLogger("persian_data.fetch")

DISK_MARGIN = 64 * 1024 * 1024  # keep this much free beyond the plan


@dataclass(frozen=True)
class FetchOptions:
    endpoint: str | None = None  # one endpoint (the library's way to name one); see `endpoints`
    token: str | None = None  # None: HF_TOKEN / the huggingface_hub login (see endpoints.endpoint_list)
    endpoints: tuple[str, ...] = ()  # several (--endpoint repeated); () : `endpoint`, else the environment
    endpoint_tokens: tuple[tuple[str, str], ...] = ()  # (url, token) pairs; token "" sends none
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

    def endpoint_list(self) -> list[Endpoint]:
        urls = self.endpoints or ((self.endpoint,) if self.endpoint else ())
        return endpoint_list(urls, self.token, self.endpoint_tokens)

    def resolved_endpoint(self) -> str:
        return self.endpoint_list()[0].url

    def resolved_token(self) -> str | None:
        return self.token or os.environ.get("HF_TOKEN") or None

    def secrets(self) -> list[str]:
        """Every token and URL password these options may send: to be redacted from logs and errors."""
        found = [self.resolved_token() or ""] + [token for _, token in self.endpoint_tokens]
        try:
            found += [secret for ep in self.endpoint_list() for secret in ep.secrets()]
        except PlanError:
            pass
        return [s for s in found if s]


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
    truth: Endpoint | None = None  # the endpoint whose commit and hashes the plan holds

    @property
    def bytes_total(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def bytes_needed(self) -> int:
        return sum(f.size for f in self.needed)


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


def list_tree(api: HfApi, source: Source, sha: str, patterns: tuple[str, ...] | None,
              endpoint: str) -> list[RemoteFile]:
    """The files matching `patterns` at commit `sha`, with their sizes and Hub hashes."""
    try:
        entries = [e for e in api.list_repo_tree(source.repo_id, repo_type=source.repo_type, revision=sha,
                                                 recursive=True) if hasattr(e, "blob_id")]
    except Exception as exc:  # noqa: BLE001 - every Hub failure becomes one clear PlanError
        raise _hub_error(exc, source, sha, endpoint) from exc
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
    return sorted(files, key=lambda f: f.path)


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


def _transient(exc: BaseException | None) -> bool:
    if isinstance(exc, (_httpx.TransportError, _httpx.StreamError)):
        return True
    if isinstance(exc, HfHubHTTPError) and not isinstance(exc, (RepositoryNotFoundError, RevisionNotFoundError,
                                                                 EntryNotFoundError, GatedRepoError)):
        return exc.response is not None and exc.response.status_code in (408, 429, 500, 502, 503, 504)
    return False


def _backoff(options: FetchOptions, attempt: int) -> float:
    return min(options.backoff_max, random.uniform(0, options.backoff_base * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Wanted:
    """What one source asks for: a revision (a branch, or the locked commit) and a selection."""
    source: Source
    revision: str
    patterns: tuple[str, ...] | None
    locked: LockedSource | None


def wanted(layout: Layout, source: Source, options: FetchOptions, lock: dict[str, LockedSource]) -> Wanted:
    if not options.locked:
        return Wanted(source, source.revision, source.patterns(options.full), None)
    locked = lock.get(source.key)
    if locked is None:
        raise PlanError(f"--locked: the lock file has no entry for {source.key!r} "
                        f"({layout.relative(layout.lock_file)}); run fetch without --locked first")
    return Wanted(source, locked.revision, locked.patterns, locked)


def resolve_all(pool: EndpointPool, wants: list[Wanted], options: FetchOptions) -> dict[tuple[str, str], Resolution]:
    """Every endpoint's commit for every source, asked at once; a source that no endpoint answered
    because of a dead link, a 5xx or a 429 is asked again with backoff (not a missing repo)."""
    found: dict[tuple[str, str], Resolution] = {}
    todo = list(wants)
    for attempt in range(1, options.max_tries + 1):
        found.update(resolve_revisions(pool.endpoints, [(w.source.key, w.source.repo_id, w.source.repo_type,
                                                         w.revision) for w in todo], timeout=options.timeout))
        retry = [w for w in todo if not any(found[(ep.url, w.source.key)].sha for ep in pool.endpoints)
                 and any(_transient(found[(ep.url, w.source.key)].error) for ep in pool.endpoints)]
        if not retry or attempt == options.max_tries:
            break
        wait = _backoff(options, attempt)
        for w in retry:
            causes = "; ".join(f"{ep}: {describe(found[(ep.url, w.source.key)].error)}" for ep in pool.endpoints)
            log.warning("%s: %s; retry %d/%d in %.1fs", w.source.key, causes, attempt, options.max_tries - 1, wait)
        time.sleep(wait)
        todo = retry
    for (url, _), res in found.items():
        if res.sha and res.seconds < pool.latency.get(url, float("inf")):
            pool.latency[url] = res.seconds
    return found


def _list_tree_with_retries(ep: Endpoint, source: Source, sha: str, patterns, options: FetchOptions):
    api = ep.api()
    for attempt in range(1, options.max_tries + 1):
        try:
            return list_tree(api, source, sha, patterns, ep.label)
        except PlanError as exc:
            if attempt == options.max_tries or not _transient(exc.__cause__):
                raise
            wait = _backoff(options, attempt)
            log.warning("%s: %s; retry %d/%d in %.1fs", source.key, exc, attempt, options.max_tries - 1, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def source_of_truth(pool: EndpointPool, want: Wanted, found: dict[tuple[str, str], Resolution],
                    options: FetchOptions) -> tuple[Endpoint, str, list[RemoteFile]]:
    """The first endpoint (in the order given) that answers the metadata decides commit and hashes;
    the others may supply bytes for this source only if they resolve the same commit."""
    source, key = want.source, want.source.key
    answered = [ep for ep in pool.endpoints if found[(ep.url, key)].sha]
    if not answered:
        if len(pool.endpoints) == 1:
            [ep] = pool.endpoints
            raise _hub_error(found[(ep.url, key)].error, source, want.revision, ep.label)
        causes = "; ".join(f"{ep}: {describe(found[(ep.url, key)].error)}" for ep in pool.endpoints)
        raise PlanError(f"no endpoint has revision {want.revision!r} of {source.repo_type} {source.repo_id!r}: "
                        f"{causes}")
    error: PlanError | None = None
    for ep in answered:
        sha = found[(ep.url, key)].sha
        try:
            files = _list_tree_with_retries(ep, source, sha, want.patterns, options)
            break
        except PlanError as exc:
            error = exc
            pool.exclude(key, ep, f"its file list failed: {exc}")
            if exc.__cause__ is None or isinstance(exc, HostilePathError):
                raise  # what the truth says is wrong: don't look for a more agreeable endpoint
    else:
        raise error  # type: ignore[misc]
    truth = ep
    for other in pool.endpoints:
        res = found[(other.url, key)]
        if other is truth or other.url in pool.excluded.get(key, {}):
            continue
        if res.sha is None:
            why = (f"does not have commit {want.revision}" if want.locked else f"cannot resolve {want.revision!r}")
            pool.exclude(key, other, f"{why} ({describe(res.error)})")
        elif res.sha != sha:
            pool.exclude(key, other, f"resolves {want.revision!r} to commit {res.sha}, the source of truth "
                                     f"({truth}) to {sha}")
        else:
            continue
        log.warning("%s: endpoint %s supplies no bytes for this source: it %s", key, other,
                    pool.excluded[key][other.url])
    return truth, sha, files


def make_plans(layout: Layout, sources: list[Source], options: FetchOptions, cache: HashCache,
               lock: dict[str, LockedSource], pool: EndpointPool
               ) -> tuple[list[SourcePlan], dict[str, str], dict[tuple[str, str], Resolution]]:
    """One plan per source; a source whose plan fails is reported and the others go on. Raises
    PlanError when no endpoint could be reached at all."""
    plans, errors, wants = [], {}, []
    for source in sources:
        try:
            wants.append(wanted(layout, source, options, lock))
        except PlanError as exc:
            log.error("plan failed for %s: %s", source.key, exc)
            errors[source.key] = str(exc)
    # The round trips (repo info + tree per source) dominate a rerun: ask every endpoint for every
    # source at once.
    found = resolve_all(pool, wants, options)
    if found and all(res.unreachable for res in found.values()):
        causes = {ep.url: describe(next(found[(ep.url, w.source.key)].error for w in wants)) for ep in pool.endpoints}
        raise PlanError("no endpoint could be reached: " + "; ".join(f"{ep} ({causes[ep.url]})" for ep in pool.endpoints))

    def plan_one(want: Wanted) -> SourcePlan | PlanError:
        try:
            truth, sha, files = source_of_truth(pool, want, found, options)
            if want.locked is not None:
                locked = want.locked
                files = [f for f in files if f.path in locked.files]
                drift = sorted(set(locked.files) - {f.path for f in files}) + [
                    f.path for f in files if locked.files[f.path].hub_hash != f.hub_hash]
                if drift:
                    raise PlanError(f"--locked: {want.source.key} at {sha} differs from the lock for {drift[:5]}")
            plan = SourcePlan(want.source, sha, files, want.patterns, truth=truth)
            check_local(layout, plan, cache)
            return plan
        except PlanError as exc:
            if want.locked is not None and not str(exc).startswith("--locked"):
                return PlanError(f"--locked: cannot reproduce {want.source.key} at commit {want.revision}: {exc}")
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(wants)), thread_name_prefix="plan") as workers:
        for want, result in zip(wants, workers.map(plan_one, wants)):
            if isinstance(result, PlanError):
                log.error("plan failed for %s: %s", want.source.key, result)
                errors[want.source.key] = str(result)
            else:
                plans.append(result)
    return plans, errors, found


def log_endpoints(pool: EndpointPool, sources: list[Source], found: dict[tuple[str, str], Resolution],
                  plans: list[SourcePlan]) -> None:
    """One line per endpoint: reachable or not (and why), its latency, the commit it resolves per source."""
    truths = {plan.source.key: plan.truth.url for plan in plans if plan.truth is not None}
    for ep in pool.endpoints:
        answers = [(s.key, found.get((ep.url, s.key))) for s in sources if (ep.url, s.key) in found]
        if answers and all(res.unreachable for _, res in answers):
            log.info("endpoint %s: unreachable (%s)", ep, describe(answers[0][1].error))
            continue
        parts = []
        for key, res in answers:
            if res.sha:
                tag = " (source of truth)" if truths.get(key) == ep.url else (
                    " (not used)" if ep.url in pool.excluded.get(key, {}) else "")
                parts.append(f"{key} {res.sha[:12]}{tag}")
            else:
                parts.append(f"{key} {describe(res.error)}")
        latency = pool.latency.get(ep.url)
        log.info("endpoint %s: reachable%s; %s", ep, f", {latency * 1000:.0f} ms" if latency is not None else "",
                 "; ".join(parts))


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
            log.warning("the plan needs %s but only %s is free", human_bytes(need), human_bytes(free))
            return need, free
        raise DiskSpaceError(f"not enough free space under {layout.root}: the plan needs {human_bytes(need)} "
                             f"(+{human_bytes(DISK_MARGIN)} margin), {human_bytes(free)} is free")
    return need, free




def staging_path(layout: Layout, remote: RemoteFile) -> Path:
    # Keyed by content hash: a partial download resumes even across commits and sources.
    return layout.staging_dir / f"{remote.hub_hash}.part"


def log_plan(layout: Layout, plans: list[SourcePlan], need: int, free: int) -> None:
    log.info("plan (%d source(s)):", len(plans))
    for plan in plans:
        log.info("  %-12s %s@%s  %d file(s), %s; in place %d, to fetch %d (%s)%s", plan.source.key,
                 plan.source.repo_id, plan.revision[:12], len(plan.files), human_bytes(plan.bytes_total),
                 len(plan.present), len(plan.needed), human_bytes(plan.bytes_needed),
                 f", {len(plan.unexpected)} unexpected" if plan.unexpected else "")
    log.info("  to download: %s; free disk: %s", human_bytes(need), human_bytes(free))


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

