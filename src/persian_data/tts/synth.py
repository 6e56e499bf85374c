"""Synthesis with a Coqui VITS voice: load once, split into sentences, speak piece by piece.

The model is loaded through coqui-tts's own inference class,
`TTS.utils.synthesizer.Synthesizer(tts_checkpoint=..., tts_config_path=..., use_cuda=False)`,
the class behind the `tts` command, so text processing (cleaner, espeak-ng phonemes, symbol
ids, blank tokens) is exactly coqui's. We do the sentence split ourselves (coqui's pysbd does
not know Persian punctuation such as ؟ and ؛), call `Synthesizer.tts(piece,
split_sentences=False)` for each piece, and join the pieces with a short pause.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import PersianDataError
from ..layout import Layout
from .check import (
    CONFIG_NAME,
    VOICE_SOURCES,
    VoiceCheckError,
    check_or_raise,
    find_checkpoint,
    inference_checkpoint_name,
    quiet_coqui,
    require_tts_extra,
)
from .pieces import EmptyTextError, speak, split_sentences, wav_bytes, write_wav  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)


class Voice:
    """One loaded voice. Thread-safe: synthesis runs under a lock (the model is not)."""

    def __init__(self, synthesizer, *, name: str, model_dir: Path, checkpoint: Path, load_seconds: float):
        self._synth = synthesizer
        self._lock = threading.Lock()
        self.name = name
        self.model_dir = Path(model_dir)
        self.checkpoint = Path(checkpoint)
        self.load_seconds = load_seconds
        self.sample_rate: int = int(synthesizer.output_sample_rate)
        self._pad = _coqui_pad()

    @classmethod
    def load(
        cls,
        model_dir: Path,
        *,
        checkpoint: str | None = None,
        name: str | None = None,
        check: bool = True,
    ) -> "Voice":
        """Load config.json + checkpoint from `model_dir` (on the CPU), once.

        With `check` (default) the model check runs first, so a wrong pair, a bad checkpoint or
        a missing espeak-ng gives our clear error instead of a torch traceback.
        Raises ExtraMissingError without the tts extra, VoiceCheckError on a failed check.
        """
        model_dir = Path(model_dir)
        require_tts_extra()
        started = time.perf_counter()
        with quiet_coqui():
            if check:
                check_or_raise(model_dir, checkpoint=checkpoint, structural=False)
            ckpt = find_checkpoint(model_dir, checkpoint)
            if ckpt is None:
                raise VoiceCheckError(f"{model_dir}: no checkpoint (best_model_N.pth) found")
            config = model_dir / CONFIG_NAME
            from TTS.utils.synthesizer import Synthesizer

            try:
                synthesizer = Synthesizer(
                    tts_checkpoint=str(ckpt), tts_config_path=str(config), use_cuda=False
                )
            except Exception as exc:  # strict load_state_dict: names and shapes
                raise VoiceCheckError(
                    f"coqui-tts could not load {ckpt} with {config}: {exc}".strip()
                ) from exc
        return cls(
            synthesizer,
            name=name or model_dir.parent.name,
            model_dir=model_dir,
            checkpoint=ckpt,
            load_seconds=time.perf_counter() - started,
        )

    def share_lock(self, lock: threading.Lock) -> None:
        """Use `lock` instead of this voice's own: one synthesis at a time across voices.

        torch already spreads one synthesis over every core; two at once only fight for them.
        """
        self._lock = lock

    def synthesize_piece(self, piece: str, speed: float = 1.0) -> np.ndarray:
        """One piece, no splitting. Caller holds no lock; this takes it.

        speed: VITS's length scale is divided by it for this call (coqui's Synthesizer.tts takes a
        `speed` but its VITS ignores it; the model reads `length_scale` at inference)."""
        with self._lock:
            model = getattr(self._synth, "tts_model", None)
            base = getattr(model, "length_scale", None)
            if speed != 1.0 and base is not None:
                model.length_scale = base / speed
            try:
                wav = self._synth.tts(piece, split_sentences=False)
            finally:
                if speed != 1.0 and base is not None:
                    model.length_scale = base
        audio = np.asarray(wav, dtype=np.float32)
        # Synthesizer.tts appends a fixed block of zeros after every call; our join adds its own.
        if self._pad and audio.size >= self._pad and not np.any(audio[-self._pad :]):
            audio = audio[: -self._pad]
        return audio

    def synthesize(self, text: str, should_stop: Callable[[], bool] | None = None, *, speed: float = 1.0,
                   on_piece: Callable[[str], None] | None = None) -> np.ndarray:
        """Speak `text`: split into sentences, synthesize each, join. Mono float32 in [-1, 1]."""
        piece = self.synthesize_piece if speed == 1.0 else partial(self.synthesize_piece, speed=speed)
        return speak(text, piece, self.sample_rate, should_stop, speed=speed, on_piece=on_piece)

    runtime = "torch"
    precision = "fp32"

    def info(self) -> dict:
        return {
            "name": self.name,
            "runtime": self.runtime,
            "precision": self.precision,
            "sample_rate": self.sample_rate,
            "checkpoint": self.checkpoint.name,
        }


def _coqui_pad() -> int:
    try:
        from TTS.utils.synthesizer import PAD_SILENCE_SAMPLES

        return int(PAD_SILENCE_SAMPLES)
    except ImportError:  # pragma: no cover - older/newer coqui without the constant
        return 0


def synth_to_file(
    model_dir: Path, text: str, out_path: Path, *, checkpoint: str | None = None
) -> Path:
    """Load the voice in `model_dir`, speak `text`, write a WAV at the model's sample rate."""
    voice = Voice.load(model_dir, checkpoint=checkpoint)
    return write_wav(Path(out_path), voice.synthesize(text), voice.sample_rate)


