"""The opt-in int8 voice (`tts-export --int8`): the waveform decoder's convolutions in int8.

Why: the HiFi-GAN decoder is almost all of a VITS voice's compute (2.4 MFLOP per output sample
at the voices' real dimensions, ~58 GFLOP per second of 24 kHz audio). A real-time factor of
0.25 would need ~230 GFLOP/s sustained, more than a 2-core CPU's float32 GEMM peak; int8 kernels
(VNNI) roughly triple the arithmetic per cycle. Only the decoder's `Conv` nodes are quantized:
the text encoder, duration predictor and flow stay float32, so the durations (and so the length
of the audio) are the float32 voice's. The transposed convolutions (upsampling) stay float32 too.

How: onnxruntime's own quantization tool (`onnxruntime.quantization`), not a hand-written pass:
it is maintained with the runtime whose int8 kernels (QLinearConv) run the result, knows each
operator's quantized form, and does the calibration. `quant_pre_process` first (ONNX shape
inference and basic graph optimisation, as its documentation asks before static quantization),
then `quantize_static`: static (activation ranges calibrated once, no range computation per
request), QOperator format (QLinearConv nodes: onnxruntime runs them directly), weights int8 per
output channel (a decoder layer's channels differ in scale by orders of magnitude), activations
uint8, MinMax calibration (the full range seen: no clipping of speech peaks), one calibration
input at a time (`CalibStridedMinMax`, so memory holds one sentence's activations). Weights use
7 bits (`reduce_range`): onnxruntime's u8s8 kernels on AVX2/AVX-512 CPUs without VNNI add pairs
of products in 16 bits and saturate with full 8-bit weights (its documentation says so); on
such a CPU (an AMD EPYC with AVX2 only) the tiny test voices came out at 18-25 dB with 8 bits and
pass with 7. An export may be served on another machine than the one that made it, so the
weights are always 7-bit rather than chosen by the exporting CPU.

Cost, at the voices' real dimensions on 2 cores: ~26 s more for the export (47-57 s in all), and
its peak memory goes from 2.0 to 4.7 GB (the calibration session keeps every Conv tensor of a
sentence; the longest check sentence sets the peak). Once per voice, where the tts extra is.

Calibration data is the voice's own input: the export's check sentences through the torch-free
front end, with the scales the export records (the noise on, as a served request has it),
never random ids.

The check (`check_int8`), on every check sentence with the noise scales at 0 (both sides
deterministic), through the full torch-free path (front end, int8 graph, end trim):

1. the int8 voice gives exactly as many samples as torch (as the float32 check requires): the
   durations are float32 and must not move;
2. its signal-to-noise ratio against torch's audio, 10*log10(sum(ref^2) / sum((int8 - ref)^2)),
   is at least MIN_SNR_DB on every sentence.

Why 30 dB. The float32 check allows 4 LSB of the 16-bit output (float rounding only; its SNR is
above 60 dB); int8 cannot meet that: 8-bit activations add noise by design. Measured (onnxruntime
1.32, noise 0, every check sentence): a VITS of the voices' real dimensions with random weights,
35.3-35.5 dB; the test hub's tiny voices, 33.8-36.7 dB (the spread between calibration runs,
whose noisy inputs give slightly different ranges, is ~0.2 dB). Then broken on purpose, one
decoder layer of the made file edited: its per-channel weight scales doubled (what a wrong
channel axis does) gives 21.6 dB (real dimensions) / 27.5 dB (tiny); its weights shifted by
one channel, 27.8 / 18.6 dB. MIN_SNR_DB = 30 sits below every good run (>= 3.8 dB margin) and
above each of those single-layer faults (faults in more layers only add more noise). It is a
guard against a broken
file, not a perceptual guarantee: 30-35 dB of SNR is a faint hiss on quiet passages, and the
real voices' trained weights may sit a few dB elsewhere than random ones (a real voice whose
int8 model falls below 30 dB is refused, loudly). Whether the int8 voice sounds good enough is
the listener's call, which is why it is opt-in (`--precision int8`) and float32 stays the default.

A failing check publishes no int8 file (export.py still publishes the float32 export, which
passed its own check, and fails the command).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .frontend import TextFrontEnd
from .onnx_record import INT8_FILE, RECORD_FILE, OnnxExportError, file_entry

log = logging.getLogger(__name__)

MIN_SNR_DB = 30.0
SCOPE_PREFIX = "/waveform_decoder/"  # node names of coqui's VITS graph: the HiFi-GAN decoder
OP_TYPES = ["Conv"]


class Int8CheckError(OnnxExportError):
    """The int8 voice disagrees with torch beyond the check's limits; no int8 file is published."""


