"""`/api/tts`: the two voices over HTTP (FastAPI + uvicorn), loaded once at start.

Compatible with the request shape of coqui's own `tts-server`: `GET|POST /api/tts` with `text`
and `speaker_id` (here an alias of `voice`), answering `audio/wav`. Our additions: `voice`,
JSON bodies, `/api/voices`, `/health`, `/metrics` (Prometheus), JSON errors with fitting status
codes, a text length limit, sentence-by-sentence synthesis of long text, and `stream=true`.

Runtimes (runtime.py): a voice with an ONNX export runs on onnxruntime (no torch in the process;
sessions are thread-safe, so `workers` requests synthesize at once); otherwise on coqui-tts/torch
(one synthesis at a time: torch already spreads one over every core, and the model is not
thread-safe). Admission (admission.py): `workers` running, up to `max_queue` waiting, the rest
answered 503 with Retry-After; every request has a deadline (504 after it).

Streaming (`stream=true`): the answer is `audio/wav` sent chunk by chunk: first a 44-byte
RIFF/WAVE header (PCM, mono, 16-bit, the voice's rate) whose RIFF and data sizes are 0xFFFFFFFF
(length unknown), then one chunk of 16-bit little-endian samples per sentence (with the pause
after it), sent as soon as that sentence is synthesized. Samples are clipped, not
peak-normalised (the loudest sample of the whole text is not known when the first one leaves).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, AsyncIterator, Iterator, Mapping
from urllib.parse import parse_qsl

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..layout import Layout
from .admission import Admission, Deadline, QueueFull
from .metrics import make_metrics
from .pieces import EmptyTextError, pause_after, pcm16, pieces_or_raise, speak, stream_wav_header, wav_bytes
from .runtime import start_loading
from .synth import list_voices

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
    runtime: str = Field("torch", description="What synthesizes this voice: onnx (onnxruntime) or torch (coqui-tts).")
    precision: str = Field("fp32", description="fp32 (the exported graph) or int8 (its decoder quantized; "
                                               "`serve-tts --precision int8`).")


class Health(BaseModel):
    status: str = "ok"
    voices: list[str]
    requests: int = Field(description="/api/tts requests answered with audio since start.")
    errors: int = Field(description="/api/tts requests that failed inside synthesis (500).")
    uptime_s: float
    runtime: str = Field(description="onnx, torch, or mixed (see `runtimes`).")
    runtimes: dict[str, str] = Field(description="Voice name -> runtime serving it.")
    precision: str = Field("fp32", description="fp32, int8, or mixed (see `precisions`).")
    precisions: dict[str, str] = Field(default_factory=dict, description="Voice name -> fp32 or int8.")
    queue_length: int = Field(description="Admitted requests waiting for a synthesis worker.")
    in_progress: int = Field(description="Syntheses running right now.")
    workers: int = Field(description="Syntheses that may run at once.")
    max_queue: int = Field(description="Requests that may wait; more are answered 503.")


class TTSRequest(BaseModel):
    text: str = Field(description="Text to speak (Persian). Split into sentences internally.")
    voice: str | None = Field(None, description="Voice name; see /api/voices.")
    speaker_id: str | None = Field(None, description="Alias of `voice` (coqui tts-server).")
    stream: bool = Field(False, description="Send audio sentence by sentence (chunked WAV, see the API description).")


_ERRORS = {
    400: {"model": ErrorBody, "description": "Empty text, or conflicting voice/speaker_id."},
    404: {"model": ErrorBody, "description": "Unknown voice."},
    413: {"model": ErrorBody, "description": "Text longer than the server's limit."},
    415: {"model": ErrorBody, "description": "Unsupported request body type (POST)."},
    500: {"model": ErrorBody, "description": "Synthesis failed; the server keeps running."},
    503: {"model": ErrorBody, "description": "Queue full; retry after the `Retry-After` header's seconds."},
    504: {"model": ErrorBody, "description": "The request's time limit passed before its audio was ready."},
}
_WAV = {200: {"content": {"audio/wav": {}}, "description": "16-bit PCM mono WAV at the voice's sample rate."}}


def _error(status: int, code: str, detail: str, headers: dict | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status, headers=headers)


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on")


def runtime_of(voice: Any) -> str:
    return getattr(voice, "runtime", "torch")


def precision_of(voice: Any) -> str:
    return getattr(voice, "precision", "fp32")


def _overall(values: Mapping[str, str]) -> str:
    return next(iter(set(values.values()))) if len(set(values.values())) == 1 else "mixed"


def default_workers(voices: Mapping[str, Any]) -> int:
    """One synthesis at a time when any voice runs on torch; else one per core (at most 4)."""
    if any(runtime_of(v) != "onnx" for v in voices.values()):
        return 1
    return max(1, min(4, os.cpu_count() or 1))


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
) -> FastAPI:
    """The app. `voices`: name -> loaded Voice (anything with .sample_rate, .synthesize(text)).

    lock_info: name -> {"repo": ..., "revision": ..., "checkpoint": ...}, shown by /api/voices.
    one_at_a_time: one synthesis at a time across all voices (each Voice always serialises its
        own model). On a CPU this is faster: torch already uses every core for one synthesis,
        and two at once oversubscribe them.
    workers: syntheses at once (default: default_workers); max_queue: how many more may wait
        (then 503); timeout: seconds from admission to the answer (then 504).
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
    runtimes = {name: runtime_of(v) for name, v in voices.items()}
    precisions = {name: precision_of(v) for name, v in voices.items()}
    admission = Admission(workers or default_workers(voices), max_queue, timeout)
    metrics = make_metrics(runtimes=runtimes, queue_length=lambda: admission.queue_length,
                           running=lambda: admission.running)

    def count(voice: str | None, status: int) -> None:
        if metrics is not None:
            metrics.requests.labels(voice=voice or "", status=str(status)).inc()

    def done(voice: str, took: float, seconds: float) -> None:
        stats["requests"] += 1
        if metrics is not None:
            metrics.requests.labels(voice=voice, status="200").inc()
            metrics.latency.labels(voice=voice).observe(took)
            metrics.audio.labels(voice=voice).inc(seconds)
            if seconds > 0:
                metrics.rtf.labels(voice=voice).observe(took / seconds)

    def counted(name: str, voice: Any):
        def piece(text: str) -> np.ndarray:
            audio = voice.synthesize_piece(text)
            if metrics is not None:
                metrics.pieces.labels(voice=name).inc()
            return audio

        return piece

    app = FastAPI(
        title="persian-data TTS",
        version=__version__,
        description=(
            "Persian speech from the Kamtera Coqui VITS voices (female, male), loaded once at "
            "start. Long text is split into sentences at Persian and Latin punctuation "
            "(، ؛ ؟ . ! ?), synthesized piece by piece and joined. Requests are compatible "
            "with coqui's tts-server (`speaker_id` is an alias of `voice`).\n\n"
            "`stream=true`: `audio/wav` in chunks: a 44-byte header (PCM mono 16-bit, RIFF and data "
            "sizes 0xFFFFFFFF), then 16-bit little-endian samples, one chunk per sentence as soon as it "
            "is synthesized (clipped, not peak-normalised).\n\n"
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
        try:
            pieces = pieces_or_raise(text)
        except EmptyTextError as exc:
            count(name, 400)
            return _error(400, "empty_text", str(exc))
        try:
            ticket = admission.admit()
        except QueueFull as exc:
            count(name, 503)
            return _error(503, "busy", f"{admission.workers} synthesizing and {admission.max_queue} waiting; "
                          f"retry in {exc.retry_after} s", headers={"Retry-After": str(exc.retry_after)},
                          retry_after=exc.retry_after)
        headers = {"X-Voice": name, "X-Runtime": runtimes[name], "X-Precision": precisions[name],
                   "X-Sample-Rate": str(voice.sample_rate)}
        synth_piece = counted(name, voice)
        if _truthy(params.get("stream")):
            headers["X-Stream-Format"] = "wav; pcm_s16le; mono; unsized (0xFFFFFFFF); one chunk per sentence"
            return StreamingResponse(stream(ticket, name, voice, pieces, synth_piece), media_type="audio/wav",
                                     headers=headers)
        began = time.perf_counter()
        try:
            audio = await admission.run(ticket, speak, text, synth_piece, voice.sample_rate, ticket.stop.is_set)
            body = await run_in_threadpool(wav_bytes, audio, voice.sample_rate)
        except Deadline:
            count(name, 504)
            return _error(504, "timeout", f"no audio within this server's limit of {admission.timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - any failure inside synthesis is a 500
            stats["errors"] += 1
            count(name, 500)
            log.exception("synthesis failed (voice %s, %d chars)", name, len(text))
            return _error(500, "synthesis_failed", f"{type(exc).__name__}: {exc}")
        finally:
            admission.release(ticket)
        elapsed = time.perf_counter() - began
        seconds = len(audio) / voice.sample_rate if voice.sample_rate else 0.0
        done(name, elapsed, seconds)
        return Response(
            body,
            media_type="audio/wav",
            headers={**headers, "X-Audio-Seconds": f"{seconds:.3f}", "X-Synthesis-Seconds": f"{elapsed:.3f}"},
        )

    async def stream(ticket, name: str, voice: Any, pieces: list[str], synth_piece) -> AsyncIterator[bytes]:
        began = time.perf_counter()
        samples = 0
        try:
            yield stream_wav_header(voice.sample_rate)
            for index, piece in enumerate(pieces):
                audio = await admission.run(ticket, synth_piece, piece)
                if index < len(pieces) - 1:
                    audio = np.concatenate([audio, np.zeros(int(voice.sample_rate * pause_after(piece)), np.float32)])
                samples += len(audio)
                yield pcm16(audio)
            done(name, time.perf_counter() - began, samples / voice.sample_rate)
        except Deadline:
            count(name, 504)
            log.warning("stream cut at the time limit (%g s), voice %s", admission.timeout, name)
        except Exception:  # noqa: BLE001 - the status line is gone; end the stream and log
            stats["errors"] += 1
            count(name, 500)
            log.exception("streamed synthesis failed (voice %s)", name)
        finally:
            admission.release(ticket)

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
        stream: bool = Query(False, description="Send audio sentence by sentence (chunked WAV)."),
    ) -> Response:
        return await synthesize({"text": text, "voice": voice, "speaker_id": speaker_id, "stream": stream})

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
                    runtime=runtimes[name],
                    precision=precisions[name],
                )
            )
        return out

    @app.get(
        "/health",
        summary="Liveness",
        description="`ok` while the server runs; the runtime, queue length, requests and synthesis failures.",
        response_model=Health,
        tags=["meta"],
    )
    async def health() -> Health:
        return Health(
            voices=list(voices),
            requests=stats["requests"],
            errors=stats["errors"],
            uptime_s=round(time.time() - started, 3),
            runtime=_overall(runtimes),
            runtimes=runtimes,
            precision=_overall(precisions),
            precisions=precisions,
            queue_length=admission.queue_length,
            in_progress=admission.running,
            workers=admission.workers,
            max_queue=admission.max_queue,
        )

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        description="Requests by voice and status, latency and real-time-factor histograms, audio seconds, "
                    "pieces synthesized, queue length, syntheses in progress, the runtime of each voice.",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}, 501: {"model": ErrorBody}},
        tags=["meta"],
    )
    async def prometheus_metrics() -> Response:
        if metrics is None:
            return _error(501, "metrics_unavailable", "prometheus_client is not installed; "
                          "pip install 'persian-data[serve]'")
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    app.state.admission = admission
    return app


