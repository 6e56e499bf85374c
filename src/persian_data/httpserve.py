"""Running our web apps (serve-tts, explore) under uvicorn: the port first, then the banner; no text in logs.

- The listening socket is bound here, before anything says "serving on ...": a busy port is one
  clear error (PortInUseError, exit 1) instead of a banner followed by uvicorn's traceback.
- uvicorn's access log keeps method, path, status and time, but the values of the parameters that
  carry a user's words (`text`, `input`, `q`) are replaced by their length: what people type to
  be spoken or searched may hold personal data, and logs outlive requests.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import parse_qsl, quote

from .errors import PersianDataError

REDACTED_PARAMETERS = frozenset({"text", "input", "q"})


class PortInUseError(PersianDataError):
    """The address to serve on is taken or cannot be bound."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one), or PortInUseError in one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # reuse TIME_WAIT, never a live listener
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} on {host} is already in use (another server is listening there); "
                                 f"stop it or choose another with --port") from None
        if exc.errno == errno.EACCES:
            raise PortInUseError(f"not allowed to listen on {host}:{port} (ports below 1024 need root); "
                                 f"choose another with --port") from None
        raise PortInUseError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host and --port") \
            from None
    sock.set_inheritable(True)
    return sock


def redact_path(path: str) -> str:
    """`/api/tts?text=سلام&voice=male` -> `/api/tts?text=<4 chars>&voice=male`."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    parts = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in REDACTED_PARAMETERS:
            parts.append(f"{quote(key)}=<{len(value)} chars>")
        else:
            parts.append(f"{quote(key)}={quote(value, safe='')}")
    return f"{base}?{'&'.join(parts)}"


class RedactQueryText(logging.Filter):
    """On uvicorn.access records: args are (client, method, path, http version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's own logging config plus the redacting filter on its access logger."""
    from uvicorn.config import LOGGING_CONFIG

    config = {key: (dict(value) if isinstance(value, dict) else value) for key, value in LOGGING_CONFIG.items()}
    config["handlers"] = {name: dict(handler) for name, handler in LOGGING_CONFIG["handlers"].items()}
    config["filters"] = {"redact_query_text": {"()": RedactQueryText}}
    config["handlers"]["access"]["filters"] = ["redact_query_text"]
    return config


def run(app: Any, sock: socket.socket, *, log_level: str = "info", access_log: bool = True) -> None:
    """Serve `app` on the already bound `sock` until interrupted (uvicorn, one process)."""
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, log_config=log_config(),
                            timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


@contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning") -> Iterator[str]:
    """Run `app` under uvicorn in a background thread; yield its base URL (tests, benchmarks).

    The socket is bound first (port 0 = a free port), so there is no race for the port."""
    import uvicorn

    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="off", log_config=log_config()))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
