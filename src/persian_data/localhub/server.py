"""The local hub served with uvicorn: `LocalHub` runs `app.create_app` in a background thread on a free
port of 127.0.0.1 (the demo serves its replicas so).

    with LocalHub(tmp_path / "hub") as hub:
        hub.store.publish("dataset", "org/name", {"a.txt": b"hi"})
        hf_hub_download("org/name", "a.txt", repo_type="dataset", endpoint=hub.endpoint)
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import uvicorn

from .app import create_app
from .store import HubStore

__all__ = ["LocalHub", "uvicorn_config"]


def uvicorn_config(app: Any, *, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> uvicorn.Config:
    """uvicorn settings for the local hub: h11, no lifespan, bounded shutdown."""
    options: dict[str, Any] = dict(
        host=host,
        port=port,
        http="h11",
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

    `app` is the ASGI app served (`create_app(store)` unless given: an app that wraps it), `http`
    uvicorn's HTTP protocol for it.
    """

    http: Any = "h11"

    def __init__(
        self,
        store: HubStore | str | os.PathLike,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tree_page_size: int = 1000,
        startup_timeout: float = 10.0,
        app: Any = None,
    ) -> None:
        self.store = store if isinstance(store, HubStore) else HubStore(store)
        self.app = app if app is not None else create_app(self.store, tree_page_size=tree_page_size)
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
        server = uvicorn.Server(uvicorn_config(self.app, host=self.host, port=self.port, http=self.http))
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
