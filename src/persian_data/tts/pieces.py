"""Text into pieces, pieces into one waveform, a waveform into WAV bytes: shared by both runtimes.

The sentence split is ours (coqui's pysbd does not know Persian punctuation such as ؟ and ؛);
each piece is synthesized on its own and the pieces are joined with a short pause. numpy only.
"""

from __future__ import annotations

import io
import os
import re
import wave
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..atomic import atomic_write_bytes
from ..errors import PersianDataError

# Where a piece ends. Persian: ، (comma) ؛ (semicolon) ؟ (question mark); Latin: . ! ? ; ,
# plus … and newlines. A "." between two digits (3.14) is not an end.
_CLAUSE_END = "،؛,;"
_SENTENCE_END = "؟?!.…"
_SPLIT = re.compile(r"(?<!\d)\.|\.(?!\d)|[؟?!…،؛,;]|\n+")
_HAS_WORD = re.compile(r"\w")
MAX_PIECE_CHARS = 300  # longer runs without punctuation are cut at spaces
CLAUSE_CHARS = 120  # clauses (، ؛ , ;) are packed into pieces of up to this many characters
PAUSE_CLAUSE_S = 0.15
PAUSE_SENTENCE_S = 0.35


class EmptyTextError(PersianDataError, ValueError):
    """Nothing to say: the text is empty or has no letters or digits."""


class SpeedError(PersianDataError, ValueError):
    """A speed outside what the voices take."""


def split_sentences(
    text: str, max_chars: int = MAX_PIECE_CHARS, clause_chars: int = CLAUSE_CHARS
) -> list[str]:
    """Split `text` into pieces at Persian and Latin punctuation, keeping the punctuation.

    Sentence ends (. ! ? ؟ … and newlines) always end a piece. Clause marks (، ؛ , ;) end one
    only when the sentence is long: clauses are packed together up to `clause_chars`, so a
    short "بله، درست است." stays one piece and keeps its intonation. Pieces without any letter
    or digit (e.g. "...") are dropped; pieces longer than `max_chars` are cut at whitespace.
    """
    raw: list[str] = []
    start = 0
    for match in _SPLIT.finditer(text):
        end = match.end()
        if end <= start:
            continue
        # keep runs of closing punctuation ("?!", "...") with their piece
        while end < len(text) and text[end] in _CLAUSE_END + _SENTENCE_END:
            end += 1
        raw.append(text[start:end])
        start = end
    raw.append(text[start:])
    out: list[str] = []
    current = ""
    for piece in raw:
        piece = " ".join(piece.split())
        if not piece:
            continue
        if current and len(current) + 1 + len(piece) > clause_chars:
            out.append(current)
            current = ""
        current = f"{current} {piece}" if current else piece
        if current[-1] not in _CLAUSE_END:  # a sentence end (or the end of the text)
            out.append(current)
            current = ""
    if current:
        out.append(current)
    pieces: list[str] = []
    for piece in out:
        if _HAS_WORD.search(piece):
            pieces.extend(_cut(piece, max_chars))
    return pieces


def _cut(piece: str, max_chars: int) -> list[str]:
    if len(piece) <= max_chars:
        return [piece]
    chunks: list[str] = []
    current = ""
    for word in piece.split(" "):
        if current and len(current) + 1 + len(word) > max_chars:
            chunks.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
        while len(current) > max_chars:  # one "word" longer than the limit
            chunks.append(current[:max_chars])
            current = current[max_chars:]
    if current:
        chunks.append(current)
    return chunks


def pause_after(piece: str) -> float:
    tail = piece.rstrip()[-1:]
    return PAUSE_CLAUSE_S if tail and tail in _CLAUSE_END else PAUSE_SENTENCE_S


PieceFn = Callable[[str], np.ndarray]
MIN_SPEED, MAX_SPEED = 0.25, 4.0  # OpenAI's range for `speed`


def check_speed(speed: float) -> float:
    """`speed` as a float in [MIN_SPEED, MAX_SPEED]; 2.0 speaks twice as fast (the VITS length scale / 2)."""
    try:
        value = float(speed)
    except (TypeError, ValueError):
        raise SpeedError(f"speed {speed!r} is not a number; give one from {MIN_SPEED} to {MAX_SPEED}") from None
    if not MIN_SPEED <= value <= MAX_SPEED:  # also refuses nan
        raise SpeedError(f"speed {speed!r} is outside {MIN_SPEED}-{MAX_SPEED}")
    return value


def pieces_or_raise(text: str) -> list[str]:
    pieces = split_sentences(text)
    if not pieces:
        raise EmptyTextError("nothing to synthesize: the text has no letters or digits")
    return pieces


def pause(piece: str, sample_rate: int, speed: float = 1.0) -> np.ndarray:
    """The silence after `piece`: shorter when speaking faster, like the speech itself."""
    return np.zeros(int(sample_rate * pause_after(piece) / speed), np.float32)


def iter_audio(pieces: list[str], synthesize_piece: PieceFn, sample_rate: int,
               should_stop: Callable[[], bool] | None = None, *, speed: float = 1.0,
               on_piece: Callable[[str], None] | None = None) -> Iterator[np.ndarray]:
    """Each piece's audio followed by its pause (none after the last), one array at a time.

    on_piece: called after each piece is synthesized (progress)."""
    for index, piece in enumerate(pieces):
        if should_stop is not None and should_stop():
            return
        yield synthesize_piece(piece)
        if on_piece is not None:
            on_piece(piece)
        if index < len(pieces) - 1:
            yield pause(piece, sample_rate, speed)


def speak(text: str, synthesize_piece: PieceFn, sample_rate: int,
          should_stop: Callable[[], bool] | None = None, *, speed: float = 1.0,
          on_piece: Callable[[str], None] | None = None) -> np.ndarray:
    """Split `text`, synthesize each piece, join with pauses. Mono float32 in [-1, 1].

    synthesize_piece already speaks at `speed`; here it shortens the pauses."""
    parts = list(iter_audio(pieces_or_raise(text), synthesize_piece, sample_rate, should_stop, speed=speed,
                            on_piece=on_piece))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM mono WAV. Peak-normalised like coqui's own save_wav (peaks below 0.01 kept)."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    scale = 32767.0 / max(0.01, peak)
    pcm = np.clip(audio * scale, -32768, 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def pcm16(audio: np.ndarray) -> bytes:
    """Little-endian 16-bit PCM of float audio, clipped to [-1, 1] (no normalisation: for streams,
    where the loudest sample of the whole text is not known yet)."""
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def stream_wav_header(sample_rate: int) -> bytes:
    """A 44-byte RIFF/WAVE header for mono 16-bit PCM of unknown length: the RIFF and data sizes
    are 0xFFFFFFFF, the convention streaming readers (ffmpeg, browsers, sox) accept."""
    import struct

    rate = int(sample_rate)
    return (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", 0xFFFFFFFF))


def write_wav(out_path: Path, audio: np.ndarray, sample_rate: int) -> Path:
    """wav_bytes into `out_path`, atomically, as a normal file for the user (not mkstemp's 0600)."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_path, wav_bytes(audio, sample_rate), out_path.parent)
    return user_readable(out_path)


def user_readable(path: Path) -> Path:
    """The mode a user's new file gets (the umask's), not the 0600 of the atomic temp file."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
    return path
