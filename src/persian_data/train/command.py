"""`persian-data train-stt`: select the clips, load the model, train with the transformers Trainer,
then score the best checkpoint with eval-stt on each corpus's test split, and write the card.

Reruns: a run folder whose train.json says "finished" (same options, same manifests) is not redone;
one killed while training continues from its last complete checkpoint (same global step, same data
order); one killed during the final evaluation continues that evaluation (eval-stt resumes too). A
folder that holds a run with other options or other data is refused: pass another --output.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..catalog import root_sources
from ..errors import ExtraMissingError
from ..layout import Layout
from ..source import Source
from . import corpora, selection
from .errors import TrainInputError
from .options import WHISPER, TrainOptions
from .runfolder import FINISHED, TRAINED, TRAINING, RunFolder, default_output, fingerprint_digest

log = logging.getLogger("persian_data.train")
EXTRA = "pip install 'persian-data[train-stt]'"


def options_from_args(layout: Layout, args, catalog) -> TrainOptions:
    """The run's options; `--corpus` names speech corpora of `catalog` (the root's sources)."""
    output = Path(args.output) if args.output else default_output(layout, args.model)
    sources = corpora.parse_corpora(args.corpus, catalog)
    return TrainOptions(
        model=args.model, output=output, corpora=[s.key for s in sources],
        train_splits=corpora.parse_splits(args.train_splits, "--train-splits", sources),
        eval_split=corpora.parse_eval_split(args.eval_split, sources),
        targets=args.targets, min_duration=args.min_duration, max_duration=args.max_duration,
        allow_leakage=args.allow_leakage, minutes=args.minutes, seed=args.seed, max_steps=args.max_steps,
        epochs=args.epochs, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size,
        grad_accum=args.grad_accum, learning_rate=args.learning_rate, warmup=args.warmup, eval_steps=args.eval_steps,
        logging_steps=args.logging_steps, save_total_limit=args.save_total_limit,
        gradient_checkpointing=args.gradient_checkpointing, freeze_encoder=args.freeze_encoder, device=args.device,
        precision=args.precision, workers=args.workers, max_eval_clips=args.max_eval_clips,
        token=args.token or os.environ.get("HF_TOKEN") or None)


def _require_extra() -> None:
    try:
        import accelerate  # noqa: F401
        import soxr  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ExtraMissingError(f"train-stt needs the train-stt extra ({exc.name} is missing): {EXTRA}") from None


def _setup_logging(verbose: bool) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s",
                            stream=sys.stderr)
    import transformers
    from huggingface_hub.utils import disable_progress_bars

    from ..progress import is_interactive

    transformers.utils.logging.set_verbosity_warning()
    if not is_interactive():  # saving and loading shards draws bars of its own: log lines only in a pipe
        transformers.utils.logging.disable_progress_bar()
        disable_progress_bars()


@dataclass
class Prepared:
    selection: selection.Selection
    processor: object
    labels: dict[str, list[int]]  # clip key -> label ids
    seconds: float


def prepare_data(layout: Layout, options: TrainOptions, spec, sources: list[Source]) -> Prepared:
    """The clips of `sources` (options.corpora's; data checks, the model's label limit, --minutes),
    the processor and the labels."""
    from . import models

    t0 = time.perf_counter()
    sel = selection.select(layout, options, sources)
    processor = models.load_processor(spec, [c.target for c in sel.train])
    clips = sel.train + sel.eval
    ids = dict(zip((c.key for c in clips), models.tokenize(spec, processor, [c.target for c in clips])))
    fits = models.label_limit(spec, processor)
    selection.apply_label_limit(sel, lambda c: fits(ids[c.key], c.duration))
    if options.minutes is not None:
        selection.apply_minutes(sel, options.minutes, options.seed)
        if sel.minutes["selected"] < options.minutes:
            log.warning("--minutes %g: only %.1f minute(s) of clips pass the filters; training on all of them",
                        options.minutes, sel.minutes["selected"])
    selection.limit_eval(sel, options.max_eval_clips, options.seed)
    selection.check_not_empty(layout, sel, options)
    if spec.family != WHISPER:  # the vocabulary of the clips actually trained on
        processor = models.load_processor(spec, [c.target for c in sel.train])
        ids = dict(zip((c.key for c in sel.train + sel.eval),
                       models.tokenize(spec, processor, [c.target for c in sel.train + sel.eval])))
    return Prepared(sel, processor, ids, time.perf_counter() - t0)


def train_stt(layout: Layout, args, catalog=None) -> int:
    """The `train-stt` command (flags as `persian_data.cli` parses them); `catalog`: the root's sources
    (the five and the corpora it declares)."""
    catalog = tuple(catalog) if catalog is not None else root_sources(layout.root, getattr(args, "sources", None))
    options = options_from_args(layout, args, catalog)
    sources = corpora.resolve(options.corpora, catalog)
    options.check()
    _require_extra()
    _setup_logging(args.verbose)
    from . import models
    from .trainer import resolve_runtime

    resolve_runtime(options)  # --device cuda without a GPU, fp16 on a CPU: said before anything is read

    spec = models.inspect(options.model, options.token)
    options.with_family_defaults(spec.family, models.window_seconds(spec))
    run = RunFolder(options.output, layout)
    prepared = prepare_data(layout, options, spec, sources)  # every data error before anything is written
    if args.dry_run:
        plan = {"model": options.model, "family": spec.family, "output": str(run.path), "options": options.record(),
                "data": selection.summary(prepared.selection, options)}
        print(json.dumps(plan, ensure_ascii=False, indent=2, default=str))
        return 0
    if not run.record_path.exists() and run.foreign_files():
        raise TrainInputError(f"{run.path}: not empty and not a train-stt run (e.g. {run.foreign_files()[0]}); pass "
                              f"another --output")
    run.lock()
    try:
        with _cpu_threads(options):
            return _run(layout, options, spec, run, prepared, catalog)
    finally:
        run.unlock()


@contextmanager
def _cpu_threads(options: TrainOptions):
    """On a CPU, the loader's processes take --workers cores and torch's threads the rest: with both on
    every core, torch's threads spin waiting for each other (6x slower steps measured on 2 busy cores)."""
    import torch

    from .trainer import resolve_runtime

    before = torch.get_num_threads()
    if resolve_runtime(options).device == "cpu" and options.workers:
        torch.set_num_threads(max(1, before - options.workers))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run(layout: Layout, options: TrainOptions, spec, run: RunFolder, prepared: Prepared, catalog) -> int:
    started = time.perf_counter() - prepared.seconds
    record = run.read_record()
    data = selection.summary(prepared.selection, options)
    digest = fingerprint_digest({"options": options.fingerprint(), "manifests": data["manifests"],
                                 "clips": data["train"]["digest"]})
    if record is not None and record.get("fingerprint") != digest:
        raise TrainInputError(f"{run.path}: holds a run with other options or other data "
                              f"({_what_changed(record, options, data)}); pass another --output, or remove the "
                              f"folder to start over")
    if record is not None and record.get("status") == FINISHED:
        log.info("%s: this run is finished; nothing to do", run.path)
        _print_results(record, run)
        return 0
    if record is None:
        record = _new_record(layout, options, spec, run, data, digest, prepared.seconds,
                             corpora.resolve(options.corpora, catalog))
        run.clear_checkpoints()
        run.write_clips(selection.clip_rows(prepared.selection))
        run.write_record(record)
    if record["status"] == TRAINING:
        _train(layout, options, spec, run, prepared, record)
    if record["status"] == TRAINED:
        _final_eval(layout, options, run, record, catalog)
        from .card import model_card

        record["status"] = FINISHED
        record["finished"] = _now()
        record["timings"]["last_command_seconds"] = time.perf_counter() - started
        run.write_text("README.md", model_card(record))
        run.write_record(record)
    _print_results(record, run)
    return 0


