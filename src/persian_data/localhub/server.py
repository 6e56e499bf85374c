"""A local, Hub-compatible HTTP server over a `HubStore`, with request logging and fault injection.

It speaks the subset of the Hugging Face Hub protocol that `huggingface_hub` (2.x, and 0.x) uses to
download repos, so `hf_hub_download`, `snapshot_download`, `HfApi.repo_info`/`list_repo_tree` and the
`hf download` CLI work against it (with `endpoint=` or `HF_ENDPOINT`):

    GET      /api/{datasets|models}/{org}/{name}[/revision/{rev}]        repo info (`?blobs=true`)
    GET      /api/{datasets|models}/{org}/{name}/tree/{rev}[/{path}]     tree (`?recursive=`, paginated)
    HEAD/GET /[datasets/]{org}/{name}/resolve/{rev}/{path}               file (Range, 206, 416)

Revisions are branch names or full commit shas. A revision with a `/` (`refs/convert/parquet`) may be
percent-encoded (as `huggingface_hub` does) or not. Refs are read from the store on every request, so a
test may re-publish a repo between calls.

Errors are answered like the Hub: 404 with `X-Error-Code: RepoNotFound | RevisionNotFound |
EntryNotFound` and a JSON `{"error": ...}` body. Files are answered with a direct 200/206 (the Hub
redirects LFS files to a CDN; `huggingface_hub` does not need that). No Xet header is ever sent.

Tests script faults per request through a `FaultPlan` and read a `RequestLog`. `LocalHub` runs the app
with uvicorn in a background thread.
"""

from __future__ import annotations

import asyncio
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import socket
import struct
import termios
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import parse_qs, quote, unquote, urlencode

import uvicorn
from fastapi import FastAPI, Request
from starlette.responses import Response
from uvicorn.protocols.http.h11_impl import H11Protocol

from .store import HubStore, RepoNotFound, RevisionNotFound, StoredFile

__all__ = [
    "CHUNK_SIZE",
    "FAULT_KINDS",
    "FaultPlan",
    "FaultRule",
    "LocalHub",
    "LoggedRequest",
    "RequestLog",
    "Throttle",
    "create_app",
    "uvicorn_config",
]

CHUNK_SIZE = 1 << 20  # file bodies are read and sent 1 MiB at a time

FAULT_KINDS = ("reset", "truncate", "status", "rate_limit", "stall", "corrupt", "drop")
_KIND_ALIASES = {"429": "rate_limit"}

# Key under which our uvicorn protocol puts the connection's asyncio transport into `scope["state"]`.
# Faults that must drop a connection (reset, truncate, drop) need it; see `HubH11Protocol`.
_TRANSPORT_KEY = "persian_data.localhub.transport"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
_TREE_CACHE_SIZE = 64


# ---------------------------------------------------------------------------------------------
# Request log
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server saw it.

    `status` is None when no response was started (connection dropped first). `bytes_sent` counts body
    bytes handed to the connection (0 for HEAD). `fault` is the kind of injected fault, if any.
    `done` is False while the response is still being sent.
    """

    method: str
    path: str  # percent-decoded path, without the query
    query: str
    status: int | None
    range: str | None
    bytes_sent: int
    fault: str | None
    done: bool
    authorization: str | None = None  # the Authorization header, so tests can see which token reached whom


@dataclass
class _Entry:
    method: str
    path: str
    query: str
    range: str | None
    status: int | None = None
    bytes_sent: int = 0
    fault: str | None = None
    done: bool = False
    authorization: str | None = None

    def snapshot(self) -> LoggedRequest:
        return LoggedRequest(
            self.method, self.path, self.query, self.status, self.range, self.bytes_sent, self.fault, self.done,
            self.authorization,
        )


class RequestLog:
    """Thread-safe record of every request the server received, in arrival order.

    An entry is added when the request arrives and updated *before* each part of the response is handed
    to the connection, so once a client has read a response, its entry already shows the final status
    and byte count.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []

    def _start(self, entry: _Entry) -> _Entry:
        with self._lock:
            self._entries.append(entry)
        return entry

    def entries(
        self, method: str | None = None, prefix: str | None = None, status: int | None = None
    ) -> list[LoggedRequest]:
        with self._lock:
            snap = [e.snapshot() for e in self._entries]
        return [
            e
            for e in snap
            if (method is None or e.method == method.upper())
            and (prefix is None or e.path.startswith(prefix))
            and (status is None or e.status == status)
        ]

    def paths(self, method: str | None = None, prefix: str | None = None) -> list[str]:
        return [e.path for e in self.entries(method=method, prefix=prefix)]

    def count(self, method: str | None = None, prefix: str | None = None, status: int | None = None) -> int:
        return len(self.entries(method=method, prefix=prefix, status=status))

    def bytes_sent(self, method: str | None = None, prefix: str | None = None) -> int:
        return sum(e.bytes_sent for e in self.entries(method=method, prefix=prefix))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self):
        return iter(self.entries())


