"""A slow link for the local hub: a bandwidth limit on the file bodies of every connection of one
server together (a slow mirror), applied by the `HubLayer` (support.hub)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

CHUNK_SIZE = 1 << 20


class Throttle:
    """A bandwidth limit shared by every connection of one server. `rate` may be changed while serving
    (a link that gets slower)."""

    def __init__(self, bytes_per_second: float) -> None:
        if bytes_per_second <= 0:
            raise ValueError("a throttle needs a positive rate")
        self.rate = float(bytes_per_second)
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


class ThrottledSend:
    """Wraps `send`: each body is sent `throttle.chunk` bytes at a time, at the throttle's rate; the rest
    of a body is dropped once the client has gone (`gone` is set by the layer's `receive`)."""

    def __init__(self, throttle: Throttle, send: Any, gone: asyncio.Event) -> None:
        self.throttle, self.send, self.gone = throttle, send, gone

    async def __call__(self, message: dict) -> None:
        body = message.get("body", b"") if message["type"] == "http.response.body" else b""
        if not body:
            await self.send(message)
            return
        more = message.get("more_body", False)
        for at in range(0, len(body), self.throttle.chunk):
            if self.gone.is_set():
                return
            piece = body[at : at + self.throttle.chunk]
            await self.throttle.take(len(piece))
            last = at + len(piece) >= len(body)
            await self.send({"type": "http.response.body", "body": piece, "more_body": more or not last})
