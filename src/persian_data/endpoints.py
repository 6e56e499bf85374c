"""Several Hub endpoints (the Hub and mirrors): which ones, their tokens, and how good each is.

- `endpoint_list` turns the settings into `Endpoint`s: `--endpoint` (repeatable), else the
  comma/space separated `PERSIAN_DATA_ENDPOINTS`, else `HF_ENDPOINT`, else the public Hub. Each
  endpoint carries its own token: a per-endpoint token (`--endpoint-token URL=TOKEN`, empty: none)
  wins over `--token`/`HF_TOKEN`, which applies to every endpoint; without either, huggingface_hub's
  stored login is sent to the public Hub only, never to a mirror.
- `resolve_revisions` asks every endpoint, concurrently, which commit a revision is for each source
  (the metadata probe: reachability, latency, resolved commit).
- `EndpointPool` is the run's view of the endpoints: a ranking (measured throughput, else probe
  latency, else the order given), endpoints demoted for serving wrong bytes, endpoints excluded for
  a source (another commit, unreachable), and how many files and bytes each one served.
- `measure_throughput` reads the first bytes of a file from each endpoint at once, so the ranking
  starts from throughput rather than from the order the endpoints were listed in.

Nothing here decides what a file's bytes must be: the source of truth is chosen by the fetch
(`fetch.make_plans`) and every byte is verified against it there.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Sequence
from urllib.parse import urlsplit, urlunsplit

from huggingface_hub import HfApi
from huggingface_hub.utils import build_hf_headers, get_session

from . import __version__
from .errors import EndpointSettingError, PlanError
from .progress import human_bytes

try:  # huggingface_hub 2.x talks through httpx2
    import httpx2 as _httpx
except ImportError:  # pragma: no cover
    import httpx as _httpx  # type: ignore[no-redef]

log = logging.getLogger("persian_data.fetch")

DEFAULT_ENDPOINT = "https://huggingface.co"
ENV_ENDPOINTS = "PERSIAN_DATA_ENDPOINTS"
PROBE_BYTES = 1024 * 1024  # read this much of one file from each endpoint to compare throughput
PROBE_MAX_SECONDS = 2.0
SWITCH_FACTOR = 3.0  # a download moves to an endpoint this many times faster than its own
RATE_WINDOW = 2.0  # seconds of recent traffic that rate an endpoint busy for at least that long


@dataclass(frozen=True)
class Endpoint:
    url: str  # no trailing slash
    token: str | bool | None  # str: send it; False: send none; None: huggingface_hub's own login

    @property
    def label(self) -> str:
        """The URL as it may appear in logs: without any user:password part."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))

    def __str__(self) -> str:
        return self.label

    def headers(self) -> dict[str, str]:
        return build_hf_headers(token=self.token, library_name="persian-data", library_version=__version__)

    def api(self) -> HfApi:
        return HfApi(endpoint=self.url, token=self.token, library_name="persian-data", library_version=__version__)

    def secrets(self) -> list[str]:
        found = [self.token] if isinstance(self.token, str) else []
        password = urlsplit(self.url).password
        return found + ([password] if password else [])


