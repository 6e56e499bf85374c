"""The two Coqui VITS voices: model check (gate "tts"), ONNX export, synthesis, and an /api/tts server.

Importing this package registers the `tts` gate. It needs neither torch nor coqui-tts: those
come with the `tts` extra (pip install 'persian-data[tts]') and are imported only when a voice
is checked, loaded or built.
"""

from .check import (
    VOICE_SOURCES,
    VoiceCheckError,
    check_voice,
    find_checkpoint,
    require_tts_extra,
)
from .gate import tts_gates  # registers the gate (pipeline imports persian_data.tts.check, i.e. this package)
_SYNTH_NAMES = ("EmptyTextError", "Voice", "list_voices", "load_voices", "split_sentences", "synth_to_file",
                "voice_dir", "wav_bytes")


def __getattr__(name: str):
    # synth pulls in numpy; importing it lazily keeps `fetch` (which only needs the gate) quick.
    if name in _SYNTH_NAMES:
        from . import synth

        return getattr(synth, name)
    raise AttributeError(name)


__all__ = [
    "VOICE_SOURCES",
    "EmptyTextError",
    "Voice",
    "VoiceCheckError",
    "check_voice",
    "find_checkpoint",
    "list_voices",
    "load_voices",
    "require_tts_extra",
    "split_sentences",
    "synth_to_file",
    "tts_gates",
    "voice_dir",
    "wav_bytes",
]