# ---------------------------------------------------------------------------------------------
# Fault injection
# ---------------------------------------------------------------------------------------------
@dataclass(eq=False)
class FaultRule:
    """One scripted fault.

    Matching: `method` ("GET", "HEAD", a tuple of them, or "*") and `path`, a glob matched with
    `fnmatch` against the decoded request path (`*` crosses `/`), or a compiled regex (`search`).
    Each rule counts the requests it matches in `seen`. It fires on the `nth` matching request only (if
    set, 1-based) and at most `times` times (if set); `fired` counts how often it did.

    Kinds and their parameters:
      reset       headers, then `after_bytes` body bytes (default: half the body), then a TCP RST.
      truncate    full Content-Length declared, `after_bytes` bytes sent (default: half), clean close (FIN).
      status      answer `status` (e.g. 500, 502, 503) with a JSON body, without touching the app.
      rate_limit  answer 429 with `Retry-After: retry_after` (and the Hub's RateLimit headers).
      stall       headers and `after_bytes` bytes (default 0), then sleep `seconds`, then the rest.
      corrupt     right status and length; `length` bytes from body offset `offset` are flipped (xor 0xff).
      drop        close the connection without any response.
    reset/truncate cut at most at body length - 1, so they always cut. For a response without body
    (HEAD, empty file) they drop the connection before the headers (RST resp. FIN), and stall sleeps
    before the headers. A stall ends early if the client goes away, or when the server stops (the
    connection is then closed). Faults apply to any matching response, JSON API answers included.
    """

    kind: str
    path: str | re.Pattern[str] = "*"
    method: str | tuple[str, ...] = "GET"
    nth: int | None = None
    times: int | None = None
    after_bytes: int | None = None
    status: int = 503
    retry_after: int = 1
    seconds: float = 5.0
    offset: int = 0
    length: int = 1
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.kind = _KIND_ALIASES.get(self.kind, self.kind)
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ValueError(f"status fault needs a 4xx/5xx code, got {self.status}")
        if self.nth is not None and self.nth < 1:
            raise ValueError("nth is 1-based")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0")
        if self.after_bytes is not None and self.after_bytes < 0:
            raise ValueError("after_bytes must be >= 0")
        if self.seconds < 0 or self.length < 0 or self.offset < 0 or self.retry_after < 0:
            raise ValueError("seconds, offset, length and retry_after must be >= 0")
        if isinstance(self.method, str):
            self.method = (self.method.upper(),)
        else:
            self.method = tuple(m.upper() for m in self.method)

    def matches(self, method: str, path: str) -> bool:
        if "*" not in self.method and method not in self.method:
            return False
        if isinstance(self.path, re.Pattern):
            return self.path.search(path) is not None
        return fnmatch.fnmatchcase(path, self.path)