def _what_changed(record: dict, options: TrainOptions, data: dict) -> str:
    old = record.get("options", {})
    new = options.record()
    changed = [k for k in options.fingerprint() if k != "token" and old.get(k) != new.get(k)]
    if record.get("data", {}).get("manifests") != data["manifests"]:
        changed.append("manifests")
    return "changed: " + ", ".join(changed) if changed else "another data selection"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _versions() -> dict:
    import accelerate
    import torch
    import transformers

    return {"persian_data": __version__, "transformers": transformers.__version__, "torch": torch.__version__,
            "accelerate": accelerate.__version__}


def _sources(layout: Layout, sources: list[Source]) -> dict:
    """Each corpus's Hub facts (the card's dataset entries) and the commit it was fetched at (the
    lock file; None when the lock does not have it), so the run can be reproduced."""
    from ..integrity import LockFileError, read_lock

    try:
        lock, error = read_lock(layout.lock_file), None
    except LockFileError as exc:
        lock, error = {}, str(exc)
    out = {}
    for source in sources:
        locked = lock.get(source.key)
        out[source.key] = {**corpora.hub_dataset(source), "revision": locked.revision if locked else None}
        if error:
            out[source.key]["lock_error"] = error
    return out


def _new_record(layout, options, spec, run, data, digest, selection_seconds, sources: list[Source]) -> dict:
    return {"status": TRAINING, "name": run.name, "created": _now(), "fingerprint": digest,
            "model": {"base": options.model, "family": spec.family, "model_type": spec.model_type},
            "tool": _versions(), "options": options.record(), "sources": _sources(layout, sources),
            "data": data, "training": {}, "sessions": [], "test": {},
            "timings": {"selection_seconds": selection_seconds}}


