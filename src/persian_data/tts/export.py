"""`persian-data tts-export`: each voice to ONNX, checked against torch before it is used.

How: the voice is loaded exactly as `synth` loads it (coqui's Synthesizer, after the model
check), and coqui's own `Vits.export_onnx` writes the graph. That method calls
`torch.onnx.export(..., opset_version=18, dynamo=False)`: the TorchScript-tracing exporter, on
purpose. torch >= 2.9 defaults to the dynamo exporter (`torch.export`), which cannot export VITS:
the flow's rational-quadratic spline branches on data (`if torch.min(inputs) < left ...`), and
torch.export refuses data-dependent Python control flow (tried with torch 2.14.1: TorchExportError
at step 1/3). The tracer records the branch taken for the dummy input, which is the branch every
real input takes (inputs within the spline's bounds).

The export checks itself before it is published, on CHECK_SENTENCES (Persian sentences with
punctuation, digits, a Latin word, a one-word sentence):

1. the torch-free front end (frontend.py) gives exactly coqui's ids for every sentence;
2. with the noise scales set to 0 (so both sides are deterministic), the ONNX voice's audio for
   each sentence (front end, graph, end trim: the full torch-free path) has the same number of
   samples as the torch voice's, and differs by at most TOLERANCE_LSB steps of the 16-bit WAV
   the server writes. The WAV is peak-normalised (scale 32767 / max(peak, 0.01)), so the check
   is |onnx - torch| <= TOLERANCE_LSB * max(peak, 0.01) / 32767: differences below 4 LSB are
   float32 rounding (summation order differs between the runtimes), inaudible and below the
   dither of most playback chains; a wrong graph is off by whole percent of full scale.

A voice that fails either check is not published: the old export (if any) stays, the command
fails with the reason. The export is built in the run's temp folder and moved into
`datasets/tts/<voice>/onnx/` by renames only when complete.

With `--int8`, once the float32 export passed, quantize.py adds `model.int8.onnx` (the decoder in
int8, its own check against the same torch audio) to the same folder before it is published. If
the int8 check fails, the float32 export is still published (it passed), without an int8 file,
and the command fails naming the int8 check. A new export replaces the whole folder, so an old
int8 file never outlives the float32 graph it was made from.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from ..atomic import fsync_dir
from ..integrity import Digests, HashCache
from ..layout import Layout
from .check import VOICE_SOURCES, inference_checkpoint_name
from .frontend import FrontEndError, TextFrontEnd, first_difference, spec_from_coqui
from .onnx_record import FORMAT, MODEL_FILE, ONNX_DIR, RECORD_FILE, OnnxExportError, file_entry
from .onnx_voice import OnnxVoice
from .quantize import Int8CheckError, make_int8

log = logging.getLogger("persian_data.tts.export")

OPSET = 18  # what coqui's Vits.export_onnx asks for
TOLERANCE_LSB = 4.0
CHECK_SENTENCES = [
    "سلام.",
    "سلام، حال شما چطور است؟",
    "سلطان محمود در زمستانی سخت به طلخک گفت که: با این جامه ی یک لا در این سرما چه می کنی؟",
    "مردی نزد بقالی آمد و گفت پیاز هم ده تا دهان بدان خوشبوی سازم.",
    "قیمت این کتاب ۱۲۳۴ تومان است؛ یعنی 56 دلار!",
    "«زبان فارسی» را با حرف‌های «پ، چ، ژ، گ» می‌نویسند.",
    "او گفت: Hello، و رفت.",
    "بله",
]
EXPORTER = {
    "name": "torch.onnx.export",
    "mode": "TorchScript tracer (dynamo=False)",
    "via": "TTS.tts.models.vits.Vits.export_onnx",
    "why": "torch.export (the dynamo exporter) refuses VITS's data-dependent branch in the flow's "
           "rational-quadratic spline",
}


def _voice_source(voice: str):
    try:
        return VOICE_SOURCES[voice]
    except KeyError:
        raise OnnxExportError(f"unknown voice {voice!r}; known: {', '.join(VOICE_SOURCES)}") from None


def export_voice(layout: Layout, voice: str, *, tmp_dir: Path, sentences: list[str] | None = None,
                 cache: HashCache | None = None, int8: bool = False) -> dict:
    """Export one voice; return its record. Raises OnnxExportError / VoiceCheckError /
    ExtraMissingError / FrontEndError, leaving the layout as it was (Int8CheckError: the float32
    export was published, the int8 one was not).

    cache: the layout's hash cache, told the sha256 of the source files (hashed for the record),
    so that loading the export later checks them with a stat instead of reading 1 GB.
    int8: also make and check model.int8.onnx (quantize.py)."""
    from .synth import Voice

    sentences = list(sentences or CHECK_SENTENCES)
    source = _voice_source(voice)
    model_dir = layout.content_dir(source)
    preferred = inference_checkpoint_name(source)
    if preferred and not (model_dir / preferred).is_file():
        preferred = None
    began = time.perf_counter()
    torch_voice = Voice.load(model_dir, checkpoint=preferred, name=voice)  # model check first
    synthesizer = torch_voice._synth
    model, config = synthesizer.tts_model, synthesizer.tts_config
    log.info("tts-export %s: loaded %s in %.1f s", voice, torch_voice.checkpoint.name, time.perf_counter() - began)

    spec = _check_front_end(model, config, sentences, voice)  # 1. the torch-free front end gives coqui's ids
    staging = Path(tmp_dir) / f"onnx-{voice}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        export_s, opset = _export_graph(model, staging)  # 2. the graph
        record = _record(voice, torch_voice, model, config, model_dir, staging, spec, opset)
        _write_json(staging / RECORD_FILE, record)

        # 3. agreement, on the full torch-free path -------------------------------------------
        record["check"], references = _agreement(torch_voice, model, staging, model_dir, sentences, voice)
        record["check"]["export_s"] = round(export_s, 2)
        import onnxruntime

        record["check"]["onnxruntime"] = onnxruntime.__version__
        _write_json(staging / RECORD_FILE, record)

        # 4. the opt-in int8 voice, checked against the same torch audio ------------------------
        int8_failed = None
        if int8:
            try:
                record["int8"] = make_int8(staging, record, sentences, references, voice=voice,
                                           work_dir=Path(tmp_dir) / f"int8-{voice}")
                _write_json(staging / RECORD_FILE, record)
            except OnnxExportError as exc:
                int8_failed = exc
        _publish(staging, layout.bucket_root(source) / ONNX_DIR, tmp_dir)
        if cache is not None:
            _remember_source_hashes(cache, record, model_dir / "config.json", torch_voice.checkpoint)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("tts-export %s: %s (%.1f MB, opset %s), agrees with torch on %d sentences (max %.2f LSB)",
             voice, layout.relative(layout.bucket_root(source) / ONNX_DIR / MODEL_FILE),
             record["onnx"]["bytes"] / 1e6, opset, len(sentences), record["check"]["max_lsb"])
    if int8_failed is not None:
        raise Int8CheckError(f"{int8_failed}; no int8 model published (the fp32 export passed its own check and "
                             f"was published at {layout.relative(layout.bucket_root(source) / ONNX_DIR)})") \
            from int8_failed
    return record


def _check_front_end(model, config, sentences: list[str], voice: str) -> dict:
    """The torch-free front end's spec, once it gives coqui's tokenizer's ids for every sentence."""
    spec = spec_from_coqui(model.tokenizer, config.text_cleaner)
    front_end = TextFrontEnd(spec)
    for sentence in sentences:
        theirs = list(model.tokenizer.text_to_ids(sentence))
        ours = front_end.ids(sentence)
        if ours != theirs:
            raise OnnxExportError(
                f"voice {voice}: the torch-free text front end disagrees with coqui's tokenizer on "
                f"{sentence!r} ({first_difference(ours, theirs)}); not exported")
    return spec


