"""`/api/tts`: the two voices over HTTP (FastAPI + uvicorn), loaded once at start.

Compatible with the request shape of coqui's own `tts-server`: `GET|POST /api/tts` with `text`
and `speaker_id` (here an alias of `voice`), answering `audio/wav`. Our additions: `voice`,
JSON bodies, `/api/voices`, `/health`, JSON errors with fitting status codes, a text length
limit, and sentence-by-sentence synthesis of long text.

Concurrency: the endpoint is async and hands synthesis to the thread pool; each Voice holds a
lock around the model (coqui's models are not thread-safe), so requests to one voice run one
at a time while the event loop keeps answering /health and queueing the rest.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, Mapping
from urllib.parse import parse_qsl

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..layout import Layout
from .synth import EmptyTextError, list_voices, load_voices, wav_bytes

log = logging.getLogger(__name__)

DEFAULT_PORT = 5002  # the port of coqui's tts-server


class ErrorBody(BaseModel):
    error: str = Field(description="Machine-readable code, e.g. empty_text, unknown_voice.")
    detail: str = Field(description="What went wrong, in words.")


class VoiceInfo(BaseModel):
    name: str = Field(description="Voice name to pass as `voice` (or `speaker_id`).")
    sample_rate: int = Field(description="Sample rate of the returned WAV, in Hz.")
    checkpoint: str | None = Field(None, description="Checkpoint file the voice was loaded from.")
    repo: str | None = Field(None, description="Source repository on the Hugging Face Hub.")
    revision: str | None = Field(
        None, description="Commit sha of the source repository, from the lock file (if any)."
    )
    default: bool = Field(False, description="Used when a request names no voice.")


class Health(BaseModel):
    status: str = "ok"
    voices: list[str]
    requests: int = Field(description="/api/tts requests answered with audio since start.")
    errors: int = Field(description="/api/tts requests that failed inside synthesis (500).")
    uptime_s: float


class TTSRequest(BaseModel):
    text: str = Field(description="Text to speak (Persian). Split into sentences internally.")
    voice: str | None = Field(None, description="Voice name; see /api/voices.")
    speaker_id: str | None = Field(None, description="Alias of `voice` (coqui tts-server).")


_ERRORS = {
    400: {"model": ErrorBody, "description": "Empty text, or conflicting voice/speaker_id."},
    404: {"model": ErrorBody, "description": "Unknown voice."},
    413: {"model": ErrorBody, "description": "Text longer than the server's limit."},
    415: {"model": ErrorBody, "description": "Unsupported request body type (POST)."},
    500: {"model": ErrorBody, "description": "Synthesis failed; the server keeps running."},
}
_WAV = {200: {"content": {"audio/wav": {}}, "description": "16-bit PCM mono WAV at the voice's sample rate."}}


def _error(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status)


def create_app(
    voices: Mapping[str, Any],
    *,
    max_chars: int = 1000,
    lock_info: Mapping[str, Mapping[str, Any]] | None = None,
    default_voice: str | None = None,
    one_at_a_time: bool = True,
) -> FastAPI:
    """The app. `voices`: name -> loaded Voice (anything with .sample_rate, .synthesize(text)).

    lock_info: name -> {"repo": ..., "revision": ..., "checkpoint": ...}, shown by /api/voices.
    one_at_a_time: one synthesis at a time across all voices (each Voice always serialises its
        own model). On a CPU this is faster: torch already uses every core for one synthesis,
        and two at once oversubscribe them.
    """
    voices = dict(voices)
    if one_at_a_time:
        shared = threading.Lock()
        for voice in voices.values():
            if hasattr(voice, "share_lock"):
                voice.share_lock(shared)
    lock_info = {k: dict(v) for k, v in (lock_info or {}).items()}
    if default_voice is None:
        default_voice = "female" if "female" in voices else next(iter(voices), None)
    stats = {"requests": 0, "errors": 0}
    started = time.time()

    app = FastAPI(
        title="persian-data TTS",
        version=__version__,
        description=(
            "Persian speech from the Kamtera Coqui VITS voices (female, male), loaded once at "
            "start. Long text is split into sentences at Persian and Latin punctuation "
            "(، ؛ ؟ . ! ?), synthesized piece by piece and joined. Requests are compatible "
            "with coqui's tts-server (`speaker_id` is an alias of `voice`).\n\n"
            "Example: `curl -G --data-urlencode 'text=سلام دنیا' "
            "'http://127.0.0.1:5002/api/tts?voice=female' -o hello.wav`"
        ),
    )

    async def synthesize(params: Mapping[str, Any]) -> Response:
        text = params.get("text")
        voice_name = params.get("voice")
        alias = params.get("speaker_id")
        if text is not None and not isinstance(text, str):
            return _error(400, "bad_text", "`text` must be a string")
        for key, value in (("voice", voice_name), ("speaker_id", alias)):
            if value is not None and not isinstance(value, str):
                return _error(400, "bad_voice", f"`{key}` must be a string")
        if voice_name and alias and voice_name != alias:
            return _error(
                400, "conflicting_voice", f"voice={voice_name!r} and speaker_id={alias!r} differ"
            )
        name = voice_name or alias or default_voice
        if not text or not text.strip():
            return _error(400, "empty_text", "`text` is empty")
        if len(text) > max_chars:
            return _error(
                413,
                "text_too_long",
                f"text has {len(text)} characters; this server takes at most {max_chars}",
                max_chars=max_chars,
            )
        voice = voices.get(name) if name else None
        if voice is None:
            return _error(
                404, "unknown_voice", f"unknown voice {name!r}; known: {', '.join(voices)}",
                voices=list(voices),
            )
        began = time.perf_counter()
        try:
            audio = await run_in_threadpool(voice.synthesize, text)
            body = await run_in_threadpool(wav_bytes, audio, voice.sample_rate)
        except EmptyTextError as exc:
            return _error(400, "empty_text", str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure inside synthesis is a 500
            stats["errors"] += 1
            log.exception("synthesis failed (voice %s, %d chars)", name, len(text))
            return _error(500, "synthesis_failed", f"{type(exc).__name__}: {exc}")
        stats["requests"] += 1
        elapsed = time.perf_counter() - began
        seconds = len(audio) / voice.sample_rate if voice.sample_rate else 0.0
        return Response(
            body,
            media_type="audio/wav",
            headers={
                "X-Voice": name,
                "X-Sample-Rate": str(voice.sample_rate),
                "X-Audio-Seconds": f"{seconds:.3f}",
                "X-Synthesis-Seconds": f"{elapsed:.3f}",
            },
        )

    @app.get(
        "/api/tts",
        summary="Synthesize speech (query parameters)",
        description="Speak `text` with `voice` and return a WAV. Same as coqui tts-server's GET.",
        response_class=Response,
        responses={**_WAV, **_ERRORS},
        tags=["tts"],
    )
    async def tts_get(
        text: str | None = Query(None, description="Text to speak.", examples=["سلام دنیا."]),
        voice: str | None = Query(None, description="Voice name: see /api/voices."),
        speaker_id: str | None = Query(None, description="Alias of `voice` (coqui tts-server)."),
        language_id: str | None = Query(None, description="Accepted for coqui compatibility; ignored."),
    ) -> Response:
        return await synthesize({"text": text, "voice": voice, "speaker_id": speaker_id})

    @app.post(
        "/api/tts",
        summary="Synthesize speech (JSON, form or query)",
        description=(
            "Body as JSON `{\"text\": ..., \"voice\": ...}` or as "
            "`application/x-www-form-urlencoded`; query parameters work too (body wins). "
            "Returns a WAV."
        ),
        response_class=Response,
        responses={**_WAV, **_ERRORS},
        tags=["tts"],
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {"schema": TTSRequest.model_json_schema()},
                    "application/x-www-form-urlencoded": {"schema": TTSRequest.model_json_schema()},
                },
            }
        },
    )
    async def tts_post(request: Request) -> Response:
        params: dict[str, Any] = dict(request.query_params)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_chars * 8 + 65536:
            return _error(413, "text_too_long", "request body too large", max_chars=max_chars)
        raw = await request.body()
        if raw:
            if content_type in ("application/json", "") or content_type.endswith("+json"):
                try:
                    import json

                    body = json.loads(raw)
                except ValueError as exc:
                    return _error(400, "bad_json", f"body is not valid JSON: {exc}")
                if not isinstance(body, dict):
                    return _error(400, "bad_json", "JSON body must be an object")
                params.update(body)
            elif content_type == "application/x-www-form-urlencoded":
                try:
                    params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
                except UnicodeDecodeError:
                    return _error(400, "bad_form", "form body is not UTF-8")
            elif content_type == "multipart/form-data":
                try:
                    form = await request.form()
                except AssertionError:  # python-multipart is not installed
                    return _error(
                        415, "unsupported_body",
                        "multipart bodies need python-multipart; send JSON or urlencoded instead",
                    )
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
            else:
                return _error(
                    415, "unsupported_body",
                    f"unsupported content type {content_type!r}; send JSON or urlencoded",
                )
        return await synthesize(params)

    @app.get(
        "/api/voices",
        summary="List the voices",
        description="Name, sample rate, source repo and revision (from the lock file) of each loaded voice.",
        response_model=list[VoiceInfo],
        tags=["tts"],
    )
    async def api_voices() -> list[VoiceInfo]:
        out = []
        for name, voice in voices.items():
            info = lock_info.get(name, {})
            out.append(
                VoiceInfo(
                    name=name,
                    sample_rate=int(voice.sample_rate),
                    checkpoint=info.get("checkpoint") or getattr(getattr(voice, "checkpoint", None), "name", None),
                    repo=info.get("repo"),
                    revision=info.get("revision"),
                    default=name == default_voice,
                )
            )
        return out

    @app.get(
        "/health",
        summary="Liveness",
        description="`ok` while the server runs; counts requests and synthesis failures.",
        response_model=Health,
        tags=["meta"],
    )
    async def health() -> Health:
        return Health(
            voices=list(voices),
            requests=stats["requests"],
            errors=stats["errors"],
            uptime_s=round(time.time() - started, 3),
        )

    return app


def lock_info_for(layout: Layout) -> dict[str, dict]:
    return {
        v["name"]: {"repo": v["repo"], "revision": v["revision"], "checkpoint": v["checkpoint"]}
        for v in list_voices(layout)
    }


def serve(layout: Layout, host: str = "127.0.0.1", port: int = DEFAULT_PORT, max_chars: int = 1000) -> None:
    """Load every installed voice once, then serve until interrupted."""
    import uvicorn

    voices = load_voices(layout)
    for voice in voices.values():
        print(
            f"loaded voice {voice.name} ({voice.checkpoint.name}, {voice.sample_rate} Hz) "
            f"in {voice.load_seconds:.1f}s",
            file=sys.stderr,
        )
    app = create_app(voices, max_chars=max_chars, lock_info=lock_info_for(layout))
    uvicorn.run(app, host=host, port=port, workers=1, log_level="info")


@contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run `app` under uvicorn in a background thread; yield its base URL (for tests, benchmarks).

    The socket is bound here (port 0 = a free port), so there is no race for the port.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
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