class _SentenceReader:
    """onnxruntime's CalibrationDataReader protocol over prepared feeds; `set_range` and `__len__`
    let quantize_static calibrate one feed at a time (CalibStridedMinMax)."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = feeds
        self.set_range(0, len(feeds))

    def __len__(self) -> int:
        return len(self._feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._iter = iter(self._feeds[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)


def calibration_feeds(front_end: TextFrontEnd, sentences: Sequence[str], scales: Sequence[float]) -> list[dict]:
    """The graph's inputs for `sentences` (ids from the torch-free front end, the given scales)."""
    feeds = []
    for sentence in sentences:
        ids = front_end.ids(sentence)
        if not front_end.has_symbols(ids):
            continue  # nothing the voice can say; the graph is not run for it either
        feeds.append({"input": np.asarray([ids], dtype=np.int64),
                      "input_lengths": np.asarray([len(ids)], dtype=np.int64),
                      "scales": np.asarray(scales, dtype=np.float32)})
    return feeds


def quantize_decoder(source: Path, target: Path, feeds: list[dict], *, work_dir: Path) -> dict[str, Any]:
    """Write `target`: `source` with the decoder's Conv nodes in int8, calibrated on `feeds`.
    Returns what was quantized and how (the record's `quantized` and `method`)."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not feeds:
        raise OnnxExportError("no calibration input: every check sentence is empty for this voice")
    work_dir = Path(work_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    try:
        prepared = work_dir / "pre.onnx"
        began = time.perf_counter()
        # symbolic shape inference is for transformer graphs; VITS's dynamic lengths confuse it
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load_model(str(prepared), load_external_data=False).graph
        convs = [n for n in graph.node if n.op_type in OP_TYPES]
        nodes = [n.name for n in convs if n.name.startswith(SCOPE_PREFIX)]
        del graph
        if not nodes:
            raise OnnxExportError(f"{source}: no {'/'.join(OP_TYPES)} node under {SCOPE_PREFIX!r}; "
                                  "not the VITS graph this quantization knows")
        try:
            quantize_static(str(prepared), str(target), _SentenceReader(feeds),
                            quant_format=QuantFormat.QOperator, per_channel=True, reduce_range=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            op_types_to_quantize=OP_TYPES, nodes_to_quantize=nodes,
                            extra_options={"CalibStridedMinMax": 1})
        except Exception as exc:  # noqa: BLE001 - the tool's own errors are many kinds; name them
            raise OnnxExportError(f"onnxruntime.quantization could not quantize {source.name}: "
                                  f"{type(exc).__name__}: {exc}") from exc
        out = onnx.load_model(str(target), load_external_data=False).graph
        quantized = sum(1 for n in out.node if n.op_type == "QLinearConv" and n.name.startswith(SCOPE_PREFIX))
        del out
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    if quantized != len(nodes):
        raise OnnxExportError(f"{target}: {quantized} of the {len(nodes)} decoder Conv nodes came out as "
                              "QLinearConv; the quantization did not do what was asked")
    return {
        "quantized": {"scope": "waveform decoder", "name_prefix": SCOPE_PREFIX, "op_types": OP_TYPES,
                      "nodes": quantized, "float32_conv_nodes_left": len(convs) - quantized,
                      "float32": "text encoder, duration predictor, flow, transposed convolutions"},
        "method": {"tool": "onnxruntime.quantization.quantize_static", "pre_process": "quant_pre_process",
                   "static": True, "format": "QOperator", "per_channel": True, "reduce_range": True,
                   "weights": "QInt8", "activations": "QUInt8", "calibration": "MinMax",
                   "calibration_sentences": len(feeds),
                   "calibration_scales": [float(x) for x in feeds[0]["scales"]]},
        "onnxruntime": onnxruntime.__version__,
        "quantize_s": round(time.perf_counter() - began, 2),
    }


def snr_db(reference: np.ndarray, got: np.ndarray) -> float:
    """10*log10(signal / error energy); +300 dB-ish when identical (no infinities in JSON)."""
    signal = float(np.sum(np.square(reference, dtype=np.float64)))
    error = float(np.sum(np.square(got.astype(np.float64) - reference.astype(np.float64))))
    return 10.0 * float(np.log10((signal + 1e-30) / (error + 1e-30)))


def check_int8(int8_voice, sentences: Sequence[str], references: Sequence[np.ndarray], *, voice: str,
               min_snr_db: float | None = None) -> dict[str, Any]:
    """The check above: int8_voice (noise scales 0) against torch's audio for each sentence."""
    threshold = MIN_SNR_DB if min_snr_db is None else min_snr_db
    per_sentence = []
    for sentence, expected in zip(sentences, references, strict=True):
        got = int8_voice.synthesize_piece(sentence)
        if len(got) != len(expected):
            raise Int8CheckError(f"voice {voice}: the int8 voice and torch disagree on {sentence!r}: "
                                 f"{len(got)} vs {len(expected)} samples")
        if not expected.size:
            continue
        snr = snr_db(expected, got)
        per_sentence.append(round(snr, 2))
        if not snr >= threshold:
            raise Int8CheckError(f"voice {voice}: the int8 voice is {snr:.1f} dB from torch on {sentence!r}, "
                                 f"below the {threshold:g} dB its check requires (a broken quantization)")
    return {"sentences": len(references), "noise": 0.0, "same_length": True,
            "min_snr_db": min(per_sentence) if per_sentence else None, "snr_db": per_sentence,
            "threshold_db": threshold}