def lock_info_for(layout: Layout) -> dict[str, dict]:
    return {
        v["name"]: {"repo": v["repo"], "revision": v["revision"], "checkpoint": v["checkpoint"]}
        for v in list_voices(layout)
    }


def serve(layout: Layout, host: str = "127.0.0.1", port: int = DEFAULT_PORT, max_chars: int = 1000, *,
          runtime: str = "auto", workers: int | None = None, max_queue: int = 8, timeout: float = 120.0,
          threads: int | None = None, loading: Future | None = None, precision: str = "fp32") -> None:
    """Load every available voice once (runtime.load_voices), then serve until interrupted.

    threads: onnxruntime intra-op threads per voice (default: onnxruntime's, one per core).
    loading: voices already being loaded (runtime.start_loading), e.g. started before this
        module's imports.
    """
    import uvicorn

    began = time.perf_counter()
    voices = (loading or start_loading(layout, runtime=runtime, threads=threads, precision=precision)).result()
    for voice in voices.values():
        print(
            f"loaded voice {voice.name} on {runtime_of(voice)} {precision_of(voice)} ({voice.checkpoint.name}, "
            f"{voice.sample_rate} Hz) "
            f"in {voice.load_seconds:.1f}s",
            file=sys.stderr,
        )
    app = create_app(voices, max_chars=max_chars, lock_info=lock_info_for(layout), workers=workers,
                     max_queue=max_queue, timeout=timeout)
    admission = app.state.admission
    print(f"serving on http://{host}:{port} ({admission.workers} at once, {admission.max_queue} may wait, "
          f"{admission.timeout:g} s per request; ready {time.perf_counter() - began:.1f}s after loading began)",
          file=sys.stderr)
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
