"""Synthesized audio into the formats clients ask for: wav, mp3, opus, flac, pcm (and aac).

The formats of OpenAI's speech API (`response_format`) and of coqui's server. Everything but aac is
written by libsndfile through soundfile (a base dependency; its wheels ship libsndfile 1.2 with
LAME/mpg123 for MP3 and libopus for Ogg/Opus), in memory, with no subprocess: MP3 (CBR),
Ogg/Opus, FLAC (16-bit), WAV (16-bit PCM, as `pieces.wav_bytes` has always written it) and raw
16-bit little-endian PCM. libsndfile cannot write AAC, so `aac` (ADTS) goes through ffmpeg when it
is installed and is refused with a clear message otherwise.

Every format starts from the same peak-normalised 16-bit samples as the WAV, so a client gets the
same loudness whatever it asks for. Opus only takes 8/12/16/24/48 kHz: a voice at another rate is
resampled (scipy's polyphase filter) to the next supported rate, and the answer says so
(`X-Sample-Rate`). The Kamtera voices run at 24 kHz, which Opus takes as it is.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from math import gcd

import numpy as np

from ..errors import PersianDataError
from .pieces import wav_bytes

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


class FormatError(PersianDataError):
    """An audio format this server cannot write (unknown, or its encoder is not installed)."""


@dataclass(frozen=True)
class AudioFormat:
    name: str
    media_type: str
    extension: str


FORMATS = {
    "wav": AudioFormat("wav", "audio/wav", "wav"),
    "mp3": AudioFormat("mp3", "audio/mpeg", "mp3"),
    "opus": AudioFormat("opus", "audio/ogg", "opus"),  # Ogg/Opus, as OpenAI and coqui send it
    "flac": AudioFormat("flac", "audio/flac", "flac"),
    "aac": AudioFormat("aac", "audio/aac", "aac"),
    "pcm": AudioFormat("pcm", "audio/pcm", "pcm"),  # 16-bit little-endian mono, no header
}
STREAMABLE = ("wav", "pcm")  # formats sent sentence by sentence with stream=true


def audio_format(name: str | None, default: str = "wav") -> AudioFormat:
    key = (name or default).strip().lower()
    if key not in FORMATS:
        raise FormatError(f"unknown audio format {name!r}; choose one of {', '.join(FORMATS)}")
    if key == "aac" and shutil.which("ffmpeg") is None:
        raise FormatError("aac needs ffmpeg, which is not installed on this server (apt-get install ffmpeg); "
                          "ask for mp3, opus, flac, wav or pcm instead")
    return FORMATS[key]


def normalised_pcm16(audio: np.ndarray) -> np.ndarray:
    """Peak-normalised 16-bit samples, exactly those `pieces.wav_bytes` writes."""
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return np.clip(audio * (32767.0 / max(0.01, peak)), -32768, 32767).astype("<i2")


def opus_rate(sample_rate: int) -> int:
    """The rate Opus is written at: the voice's own, or the next rate Opus supports."""
    return next((r for r in OPUS_RATES if r >= sample_rate), OPUS_RATES[-1])


def _resample(pcm: np.ndarray, rate: int, target: int) -> np.ndarray:
    from scipy.signal import resample_poly  # scipy comes with the base install (datasketch)

    g = gcd(rate, target)
    out = resample_poly(pcm.astype(np.float32), target // g, rate // g)
    return np.clip(out, -32768, 32767).astype("<i2")


def encode(audio: np.ndarray, sample_rate: int, fmt: AudioFormat) -> tuple[bytes, int]:
    """(bytes in `fmt`, the sample rate they are at)."""
    if fmt.name == "wav":
        return wav_bytes(audio, sample_rate), sample_rate
    pcm = normalised_pcm16(audio)
    if fmt.name == "pcm":
        return pcm.tobytes(), sample_rate
    if fmt.name == "aac":
        return _ffmpeg_aac(pcm, sample_rate), sample_rate
    import soundfile as sf

    rate = sample_rate
    if fmt.name == "opus" and sample_rate not in OPUS_RATES:
        rate = opus_rate(sample_rate)
        pcm = _resample(pcm, sample_rate, rate)
    container, subtype = {"mp3": ("MP3", "MPEG_LAYER_III"), "opus": ("OGG", "OPUS"),
                          "flac": ("FLAC", "PCM_16")}[fmt.name]
    buffer = io.BytesIO()
    sf.write(buffer, pcm, rate, format=container, subtype=subtype)
    return buffer.getvalue(), rate


def _ffmpeg_aac(pcm: np.ndarray, sample_rate: int) -> bytes:
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar", str(sample_rate), "-ac", "1",
               "-i", "pipe:0", "-c:a", "aac", "-b:a", "64k", "-f", "adts", "pipe:1"]
    try:
        done = subprocess.run(command, input=pcm.tobytes(), capture_output=True, timeout=120, check=True)
    except FileNotFoundError as exc:
        raise FormatError("aac needs ffmpeg, which is not installed on this server") from exc
    except subprocess.CalledProcessError as exc:
        why = exc.stderr.decode("utf-8", "replace").strip()[:300]
        raise FormatError(f"ffmpeg could not encode aac: {why}") from exc
    return done.stdout
