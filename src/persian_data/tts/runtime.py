"""Which runtime speaks a voice: its ONNX export (onnxruntime, no torch) or coqui-tts on torch.

`--runtime auto` (the default) takes the ONNX export when the voice has one
(`datasets/tts/<voice>/onnx/`, written by `persian-data tts-export`), else torch. An export that
is present but does not match its record (tampered, truncated, or made from another checkpoint)
is an error in `auto` too, never a silent fallback: the user asked for the layout's voice and
that file is not what was checked. `--runtime onnx` needs the export; `--runtime torch` ignores it.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..errors import ExtraMissingError, PersianDataError
from ..layout import Layout
from .check import VOICE_SOURCES, inference_checkpoint_name
from .onnx_record import ONNX_DIR, OnnxExportError, known_source_sha256
from .pieces import write_wav
from .synth import list_voices

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnx", "torch")


def onnx_dir(layout: Layout, voice: str) -> Path:
    return layout.bucket_root(_source(voice)) / ONNX_DIR


def _source(voice: str):
    try:
        return VOICE_SOURCES[voice]
    except KeyError:
        raise PersianDataError(f"unknown voice {voice!r}; known: {', '.join(VOICE_SOURCES)}") from None


def load_voice(layout: Layout, voice: str, runtime: str = "auto", *, threads: int | None = None):
    """The loaded voice (synth.Voice on torch, onnx_voice.OnnxVoice on onnxruntime)."""
    if runtime not in RUNTIMES:
        raise PersianDataError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    source = _source(voice)
    model_dir = layout.content_dir(source)
    folder = layout.bucket_root(source) / ONNX_DIR
    if runtime != "torch" and folder.exists():
        from .onnx_voice import OnnxVoice

        return OnnxVoice.load(folder, model_dir=model_dir, name=voice, threads=threads,
                              source_sha256=known_source_sha256(layout, source))
    if runtime == "onnx":
        raise OnnxExportError(f"voice {voice}: no ONNX export at {folder}; make one with `persian-data "
                              f"tts-export --root {layout.root} --voice {voice}` (needs the tts extra, once)")
    from .synth import Voice

    preferred = inference_checkpoint_name(source)
    if preferred and not (model_dir / preferred).is_file():
        preferred = None
    try:
        return Voice.load(model_dir, checkpoint=preferred, name=voice)
    except ExtraMissingError as exc:
        raise ExtraMissingError(f"voice {voice} has no ONNX export ({folder}) and {exc}; or export it "
                                f"where the tts extra is installed: persian-data tts-export --voice {voice}") from exc


def available_voices(layout: Layout, runtime: str = "auto") -> list[str]:
    """Voices that can be loaded with `runtime`: with an ONNX export, or with a checkpoint (not for onnx)."""
    names = []
    for entry in list_voices(layout):
        has_onnx = onnx_dir(layout, entry["name"]).exists()
        if (runtime != "torch" and has_onnx) or (runtime != "onnx" and entry["installed"]):
            names.append(entry["name"])
    return names


def load_voices(layout: Layout, names: list[str] | None = None, runtime: str = "auto", *,
                threads: int | None = None) -> dict:
    """Load every available voice (or `names`), each once, in parallel (onnxruntime builds a
    session in C++ without the GIL, so two voices load in the time of one on two cores)."""
    return start_loading(layout, names, runtime, threads=threads).result()


def start_loading(layout: Layout, names: list[str] | None = None, runtime: str = "auto", *,
                  threads: int | None = None) -> Future:
    """load_voices in background threads; a Future of {name: voice}. `serve-tts` starts this
    before importing the web stack, so the two overlap (cold start)."""
    wanted = names or available_voices(layout, runtime)
    if not wanted:
        hint = ("export them first (persian-data tts-export)" if runtime == "onnx"
                else "fetch them first (persian-data fetch --only tts)")
        raise PersianDataError(f"no TTS voice {'exported' if runtime == 'onnx' else 'installed'} under "
                               f"{layout.datasets / 'tts'}; {hint}")
    pool = ThreadPoolExecutor(len(wanted), thread_name_prefix="tts-load")
    futures = {name: pool.submit(load_voice, layout, name, runtime, threads=threads) for name in wanted}
    pool.shutdown(wait=False)
    done: Future = Future()

    def collect(_=None) -> None:
        if done.done() or not all(f.done() for f in futures.values()):
            return
        failed = next((f.exception() for f in futures.values() if f.exception() is not None), None)
        if failed is not None:
            done.set_exception(failed)
        else:
            done.set_result({name: f.result() for name, f in futures.items()})

    for future in futures.values():
        future.add_done_callback(collect)
    return done


def synth_to_file(layout: Layout, voice: str, text: str, out_path: Path, runtime: str = "auto") -> Path:
    """Speak `text` with `voice` into a WAV at the voice's sample rate; return the path."""
    loaded = load_voice(layout, voice, runtime)
    log.info("synth: voice %s on %s", voice, loaded.runtime)
    return write_wav(Path(out_path), loaded.synthesize(text), loaded.sample_rate)
