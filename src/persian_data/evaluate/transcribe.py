"""Run mode: transcribe a split's audio with a `transformers` ASR pipeline, resumably.

* The model is anything `transformers.pipeline("automatic-speech-recognition")` loads: a Hub name
  (honouring `HF_ENDPOINT` and the token) or a local folder. Whisper models get
  `language="persian", task="transcribe"`; CTC models (wav2vec2 and kin) decode as they are.
* Audio comes from the manifest's `audio_path` (Common Voice MP3 at 48 kHz, FLEURS WAV at 16 kHz),
  decoded by soundfile, mixed to mono and resampled to the model's rate by soxr (the resampler
  librosa uses; high quality, C).
* Resumable: each finished batch is appended to `.persian-data/eval/<corpus>-<split>-<name>/
  hypotheses.partial.jsonl` and fsynced, with the seconds it took and a per-process session id. A
  killed run leaves at most a torn last line (dropped on the next start); the next run transcribes
  only the clips that are not there. When every clip is done, `hypotheses.jsonl` is written
  atomically into the output folder and scored like any hypotheses file.
* RTFx = audio seconds / processing seconds (decode + resample + inference; model loading is
  reported apart), summed over every session that contributed.

Needs the `eval` extra (transformers, torch, soxr); the rest of `eval-stt` does not.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

from ..atomic import atomic_write_bytes, fsync_dir
from ..errors import ExtraMissingError
from ..layout import Layout
from ..progress import progress
from .errors import EvalInputError
from .hypotheses import Hypotheses
from .references import References
from .report import output_dir

log = logging.getLogger("persian_data.evaluate")

WHISPER_KWARGS = {"language": "persian", "task": "transcribe"}
WHISPER_WINDOW = 30.0


@dataclass
class RunOptions:
    model: str
    device: str = "cpu"
    batch_size: int = 8
    token: str | None = None


def default_name(model: str) -> str:
    return Path(model.rstrip("/")).name or "model"


def state_dir(layout: Layout, refs: References, name: str) -> Path:
    return layout.state_dir / "eval" / f"{refs.corpus}-{refs.split}-{name}"


def _read_partial(path: Path) -> dict[str, dict]:
    """Finished clips of earlier sessions. A torn last line (a kill mid-write) is cut off."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    done: dict[str, dict] = {}
    good = 0
    for line in data.split(b"\n"):
        end = good + len(line) + 1
        if end > len(data):  # no newline: the write was cut short
            break
        try:
            row = orjson.loads(line)
            done[row["id"]] = row
        except (orjson.JSONDecodeError, KeyError, TypeError):
            break
        good = end
    if good < len(data):
        log.info("dropping %d byte(s) of an unfinished line from %s", len(data) - good, path)
        with open(path, "r+b") as f:
            f.truncate(good)
    return done


def _imports():
    try:
        import soxr
        import torch  # noqa: F401
        from transformers import pipeline
    except ImportError as exc:
        raise ExtraMissingError(f"run mode needs the eval extra ({exc.name} is missing): "
                                f"pip install 'persian-data[eval]'") from None
    return pipeline, soxr


def _load_audio(layout: Layout, refs: References, k: int, target_sr: int, soxr):
    import numpy as np
    import soundfile as sf

    path = layout.root / refs.audio_paths[k]
    try:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as exc:
        raise EvalInputError(f"{path}: cannot decode clip {refs.ids[k]} ({exc}); finished clips are kept, run the "
                             f"same command again after fixing it") from None
    x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    if sr != target_sr:
        x = soxr.resample(x, sr, target_sr)
    return np.ascontiguousarray(x, dtype=np.float32)


def _check_audio(layout: Layout, refs: References) -> None:
    for k in range(len(refs)):
        if refs.audio_refs[k] is not None:
            raise EvalInputError(f"{refs.manifest}: clips were prepared with --no-extract (audio inside the source "
                                 f"files); run mode reads audio files: run `persian-data prepare speech` without "
                                 f"--no-extract")
        if not (layout.root / refs.audio_paths[k]).is_file():
            raise EvalInputError(f"{layout.root / refs.audio_paths[k]}: audio of clip {refs.ids[k]} is missing; "
                                 f"run `persian-data prepare speech` again")


class _RunLock:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise EvalInputError(f"{path.parent}: another eval-stt run is transcribing into it") from None

    def close(self) -> None:
        os.close(self.fd)


