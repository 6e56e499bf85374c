"""The `tts` gate: the model check of each fetched voice, and the record check of its ONNX export.

It sits above both check.py (the model check) and worker.py (the same check in a child process
started while the voice downloads), so the arrows run one way: gate -> worker -> check.

For an ONNX export (`datasets/tts/<voice>/onnx/`), the gate compares `model.onnx` with the sha256
in `export.json` (tampered or truncated: failure) and the record's source config and checkpoint
with the voice's current files (a voice fetched again at another revision: stale export, failure),
so `verify` re-checks what `tts-export` recorded.
"""

from __future__ import annotations

from ..gates import GateFailure, GateNote, gate, warm
from ..layout import Layout
from .check import CONFIG_NAME, GATE, VOICE_SOURCES, check_voice, inference_checkpoint_name
from .onnx_record import ONNX_DIR, OnnxExportError, export_problems, locked_sha256, read_record, sha256_of
from .worker import start_check_worker


def onnx_results(ctx, source) -> list[GateFailure]:
    layout = ctx if isinstance(ctx, Layout) else ctx.layout
    folder = layout.bucket_root(source) / ONNX_DIR
    if not folder.exists():
        return []
    try:
        record = read_record(folder)
    except OnnxExportError as exc:
        return [GateFailure(GATE, layout.relative(folder), str(exc).split(": ", 1)[-1])]
    sha256 = sha256_of if isinstance(ctx, Layout) else ctx.sha256
    # The checkpoint's bytes are the lock gate's business (it re-hashes them on verify); here its
    # locked sha256 stands for it, so a 1 GB file is not read twice.
    problems = export_problems(folder, layout.content_dir(source), record, sha256=sha256,
                               source_sha256=locked_sha256(layout, source))
    return [GateFailure(GATE, layout.relative(path), reason) for path, reason in problems]


@gate(GATE, warmup=start_check_worker, bucket="tts")
def tts_gates(ctx) -> list[GateFailure | GateNote]:
    """Model check for each voice bucket present under datasets/tts/, and its ONNX export's record.

    Loading torch and a checkpoint costs seconds, so a voice whose config and checkpoint bytes
    already passed the check (per the hash cache) is not loaded again by `fetch`; `verify` always
    checks."""
    layout = ctx if isinstance(ctx, Layout) else ctx.layout
    results: list[GateFailure | GateNote] = []
    for source in VOICE_SOURCES.values():
        if not layout.bucket_root(source).exists():
            continue  # this voice was not fetched: nothing to check
        results.extend(onnx_results(ctx, source))
        model_dir = layout.content_dir(source)
        if not model_dir.is_dir():
            results.append(
                GateFailure(GATE, layout.relative(model_dir), "missing: the voice's model folder")
            )
            continue
        preferred = inference_checkpoint_name(source)
        if preferred and not (model_dir / preferred).is_file():
            preferred = None  # e.g. another selection: fall back to the newest best_model
        checkpoint = model_dir / (preferred or "")
        key = None
        if not isinstance(ctx, Layout) and preferred and (model_dir / CONFIG_NAME).is_file():
            key = ctx.content_key(GATE, [model_dir / CONFIG_NAME, checkpoint])
            if ctx.passed_before(key):
                continue
        # Building the whole model to compare every weight's shape costs seconds per voice: `verify`
        # (thorough) does it; `fetch` checks config, checkpoint, symbols, sizes and espeak-ng.
        structural = isinstance(ctx, Layout) or ctx.thorough
        found = None
        worker = warm(GATE)  # a child that imported torch while the voice downloaded (worker.py)
        if worker is not None:
            found = worker.check(model_dir, checkpoint=preferred, structural=structural, layout=layout)
        if found is None:
            found = check_voice(model_dir, checkpoint=preferred, structural=structural, display=layout.relative)
        if not any(isinstance(r, (GateFailure, GateNote)) for r in found):
            if not isinstance(ctx, Layout):
                ctx.remember_pass(key)
        results.extend(found)
    return results
