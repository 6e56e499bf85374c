"""The TTS server's request and answer shapes (pydantic), for validation and the OpenAPI page."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .encode import FORMATS
from .pieces import MAX_SPEED, MIN_SPEED


class ErrorBody(BaseModel):
    error: str = Field(description="Machine-readable code, e.g. empty_text, unknown_voice.")
    detail: str = Field(description="What went wrong, in words.")


class OpenAIErrorBody(BaseModel):
    error: dict[str, Any] = Field(description="OpenAI's error shape: message, type, param, code.")


class VoiceInfo(BaseModel):
    name: str = Field(description="Voice name to pass as `voice` (or `speaker_id`).")
    sample_rate: int = Field(description="Sample rate of the returned audio, in Hz.")
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
    requests: int = Field(description="Synthesis requests answered with audio since start.")
    errors: int = Field(description="Synthesis requests that failed inside synthesis (500).")
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
    speed: float = Field(1.0, ge=MIN_SPEED, le=MAX_SPEED, description="2.0 speaks twice as fast.")
    format: str = Field("wav", description="Audio format: " + ", ".join(FORMATS) + ".")
    stream: bool = Field(False, description="Send audio sentence by sentence (chunked WAV or PCM).")


class SpeechRequest(BaseModel):
    """OpenAI's `POST /v1/audio/speech` body."""

    model: str | None = Field(None, description="Accepted and ignored (the voices are loaded at start).")
    input: str = Field(description="Text to speak (Persian).")
    voice: str | None = Field(None, description="female or male; OpenAI's preset names (alloy, ...) speak with "
                                                 "the default voice.")
    response_format: str = Field("mp3", description="mp3 (default, as OpenAI), opus, aac, flac, wav or pcm.")
    speed: float = Field(1.0, ge=MIN_SPEED, le=MAX_SPEED, description="0.25 to 4.0; 2.0 speaks twice as fast.")
    instructions: str | None = Field(None, description="Accepted and ignored (VITS voices take no instructions).")
