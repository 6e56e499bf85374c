"""What every synthesis route does, in named steps: read the ask, admit it, synthesize, encode, count.

`SpeechService` holds the loaded voices, the admission (workers, queue, deadline), the metrics and
the counters; the routes (server.py) only translate HTTP into an `Ask` and a `Refusal` into their
own error shape (coqui-style JSON on /api/tts, OpenAI's on /v1/audio/speech).

    ask = service.ask(text=..., voice=..., speed=..., fmt=..., stream=...)   # 400 / 404 / 413
    return await service.answer(ask)                                          # 503 / 504 / 500
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, AsyncIterator, Callable, Mapping

import numpy as np
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..catalog import VOICE_SOURCES
from .admission import Admission, Deadline, QueueFull, Ticket
from .api_models import Health, VoiceInfo
from .encode import STREAMABLE, AudioFormat, FormatError, audio_format, encode
from .metrics import make_metrics
from .pieces import EmptyTextError, SpeedError, check_speed, pause, pcm16, pieces_or_raise, speak, stream_wav_header

log = logging.getLogger("persian_data.tts.server")


@dataclass
class Refusal(Exception):
    """A request answered without audio: status, machine code, words, extra headers and fields."""

    status: int
    code: str
    detail: str
    headers: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ask:
    """One checked request: what to say, with which voice, how fast, in which format."""

    text: str
    name: str
    voice: Any
    pieces: list[str]
    speed: float
    fmt: AudioFormat
    stream: bool


def runtime_of(voice: Any) -> str:
    return getattr(voice, "runtime", "torch")


def precision_of(voice: Any) -> str:
    return getattr(voice, "precision", "fp32")


def overall(values: Mapping[str, str]) -> str:
    return next(iter(set(values.values()))) if len(set(values.values())) == 1 else "mixed"


def default_workers(voices: Mapping[str, Any]) -> int:
    """One synthesis at a time when any voice runs on torch; else one per core (at most 4)."""
    import os

    if any(runtime_of(v) != "onnx" for v in voices.values()):
        return 1
    return max(1, min(4, os.cpu_count() or 1))


class SpeechService:
    def __init__(self, voices: Mapping[str, Any], *, max_chars: int, lock_info: Mapping[str, Mapping[str, Any]],
                 default_voice: str | None, one_at_a_time: bool, workers: int | None, max_queue: int,
                 timeout: float) -> None:
        self.voices = dict(voices)
        if one_at_a_time:  # torch spreads one synthesis over every core; two at once only fight for them
            shared = threading.Lock()
            for voice in self.voices.values():
                if hasattr(voice, "share_lock"):
                    voice.share_lock(shared)
        self.max_chars = max_chars
        self.lock_info = {k: dict(v) for k, v in lock_info.items()}
        # the catalog's first voice that is loaded (the female one), else any
        self.default_voice = default_voice or next((v for v in VOICE_SOURCES if v in self.voices),
                                                   next(iter(self.voices), None))
        self.runtimes = {name: runtime_of(v) for name, v in self.voices.items()}
        self.precisions = {name: precision_of(v) for name, v in self.voices.items()}
        self.admission = Admission(workers or default_workers(self.voices), max_queue, timeout)
        self.metrics = make_metrics(runtimes=self.runtimes, queue_length=lambda: self.admission.queue_length,
                                    running=lambda: self.admission.running)
        self.stats = {"requests": 0, "errors": 0}
        self.started = time.time()

    # -- step 1: read and check the request ------------------------------------------------------

    def ask(self, *, text: Any, voice: Any = None, alias: Any = None, speed: Any = 1.0, fmt: Any = "wav",
            stream: bool = False) -> Ask:
        """The checked request, or a Refusal (400 bad input, 404 unknown voice, 413 too long)."""
        name = self._voice_name(voice, alias)
        text = self._text(text)
        voice_obj = self.voices.get(name) if name else None
        if voice_obj is None:
            raise Refusal(404, "unknown_voice", f"unknown voice {name!r}; known: {', '.join(self.voices)}",
                          extra={"voices": list(self.voices)})
        try:
            speed = check_speed(speed)
        except SpeedError as exc:
            raise Refusal(400, "bad_speed", str(exc)) from None
        try:
            chosen = audio_format(fmt if isinstance(fmt, str) or fmt is None else str(fmt))
        except FormatError as exc:
            raise Refusal(400, "bad_format", str(exc)) from None
        if stream and chosen.name not in STREAMABLE:
            raise Refusal(400, "bad_format", f"stream=true sends {' or '.join(STREAMABLE)}, not {chosen.name}")
        try:
            pieces = pieces_or_raise(text)
        except EmptyTextError as exc:
            self.count(name, 400)
            raise Refusal(400, "empty_text", str(exc)) from None
        return Ask(text, name, voice_obj, pieces, speed, chosen, stream)

    def _voice_name(self, voice: Any, alias: Any) -> str | None:
        for key, value in (("voice", voice), ("speaker_id", alias)):
            if value is not None and not isinstance(value, str):
                raise Refusal(400, "bad_voice", f"`{key}` must be a string")
        if voice and alias and voice != alias:
            raise Refusal(400, "conflicting_voice", f"voice={voice!r} and speaker_id={alias!r} differ")
        return voice or alias or self.default_voice

    def _text(self, text: Any) -> str:
        if text is not None and not isinstance(text, str):
            raise Refusal(400, "bad_text", "`text` must be a string")
        if not text or not text.strip():
            raise Refusal(400, "empty_text", "`text` is empty")
        if len(text) > self.max_chars:
            raise Refusal(413, "text_too_long",
                          f"text has {len(text)} characters; this server takes at most {self.max_chars}",
                          extra={"max_chars": self.max_chars})
        return text

    # -- step 2: admit ---------------------------------------------------------------------------

    def admit(self, name: str) -> Ticket:
        try:
            return self.admission.admit()
        except QueueFull as exc:
            self.count(name, 503)
            admission = self.admission
            raise Refusal(503, "busy", f"{admission.workers} synthesizing and {admission.max_queue} waiting; "
                          f"retry in {exc.retry_after} s", headers={"Retry-After": str(exc.retry_after)},
                          extra={"retry_after": exc.retry_after}) from None

    # -- steps 3 and 4: synthesize and encode (or stream) ----------------------------------------

    async def answer(self, ask: Ask) -> Response:
        """The audio for a checked request: whole, or streamed sentence by sentence."""
        ticket = self.admit(ask.name)
        headers = self._headers(ask)
        if ask.stream:
            headers["X-Stream-Format"] = (f"{ask.fmt.name}; pcm_s16le; mono; "
                                          + ("unsized (0xFFFFFFFF); " if ask.fmt.name == "wav" else "")
                                          + "one chunk per sentence")
            return StreamingResponse(self._stream(ticket, ask), media_type=ask.fmt.media_type, headers=headers)
        began = time.perf_counter()
        try:
            audio = await self.admission.run(ticket, speak, ask.text, self._piece_fn(ask), ask.voice.sample_rate,
                                             ticket.stop.is_set)
            body, rate = await run_in_threadpool(encode, audio, ask.voice.sample_rate, ask.fmt)
        except Deadline:
            self.count(ask.name, 504)
            raise Refusal(504, "timeout", f"no audio within this server's limit of {self.admission.timeout:g} s") \
                from None
        except FormatError as exc:
            self.count(ask.name, 500)
            raise Refusal(500, "encoding_failed", str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - any failure inside synthesis is a 500
            self.stats["errors"] += 1
            self.count(ask.name, 500)
            log.exception("synthesis failed (voice %s, %d chars)", ask.name, len(ask.text))
            raise Refusal(500, "synthesis_failed", f"{type(exc).__name__}: {exc}") from None
        finally:
            self.admission.release(ticket)
        elapsed = time.perf_counter() - began
        seconds = len(audio) / ask.voice.sample_rate if ask.voice.sample_rate else 0.0
        self.done(ask.name, elapsed, seconds)
        headers.update({"X-Audio-Seconds": f"{seconds:.3f}", "X-Synthesis-Seconds": f"{elapsed:.3f}",
                        "X-Sample-Rate": str(rate),
                        "Content-Disposition": f'inline; filename="speech.{ask.fmt.extension}"'})
        return Response(body, media_type=ask.fmt.media_type, headers=headers)

    def _headers(self, ask: Ask) -> dict[str, str]:
        return {"X-Voice": ask.name, "X-Runtime": self.runtimes[ask.name], "X-Precision": self.precisions[ask.name],
                "X-Sample-Rate": str(ask.voice.sample_rate), "X-Speed": f"{ask.speed:g}",
                "X-Audio-Format": ask.fmt.name}

    def _piece_fn(self, ask: Ask) -> Callable[[str], np.ndarray]:
        """The voice's synthesize_piece at the asked speed, counted in the metrics."""
        synthesize = partial(ask.voice.synthesize_piece, speed=ask.speed) if ask.speed != 1.0 \
            else ask.voice.synthesize_piece
        metrics, name = self.metrics, ask.name

        def piece(text: str) -> np.ndarray:
            audio = synthesize(text)
            if metrics is not None:
                metrics.pieces.labels(voice=name).inc()
            return audio

        return piece

    async def _stream(self, ticket: Ticket, ask: Ask) -> AsyncIterator[bytes]:
        began = time.perf_counter()
        samples = 0
        rate = ask.voice.sample_rate
        synthesize = self._piece_fn(ask)
        try:
            if ask.fmt.name == "wav":
                yield stream_wav_header(rate)
            for index, piece in enumerate(ask.pieces):
                audio = await self.admission.run(ticket, synthesize, piece)
                if index < len(ask.pieces) - 1:
                    audio = np.concatenate([audio, pause(piece, rate, ask.speed)])
                samples += len(audio)
                yield pcm16(audio)
            self.done(ask.name, time.perf_counter() - began, samples / rate)
        except Deadline:
            self.count(ask.name, 504)
            log.warning("stream cut at the time limit (%g s), voice %s", self.admission.timeout, ask.name)
        except Exception:  # noqa: BLE001 - the status line is gone; end the stream and log
            self.stats["errors"] += 1
            self.count(ask.name, 500)
            log.exception("streamed synthesis failed (voice %s)", ask.name)
        finally:
            self.admission.release(ticket)

    # -- step 5: count ---------------------------------------------------------------------------

    def count(self, voice: str | None, status: int) -> None:
        if self.metrics is not None:
            self.metrics.requests.labels(voice=voice or "", status=str(status)).inc()

    def done(self, voice: str, took: float, seconds: float) -> None:
        self.stats["requests"] += 1
        if self.metrics is not None:
            self.metrics.requests.labels(voice=voice, status="200").inc()
            self.metrics.latency.labels(voice=voice).observe(took)
            self.metrics.audio.labels(voice=voice).inc(seconds)
            if seconds > 0:
                self.metrics.rtf.labels(voice=voice).observe(took / seconds)

    # -- what the meta routes show ---------------------------------------------------------------

    def voice_infos(self) -> list[VoiceInfo]:
        out = []
        for name, voice in self.voices.items():
            info = self.lock_info.get(name, {})
            out.append(VoiceInfo(
                name=name, sample_rate=int(voice.sample_rate),
                checkpoint=info.get("checkpoint") or getattr(getattr(voice, "checkpoint", None), "name", None),
                repo=info.get("repo"), revision=info.get("revision"), default=name == self.default_voice,
                runtime=self.runtimes[name], precision=self.precisions[name]))
        return out

    def health(self) -> Health:
        admission = self.admission
        return Health(voices=list(self.voices), requests=self.stats["requests"], errors=self.stats["errors"],
                      uptime_s=round(time.time() - self.started, 3), runtime=overall(self.runtimes),
                      runtimes=self.runtimes, precision=overall(self.precisions), precisions=self.precisions,
                      queue_length=admission.queue_length, in_progress=admission.running,
                      workers=admission.workers, max_queue=admission.max_queue)