def _clean_url(url: str, where: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointSettingError(f"{where}: {Endpoint(url, None).label or url!r} is not an http(s) URL")
    return url


def endpoint_list(urls: Sequence[str] = (), token: str | None = None,
                  endpoint_tokens: Iterable[tuple[str, str]] = (), environ=None) -> list[Endpoint]:
    """The endpoints to use, in the order given, each with the token it may be sent."""
    environ = os.environ if environ is None else environ
    if urls:
        raw, where = list(urls), "--endpoint"
    elif environ.get(ENV_ENDPOINTS, "").strip():
        raw, where = re.split(r"[\s,]+", environ[ENV_ENDPOINTS].strip()), ENV_ENDPOINTS
    elif environ.get("HF_ENDPOINT"):
        raw, where = [environ["HF_ENDPOINT"]], "HF_ENDPOINT"
    else:
        raw, where = [DEFAULT_ENDPOINT], "default"
    cleaned: list[str] = []
    for url in raw:
        if url and (url := _clean_url(url, where)) not in cleaned:
            cleaned.append(url)
    own: dict[str, str] = {}
    for url, value in endpoint_tokens:
        url = _clean_url(url, "--endpoint-token")
        if url not in cleaned:
            raise EndpointSettingError(f"--endpoint-token is given for {Endpoint(url, None).label}, which is not one of the "
                            f"endpoints ({', '.join(Endpoint(u, None).label for u in cleaned)})")
        own[url] = value
    shared = token or environ.get("HF_TOKEN") or None
    out = []
    for url in cleaned:
        if url in own:
            chosen: str | bool | None = own[url] or False
        elif shared:
            chosen = shared
        else:  # the stored login belongs to the Hub: never hand it to a mirror
            chosen = None if url == DEFAULT_ENDPOINT else False
        out.append(Endpoint(url, chosen))
    return out


def parse_endpoint_token(value: str) -> tuple[str, str]:
    """`URL=TOKEN` (an empty TOKEN: send no token to that endpoint)."""
    url, sep, token = value.partition("=")
    if not sep:
        raise EndpointSettingError("--endpoint-token takes URL=TOKEN (URL=, with nothing after it, sends no token)")
    return url, token


# -- the metadata probe ------------------------------------------------------------------------

@dataclass
class Resolution:
    """One endpoint's answer for one source: the commit a revision resolves to, or why not."""
    sha: str | None
    error: BaseException | None
    seconds: float

    @property
    def unreachable(self) -> bool:
        return isinstance(self.error, _httpx.TransportError)


def describe(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    first = (str(exc).splitlines() or [""])[0]
    if status is not None:
        return f"HTTP {status}: {first}"[:300]
    return f"{type(exc).__name__}: {first or 'no answer'}"[:300]


def resolve_revisions(endpoints: Sequence[Endpoint], wanted: Sequence[tuple[str, str, str, str]],
                      timeout: float | None = None) -> dict[tuple[str, str], Resolution]:
    """For each (endpoint, source key) the commit `revision` resolves to. `wanted` holds
    (key, repo_id, repo_type, revision); every endpoint is asked for every source at once."""
    apis = {ep.url: ep.api() for ep in endpoints}

    def ask(job: tuple[Endpoint, tuple[str, str, str, str]]) -> tuple[tuple[str, str], Resolution]:
        ep, (key, repo_id, repo_type, revision) = job
        started = time.monotonic()
        try:
            info = apis[ep.url].repo_info(repo_id, repo_type=repo_type, revision=revision, timeout=timeout)
            if not info.sha:
                raise PlanError(f"{repo_id}: {ep} did not report a commit sha for {revision!r}")
            return (ep.url, key), Resolution(info.sha, None, time.monotonic() - started)
        except Exception as exc:  # noqa: BLE001 - reported per endpoint, judged by the caller
            return (ep.url, key), Resolution(None, exc, time.monotonic() - started)

    jobs = [(ep, w) for ep in endpoints for w in wanted]
    if not jobs:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(jobs)), thread_name_prefix="probe") as pool:
        return dict(pool.map(ask, jobs))


# -- the run's view of the endpoints -----------------------------------------------------------