class FaultPlan:
    """Thread-safe list of `FaultRule`s; tests add and clear rules while the server runs.

    For each request every matching rule counts it (`seen`); the first rule, in insertion order, that is
    armed (its `nth`/`times` allow it) fires.
    """

    def __init__(self, rules: Iterable[FaultRule] = ()) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = list(rules)

    # -- building ------------------------------------------------------------------------------
    def add(self, rule: FaultRule | None = None, /, **kwargs: Any) -> FaultRule:
        if rule is None:
            rule = FaultRule(**kwargs)
        elif kwargs:
            raise TypeError("pass either a FaultRule or keyword arguments")
        with self._lock:
            self._rules.append(rule)
        return rule

    def reset(self, path: str | re.Pattern[str] = "*", *, after_bytes: int | None = None, **match: Any) -> FaultRule:
        return self.add(kind="reset", path=path, after_bytes=after_bytes, **match)

    def truncate(
        self, path: str | re.Pattern[str] = "*", *, after_bytes: int | None = None, **match: Any
    ) -> FaultRule:
        return self.add(kind="truncate", path=path, after_bytes=after_bytes, **match)

    def status(self, path: str | re.Pattern[str] = "*", code: int = 503, **match: Any) -> FaultRule:
        return self.add(kind="status", path=path, status=code, **match)

    def rate_limit(self, path: str | re.Pattern[str] = "*", retry_after: int = 1, **match: Any) -> FaultRule:
        return self.add(kind="rate_limit", path=path, retry_after=retry_after, **match)

    def stall(
        self, path: str | re.Pattern[str] = "*", seconds: float = 5.0, *, after_bytes: int = 0, **match: Any
    ) -> FaultRule:
        return self.add(kind="stall", path=path, seconds=seconds, after_bytes=after_bytes, **match)

    def corrupt(
        self, path: str | re.Pattern[str] = "*", *, offset: int = 0, length: int = 1, **match: Any
    ) -> FaultRule:
        return self.add(kind="corrupt", path=path, offset=offset, length=length, **match)

    def drop(self, path: str | re.Pattern[str] = "*", **match: Any) -> FaultRule:
        return self.add(kind="drop", path=path, **match)

    # -- managing ------------------------------------------------------------------------------
    def remove(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def fired(self) -> int:
        """Total number of faults fired by the current rules."""
        with self._lock:
            return sum(r.fired for r in self._rules)

    def pick(self, method: str, path: str) -> FaultRule | None:
        """Count a request against every matching rule; return the rule that fires, if any."""
        chosen = None
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                rule.seen += 1
                if chosen is not None:
                    continue
                if rule.nth is not None and rule.seen != rule.nth:
                    continue
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                rule.fired += 1
                chosen = rule
        return chosen


class _Aborted(Exception):
    """Raised inside the app by the fault layer once it has dropped the connection."""


def _kernel_unsent(sock: Any) -> int:
    """Bytes still queued in the kernel send buffer of a TCP socket (Linux SIOCOUTQ); 0 if unknown."""
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
        return struct.unpack("i", buf)[0]
    except (OSError, AttributeError, ValueError):
        return 0


async def _close_connection(transport: asyncio.Transport | None, *, rst: bool, limit: float = 2.0) -> None:
    """Close the connection after what was already written reached the peer (bounded wait).

    rst=False: plain close, the peer sees a FIN. rst=True: SO_LINGER 0, the peer sees a TCP RST.
    Without a transport (app served by another protocol) raises `_Aborted`; uvicorn then closes with FIN.
    """
    if transport is None or transport.is_closing():
        raise _Aborted()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while transport.get_write_buffer_size() and not transport.is_closing() and loop.time() < deadline:
        await asyncio.sleep(0.002)
    sock = transport.get_extra_info("socket")
    if rst:
        # Unread data in our send queue would be discarded by the RST: let it reach the peer first.
        while sock is not None and _kernel_unsent(sock) and not transport.is_closing() and loop.time() < deadline:
            await asyncio.sleep(0.002)
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        transport.abort()
    else:
        transport.close()
    # Let connection_lost run, so uvicorn knows the client is gone and does not log an error.
    for _ in range(3):
        await asyncio.sleep(0)


class _FaultySend:
    """Wraps `send` for reset / truncate / stall / corrupt."""

    def __init__(self, rule: FaultRule, send: Any, scope: dict, transport: Any, shutdown: threading.Event) -> None:
        self.rule = rule
        self.send = send
        self.head = scope["method"] == "HEAD"
        self.transport = transport
        self.shutdown = shutdown
        self.sent = 0  # body bytes forwarded
        self.cut: int | None = None
        self.stalled = False
        self.dead = False

    async def _stall(self) -> None:
        self.stalled = True
        loop = asyncio.get_running_loop()
        end = loop.time() + self.rule.seconds
        while (left := end - loop.time()) > 0:
            if self.shutdown.is_set():
                await _close_connection(self.transport, rst=False)
                raise _Aborted()
            if self.transport is not None and self.transport.is_closing():
                raise _Aborted()  # the client gave up
            await asyncio.sleep(min(0.05, left))

    async def _abort(self) -> None:
        self.dead = True
        await _close_connection(self.transport, rst=self.rule.kind == "reset")
        raise _Aborted()

    async def __call__(self, message: dict) -> None:
        if self.dead:
            raise _Aborted()
        kind = self.rule.kind
        if message["type"] == "http.response.start":
            length = None
            for k, v in message.get("headers", []):
                if k.lower() == b"content-length":
                    length = int(v)
            no_body = self.head or length == 0 or message["status"] in (204, 304)
            if kind in ("reset", "truncate"):
                if no_body:
                    await self._abort()
                if self.rule.after_bytes is not None:
                    self.cut = self.rule.after_bytes
                else:
                    self.cut = (length // 2) if length is not None else 0
                if length is not None:
                    self.cut = min(self.cut, length - 1)
            elif kind == "stall" and no_body:
                await self._stall()
            await self.send(message)
            return

        if message["type"] != "http.response.body":
            await self.send(message)
            return
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if kind == "stall" and not self.stalled and self.sent + len(body) >= (self.rule.after_bytes or 0):
            head = (self.rule.after_bytes or 0) - self.sent
            if head > 0:
                await self.send({"type": "http.response.body", "body": body[:head], "more_body": True})
                self.sent += head
                body = body[head:]
            await self._stall()
        elif kind == "corrupt" and body:
            lo = max(self.rule.offset, self.sent)
            hi = min(self.rule.offset + self.rule.length, self.sent + len(body))
            if lo < hi:
                buf = bytearray(body)
                for i in range(lo - self.sent, hi - self.sent):
                    buf[i] ^= 0xFF
                body = bytes(buf)
        elif kind in ("reset", "truncate") and self.cut is not None:
            if self.sent + len(body) >= self.cut and (more or self.sent + len(body) > self.cut):
                head = self.cut - self.sent
                if head > 0:
                    await self.send({"type": "http.response.body", "body": body[:head], "more_body": True})
                    self.sent += head
                await self._abort()
        self.sent += len(body)
        await self.send({"type": "http.response.body", "body": body, "more_body": more})


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class _HubMiddleware:
    """Outermost ASGI layer: request log and fault injection."""

    def __init__(self, app: Any, hub: _HubState) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        range_header = authorization = None
        for k, v in scope.get("headers", []):
            if k == b"range":
                range_header = v.decode("latin-1")
            elif k == b"authorization":
                authorization = v.decode("latin-1")
        entry = _Entry(method, scope["path"], scope.get("query_string", b"").decode("latin-1"), range_header,
                       authorization=authorization)
        if self.hub.requests is not None:
            self.hub.requests._start(entry)

        async def logged_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            elif message["type"] == "http.response.body" and method != "HEAD":
                entry.bytes_sent += len(message.get("body", b""))
                if not message.get("more_body", False):
                    entry.done = True
            await send(message)

        rule = self.hub.faults.pick(method, scope["path"]) if self.hub.faults is not None else None
        transport = (scope.get("state") or {}).get(_TRANSPORT_KEY)
        try:
            if rule is None:
                await self.app(scope, receive, logged_send)
                return
            entry.fault = rule.kind
            if rule.kind == "drop":
                await _close_connection(transport, rst=False)
                return
            if rule.kind in ("status", "rate_limit"):
                code = 429 if rule.kind == "rate_limit" else rule.status
                body = _json_bytes({"error": f"Injected fault: HTTP {code}"})
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                if rule.kind == "rate_limit":
                    headers += [
                        (b"retry-after", str(rule.retry_after).encode()),
                        (b"ratelimit", f'"resolvers";r=0;t={rule.retry_after}'.encode()),
                        (b"ratelimit-policy", b'"fixed window";"resolvers";q=3000;w=300'),
                    ]
                await logged_send({"type": "http.response.start", "status": code, "headers": headers})
                await logged_send({"type": "http.response.body", "body": body, "more_body": False})
                return
            faulty = _FaultySend(rule, logged_send, scope, transport, self.hub.shutdown)
            await self.app(scope, receive, faulty)
        except _Aborted:
            pass
        finally:
            entry.done = True


# ---------------------------------------------------------------------------------------------
# The Hub endpoints
# ---------------------------------------------------------------------------------------------
class _HubError(Exception):
    def __init__(self, code: str | None, message: str, status: int = 404, commit: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.commit = code, message, status, commit

    def response(self) -> Response:
        headers = {}
        if self.code:
            headers["X-Error-Code"] = self.code
            headers["X-Error-Message"] = self.message
        if self.commit:
            headers["X-Repo-Commit"] = self.commit
        return Response(_json_bytes({"error": self.message}), self.status, headers, "application/json")


@dataclass
class _Tree:
    """A commit's files plus derived directory entries, in pre-order (parents before children)."""

    files: dict[str, StoredFile]
    entries: list[tuple[str, StoredFile | None]]  # (path, file or None for a directory)
    dir_oids: dict[str, str]


def _git_tree_oids(files: Iterable[StoredFile]) -> dict[str, str]:
    """Git tree sha1 of every directory (as git computes it: blob ids are the LFS pointers' for LFS)."""
    root: dict = {}
    for f in files:
        node = root
        *dirs, name = f.path.split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[name] = f.oid
    oids: dict[str, str] = {}

    def walk(node: dict, prefix: str) -> bytes:
        items = []
        for name, child in node.items():
            if isinstance(child, dict):
                items.append((name + "/", b"40000 " + name.encode() + b"\0" + walk(child, prefix + name + "/")))
            else:
                items.append((name, b"100644 " + name.encode() + b"\0" + bytes.fromhex(child)))
        body = b"".join(raw for _, raw in sorted(items, key=lambda it: it[0].encode()))
        digest = hashlib.sha1(b"tree %d\0" % len(body) + body)
        if prefix:
            oids[prefix[:-1]] = digest.hexdigest()
        return digest.digest()

    walk(root, "")
    return oids


def _build_tree(files: list[StoredFile]) -> _Tree:
    by_path = {f.path: f for f in files}
    dirs = set()
    for p in by_path:
        parts = p.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
    entries: list[tuple[str, StoredFile | None]] = [(d, None) for d in dirs] + list(by_path.items())
    entries.sort(key=lambda e: e[0].split("/"))
    return _Tree(by_path, entries, _git_tree_oids(files))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _Unsatisfiable(ValueError):
    pass


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single `bytes=` range; None to ignore the header (answer 200), as RFC
    9110 allows for other units, multi-ranges and malformed values; `_Unsatisfiable` for a 416."""
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first == "" or first.isdigit()) or not (last == "" or last.isdigit()):
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _Unsatisfiable(value)
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignored
    if start >= size:
        raise _Unsatisfiable(value)
    return start, min(end, size - 1)


class Throttle:
    """A bandwidth limit for file bodies, shared by every connection of one server (a slow link)."""

    def __init__(self, bytes_per_second: float) -> None:
        if bytes_per_second <= 0:
            raise ValueError("a throttle needs a positive rate")
        self.rate = float(bytes_per_second)  # may be changed while serving (a link that gets slower)
        self._next = 0.0
        self._lock = threading.Lock()

    @property
    def chunk(self) -> int:
        """Bytes sent at a time: about 1/20 s worth, so the rate is smooth."""
        return int(min(CHUNK_SIZE, max(16 * 1024, self.rate / 20)))

    async def take(self, n: int) -> None:
        """Wait as long as `n` bytes take at the rate, after those already sent (no burst after idling)."""
        with self._lock:
            now = time.monotonic()
            self._next = max(now, self._next) + n / self.rate
            until = self._next
        await asyncio.sleep(until - now)


class _FileResponse(Response):
    """Streams `length` bytes of a store object from `start`, CHUNK_SIZE at a time; nothing for HEAD."""

    def __init__(self, path: Path, start: int, length: int, status_code: int, headers: dict[str, str],
                 throttle: Throttle | None = None) -> None:
        super().__init__(None, status_code, headers)
        self.path, self.start, self.length, self.throttle = path, start, length, throttle

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["method"] == "HEAD" or self.length == 0:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        fd = os.open(self.path, os.O_RDONLY)
        gone = asyncio.Event()

        async def watch() -> None:  # notice a client that goes away, to stop reading the file
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.ensure_future(watch())
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            pos, left = self.start, self.length
            step = CHUNK_SIZE
            while left > 0:
                if gone.is_set():
                    return
                if self.throttle:
                    step = self.throttle.chunk
                    await self.throttle.take(min(step, left))
                chunk = os.pread(fd, min(step, left), pos)
                if not chunk:
                    raise OSError(f"store object {self.path} is shorter than recorded")
                pos += len(chunk)
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
        finally:
            watcher.cancel()
            os.close(fd)


@dataclass
class _HubState:
    store: HubStore
    faults: FaultPlan | None
    requests: RequestLog | None
    tree_page_size: int
    throttle: Throttle | None = None  # bandwidth limit for file bodies (None: as fast as it goes)
    shutdown: threading.Event = field(default_factory=threading.Event)
    trees: OrderedDict = field(default_factory=OrderedDict)
    trees_lock: threading.Lock = field(default_factory=threading.Lock)

    def tree(self, repo_type: str, repo_id: str, sha: str) -> _Tree:
        # Commits are immutable (their sha hashes their files), so caching by sha is safe; refs are not cached.
        key = (repo_type, repo_id, sha)
        with self.trees_lock:
            if key in self.trees:
                self.trees.move_to_end(key)
                return self.trees[key]
        tree = _build_tree(self.store.files(repo_type, repo_id, sha))
        with self.trees_lock:
            self.trees[key] = tree
            while len(self.trees) > _TREE_CACHE_SIZE:
                self.trees.popitem(last=False)
        return tree


class _HubApp(FastAPI):
    """FastAPI app whose middleware stack is wrapped by the log/fault layer (outermost, before Starlette's
    error middleware, so a dropped connection is never turned into a 500)."""

    hub: _HubState

    def build_middleware_stack(self) -> Any:
        return _HubMiddleware(super().build_middleware_stack(), self.hub)


def _check_repo(repo_type: str, org: str, name: str) -> str:
    if not (_NAME_RE.match(org) and _NAME_RE.match(name)) or ".." in org or ".." in name:
        raise _HubError("RepoNotFound", "Repository not found")
    return f"{org}/{name}"


def _resolve(hub: _HubState, repo_type: str, repo_id: str, revision: str) -> str:
    if not (hub.store.repo_dir(repo_type, repo_id) / "refs.json").exists():
        raise _HubError("RepoNotFound", "Repository not found")
    if not revision or ".." in revision or revision.startswith("/") or "\\" in revision or "\0" in revision:
        raise _HubError("RevisionNotFound", f"Invalid rev id: {revision}")
    try:
        return hub.store.resolve(repo_type, repo_id, revision)
    except RepoNotFound:
        raise _HubError("RepoNotFound", "Repository not found") from None
    except RevisionNotFound:
        raise _HubError("RevisionNotFound", f"Invalid rev id: {revision}") from None


def _split_rev(hub: _HubState, repo_type: str, repo_id: str, segs: list[str]) -> tuple[str, str, list[str]]:
    """Find the revision at the head of `segs` (decoded segments). A percent-encoded revision is one
    segment; an unencoded one with slashes (`refs/convert/parquet`) spans several: try the shortest first."""
    first_error = None
    for k in range(1, len(segs) + 1):
        try:
            return "/".join(segs[:k]), _resolve(hub, repo_type, repo_id, "/".join(segs[:k])), segs[k:]
        except _HubError as e:
            if e.code == "RepoNotFound":
                raise
            first_error = first_error or e
    raise first_error or _HubError("RevisionNotFound", "Invalid rev id: ")


def _base_url(request: Request) -> str:
    host = request.headers.get("host")
    if not host:
        server = request.scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{request.scope.get('scheme', 'http')}://{host}"


def _truthy(params: dict[str, list[str]], key: str) -> bool:
    return (params.get(key) or ["false"])[-1].lower() in ("1", "true", "yes")


def _repo_info(hub: _HubState, repo_type: str, repo_id: str, revision: str, params: dict) -> Response:
    sha = _resolve(hub, repo_type, repo_id, revision)
    tree = hub.tree(repo_type, repo_id, sha)
    commit_file = hub.store.repo_dir(repo_type, repo_id) / "commits" / f"{sha}.json"
    modified = _iso(commit_file.stat().st_mtime)
    blobs = _truthy(params, "blobs")
    siblings = []
    for f in tree.files.values():
        sib: dict[str, Any] = {"rfilename": f.path}
        if blobs:
            sib.update(size=f.size, blobId=f.oid)
            if f.lfs:
                sib["lfs"] = {"sha256": f.lfs["sha256"], "size": f.lfs["size"], "pointerSize": f.lfs["pointerSize"]}
        siblings.append(sib)
    info: dict[str, Any] = {
        "_id": hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24],
        "id": repo_id,
        "author": repo_id.split("/")[0],
        "sha": sha,
        "lastModified": modified,
        "createdAt": modified,
        "private": False,
        "disabled": False,
        "gated": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
        "usedStorage": sum(f.size for f in tree.files.values()),
    }
    if repo_type == "model":
        info["modelId"] = repo_id
    return Response(_json_bytes(info), 200, {"X-Repo-Commit": sha}, "application/json")


def _tree_entry(path: str, f: StoredFile | None, tree: _Tree) -> dict[str, Any]:
    if f is None:
        return {"type": "directory", "oid": tree.dir_oids[path], "size": 0, "path": path}
    entry: dict[str, Any] = {"type": "file", "oid": f.oid, "size": f.size, "path": path}
    if f.lfs:
        entry["lfs"] = {"oid": f.lfs["sha256"], "size": f.lfs["size"], "pointerSize": f.lfs["pointerSize"]}
    return entry


def _list_tree(hub: _HubState, request: Request, repo_type: str, repo_id: str, segs: list[str]) -> Response:
    if not segs:
        raise _HubError("RevisionNotFound", "Invalid rev id: ")
    _, sha, rest = _split_rev(hub, repo_type, repo_id, segs)
    base = "/".join(s for s in rest if s).strip("/")
    tree = hub.tree(repo_type, repo_id, sha)
    params = parse_qs(request.scope.get("query_string", b"").decode("latin-1"))
    recursive = _truthy(params, "recursive")
    if base:
        if base in tree.files or base not in tree.dir_oids:
            raise _HubError("EntryNotFound", f"Entry not found: {base}", commit=sha)
        prefix = base + "/"
    else:
        prefix = ""
    selected = [
        (p, f)
        for p, f in tree.entries
        if p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])
    ]
    try:
        offset = int((params.get("cursor") or ["0"])[-1])
        if offset < 0:
            raise ValueError
    except ValueError:
        raise _HubError(None, "Invalid cursor", status=400) from None
    page = selected[offset : offset + hub.tree_page_size]
    headers = {"X-Repo-Commit": sha}
    if offset + hub.tree_page_size < len(selected):
        # Next page is pinned to the commit sha, so a branch moving in between cannot mix two commits.
        query = {k: v[-1] for k, v in params.items() if k != "cursor"}
        query["cursor"] = str(offset + hub.tree_page_size)
        path_part = "/" + quote(base, safe="") if base else ""
        url = f"{_base_url(request)}/api/{repo_type}s/{repo_id}/tree/{sha}{path_part}?{urlencode(query)}"
        headers["Link"] = f'<{url}>; rel="next"'
    body = _json_bytes([_tree_entry(p, f, tree) for p, f in page])
    return Response(body, 200, headers, "application/json")


def _resolve_file(hub: _HubState, request: Request, repo_type: str, repo_id: str, segs: list[str]) -> Response:
    if not segs:
        raise _HubError("RevisionNotFound", "Invalid rev id: ")
    _, sha, rest = _split_rev(hub, repo_type, repo_id, segs)
    path = "/".join(rest)
    tree = hub.tree(repo_type, repo_id, sha)
    f = tree.files.get(path)
    if f is None:
        raise _HubError("EntryNotFound", f"Entry not found: {path}", commit=sha)
    obj = hub.store.object_path(f.object)
    if not obj.exists():
        raise _HubError(None, f"Store object missing for {path}", status=500, commit=sha)
    name = path.rsplit("/", 1)[-1]
    headers = {
        "X-Repo-Commit": sha,
        "ETag": f'"{f.etag}"',
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}; filename=\"{quote(name)}\"",
    }
    if f.lfs:
        # What the Hub sends beside its redirect for LFS files; huggingface_hub prefers them when present.
        headers["X-Linked-ETag"] = f'"{f.lfs["sha256"]}"'
        headers["X-Linked-Size"] = str(f.size)
    start, length, status = 0, f.size, 200
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if range_header and (if_range is None or if_range.strip() in (f'"{f.etag}"', f.etag)):
        try:
            rng = _parse_range(range_header, f.size)
        except _Unsatisfiable:
            headers["Content-Range"] = f"bytes */{f.size}"
            headers.pop("Content-Type")
            return Response(_json_bytes({"error": "Range Not Satisfiable"}), 416, headers, "application/json")
        if rng is not None:
            start, length, status = rng[0], rng[1] - rng[0] + 1, 206
            headers["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{f.size}"
    headers["Content-Length"] = str(length)
    return _FileResponse(obj, start, length, status, headers, hub.throttle)


async def _dispatch(request: Request) -> Response:
    hub: _HubState = request.app.hub
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    segs = [unquote(s) for s in raw.decode("latin-1").split("/")[1:]]
    params = parse_qs(request.scope.get("query_string", b"").decode("latin-1"))
    try:
        if len(segs) >= 4 and segs[0] == "api" and segs[1] in ("datasets", "models"):
            repo_type = segs[1][:-1]
            repo_id = _check_repo(repo_type, segs[2], segs[3])
            rest = segs[4:]
            if rest in ([], [""]):
                return _repo_info(hub, repo_type, repo_id, "main", params)
            if rest[0] == "revision" and len(rest) >= 2:
                return _repo_info(hub, repo_type, repo_id, "/".join(rest[1:]), params)
            if rest[0] == "tree":
                return _list_tree(hub, request, repo_type, repo_id, rest[1:])
        else:
            repo_type = "model"
            if segs and segs[0] == "datasets":
                repo_type, segs = "dataset", segs[1:]
            if len(segs) >= 4 and segs[2] == "resolve":
                repo_id = _check_repo(repo_type, segs[0], segs[1])
                return _resolve_file(hub, request, repo_type, repo_id, segs[3:])
        raise _HubError(None, "Not Found")
    except _HubError as e:
        return e.response()


def create_app(
    store: HubStore,
    *,
    faults: FaultPlan | None = None,
    request_log: RequestLog | None = None,
    tree_page_size: int = 1000,
    throttle: float | None = None,
) -> FastAPI:
    """The Hub-compatible FastAPI app over `store`.

    `faults` and `request_log` are consulted on every request (None: no faults / no log).
    `throttle` (bytes per second) limits the file bodies of all connections together: a slow mirror.
    `app.state.shutdown` is a `threading.Event`; set it to end stalls early (LocalHub.stop does).
    """
    if tree_page_size < 1:
        raise ValueError("tree_page_size must be >= 1")
    app = _HubApp(title="persian-data local hub", openapi_url=None, docs_url=None, redoc_url=None)
    app.hub = _HubState(store=store, faults=faults, requests=request_log, tree_page_size=tree_page_size,
                        throttle=Throttle(throttle) if throttle else None)
    app.state.store = store
    app.state.faults = faults
    app.state.requests = request_log
    app.state.shutdown = app.hub.shutdown
    app.add_api_route("/{full_path:path}", _dispatch, methods=["GET", "HEAD"], include_in_schema=False)
    return app


# ---------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------
class HubH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, also exposing the connection's transport to the app (in `scope["state"]`),
    which the reset / truncate / drop faults need to cut the connection at a chosen byte."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app_state = {**self.app_state, _TRANSPORT_KEY: transport}


def uvicorn_config(app: FastAPI, *, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> uvicorn.Config:
    """uvicorn settings for the local hub: h11 with transport access, no lifespan, bounded shutdown."""
    options: dict[str, Any] = dict(
        host=host,
        port=port,
        http=HubH11Protocol,
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=3,
        timeout_keep_alive=30,
    )
    options.update(kwargs)
    return uvicorn.Config(app, **options)


class LocalHub:
    """Runs the local hub with uvicorn in a background thread on a free port of 127.0.0.1.

        with LocalHub(tmp_path / "hub") as hub:
            hub.store.publish("dataset", "org/name", {"a.txt": b"hi"})
            hf_hub_download("org/name", "a.txt", repo_type="dataset", endpoint=hub.endpoint)
    """

    def __init__(
        self,
        store: HubStore | str | os.PathLike,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultPlan | None = None,
        requests: RequestLog | None = None,
        tree_page_size: int = 1000,
        startup_timeout: float = 10.0,
        throttle: float | None = None,
    ) -> None:
        self.store = store if isinstance(store, HubStore) else HubStore(store)
        self.faults = faults if faults is not None else FaultPlan()
        self.requests = requests if requests is not None else RequestLog()
        self.app = create_app(self.store, faults=self.faults, request_log=self.requests, tree_page_size=tree_page_size,
                              throttle=throttle)
        self.host, self.port = host, port
        self.startup_timeout = startup_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalHub is not running")
        return f"http://{self.host}:{self.port}"

    def start(self) -> "LocalHub":
        if self._server is not None:
            raise RuntimeError("LocalHub already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self.app.state.shutdown.clear()
        server = uvicorn.Server(uvicorn_config(self.app, host=self.host, port=self.port))
        errors: list[BaseException] = []

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as e:  # SystemExit on startup failure included
                errors.append(e)
            finally:
                sock.close()

        thread = threading.Thread(target=run, name=f"localhub-{self.port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(2)
                raise RuntimeError(f"local hub failed to start: {errors[0] if errors else 'timeout'}")
            time.sleep(0.01)
        with socket.create_connection((self.host, self.port), timeout=self.startup_timeout):
            pass
        self._server, self._thread = server, thread
        return self

    def stop(self, timeout: float = 10.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self.app.state.shutdown.set()  # ends stalls
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        self._server = self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "LocalHub":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