# -- voices of a layout --------------------------------------------------------------------------


def voice_dir(layout: Layout, voice: str) -> Path:
    """datasets/tts/<folder>/model for `voice` ("female" or "male")."""
    try:
        source = VOICE_SOURCES[voice]
    except KeyError:
        raise PersianDataError(
            f"unknown voice {voice!r}; known: {', '.join(VOICE_SOURCES)}"
        ) from None
    return layout.content_dir(source)


def read_lock(layout: Layout) -> dict:
    """The lock file's `sources` mapping, or {} if there is no (readable) lock yet."""
    try:
        data = json.loads(layout.lock_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    sources = data.get("sources") if isinstance(data, dict) else None
    return sources if isinstance(sources, dict) else {}


def _config_sample_rate(model_dir: Path) -> int | None:
    try:
        audio = json.loads((model_dir / CONFIG_NAME).read_text(encoding="utf-8"))["audio"]
        rate = audio.get("output_sample_rate") or audio["sample_rate"]
        return int(rate)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def list_voices(layout: Layout) -> list[dict]:
    """Both voices: name, installed, sample_rate (from config.json), repo, revision (from the
    lock, None before a locked fetch), path, checkpoint. Needs no torch."""
    lock = read_lock(layout)
    voices = []
    for name, source in VOICE_SOURCES.items():
        model_dir = layout.content_dir(source)
        entry = lock.get(source.key) if isinstance(lock.get(source.key), dict) else {}
        preferred = inference_checkpoint_name(source)
        if preferred and not (model_dir / preferred).is_file():
            preferred = None
        ckpt = find_checkpoint(model_dir, preferred) if model_dir.is_dir() else None
        voices.append(
            {
                "name": name,
                "installed": bool(ckpt and (model_dir / CONFIG_NAME).is_file()),
                "sample_rate": _config_sample_rate(model_dir),
                "repo": entry.get("repo_id", source.repo_id),
                "revision": entry.get("revision"),
                "path": str(model_dir),
                "checkpoint": ckpt.name if ckpt else None,
            }
        )
    return voices


def load_voices(layout: Layout, names: list[str] | None = None) -> dict[str, Voice]:
    """Load every installed voice (or `names`), each once."""
    wanted = names or [v["name"] for v in list_voices(layout) if v["installed"]]
    if not wanted:
        raise PersianDataError(
            f"no TTS voice installed under {layout.datasets / 'tts'}; "
            "fetch them first (persian-data fetch --only tts)"
        )
    voices: dict[str, Voice] = {}
    for name in wanted:
        source = VOICE_SOURCES[name]
        model_dir = layout.content_dir(source)
        preferred = inference_checkpoint_name(source)
        if preferred and not (model_dir / preferred).is_file():
            preferred = None
        voices[name] = Voice.load(model_dir, checkpoint=preferred, name=name)
    return voices