@dataclass
class _Meter:
    """Bytes an endpoint delivered over the time it was busy (at least one download running):
    its aggregate throughput, whatever the number of parallel downloads. Once it has been busy for
    RATE_WINDOW seconds in a row, the rate is that of the last RATE_WINDOW seconds, so a link that
    gets slower during the run is noticed within seconds."""
    bytes: int = 0
    busy: float = 0.0
    active: int = 0
    since: float = 0.0
    files: int = 0
    served_bytes: int = 0  # bytes of the files it completed
    recent: deque = field(default_factory=deque)  # (time, bytes) of the last RATE_WINDOW seconds
    recent_bytes: int = 0  # their sum

    def _forget_before(self, when: float) -> None:
        while self.recent and self.recent[0][0] < when:
            self.recent_bytes -= self.recent.popleft()[1]

    def add(self, n: int, now: float) -> None:
        self.bytes += n
        self.recent.append((now, n))
        self.recent_bytes += n
        self._forget_before(now - RATE_WINDOW)

    def rate(self, now: float) -> float | None:
        if self.active and now - self.since >= RATE_WINDOW:
            self._forget_before(now - RATE_WINDOW)
            return self.recent_bytes / RATE_WINDOW
        busy = self.busy + (now - self.since if self.active else 0.0)
        return self.bytes / busy if busy > 0.05 and self.bytes else None


@dataclass
class EndpointPool:
    endpoints: list[Endpoint]
    latency: dict[str, float] = field(default_factory=dict)
    demoted: dict[str, str] = field(default_factory=dict)  # url -> why
    excluded: dict[str, dict[str, str]] = field(default_factory=dict)  # source key -> url -> why
    probed: dict[str, float] = field(default_factory=dict)  # url -> bytes/s of the start probe

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._meters = {ep.url: _Meter() for ep in self.endpoints}

    @property
    def several(self) -> bool:
        return len(self.endpoints) > 1

    def exclude(self, key: str, ep: Endpoint, why: str) -> None:
        self.excluded.setdefault(key, {})[ep.url] = why

    def usable(self, key: str) -> list[Endpoint]:
        """Endpoints that may supply bytes for source `key`, best first; demoted ones last."""
        now = time.monotonic()
        order = {ep.url: i for i, ep in enumerate(self.endpoints)}
        banned = self.excluded.get(key, {})

        def rank(ep: Endpoint):
            rate = self.rate(ep, now)
            return (ep.url in self.demoted, rate is None, -(rate or 0.0), self.latency.get(ep.url, float("inf")),
                    order[ep.url])

        return sorted((ep for ep in self.endpoints if ep.url not in banned), key=rank)

    def rate(self, ep: Endpoint, now: float | None = None) -> float | None:
        with self._lock:
            measured = self._meters[ep.url].rate(now or time.monotonic())
        return measured if measured is not None else self.probed.get(ep.url)

    def demote(self, ep: Endpoint, why: str) -> None:
        with self._lock:
            first = ep.url not in self.demoted
            self.demoted.setdefault(ep.url, why)
        if first and self.several:
            log.error("endpoint %s demoted for the rest of this run: %s", ep, why)

    def better_than(self, key: str, ep: Endpoint, avoid: set[str]) -> Endpoint | None:
        """An endpoint for `key` much faster than `ep` (SWITCH_FACTOR), if `ep` has a measured rate."""
        now = time.monotonic()
        own = self.rate(ep, now)
        if own is None:
            return None
        for other in self.usable(key):
            if other.url == ep.url or other.url in avoid or other.url in self.demoted:
                continue
            rate = self.rate(other, now)
            if rate is not None and rate > SWITCH_FACTOR * own:
                return other
        return None

    # metering, called by the downloads
    def started(self, ep: Endpoint) -> None:
        with self._lock:
            meter = self._meters[ep.url]
            if not meter.active:
                meter.since = time.monotonic()
            meter.active += 1

    def stopped(self, ep: Endpoint) -> None:
        with self._lock:
            meter = self._meters[ep.url]
            meter.active -= 1
            if not meter.active:
                meter.busy += time.monotonic() - meter.since

    def received(self, ep: Endpoint, n: int) -> None:
        with self._lock:
            self._meters[ep.url].add(n, time.monotonic())

    def served(self, ep: Endpoint, size: int) -> None:
        with self._lock:
            meter = self._meters[ep.url]
            meter.files += 1
            meter.served_bytes += size

    def served_lines(self) -> list[str]:
        """One line per endpoint: files and bytes it served, and why it was demoted or skipped."""
        lines = []
        for ep in self.endpoints:
            meter = self._meters[ep.url]
            notes = []
            if ep.url in self.demoted:
                notes.append(f"demoted: {self.demoted[ep.url]}")
            by_reason: dict[str, list[str]] = {}
            for key, whys in sorted(self.excluded.items()):
                if ep.url in whys:
                    by_reason.setdefault(whys[ep.url], []).append(key)
            notes += [f"not used for {', '.join(keys)}: {why}" for why, keys in by_reason.items()]
            line = (f"{ep}: {meter.files} file(s), {human_bytes(meter.served_bytes)} served ({meter.served_bytes} bytes; "
                    f"{human_bytes(meter.bytes)} received)")
            lines.append(line + ("; " + "; ".join(notes) if notes else ""))
        return lines


