"""One file's journey (see fetch.py): streamed from the best endpoint that can serve it into
`.persian-data/staging/<hash>.part`, hashed while it streams, resumed on another endpoint after a
transient failure, and placed by an atomic rename only when its hash is the source of truth's.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import hf_hub_url
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError
from huggingface_hub.utils import get_session, hf_raise_for_status

from .atomic import EarlyWriteback
from .endpoints import Endpoint, EndpointPool
from .errors import DownloadError, IntegrityError, PersianDataError
from .integrity import Digests, HashCache, StreamHasher
from .layout import Layout
from .plan import FetchOptions, RemoteFile, _matches, staging_path
from .source import Source

try:  # huggingface_hub 2.x talks through httpx2; keep working on an httpx-based release too.
    import httpx2 as _httpx
except ImportError:  # pragma: no cover
    import httpx as _httpx  # type: ignore[no-redef]

log = logging.getLogger("persian_data.fetch")

READ_CHUNK = 1024 * 1024
SWITCH_CHECK = 1.0  # seconds between checks whether a download should move to a faster endpoint


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
        tries = _Tries(where=f"{source.repo_id}@{revision[:12]}:{remote.path}", remote=remote,
                       by_url={ep.url: ep for ep in self.pool.endpoints},
                       alone=len(self.pool.usable(source.key)) == 1,  # one endpoint: the single-endpoint rules
                       origin={EARLIER} if part.exists() and part.stat().st_size else set())
        while True:
            if self.cancelled.is_set():
                raise KeyboardInterrupt
            usable = self.pool.usable(source.key)
            live = [ep for ep in usable if ep.url not in tries.refused and ep.url not in tries.wrong]
            candidates = [ep for ep in live if ep.url not in tries.failed]
            if not live:
                raise tries.none_can_serve()
            if not candidates:  # every endpoint failed this file once: back off, then another round
                self._next_round(tries)
                continue
            ep = candidates[0]
            tries.count += 1
            try:
                with self.limit:
                    digests = self._stream_once(ep, source, revision, remote, part, bar, tries.origin,
                                                 set(tries.failed) | set(tries.refused) | set(tries.wrong))
            except _Retryable as exc:
                self._failed_once(tries, ep, exc, candidates, part)
                continue
            except HfHubHTTPError as exc:  # a definite answer (no such file, 4xx/5xx): not retried here
                self._refused(tries, ep, exc)
                continue
            if _matches(remote, digests):
                self.pool.served(ep, remote.size)
                break
            self._mismatch(tries, source, digests, part, bar, len(usable))
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.is_dir() and not final.is_symlink():
            raise DownloadError(f"{tries.where}: {self.layout.relative(final)} is a folder; remove it and rerun")
        os.replace(part, final)
        self.cache.put(final, digests)
        return digests

    def _next_round(self, tries: _Tries) -> None:
        """Every endpoint failed the file this round: give up after max_tries rounds, else wait (the
        server's Retry-After, bounded, or a jittered exponential backoff) and clear the round."""
        tries.rounds += 1
        failed = tries.failed
        last = "; ".join(f"{tries.by_url[u]}: {why}" for u, why in failed.items()) if len(failed) > 1 \
            else next(iter(failed.values()))
        if tries.rounds >= self.options.max_tries:
            if len(failed) > 1:
                raise DownloadError(f"{tries.where}: gave up after {tries.count} tries on {len(failed)} endpoints; "
                                    f"last errors: {last}") from None
            raise DownloadError(f"{tries.where}: gave up after {tries.count} tries; last error: {last}") from None
        # The server's Retry-After is an instruction, not a hint: obey it (bounded), and
        # fall back to our own jittered exponential backoff only when it gives none.
        wait = (min(self.options.retry_after_max, tries.delay) if tries.delay is not None else
                min(self.options.backoff_max,
                    random.uniform(0, self.options.backoff_base * 2 ** (tries.rounds - 1))))
        log.warning("%s: %s; retry %d/%d in %.1fs", tries.where, last, tries.rounds, self.options.max_tries - 1, wait)
        if self.cancelled.wait(wait):
            raise KeyboardInterrupt
        failed.clear()
        tries.delay = None

    def _failed_once(self, tries: _Tries, ep: Endpoint, exc: _Retryable, candidates: list[Endpoint],
                     part: Path) -> None:
        """A transient failure: note it (and the server's wish to be left alone); the next endpoint goes on."""
        if exc.rate_limited:
            self.limit.back_off()
        if exc.retry_after is not None:
            tries.delay = max(tries.delay or 0.0, exc.retry_after)
        tries.failed[ep.url] = str(exc)
        following = [e for e in candidates if e.url not in tries.failed]
        if following:
            log.warning("%s: %s from %s; continuing from %s%s", tries.where, exc, ep, following[0],
                        " (Range resume)" if part.exists() and part.stat().st_size else "")

    def _refused(self, tries: _Tries, ep: Endpoint, exc: HfHubHTTPError) -> None:
        """A definite answer from one endpoint: the end when it is the only one, else the others go on."""
        first = str(exc).splitlines()[0]
        if isinstance(exc, EntryNotFoundError):
            message = f"the Hub has no such file ({first})"
        else:
            status = exc.response.status_code if exc.response is not None else "?"
            message = f"HTTP {status}: {first}"
        if tries.alone:
            raise DownloadError(f"{tries.where}: {message}") from None
        tries.refused[ep.url] = message
        log.warning("%s: %s answers: %s", tries.where, ep, message)

    def _mismatch(self, tries: _Tries, source: Source, digests: Digests, part: Path, bar, usable: int) -> None:
        """Bytes with another hash: dropped; the endpoint that served them all is demoted and left out.
        Gives up after a second mismatch from the only endpoint, or more mismatches than endpoints + 1."""
        remote = tries.remote
        part.unlink(missing_ok=True)
        tries.mismatches += 1
        got = digests.sha256 if remote.lfs else digests.blob_sha1
        if bar:
            bar.update(-remote.size)
        origin = tries.origin
        culprit = next(iter(origin)) if len(origin) == 1 and EARLIER not in origin else None
        origin.clear()
        if culprit is not None:
            self.pool.demote(tries.by_url[culprit], f"it served {source.repo_id}:{remote.path} with "
                                                    f"{remote.hash_kind} {got}, the source of truth says {remote.hub_hash}")
        if tries.alone:
            if tries.mismatches >= 2:
                raise IntegrityError(f"{tries.where}: downloaded twice and both times the {remote.hash_kind} was "
                                     f"{got}, the Hub says {remote.hub_hash}; the file was not placed")
        elif culprit is not None:
            tries.wrong[culprit] = got
        elif tries.mismatches > usable + 1:
            raise IntegrityError(f"{tries.where}: downloaded {tries.mismatches} times and never got the "
                                 f"{remote.hash_kind} {remote.hub_hash}; the file was not placed")
        log.warning("%s: %s mismatch (got %s, expected %s)%s; downloading again", tries.where, remote.hash_kind,
                    got, remote.hub_hash, f" from {tries.by_url[culprit]}" if culprit and not tries.alone else "")


EARLIER = "an earlier run"  # where the bytes already in a staging file came from


@dataclass
class _Tries:
    """One file's attempts across the endpoints."""

    where: str  # repo@revision:path, for messages
    remote: RemoteFile
    by_url: dict[str, Endpoint]
    alone: bool  # only one endpoint may serve the source
    origin: set[str]  # the endpoints (or EARLIER) whose bytes are in the staging file
    failed: dict[str, str] = field(default_factory=dict)  # this round: endpoint -> its last transient error
    refused: dict[str, str] = field(default_factory=dict)  # endpoints that answered 4xx for this file
    wrong: dict[str, str] = field(default_factory=dict)  # endpoints that served bytes with another hash
    count: int = 0
    rounds: int = 0
    mismatches: int = 0
    delay: float | None = None  # the longest Retry-After of this round

    def none_can_serve(self) -> PersianDataError:
        if self.wrong:
            return IntegrityError(f"{self.where}: every endpoint served bytes with another {self.remote.hash_kind} ("
                                  + ", ".join(f"{self.by_url[u]}: {h}" for u, h in self.wrong.items())
                                  + f"), the source of truth says {self.remote.hub_hash}; the file was not placed")
        return DownloadError(f"{self.where}: no endpoint can serve it: "
                             + "; ".join(f"{self.by_url[u]}: {why}" for u, why in self.refused.items()))
