"""The two voices over HTTP (FastAPI + uvicorn), loaded once at start: coqui's API, OpenAI's, a page.

- `GET|POST /api/tts`: coqui tts-server's request shape (`text`, `speaker_id` as an alias of
  `voice`), plus `voice`, JSON and form bodies, `speed` (0.25-4.0), `format` (wav by default,
  mp3, opus, flac, aac, pcm) and `stream=true`.
- `POST /v1/audio/speech`: OpenAI's speech API (`model`, `input`, `voice`, `response_format`,
  `speed`), so the official `openai` client works with `base_url=http://host:port/v1`. Errors come
  in OpenAI's shape, so the client raises its usual exceptions.
- `/`: the voices page (page.py, shared with `persian-data explore`).
- `/api/voices`, `/health`, `/metrics` (Prometheus), the OpenAPI page at `/docs`.

Runtimes (runtime.py): a voice with an ONNX export runs on onnxruntime (no torch in the process;
sessions are thread-safe, so `workers` requests synthesize at once); otherwise on coqui-tts/torch
(one synthesis at a time). Admission (admission.py): `workers` running, up to `max_queue` waiting,
the rest answered 503 with Retry-After; every request has a deadline (504 after it). What every
synthesis does, step by step, is in service.py.

Streaming (`stream=true`, wav or pcm): first, for wav, a 44-byte RIFF/WAVE header (PCM, mono,
16-bit, the voice's rate) whose RIFF and data sizes are 0xFFFFFFFF (length unknown), then one
chunk of 16-bit little-endian samples per sentence (with the pause after it), sent as soon as that
sentence is synthesized. Samples are clipped, not peak-normalised (the loudest sample of the whole
text is not known when the first one leaves).
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import Future
from typing import Any, Mapping
from urllib.parse import parse_qsl

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..httpserve import bind, run, serve_in_thread  # noqa: F401 (serve_in_thread: tests and benchmarks)
from ..layout import Layout
from .api_models import ErrorBody, Health, OpenAIErrorBody, SpeechRequest, TTSRequest, VoiceInfo
from .encode import FORMATS
from .page import ASSETS_URL, PAGE_HEADERS, WEB_DIR, panel_context, template_environment
from .runtime import start_loading
from .service import Refusal, SpeechService, default_workers, precision_of, runtime_of  # noqa: F401
from .synth import list_voices

DEFAULT_PORT = 5002  # the port of coqui's tts-server
# OpenAI's preset voice names: a client written for OpenAI sends one of these; it speaks with the
# default voice (X-Voice says which) instead of failing.
OPENAI_VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer",
                           "verse"})

_ERRORS = {
    400: {"model": ErrorBody, "description": "Empty text, a bad speed or format, or conflicting voice/speaker_id."},
    404: {"model": ErrorBody, "description": "Unknown voice."},
    413: {"model": ErrorBody, "description": "Text longer than the server's limit."},
    415: {"model": ErrorBody, "description": "Unsupported request body type (POST)."},
    500: {"model": ErrorBody, "description": "Synthesis failed; the server keeps running."},
    503: {"model": ErrorBody, "description": "Queue full; retry after the `Retry-After` header's seconds."},
    504: {"model": ErrorBody, "description": "The request's time limit passed before its audio was ready."},
}
_AUDIO = {200: {"content": {f.media_type: {} for f in FORMATS.values()},
                "description": "Audio at the voice's sample rate (X-Sample-Rate): 16-bit PCM WAV by default."}}
_OPENAI_TYPES = {400: "invalid_request_error", 404: "invalid_request_error", 413: "invalid_request_error",
                 415: "invalid_request_error", 503: "server_busy", 504: "timeout", 500: "server_error"}


def _error(status: int, code: str, detail: str, headers: dict | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status, headers=headers)


def _coqui_error(refusal: Refusal) -> JSONResponse:
    return _error(refusal.status, refusal.code, refusal.detail, refusal.headers, **refusal.extra)


def _openai_error(refusal: Refusal, param: str | None = None) -> JSONResponse:
    body = {"error": {"message": refusal.detail, "type": _OPENAI_TYPES.get(refusal.status, "invalid_request_error"),
                      "param": param, "code": refusal.code}}
    return JSONResponse(body, status_code=refusal.status, headers=refusal.headers)


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on")


# -- building the app, step by step ------------------------------------------------------------------


def create_app(
    voices: Mapping[str, Any],
    *,
    max_chars: int = 1000,
    lock_info: Mapping[str, Mapping[str, Any]] | None = None,
    default_voice: str | None = None,
    one_at_a_time: bool = True,
    workers: int | None = None,
    max_queue: int = 8,
    timeout: float = 120.0,
    page: bool = True,
) -> FastAPI:
    """The app. `voices`: name -> loaded Voice (anything with .sample_rate, .synthesize_piece(text, speed)).

    lock_info: name -> {"repo": ..., "revision": ..., "checkpoint": ...}, shown by /api/voices.
    one_at_a_time: one synthesis at a time across all voices (each Voice always serialises its
        own model). On a CPU this is faster: torch already uses every core for one synthesis.
    workers: syntheses at once (default: default_workers); max_queue: how many more may wait
        (then 503); timeout: seconds from admission to the answer (then 504).
    page: the voices page at `/` (explore mounts this app under /tts/ and shows its own).
    """
    service = SpeechService(voices, max_chars=max_chars, lock_info=lock_info or {}, default_voice=default_voice,
                            one_at_a_time=one_at_a_time, workers=workers, max_queue=max_queue, timeout=timeout)
    app = FastAPI(title="persian-data TTS", version=__version__, description=_DESCRIPTION)
    add_coqui_routes(app, service)
    add_openai_route(app, service)
    add_meta_routes(app, service)
    if page:
        add_voices_page(app, service)
    app.state.service = service
    app.state.admission = service.admission
    return app


_DESCRIPTION = (
    "Persian speech from the Kamtera Coqui VITS voices (female, male), loaded once at start. Long text is split "
    "into sentences at Persian and Latin punctuation (، ؛ ؟ . ! ?), synthesized piece by piece and joined.\n\n"
    "Two APIs: coqui tts-server's `/api/tts` (`speaker_id` is an alias of `voice`; plus `speed`, `format`, "
    "`stream`) and OpenAI's `POST /v1/audio/speech` (`model`, `input`, `voice`, `response_format`, `speed`): "
    "the official `openai` client works with `base_url=http://HOST:PORT/v1`.\n\n"
    "`stream=true`: `audio/wav` (or `pcm`) in chunks: a 44-byte header (PCM mono 16-bit, RIFF and data sizes "
    "0xFFFFFFFF), then 16-bit little-endian samples, one chunk per sentence as soon as it is synthesized "
    "(clipped, not peak-normalised).\n\n"
    "Example: `curl -G --data-urlencode 'text=سلام دنیا' 'http://127.0.0.1:5002/api/tts?voice=female' -o hello.wav`"
)


async def _answer_coqui(service: SpeechService, params: Mapping[str, Any]) -> Response:
    try:
        ask = service.ask(text=params.get("text"), voice=params.get("voice"), alias=params.get("speaker_id"),
                          speed=params.get("speed", 1.0), fmt=params.get("format") or "wav",
                          stream=_truthy(params.get("stream")))
        return await service.answer(ask)
    except Refusal as refusal:
        return _coqui_error(refusal)


async def _post_params(request: Request, max_chars: int) -> dict[str, Any]:
    """Query parameters updated by the body (JSON, urlencoded or multipart); Refusal for a bad body."""
    params: dict[str, Any] = dict(request.query_params)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_chars * 8 + 65536:
        raise Refusal(413, "text_too_long", "request body too large", extra={"max_chars": max_chars})
    raw = await request.body()
    if not raw:
        return params
    if content_type in ("application/json", "") or content_type.endswith("+json"):
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise Refusal(400, "bad_json", f"body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise Refusal(400, "bad_json", "JSON body must be an object")
        params.update(body)
    elif content_type == "application/x-www-form-urlencoded":
        try:
            params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise Refusal(400, "bad_form", "form body is not UTF-8") from None
    elif content_type == "multipart/form-data":
        try:
            form = await request.form()
        except AssertionError:  # python-multipart is not installed
            raise Refusal(415, "unsupported_body",
                          "multipart bodies need python-multipart; send JSON or urlencoded instead") from None
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    else:
        raise Refusal(415, "unsupported_body", f"unsupported content type {content_type!r}; send JSON or urlencoded")
    return params


def add_coqui_routes(app: FastAPI, service: SpeechService) -> None:
    """`GET|POST /api/tts`: coqui tts-server's shape, plus speed, format and streaming."""

    @app.get("/api/tts", summary="Synthesize speech (query parameters)",
             description="Speak `text` with `voice`; WAV unless `format` says otherwise. As coqui tts-server's GET.",
             response_class=Response, responses={**_AUDIO, **_ERRORS}, tags=["tts"])
    async def tts_get(
        text: str | None = Query(None, description="Text to speak.", examples=["سلام دنیا."]),
        voice: str | None = Query(None, description="Voice name: see /api/voices."),
        speaker_id: str | None = Query(None, description="Alias of `voice` (coqui tts-server)."),
        language_id: str | None = Query(None, description="Accepted for coqui compatibility; ignored."),
        speed: str | None = Query(None, description="0.25 to 4.0 (default 1.0): the voice's length scale ÷ speed."),
        format: str | None = Query(None, description="wav (default), mp3, opus, flac, aac or pcm."),
        stream: bool = Query(False, description="Send audio sentence by sentence (chunked WAV or PCM)."),
    ) -> Response:
        return await _answer_coqui(service, {"text": text, "voice": voice, "speaker_id": speaker_id,
                                             "speed": 1.0 if speed is None else speed, "format": format,
                                             "stream": stream})

    @app.post("/api/tts", summary="Synthesize speech (JSON, form or query)",
              description="Body as JSON `{\"text\": ..., \"voice\": ..., \"speed\": ..., \"format\": ...}` or as "
                          "`application/x-www-form-urlencoded`; query parameters work too (body wins).",
              response_class=Response, responses={**_AUDIO, **_ERRORS}, tags=["tts"],
              openapi_extra={"requestBody": {"required": False, "content": {
                  "application/json": {"schema": TTSRequest.model_json_schema()},
                  "application/x-www-form-urlencoded": {"schema": TTSRequest.model_json_schema()}}}})
    async def tts_post(request: Request) -> Response:
        try:
            params = await _post_params(request, service.max_chars)
        except Refusal as refusal:
            return _coqui_error(refusal)
        return await _answer_coqui(service, params)


