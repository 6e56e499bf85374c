"""The Voices section: the voices page of serve-tts, with its API mounted under /tts/, loaded on first use.

Nothing is loaded until someone opens the Voices page (or calls /tts/...): a torch voice costs
seconds and hundreds of MB, and most visits to explore never synthesize. Then the voices load in
the background exactly as `serve-tts --runtime auto` loads them (runtime.start_loading: the ONNX
export when a voice has one, torch otherwise), and the first request waits for them. When they
cannot load (no voice fetched, neither onnxruntime nor torch installed, a tampered export), the
page says why and which install enables them, and /tts/ answers 503 with the same words.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any

from fastapi.responses import JSONResponse

from ..catalog import VOICE_SOURCES
from ..errors import PersianDataError
from ..layout import Layout
from ..tts.runtime import onnx_dir, start_loading
from ..tts.server import create_app, lock_info_for
from ..tts.synth import list_voices


class LazyVoices:
    """An ASGI app (mounted at /tts) that loads the voices on first use and then serves create_app's API."""

    def __init__(self, layout: Layout, *, max_chars: int = 5000) -> None:
        self.layout = layout
        self.max_chars = max_chars
        self._lock = threading.Lock()
        self._loading: Future | None = None
        self._app: Any = None
        self.error: str | None = None

    def listing(self) -> list[dict[str, Any]]:
        """The voices on disk, as the panel shows them before (and after) loading."""
        out = []
        loaded = {v.name: v for v in self._app.state.service.voice_infos()} if self._app is not None else {}
        for entry in list_voices(self.layout):
            exported = onnx_dir(self.layout, entry["name"]).is_dir()
            if not entry["installed"] and not exported:
                continue
            info = loaded.get(entry["name"])
            out.append({"name": entry["name"], "sample_rate": info.sample_rate if info else entry["sample_rate"],
                        "runtime": info.runtime if info else ("onnx" if exported else "torch"),
                        "precision": info.precision if info else "fp32", "repo": entry["repo"],
                        "revision": entry["revision"], "default": False})
        if out:  # the catalog's first voice that is here (the female one), as serve-tts chooses
            default = next((v for v in VOICE_SOURCES if v in {o["name"] for o in out}), out[0]["name"])
            for entry in out:
                entry["default"] = entry["name"] == default
        return out

    def start(self) -> None:
        """Begin loading (once); failures are kept in `error` for the page."""
        with self._lock:
            if self._loading is not None or self.error is not None:
                return
            try:
                self._loading = start_loading(self.layout, runtime="auto")
            except PersianDataError as exc:
                self.error = str(exc)
                return
        self._loading.add_done_callback(self._loaded)

    def _loaded(self, future: Future) -> None:
        exc = future.exception()
        if exc is None:
            self._app = create_app(future.result(), max_chars=self.max_chars, lock_info=lock_info_for(self.layout),
                                   page=False)
        elif isinstance(exc, PersianDataError):
            self.error = str(exc)
        else:
            self.error = f"{type(exc).__name__}: {exc}"

    @property
    def state(self) -> str:
        if self.error is not None:
            return "failed"
        if self._app is not None:
            return "ready"
        return "loading" if self._loading is not None else "idle"

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        self.start()
        if self._loading is not None and self._app is None and self.error is None:
            try:
                await asyncio.wrap_future(self._loading)
            except Exception:  # noqa: BLE001 - _loaded keeps the reason
                pass
            for _ in range(50):  # the done-callback builds the app right after the future resolves
                if self._app is not None or self.error is not None:
                    break
                await asyncio.sleep(0.01)
        if self._app is None:
            message = self.error or "the voices could not be loaded"
            body = {"error": {"message": message, "type": "server_error", "param": None, "code": "voices_unavailable"},
                    "detail": message}
            await JSONResponse(body, status_code=503)(scope, receive, send)
            return
        await self._app(scope, receive, send)
