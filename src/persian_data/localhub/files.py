"""A file's bytes as the Hub sends them: a single `bytes=` range (206, 416, or 200 when the header is
to be ignored) and a body streamed from the store, a chunk at a time."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from starlette.responses import Response

CHUNK_SIZE = 1 << 20  # file bodies are read and sent 1 MiB at a time


class Unsatisfiable(ValueError):
    pass


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single `bytes=` range; None to ignore the header (answer 200), as RFC
    9110 allows for other units, multi-ranges and malformed values; `Unsatisfiable` for a 416."""
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
            raise Unsatisfiable(value)
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignored
    if start >= size:
        raise Unsatisfiable(value)
    return start, min(end, size - 1)


class FileResponse(Response):
    """Streams `length` bytes of a store object from `start`, CHUNK_SIZE at a time; nothing for HEAD.
    Stops reading when the client goes away."""

    def __init__(self, path: Path, start: int, length: int, status_code: int, headers: dict[str, str]) -> None:
        super().__init__(None, status_code, headers)
        self.path, self.start, self.length = path, start, length

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["method"] == "HEAD" or self.length == 0:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        fd = os.open(self.path, os.O_RDONLY)
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.ensure_future(watch())
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            pos, left = self.start, self.length
            while left > 0:
                if gone.is_set():
                    return
                chunk = os.pread(fd, min(CHUNK_SIZE, left), pos)
                if not chunk:
                    raise OSError(f"store object {self.path} is shorter than recorded")
                pos += len(chunk)
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
        finally:
            watcher.cancel()
            os.close(fd)