def _train(layout: Layout, options: TrainOptions, spec, run: RunFolder, prepared: Prepared, record: dict) -> None:
    from . import models
    from . import trainer as tr
    from .data import ClipDataset, CTCCollator, WhisperCollator

    runtime = tr.resolve_runtime(options)
    sel, processor, labels = prepared.selection, prepared.processor, prepared.labels
    t0 = time.perf_counter()
    processor.save_pretrained(run.path)
    from transformers import set_seed

    set_seed(options.seed)  # a new CTC output layer (and anything else initialised) is the same on every run
    model = models.load_model(spec, processor, freeze_encoder=options.freeze_encoder,
                              gradient_checkpointing=options.gradient_checkpointing)
    load_seconds = time.perf_counter() - t0
    sr = models.sampling_rate(processor)
    train_ds = ClipDataset(layout.root, [c.audio_path for c in sel.train], [labels[c.key] for c in sel.train], sr)
    eval_ds = ClipDataset(layout.root, [c.audio_path for c in sel.eval], [labels[c.key] for c in sel.eval], sr)
    if spec.family == WHISPER:
        collator = WhisperCollator(processor.feature_extractor, model.config.decoder_start_token_id)
    else:
        collator = CTCCollator(processor.feature_extractor)
    resume = run.last_checkpoint()
    session = {"started": _now(), "from_step": _step_of(resume), "device": runtime.device,
               "precision": runtime.precision, "workers": options.workers, "model_load_seconds": load_seconds,
               "seconds": 0.0}
    record["sessions"].append(session)
    record["runtime"] = {"device": runtime.device, "precision": runtime.precision}
    session_t0 = time.perf_counter()

    def follow(state) -> None:
        _training_section(record, state)
        session.update(to_step=state.global_step, seconds=time.perf_counter() - session_t0)
        run.write_record(record)

    trainer = tr.build(spec.family, model, processor, train_ds, eval_ds, collator,
                       [max(1, int(c.duration * sr)) for c in sel.train], [c.text for c in sel.eval],
                       [c.corpus for c in sel.eval], options, str(run.checkpoints), runtime, follow)
    if resume is not None:
        log.info("resuming from %s (global step %d)", resume, _step_of(resume))
    log.info("training %s (%s) on %d clips (%.2f h), evaluating every %d steps on %d %s clips; %s, %s, %d loader "
             "process(es)", options.model, spec.family, len(sel.train), sum(c.duration for c in sel.train) / 3600,
             options.eval_steps, len(sel.eval), options.eval_split, runtime.device, runtime.precision, options.workers)
    trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    trainer.save_model(str(run.path))  # the best checkpoint (loaded back at the end) and its processor
    _training_section(record, trainer.state)
    session.update(to_step=trainer.state.global_step, seconds=time.perf_counter() - session_t0, ended=_now())
    record["timings"]["training_seconds"] = sum(s["seconds"] for s in record["sessions"])
    record["status"] = TRAINED
    run.write_record(record)