def _export_graph(model, staging: Path) -> tuple[float, int | None]:
    """model.onnx in `staging`; (seconds it took, its opset)."""
    import onnx

    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about python ints: expected, see above
        model.export_onnx(output_path=str(staging / MODEL_FILE), verbose=False)
    export_s = time.perf_counter() - began
    proto = onnx.load_model(str(staging / MODEL_FILE), load_external_data=False)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return export_s, opset


def _record(voice: str, torch_voice, model, config, model_dir: Path, staging: Path, spec: dict,
            opset: int | None) -> dict:
    """export.json before the check: what was exported from what, with which front end and audio settings."""
    import torch
    import TTS

    ap = model.ap
    return {
        "format": FORMAT,
        "voice": voice,
        "source": {"config": file_entry(model_dir / "config.json"),
                   "checkpoint": file_entry(torch_voice.checkpoint)},
        "onnx": file_entry(staging / MODEL_FILE),
        "exporter": {**EXPORTER, "torch": torch.__version__, "coqui_tts": TTS.__version__},
        "opset": opset,
        "front_end": spec,
        "audio": {"sample_rate": int(torch_voice.sample_rate), "ap_sample_rate": int(ap.sample_rate),
                  "do_trim_silence": bool(config.audio.get("do_trim_silence")), "trim_db": float(ap.trim_db),
                  "spec_gain": float(ap.spec_gain), "base": float(ap.base)},
        "scales": [float(model.inference_noise_scale), float(model.length_scale), float(model.inference_noise_scale_dp)],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _remember_source_hashes(cache: HashCache, record: dict, config: Path, checkpoint: Path) -> None:
    """Tell the hash cache the sha256 of the source files (hashed for the record)."""
    for key, path in (("config", config), ("checkpoint", checkpoint)):
        try:
            cache.put(path, Digests(record["source"][key]["sha256"]))
        except ValueError:  # outside the layout's root (a symlinked folder)
            pass


def _agreement(torch_voice, model, staging: Path, model_dir: Path, sentences: list[str], voice: str) -> dict:
    saved = (model.inference_noise_scale, model.inference_noise_scale_dp)
    onnx_voice = OnnxVoice.load(staging, model_dir=model_dir, name=voice,
                                scales=[0.0, float(model.length_scale), 0.0])
    worst = 0.0
    references = []
    try:
        model.inference_noise_scale = model.inference_noise_scale_dp = 0.0
        for sentence in sentences:
            expected = torch_voice.synthesize_piece(sentence)
            references.append(expected)
            got = onnx_voice.synthesize_piece(sentence)
            if len(got) != len(expected):
                raise OnnxExportError(
                    f"voice {voice}: ONNX and torch disagree on {sentence!r}: {len(got)} vs {len(expected)} "
                    f"samples; not exported")
            floor = max(float(np.max(np.abs(expected))) if expected.size else 0.0, 0.01)
            lsb = float(np.max(np.abs(got - expected))) * 32767.0 / floor if expected.size else 0.0
            worst = max(worst, lsb)
            if not lsb <= TOLERANCE_LSB:
                raise OnnxExportError(
                    f"voice {voice}: ONNX and torch disagree on {sentence!r}: differences up to {lsb:.1f} "
                    f"steps of the 16-bit output, tolerance {TOLERANCE_LSB}; not exported")
    finally:
        model.inference_noise_scale, model.inference_noise_scale_dp = saved
    return {"sentences": sentences, "noise": 0.0, "same_length": True, "max_lsb": round(worst, 4),
            "tolerance_lsb": TOLERANCE_LSB}, references


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _publish(staging: Path, final: Path, tmp_dir: Path) -> None:
    """Put the complete folder in place by renames: the old export (if any) until the new one is there."""
    for path in staging.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    old = Path(tmp_dir) / f"{final.parent.name}-onnx-old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.rename(final, old)
    os.rename(staging, final)
    fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def installed_voices(layout: Layout) -> list[str]:
    from .synth import list_voices

    return [v["name"] for v in list_voices(layout) if v["installed"]]


def run_tts_export(layout: Layout, voices: list[str] | None, *, verbose: bool = False, int8: bool = False):
    """The command: export `voices` (default: every installed one; with int8, each also quantized),
    then records and gates."""
    from ..integrity import read_lock
    from ..pipeline import Outcome, Run, finish, load_stage_gates
    from ..progress import progress
    from ..provenance import cached_sha256, damaged_inputs

    load_stage_gates()
    wanted = voices or installed_voices(layout)
    if not wanted:
        raise OnnxExportError(f"no TTS voice installed under {layout.datasets / 'tts'}; "
                              "fetch them first (persian-data fetch --only tts)")
    sources = [_voice_source(v) for v in wanted]
    with Run(layout, verbose=verbose, command="tts-export") as run:
        lock = read_lock(layout.lock_file)  # first: a damaged lock stops the run before any export
        failures = []
        with progress(len(wanted), "tts-export", "voice", logger=log) as bar:
            for voice in wanted:
                damaged = damaged_inputs(layout, [_voice_source(voice)], lock, cached_sha256(run.cache))
                if damaged:  # never export from a copy that is not what was downloaded; the old export stays
                    failures.append(f"tts-export {voice}: not exported, the previous export is kept: {damaged[0]}")
                    log.error("%s", failures[-1])
                    bar.update(1)
                    continue
                try:
                    export_voice(layout, voice, tmp_dir=layout.tmp_dir, cache=run.cache, int8=int8)
                except (OnnxExportError, FrontEndError) as exc:
                    log.error("%s", exc)
                    failures.append(str(exc))
                bar.update(1)
        outcome = finish(run, sources, lock=lock or None)
    if failures:
        return Outcome(False, failures + outcome.failures, outcome.notes)
    return outcome
