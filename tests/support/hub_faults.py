"""Scripted faults for the local hub: per request, a rule may reset or truncate the connection at a
chosen byte, answer an error status or a 429, stall, flip bytes, or drop the connection. Tests add
rules to a `FaultPlan` while the hub runs; the `HubLayer` (support.hub) applies them.

Cutting a connection at a byte needs the connection's transport: `TransportH11Protocol` (uvicorn's
h11 protocol) puts it into each request's `scope["state"]`.
"""

from __future__ import annotations

import asyncio
import fcntl
import fnmatch
import json
import re
import socket
import struct
import termios
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable

from uvicorn.protocols.http.h11_impl import H11Protocol

FAULT_KINDS = ("reset", "truncate", "status", "rate_limit", "stall", "corrupt", "drop")
_KIND_ALIASES = {"429": "rate_limit"}

# Key under which `TransportH11Protocol` puts the connection's asyncio transport into `scope["state"]`.
TRANSPORT_KEY = "support.hub.transport"


class TransportH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, also exposing the connection's transport to the app (in `scope["state"]`),
    which the reset / truncate / drop faults need to cut the connection at a chosen byte."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app_state = {**self.app_state, TRANSPORT_KEY: transport}


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


class Aborted(Exception):
    """Raised inside the app by the fault layer once it has dropped the connection."""


def kernel_unsent(sock: Any) -> int:
    """Bytes still queued in the kernel send buffer of a TCP socket (Linux SIOCOUTQ); 0 if unknown."""
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
        return struct.unpack("i", buf)[0]
    except (OSError, AttributeError, ValueError):
        return 0


async def close_connection(transport: asyncio.Transport | None, *, rst: bool, limit: float = 2.0) -> None:
    """Close the connection after what was already written reached the peer (bounded wait).

    rst=False: plain close, the peer sees a FIN. rst=True: SO_LINGER 0, the peer sees a TCP RST.
    Without a transport (app served by another protocol) raises `Aborted`; uvicorn then closes with FIN.
    """
    if transport is None or transport.is_closing():
        raise Aborted()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while transport.get_write_buffer_size() and not transport.is_closing() and loop.time() < deadline:
        await asyncio.sleep(0.002)
    sock = transport.get_extra_info("socket")
    if rst:
        # Unread data in our send queue would be discarded by the RST: let it reach the peer first.
        while sock is not None and kernel_unsent(sock) and not transport.is_closing() and loop.time() < deadline:
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


class FaultySend:
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
                self.dead = True
                await close_connection(self.transport, rst=False)
                raise Aborted()
            if self.transport is not None and self.transport.is_closing():
                self.dead = True
                raise Aborted()  # the client gave up
            await asyncio.sleep(min(0.05, left))

    async def _abort(self) -> None:
        self.dead = True
        await close_connection(self.transport, rst=self.rule.kind == "reset")
        raise Aborted()

    async def __call__(self, message: dict) -> None:
        if self.dead:
            raise Aborted()
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


def fault_answer(rule: FaultRule) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) of a `status` or `rate_limit` fault, answered without the app."""
    code = 429 if rule.kind == "rate_limit" else rule.status
    body = json.dumps({"error": f"Injected fault: HTTP {code}"}, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if rule.kind == "rate_limit":
        headers += [
            (b"retry-after", str(rule.retry_after).encode()),
            (b"ratelimit", f'"resolvers";r=0;t={rule.retry_after}'.encode()),
            (b"ratelimit-policy", b'"fixed window";"resolvers";q=3000;w=300'),
        ]
    return code, headers, body
