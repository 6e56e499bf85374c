"""A voice served from its ONNX export with onnxruntime: no torch, no coqui-tts.

What coqui's `Synthesizer.tts(piece, split_sentences=False)` does for a VITS voice, step by step:
text -> ids (frontend.TextFrontEnd, the twin of coqui's tokenizer), the VITS graph (the ONNX file
`tts-export` wrote with coqui's own `Vits.export_onnx`), then coqui's end-of-speech trim
(`AudioProcessor.find_endpoint`, when the config sets `do_trim_silence`). Sentence split, pauses
and WAV writing are shared with the torch runtime (pieces.py).

Loading checks the export first (onnx_record.checked_record): the ONNX bytes that the session is
built from are the bytes whose sha256 matched the record, so a tampered file is never run.
onnxruntime sessions are thread-safe: several requests may synthesize at once.

Precision: `fp32` runs model.onnx (the default, the export's exact graph); `int8` runs
model.int8.onnx (`tts-export --int8`, quantize.py: the decoder's convolutions in int8, ~2.7x
faster on a CPU with VNNI, ~35 dB from the float32 audio). Both are plain onnxruntime graphs
(QLinearConv is a standard operator): nothing more is needed to run the int8 one.
"""

from __future__ import annotations

import hashlib
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ExtraMissingError
from .frontend import TextFrontEnd
from .onnx_record import MODEL_ENTRY, PRECISIONS, RECORD_FILE, OnnxExportError, checked_record, read_record, sha256_of
from .pieces import speak

INSTALL_SERVE = "pip install 'persian-data[serve]'"
MIN_SILENCE_S = 0.8  # coqui's find_endpoint default, as Synthesizer.tts calls it


def require_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise ExtraMissingError(
            f"onnxruntime is not installed ({exc}); install the light serving extra with {INSTALL_SERVE}"
        ) from exc
    return onnxruntime


def find_endpoint(wav: np.ndarray, *, sample_rate: int, trim_db: float, gain: float, base: float,
                  min_silence_sec: float = MIN_SILENCE_S) -> int:
    """coqui's AudioProcessor.find_endpoint: where the trailing silence starts (or len(wav))."""
    window = int(sample_rate * min_silence_sec)
    hop = int(window / 4)
    threshold = np.power(10, -trim_db / gain) if base == 10 else np.exp(-trim_db / gain)
    for start in range(hop, len(wav) - window, hop):
        if np.max(wav[start:start + window]) < threshold:
            return start + hop
    return len(wav)


class OnnxVoice:
    """One voice on onnxruntime. Thread-safe; no lock: runs may overlap."""

    runtime = "onnx"

    def __init__(self, session: Any, front_end: TextFrontEnd, record: dict, *, name: str, folder: Path,
                 load_seconds: float, scales: Sequence[float] | None = None, precision: str = "fp32") -> None:
        self._session = session
        self.precision = precision
        self.front_end = front_end
        self.record = record
        self.name = name
        self.folder = Path(folder)
        self.checkpoint = Path(record["source"]["checkpoint"]["file"])  # what it was exported from
        self.load_seconds = load_seconds
        audio = record["audio"]
        self.sample_rate = int(audio["sample_rate"])
        self._trim = audio.get("do_trim_silence") and dict(
            sample_rate=int(audio["ap_sample_rate"]), trim_db=float(audio["trim_db"]),
            gain=float(audio["spec_gain"]), base=float(audio["base"]))
        self._scales = np.asarray(scales if scales is not None else record["scales"], dtype=np.float32)

    @classmethod
    def load(cls, folder: Path, *, model_dir: Path | None = None, name: str | None = None,
             source_sha256: dict[str, str] | None = None, threads: int | None = None,
             scales: Sequence[float] | None = None, precision: str = "fp32") -> "OnnxVoice":
        """Check `folder` against its record (and `model_dir`'s files, when given), then load it.

        Raises OnnxExportError (tampered, stale, incomplete), FrontEndError (espeak-ng missing),
        ExtraMissingError (no onnxruntime).
        threads: onnxruntime's intra-op threads for this voice (default: one per core).
        scales: [noise, length, noise_dp] instead of the recorded ones (the export check uses 0 noise).
        precision: fp32 (model.onnx) or int8 (model.int8.onnx, when the export made one); only the
            file that will run is hashed.
        """
        if precision not in PRECISIONS:
            raise OnnxExportError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        ort = require_onnxruntime()
        started = time.perf_counter()
        folder = Path(folder)
        loaded: dict[Path, bytes] = {}
        entry_key = MODEL_ENTRY[precision]
        if entry_key not in read_record(folder):
            voice = name or folder.parent.name
            raise OnnxExportError(f"voice {voice}: its ONNX export ({folder}) has no int8 model; make one "
                                  f"with `persian-data tts-export --voice {voice} --int8` (needs the tts extra, once)")

        def sha256(path: Path) -> str:
            if path.suffix == ".onnx" and path.parent == folder:
                loaded[path] = path.read_bytes()  # hash exactly the bytes the session will run
                return hashlib.sha256(loaded[path]).hexdigest()
            return sha256_of(path)

        record = checked_record(folder, model_dir, sha256=sha256, source_sha256=source_sha256,
                                precisions=(precision,))
        front_end = TextFrontEnd(record["front_end"])
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        data = loaded[folder / record[entry_key]["file"]]
        session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        del data, loaded
        return cls(session, front_end, record, name=name or folder.parent.name, folder=folder,
                   load_seconds=time.perf_counter() - started, scales=scales, precision=precision)

    def run_ids(self, ids: list[int], speed: float = 1.0) -> np.ndarray:
        """The raw VITS output for these ids (no trim). speed: the length scale is divided by it."""
        scales = self._scales
        if speed != 1.0:
            scales = scales.copy()
            scales[1] /= speed
        out = self._session.run(["output"], {
            "input": np.asarray([ids], dtype=np.int64),
            "input_lengths": np.asarray([len(ids)], dtype=np.int64),
            "scales": scales,
        })[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def synthesize_piece(self, piece: str, speed: float = 1.0) -> np.ndarray:
        ids = self.front_end.ids(piece)
        if not self.front_end.has_symbols(ids):
            # nothing the voice can say (every character outside its vocabulary): silence, where the
            # graph (like coqui's model) would fail on a sequence of one blank
            return np.zeros(0, np.float32)
        wav = self.run_ids(ids, speed)
        if self._trim:
            wav = wav[: find_endpoint(wav, **self._trim)]
        return wav

    def synthesize(self, text: str, should_stop: Callable[[], bool] | None = None, *, speed: float = 1.0,
                   on_piece: Callable[[str], None] | None = None) -> np.ndarray:
        piece = self.synthesize_piece if speed == 1.0 else partial(self.synthesize_piece, speed=speed)
        return speak(text, piece, self.sample_rate, should_stop, speed=speed, on_piece=on_piece)

    def info(self) -> dict:
        return {"name": self.name, "runtime": self.runtime, "precision": self.precision,
                "sample_rate": self.sample_rate, "checkpoint": self.checkpoint.name,
                "onnx": str(self.folder / RECORD_FILE)}