def add_openai_route(app: FastAPI, service: SpeechService) -> None:
    """`POST /v1/audio/speech`, OpenAI's request and error shapes."""

    @app.post("/v1/audio/speech", summary="Synthesize speech (OpenAI-compatible)",
              description="OpenAI's speech API: `model` (ignored), `input`, `voice` (female, male; OpenAI's preset "
                          "names speak with the default voice), `response_format` (mp3 by default, as OpenAI; opus, "
                          "aac, flac, wav, pcm), `speed` (0.25-4.0). pcm is 16-bit little-endian mono at "
                          "X-Sample-Rate.",
              response_class=Response, responses={**_AUDIO, 400: {"model": OpenAIErrorBody},
                                                  404: {"model": OpenAIErrorBody}, 503: {"model": OpenAIErrorBody}},
              tags=["openai"],
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": SpeechRequest.model_json_schema()}}}})
    async def openai_speech(request: Request) -> Response:
        try:
            body = await _post_params(request, service.max_chars)
        except Refusal as refusal:
            return _openai_error(refusal)
        voice = body.get("voice")
        if isinstance(voice, str) and voice.lower() in OPENAI_VOICES and voice not in service.voices:
            voice = None  # the default voice
        try:
            ask = service.ask(text=body.get("input"), voice=voice, speed=body.get("speed", 1.0),
                              fmt=body.get("response_format") or "mp3")
        except Refusal as refusal:
            param = {"empty_text": "input", "bad_text": "input", "text_too_long": "input", "unknown_voice": "voice",
                     "bad_voice": "voice", "bad_speed": "speed", "bad_format": "response_format"}.get(refusal.code)
            return _openai_error(refusal, param)
        try:
            return await service.answer(ask)
        except Refusal as refusal:
            return _openai_error(refusal)


def add_meta_routes(app: FastAPI, service: SpeechService) -> None:
    """`/api/voices`, `/health`, `/metrics`."""

    @app.get("/api/voices", summary="List the voices",
             description="Name, sample rate, source repo and revision (from the lock file) of each loaded voice.",
             response_model=list[VoiceInfo], tags=["tts"])
    async def api_voices() -> list[VoiceInfo]:
        return service.voice_infos()

    @app.get("/health", summary="Liveness",
             description="`ok` while the server runs; the runtime, queue length, requests and synthesis failures.",
             response_model=Health, tags=["meta"])
    async def health() -> Health:
        return service.health()

    @app.get("/metrics", summary="Prometheus metrics",
             description="Requests by voice and status, latency and real-time-factor histograms, audio seconds, "
                         "pieces synthesized, queue length, syntheses in progress, the runtime of each voice.",
             response_class=Response, responses={200: {"content": {"text/plain": {}}}, 501: {"model": ErrorBody}},
             tags=["meta"])
    async def prometheus_metrics() -> Response:
        if service.metrics is None:
            return _error(501, "metrics_unavailable", "prometheus_client is not installed; "
                          "pip install 'persian-data[serve]'")
        body, content_type = service.metrics.render()
        return Response(body, media_type=content_type)


def add_voices_page(app: FastAPI, service: SpeechService) -> None:
    """The voices page at `/` and its assets."""
    env = template_environment()
    app.mount(ASSETS_URL, StaticFiles(directory=WEB_DIR), name="tts-assets")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def voices_page() -> HTMLResponse:
        voices = [info.model_dump() for info in service.voice_infos()]
        html = env.get_template("voices_page.html").render(**panel_context(voices, api_base="/"))
        return HTMLResponse(html, headers=PAGE_HEADERS)


# -- serving -----------------------------------------------------------------------------------------


def lock_info_for(layout: Layout) -> dict[str, dict]:
    return {
        v["name"]: {"repo": v["repo"], "revision": v["revision"], "checkpoint": v["checkpoint"]}
        for v in list_voices(layout)
    }


def serve(layout: Layout, host: str = "127.0.0.1", port: int = DEFAULT_PORT, max_chars: int = 1000, *,
          runtime: str = "auto", workers: int | None = None, max_queue: int = 8, timeout: float = 120.0,
          threads: int | None = None, loading: Future | None = None, precision: str = "fp32") -> None:
    """Take the port, load every available voice once (runtime.load_voices), then serve until interrupted.

    The port is bound first: a busy port fails at once, in one line (httpserve.PortInUseError),
    before the voices load and before anything says "serving".
    threads: onnxruntime intra-op threads per voice (default: onnxruntime's, one per core).
    loading: voices already being loaded (runtime.start_loading), e.g. started before this
        module's imports.
    """
    sock = bind(host, port)
    try:
        began = time.perf_counter()
        voices = (loading or start_loading(layout, runtime=runtime, threads=threads, precision=precision)).result()
        for voice in voices.values():
            print(f"loaded voice {voice.name} on {runtime_of(voice)} {precision_of(voice)} ({voice.checkpoint.name}, "
                  f"{voice.sample_rate} Hz) in {voice.load_seconds:.1f}s", file=sys.stderr)
        app = create_app(voices, max_chars=max_chars, lock_info=lock_info_for(layout), workers=workers,
                         max_queue=max_queue, timeout=timeout)
        admission = app.state.admission
        print(f"serving on http://{host}:{sock.getsockname()[1]} ({admission.workers} at once, "
              f"{admission.max_queue} may wait, {admission.timeout:g} s per request; ready "
              f"{time.perf_counter() - began:.1f}s after loading began); the voices page is at /", file=sys.stderr)
        run(app, sock)
    finally:
        sock.close()
