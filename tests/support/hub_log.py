"""What the local hub received: a `RequestLog` of every request, for tests that count requests, bytes
and which token reached which server. The `HubLayer` (support.hub) writes it."""

from __future__ import annotations

import threading
from dataclasses import dataclass


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
class LogEntry:
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
        self._entries: list[LogEntry] = []

    def start(self, entry: LogEntry) -> LogEntry:
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