def make_int8(staging: Path, record: dict, sentences: Sequence[str], references: Sequence[np.ndarray], *,
              voice: str, work_dir: Path) -> dict[str, Any]:
    """Quantize staging's model.onnx into staging/model.int8.onnx and check it; return the
    record's `int8` entry. On any failure the int8 file is removed and the error raised."""
    from .onnx_voice import OnnxVoice

    staging = Path(staging)
    target = staging / INT8_FILE
    record_path = staging / RECORD_FILE
    saved = record_path.read_bytes()
    front_end = TextFrontEnd(record["front_end"])
    try:
        feeds = calibration_feeds(front_end, sentences, record["scales"])
        made = quantize_decoder(staging / record["onnx"]["file"], target, feeds, work_dir=work_dir)
        entry = {**file_entry(target), **made}
        # loaded as the runtime loads it: from the record, the file's sha256 checked
        record_path.write_text(json.dumps({**record, "int8": entry}, indent=2, ensure_ascii=False) + "\n",
                               encoding="utf-8")
        int8_voice = OnnxVoice.load(staging, name=voice, precision="int8",
                                    scales=[0.0, float(record["scales"][1]), 0.0])
        entry["check"] = check_int8(int8_voice, sentences, references, voice=voice)
    except BaseException:
        target.unlink(missing_ok=True)
        record_path.write_bytes(saved)
        raise
    log.info("tts-export %s: model.int8.onnx (%.1f MB, %d Conv nodes int8), min SNR %.1f dB vs torch",
             voice, entry["bytes"] / 1e6, entry["quantized"]["nodes"], entry["check"]["min_snr_db"] or 0)
    return entry
