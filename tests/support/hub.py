"""The local hub as the tests run it: the real Hub app (`persian_data.localhub`) behind a layer that
logs every request, applies scripted faults and, when asked, a slow link.

    with ScriptedHub(store) as hub:
        hub.faults.reset("*/resolve/*/data/*.parquet", nth=1)
        ...  # run the real code against hub.endpoint
        assert hub.requests.count(method="GET", prefix="/datasets/") == 3
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from persian_data.localhub.app import create_app
from persian_data.localhub.server import LocalHub
from persian_data.localhub.store import HubStore

from .hub_faults import TRANSPORT_KEY, Aborted, FaultPlan, FaultySend, TransportH11Protocol, close_connection, \
    fault_answer
from .hub_log import LogEntry, RequestLog
from .hub_throttle import Throttle, ThrottledSend

__all__ = ["HubLayer", "ScriptedHub", "FaultPlan", "RequestLog", "Throttle", "TransportH11Protocol"]


class HubLayer:
    """ASGI layer around the Hub app: request log, fault injection, and a bandwidth limit on file bodies.

    It wraps the whole app (outside Starlette's error middleware): a fault that has cut the connection
    leaves its send dead, so no error page is ever written after it. `shutdown` ends stalls early.
    """

    def __init__(self, app: Any, *, faults: FaultPlan | None = None, requests: RequestLog | None = None,
                 throttle: Throttle | None = None) -> None:
        self.app, self.faults, self.requests, self.throttle = app, faults, requests, throttle
        self.shutdown = threading.Event()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        headers = dict(scope.get("headers", []))
        entry = LogEntry(method, scope["path"], scope.get("query_string", b"").decode("latin-1"),
                         _header(headers, b"range"), authorization=_header(headers, b"authorization"))
        if self.requests is not None:
            self.requests.start(entry)

        async def logged_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            elif message["type"] == "http.response.body" and method != "HEAD":
                entry.bytes_sent += len(message.get("body", b""))
                if not message.get("more_body", False):
                    entry.done = True
            await send(message)

        rule = self.faults.pick(method, scope["path"]) if self.faults is not None else None
        transport = (scope.get("state") or {}).get(TRANSPORT_KEY)
        try:
            if rule is None:
                await self._app(scope, receive, logged_send)
                return
            entry.fault = rule.kind
            if rule.kind == "drop":
                await close_connection(transport, rst=False)
                return
            if rule.kind in ("status", "rate_limit"):
                code, answer_headers, body = fault_answer(rule)
                await logged_send({"type": "http.response.start", "status": code, "headers": answer_headers})
                await logged_send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await self._app(scope, receive, FaultySend(rule, logged_send, scope, transport, self.shutdown))
        except Aborted:
            pass
        finally:
            entry.done = True

    async def _app(self, scope: dict, receive: Any, send: Any) -> None:
        """The app, its file bodies throttled when a throttle is set."""
        if self.throttle is None or "/resolve/" not in scope["path"]:
            await self.app(scope, receive, send)
            return
        gone = asyncio.Event()

        async def watched_receive() -> dict:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            return message

        await self.app(scope, watched_receive, ThrottledSend(self.throttle, send, gone))


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None


class ScriptedHub(LocalHub):
    """A `LocalHub` serving the real Hub app behind a `HubLayer`: `faults` and `requests` are the layer's,
    `throttle` (bytes per second) limits all file bodies together (its `rate` may change while serving)."""

    http = TransportH11Protocol

    def __init__(
        self,
        store: HubStore | str | os.PathLike,
        *,
        faults: FaultPlan | None = None,
        requests: RequestLog | None = None,
        throttle: float | None = None,
        tree_page_size: int = 1000,
        **options: Any,
    ) -> None:
        store = store if isinstance(store, HubStore) else HubStore(store)
        self.faults = faults if faults is not None else FaultPlan()
        self.requests = requests if requests is not None else RequestLog()
        self.throttle = Throttle(throttle) if throttle else None
        self.layer = HubLayer(create_app(store, tree_page_size=tree_page_size), faults=self.faults,
                              requests=self.requests, throttle=self.throttle)
        super().__init__(store, app=self.layer, **options)

    def start(self) -> "ScriptedHub":
        self.layer.shutdown.clear()
        super().start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.layer.shutdown.set()  # ends stalls
        super().stop(timeout)