def transcribe(layout: Layout, refs: References, run: RunOptions, name: str) -> tuple[Hypotheses, dict]:
    _check_audio(layout, refs)
    pipeline, soxr = _imports()
    state = state_dir(layout, refs, name)
    lock = _RunLock(state / "lock")
    try:
        return _transcribe(layout, refs, run, name, state, pipeline, soxr)
    finally:
        lock.close()


def _transcribe(layout, refs, run, name, state, pipeline, soxr):
    partial = state / "hypotheses.partial.jsonl"
    meta_path = state / "run.json"
    meta = {"model": run.model, "corpus": refs.corpus, "split": refs.split}
    try:
        old = orjson.loads(meta_path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        old = None
    if old is not None and old != meta:
        log.warning("%s held another model's transcripts (%s); starting over", state, old.get("model"))
        partial.unlink(missing_ok=True)
    atomic_write_bytes(meta_path, orjson.dumps(meta), layout.tmp_dir)
    done = _read_partial(partial)
    wanted = set(refs.ids)
    done = {k: v for k, v in done.items() if k in wanted}
    pending = [k for k, cid in enumerate(refs.ids) if cid not in done]
    if done:
        log.info("resuming: %d of %d clip(s) already transcribed, %d to go", len(done), len(refs), len(pending))

    session = uuid.uuid4().hex[:12]
    load_seconds = 0.0
    if pending:
        t0 = time.perf_counter()
        token = run.token or os.environ.get("HF_TOKEN") or None
        try:
            pipe = pipeline("automatic-speech-recognition", model=run.model, device=run.device, token=token)
        except (OSError, ValueError, RuntimeError) as exc:
            msg = " ".join(str(exc).split())[:300]
            if token:
                msg = msg.replace(token, "***")
            raise EvalInputError(f"--model {run.model}: cannot load it as an ASR pipeline ({msg})") from None
        load_seconds = time.perf_counter() - t0
        is_whisper = getattr(pipe.model.config, "model_type", "") == "whisper"
        kwargs = {"generate_kwargs": dict(WHISPER_KWARGS)} if is_whisper else {}
        if is_whisper and max(refs.durations[k] for k in pending) > WHISPER_WINDOW:
            # Whisper sees 30 s at a time: longer clips are chunked by the pipeline, not truncated
            kwargs["chunk_length_s"] = WHISPER_WINDOW
        target_sr = pipe.feature_extractor.sampling_rate
        log.info("transcribing %d clip(s) with %s on %s (%s, %d Hz)", len(pending), run.model, run.device,
                 "whisper, persian, transcribe" if is_whisper else pipe.model.config.model_type, target_sr)
        with open(partial, "ab") as out, progress(len(pending), f"transcribe {refs.corpus} {refs.split}", "clip",
                                                  logger=log) as bar:
            for start in range(0, len(pending), run.batch_size):
                batch = pending[start:start + run.batch_size]
                t1 = time.perf_counter()
                audio = [_load_audio(layout, refs, k, target_sr, soxr) for k in batch]
                outputs = pipe(audio, batch_size=len(audio), **kwargs)
                seconds = (time.perf_counter() - t1) / len(batch)
                lines = []
                for k, o in zip(batch, outputs):
                    row = {"id": refs.ids[k], "text": (o.get("text") or "").strip(), "seconds": seconds,
                           "audio_seconds": refs.durations[k], "session": session}
                    done[refs.ids[k]] = row
                    lines.append(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
                out.write(b"".join(lines))
                out.flush()
                os.fsync(out.fileno())
                bar.update(len(batch))
        fsync_dir(state)

    texts = {cid: done[cid]["text"] for cid in refs.ids}
    final = output_dir(layout, refs.corpus, refs.split, name) / "hypotheses.jsonl"
    atomic_write_bytes(final, b"".join(orjson.dumps({"id": cid, "text": texts[cid]}, option=orjson.OPT_APPEND_NEWLINE)
                                      for cid in refs.ids), layout.tmp_dir)
    audio_s = sum(float(done[c].get("audio_seconds") or 0.0) for c in refs.ids)
    proc_s = sum(float(done[c].get("seconds") or 0.0) for c in refs.ids)
    sessions = sorted({done[c].get("session", "") for c in refs.ids})
    info = {"model": run.model, "device": run.device, "batch_size": run.batch_size, "clips": len(refs),
            "transcribed_now": len(pending), "resumed": len(refs) - len(pending), "sessions": sessions,
            "this_session": session, "model_load_seconds": load_seconds, "audio_seconds": audio_s,
            "processing_seconds": proc_s, "rtfx": (audio_s / proc_s) if proc_s > 0 else 0.0,
            "hypotheses": str(final)}
    return Hypotheses(final, "jsonl", texts), info
