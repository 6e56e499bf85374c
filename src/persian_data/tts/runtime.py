"""Which runtime speaks a voice: its ONNX export (onnxruntime, no torch) or coqui-tts on torch.

`--runtime auto` (the default) takes the ONNX export when the voice has one
(`datasets/tts/<voice>/onnx/`, written by `persian-data tts-export`), else torch. An export that
is present but does not match its record (tampered, truncated, or made from another checkpoint)
is an error in `auto` too, never a silent fallback: the user asked for the layout's voice and
that file is not what was checked. `--runtime onnx` needs the export; `--runtime torch` ignores it.

`--precision int8` (opt-in; default fp32) runs the export's model.int8.onnx (`tts-export --int8`):
it needs the ONNX runtime, so `auto` means onnx and `torch` is refused.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..atomic import atomic_write_bytes
from ..errors import ExtraMissingError, PersianDataError
from ..layout import Layout
from ..progress import is_interactive, progress
from .check import VOICE_SOURCES, inference_checkpoint_name
from .onnx_record import ONNX_DIR, PRECISIONS, RECORD_FILE, OnnxExportError, known_source_sha256
from .pieces import check_speed, pieces_or_raise, user_readable
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


def _runtime_for(runtime: str, precision: str) -> str:
    if runtime not in RUNTIMES:
        raise PersianDataError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise PersianDataError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "int8":
        if runtime == "torch":
            raise PersianDataError("--precision int8 runs the int8 ONNX export on onnxruntime; it cannot run on "
                                   "--runtime torch (use --runtime onnx or auto, or --precision fp32)")
        return "onnx"
    return runtime


def load_voice(layout: Layout, voice: str, runtime: str = "auto", *, threads: int | None = None,
               precision: str = "fp32"):
    """The loaded voice (synth.Voice on torch, onnx_voice.OnnxVoice on onnxruntime)."""
    runtime = _runtime_for(runtime, precision)
    source = _source(voice)
    model_dir = layout.content_dir(source)
    folder = layout.bucket_root(source) / ONNX_DIR
    if runtime != "torch" and folder.exists():
        from .onnx_voice import OnnxVoice

        return OnnxVoice.load(folder, model_dir=model_dir, name=voice, threads=threads, precision=precision,
                              source_sha256=known_source_sha256(layout, source))
    if runtime == "onnx":
        int8 = " --int8" if precision == "int8" else ""
        raise OnnxExportError(f"voice {voice}: no ONNX export at {folder}; make one with `persian-data "
                              f"tts-export --root {layout.root} --voice {voice}{int8}` (needs the tts extra, once)")
    from .synth import Voice

    preferred = inference_checkpoint_name(source)
    if preferred and not (model_dir / preferred).is_file():
        preferred = None
    try:
        return Voice.load(model_dir, checkpoint=preferred, name=voice)
    except ExtraMissingError as exc:
        raise ExtraMissingError(f"voice {voice} has no ONNX export ({folder}) and {exc}; or export it "
                                f"where the tts extra is installed: persian-data tts-export --voice {voice}") from exc


def _has_int8(folder: Path) -> bool:
    """Whether the export's record names an int8 model (read cheaply; loading checks it properly)."""
    try:
        return "int8" in json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def available_voices(layout: Layout, runtime: str = "auto", precision: str = "fp32") -> list[str]:
    """Voices that can be loaded with `runtime`: with an ONNX export, or with a checkpoint (not for onnx);
    for int8, voices whose export has the int8 model."""
    runtime = _runtime_for(runtime, precision)
    names = []
    for entry in list_voices(layout):
        folder = onnx_dir(layout, entry["name"])
        has_onnx = folder.exists() and (precision != "int8" or _has_int8(folder))
        if (runtime != "torch" and has_onnx) or (runtime != "onnx" and entry["installed"]):
            names.append(entry["name"])
    return names


def load_voices(layout: Layout, names: list[str] | None = None, runtime: str = "auto", *,
                threads: int | None = None, precision: str = "fp32") -> dict:
    """Load every available voice (or `names`), each once, in parallel (onnxruntime builds a
    session in C++ without the GIL, so two voices load in the time of one on two cores)."""
    return start_loading(layout, names, runtime, threads=threads, precision=precision).result()


def start_loading(layout: Layout, names: list[str] | None = None, runtime: str = "auto", *,
                  threads: int | None = None, precision: str = "fp32") -> Future:
    """load_voices in background threads; a Future of {name: voice}. `serve-tts` starts this
    before importing the web stack, so the two overlap (cold start)."""
    wanted = names or available_voices(layout, runtime, precision)
    if not wanted:
        if precision == "int8":
            raise PersianDataError(f"no TTS voice under {layout.datasets / 'tts'} has an int8 ONNX export; make "
                                   f"one with `persian-data tts-export --root {layout.root} --int8` (needs the tts "
                                   "extra, once)")
        hint = ("export them first (persian-data tts-export)" if runtime == "onnx"
                else "fetch them first (persian-data fetch --only tts)")
        raise PersianDataError(f"no TTS voice {'exported' if runtime == 'onnx' else 'installed'} under "
                               f"{layout.datasets / 'tts'}; {hint}")
    pool = ThreadPoolExecutor(len(wanted), thread_name_prefix="tts-load")
    futures = {name: pool.submit(load_voice, layout, name, runtime, threads=threads, precision=precision)
               for name in wanted}
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


class SentenceProgress:
    """Sentences synthesized: the shared tqdm bar on a terminal; otherwise a log line at every tenth of
    the text (and at least every 30 s), so a pipe or a log file shows a long synth moving."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.done = total, desc, 0
        self._bar = progress(total, desc, "sentence", logger=log) if is_interactive() else None
        self._next = max(1, total // 10)
        self._last = time.monotonic()

    def update(self, _piece: str = "") -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
            return
        now = time.monotonic()
        if self.done >= self._next or now - self._last >= 30:
            log.info("%s: %d/%d sentences (%d %%)", self.desc, self.done, self.total, 100 * self.done // self.total)
            self._next = self.done + max(1, self.total // 10)
            self._last = now

    def __enter__(self) -> "SentenceProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()


def synth_to_file(layout: Layout, voice: str, text: str, out_path: Path, runtime: str = "auto",
                  precision: str = "fp32", *, speed: float = 1.0, audio_format: str | None = None) -> Path:
    """Speak `text` with `voice` into a file at the voice's sample rate; return the path.

    Progress per sentence: a bar on a terminal, a log line every few seconds otherwise.
    audio_format: wav, mp3, opus, flac, aac or pcm (default: from the file's extension, else wav)."""
    from .encode import FORMATS, audio_format as pick_format, encode

    out_path = Path(out_path)
    suffix = out_path.suffix.lower().lstrip(".")
    fmt = pick_format(audio_format or (suffix if suffix in FORMATS else "wav"))
    speed = check_speed(speed)
    pieces = pieces_or_raise(text)
    loaded = load_voice(layout, voice, runtime, precision=precision)
    log.info("synth: %d sentence(s), %d characters, voice %s on %s (%s)", len(pieces), len(text), voice,
             loaded.runtime, getattr(loaded, "precision", "fp32"))
    began = time.perf_counter()
    with SentenceProgress(len(pieces), f"synth {voice}") as bar:
        audio = loaded.synthesize(text, speed=speed, on_piece=bar.update)
    body, _rate = encode(audio, loaded.sample_rate, fmt)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_path, body, out_path.parent)
    user_readable(out_path)
    log.info("synth: %.1f s of audio in %.1f s", len(audio) / loaded.sample_rate, time.perf_counter() - began)
    return out_path