# -- the throughput probe ----------------------------------------------------------------------

def measure_throughput(pool: EndpointPool, targets: list[tuple[Endpoint, str, int]], timeout: float,
                       nbytes: int = PROBE_BYTES, cap: float = PROBE_MAX_SECONDS) -> None:
    """Read the first `nbytes` of a file (url, size) from each endpoint at once; store bytes/s in
    `pool.probed`. The probe ends soon after the first endpoint is done (an endpoint still reading
    then is rated by what it got so far, one that sent nothing is not rated), and after `cap`
    seconds at most: a stalled endpoint never holds the run (its reader is left to finish alone)."""
    if len(targets) < 2:
        return
    session = get_session()
    started = time.monotonic()
    stop_at = [started + cap]
    got: dict[str, tuple[int, float]] = {}  # url -> (bytes so far, seconds from the request to the last byte)
    began: dict[str, float] = {}
    finished: set[str] = set()

    def read(target: tuple[Endpoint, str, int]) -> None:
        ep, url, size = target
        want = min(nbytes, size)
        have = 0
        headers = {**ep.headers(), "Range": f"bytes=0-{want - 1}"}
        t0 = began[ep.url] = time.monotonic()  # from the request: a small probe is mostly latency, for every endpoint
        try:
            with session.stream("GET", url, headers=headers, timeout=_httpx.Timeout(timeout, connect=timeout),
                                follow_redirects=True) as resp:
                if resp.status_code not in (200, 206):
                    return
                for chunk in resp.iter_bytes():
                    have += len(chunk)
                    now = time.monotonic()
                    got[ep.url] = (have, max(now - t0, 1e-4))
                    if have >= want or now >= stop_at[0]:
                        break
        except Exception:  # noqa: BLE001 - rated by what arrived before the failure; nothing: not rated
            pass
        finished.add(ep.url)
        if have >= want:  # the first one done: the others get twice its time (plus a little) to go on
            now = time.monotonic()
            stop_at[0] = min(stop_at[0], now + 2 * (now - started) + 0.05)

    readers = [threading.Thread(target=read, args=(t,), name=f"rate-{i}", daemon=True) for i, t in enumerate(targets)]
    for reader in readers:
        reader.start()
    for reader in readers:
        while reader.is_alive() and time.monotonic() < stop_at[0]:
            reader.join(min(0.01, max(0.0, stop_at[0] - time.monotonic())))
    now = time.monotonic()
    for url, (n, seconds) in list(got.items()):
        # one still reading is rated by its bytes over all the time it has had (it is waiting for more)
        pool.probed[url] = n / (seconds if url in finished else max(seconds, now - began[url]))
    log.info("throughput probe: %s", ", ".join(
        f"{ep} {pool.probed[ep.url] / 1e6:.1f} MB/s" if ep.url in pool.probed else f"{ep} (no answer in time)"
        for ep, _, _ in targets))