def _step_of(checkpoint: Path | None) -> int:
    return int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint is not None else 0


def _training_section(record: dict, state) -> None:
    from .trainer import curves

    c = curves(state.log_history)
    best_step = getattr(state, "best_global_step", None)
    best = next((p for p in c["eval"] if p["step"] == best_step), None)
    record["training"] = {"global_step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch,
                          "best": {"step": best_step, "wer": state.best_metric,
                                   "cer": best.get("cer") if best else None,
                                   "checkpoint": state.best_model_checkpoint},
                          "train_loss_curve": c["train_loss"], "eval_curve": c["eval"]}


def _final_eval(layout: Layout, options: TrainOptions, run: RunFolder, record: dict, catalog) -> None:
    """eval-stt's run mode with the saved (best) model on each corpus's test split: its outputs land
    in evals/<corpus>-test-<name>/ like those of any eval-stt run (its leakage section over the
    whole catalog, as eval-stt's)."""
    from ..evaluate.command import ScoreOptions, load_split, print_summary, score
    from ..evaluate.report import safe_name
    from ..evaluate.transcribe import RunOptions, state_dir, transcribe
    from .trainer import resolve_runtime

    t0 = time.perf_counter()
    device = resolve_runtime(options).device
    name = safe_name(run.name)
    leak = record["data"]["leakage"]
    resuming = record["timings"].get("final_eval_started") is not None
    if not resuming:
        record["timings"]["final_eval_started"] = _now()
        run.write_record(record)
    for source in corpora.resolve(options.corpora, catalog):
        refs = load_split(layout, source, corpora.TEST_SPLIT, None)
        if not resuming:  # transcripts left there by an earlier model of the same name are not this model's
            shutil.rmtree(state_dir(layout, refs, name), ignore_errors=True)
        hyps, info = transcribe(layout, refs, RunOptions(model=str(run.path), device=device,
                                                         batch_size=options.eval_batch_size, token=None), name)
        info["trained_by"] = {"run": str(run.path), "leakage_excluded": leak["excluded"],
                              "leaked_clips_trained_on": leak["leaked_clips_trained_on"]}
        results = score(layout, refs, hyps, name, ScoreOptions(name=name), info, sources=catalog)
        print_summary(results)
        record["test"][source.key] = {"wer": results["wer"], "cer": results["cer"], "wer_raw": results["wer_raw"],
                                  "cer_raw": results["cer_raw"], "wer_ci": results["bootstrap"]["wer"],
                                  "utterances": results["utterances"]["scored"], "output_dir": results["output_dir"]}
    record["timings"]["final_eval_seconds"] = record["timings"].get("final_eval_seconds", 0.0) + time.perf_counter() - t0


def _print_results(record: dict, run: RunFolder) -> None:
    tr = record.get("training", {})
    best = tr.get("best") or {}
    train = record["data"]["train"]
    excluded = ", ".join(f"{n} {r}" for r, n in sorted(train["excluded"].items())) or "none"
    print(f"trained {tr.get('global_step', 0)} step(s) on {train['clips']} clip(s) ({train['hours']:.2f} h; left out: "
          f"{excluded})", file=sys.stderr)
    if best.get("wer") is not None:
        print(f"best checkpoint: step {best['step']}, {record['data']['eval']['split']} WER {100 * best['wer']:.2f} % "
              f"(normalized)", file=sys.stderr)
    for corpus, r in record.get("test", {}).items():
        print(f"{corpus} test: WER {100 * r['wer']:.2f} %, CER {100 * r['cer']:.2f} % (normalized) -> {r['output_dir']}",
              file=sys.stderr)
    print(f"wrote {run.path}/", file=sys.stderr)
