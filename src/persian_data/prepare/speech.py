"""Speech preparation for every speech corpus (Common Voice 13 fa, FLEURS fa_ir, declared ones):
manifests, checks, stats, gates. What is specific to a corpus (which files, which columns, who
speaks, how splits are named) is its `Source` (`persian_data.corpora`); this module runs any of them.

What it makes, per corpus folder (`datasets/speech/<folder>/`), beside the untouched `data/`:

    audio/<split>/<file>            the clips, byte for byte as in the source (unless --no-extract)
    manifests/<split>.jsonl         one line per clip (UTF-8, unescaped), in source order
    manifests/rejects.jsonl         clips and tar members left out, each with its reason
    manifests/stats.json            clips, hours, speakers, genders per split; rejects by reason
    exports/nemo/<split>.json       NeMo manifests (audio_filepath relative to that file)
    exports/lhotse/<folder>_{recordings,supervisions}_<split>.jsonl.gz

Manifest line (keys in this order; source columns follow the common ones):

    id, split, audio_path (root-relative), [audio_ref], duration, frames, sample_rate, channels,
    sha256 (of the audio bytes), text (as given), text_normalized (shared normalizer), <source columns>

Split names: a corpus's `SpeechPolicy.split_names` renames source splits: FLEURS calls its
validation split `dev`; it is written as `validation` (manifests, audio folder, exports, stats) so
tools that expect `validation` find it. Its rejects and stats keep the source file names
(`dev.tsv`, `audio/dev.tar.gz`) as their `source`; stats.json lists the renames (`split_names`).

--no-extract (`SpeechOptions(extract=False)`): no audio is written. `audio_path` names the source
container (the parquet file or the tar.gz, root-relative; the audio file itself when a parquet
path column names one) and `audio_ref` says where the clip is in it: `{"row": <row index in that
parquet file>}`, `{"member": "<tar member name>"}` or `{"file": "<root-relative path>"}`. sha256 and
duration are computed from the same bytes in memory, so they equal those of an extracted file.
NeMo and lhotse exports need files and are skipped (and removed) in this mode; `load_hf_dataset`
still works (it reads the bytes from the containers).

Resumability: each split is built in a staging folder under `.persian-data/staging/speech/` (by
worker processes, several row-group ranges of a shard at once; lines are joined back in source
order) and published by renames (the audio folder, then the manifest); then a completion marker
is written under `.persian-data/speech/<folder>/<split>.done.json`. The marker records the
identity (size, mtime) of the split's source files, the options, the normalizer's fingerprint,
the manifest's size/mtime and its line count; a rerun skips a split whose marker still matches
(and whose audio folder still holds that many files). A killed run leaves only staging, cleared on
the next run, and never a partial file inside `datasets/`. Clips are not fsynced one by one
(that would cost more than the whole check); manifests, markers and exports are. After a power
loss, `verify` (the sha256 gate) finds any clip the disk lost.

Checks (default, from the header through soundfile): the clip opens, its sample rate and channel
count are known, it has > 0 frames; where the source gives num_samples (FLEURS), it equals the
clip's frames. `deep` decodes every frame: a decode error or a stream shorter than its header
(by > 1%) rejects the clip, and the decoded frame count becomes the duration. Reject reasons:
unreadable, unknown_format, zero_duration, num_samples_mismatch, decode_failed, short_decode;
duplicate_id, unsafe_path, no_audio, no_id (speech-parquet: Common Voice); malformed_row,
duplicate_wav, missing_wav, orphan_wav, unsafe_member, link_member, device_member, special_member,
unexpected_member, duplicate_member, oversized_member (speech-tsv-tar: FLEURS).
`kind` is "row" for a rejected source row (counted by the gate) and "member" for a tar member
that matches no row.

Workers: `SpeechOptions.workers` processes (default one per CPU, at most 8) from a forkserver that
has the readers' modules imported. As with any multiprocessing code, a script that calls
`prepare_speech` must keep its top level under `if __name__ == "__main__":`; `workers=1` runs
everything in the calling process. With the `ray` engine (`engine=`, `persian_data.engine`) the same
units run as Ray tasks on a cluster, consumed in the same order: the same bytes.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import orjson

from ..atomic import atomic_write_bytes, fsync_dir, write_if_changed
from ..catalog import CATALOG, SPEECH_BUCKET, Source
from ..integrity import HashCache
from ..layout import Layout
from ..progress import counts_text, progress
from ..provenance import input_record
from ..engine.local import LocalEngine
from . import speech_export
from ..corpora.speech_clips import (Collector, Probe, Reject, SpeechPrepareError, SplitPlan, UnitContext, UnitResult,
                                    normalizer_fingerprint, probe, split_sort_key)
from .speech_export import load_hf_dataset
from ..corpora.speech_formats import EXPORT_FORMATS, nemo_audio_folder
from .speech_gates import speech_gates  # registers the gate: pipeline.load_stage_gates imports this module
from .speech_manifests import (MANIFEST_VERSION, clips_digest, iter_manifest, iter_referenced, manifest_lines,
                               marker_path, read_marker)
from .speech_sink import MANIFEST, NEMO, RECORDINGS, SUPERVISIONS, SplitSink
from .speech_units import load_result, run_unit_rerunnable

__all__ = ["EXPORT_FORMATS", "Collector", "Probe", "Reject", "SpeechOptions", "SpeechPrepareError",
           "SpeechStats", "iter_manifest", "iter_referenced", "load_hf_dataset", "manifest_lines", "prepare_speech",
           "probe", "speech_gates", "split_sort_key"]

log = logging.getLogger("persian_data.prepare.speech")


@dataclass(frozen=True)
class SpeechOptions:
    extract: bool = True  # write the audio files; False keeps references into parquet / tar
    deep: bool = False  # decode every frame of every clip (slower)
    workers: int | None = None  # processes; None = one per CPU (at most 8); 1 = in this process
    exports: tuple[str, ...] = EXPORT_FORMATS


def default_workers() -> int:
    """One process per usable CPU, at most 8 (each holds a few row groups: ~200-400 MB)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


# == parent side: plans, markers, publishing ====================================================

def _state(layout: Layout, source: Source) -> Path:
    return layout.state_dir / "speech" / source.folder


def _marker_path(layout: Layout, source: Source, split: str) -> Path:
    return marker_path(layout, source, split)


def _staging_root(layout: Layout, source: Source) -> Path:
    return layout.staging_dir / "speech" / source.folder


def _trash(layout: Layout) -> Path:
    return layout.staging_dir / "speech" / ".trash"


def _identity(layout: Layout, paths: Iterable[Path]) -> list[dict]:
    out = []
    for path in sorted(paths):
        st = os.stat(path)
        out.append({"path": layout.relative(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def _valid_marker(layout: Layout, source: Source, plan: SplitPlan, options: SpeechOptions,
                  fingerprint: str) -> dict | None:
    marker = read_marker(_marker_path(layout, source, plan.split))
    if marker is None:
        return None
    opts = marker.get("options", {})
    if (marker.get("identity") != plan.identity or marker.get("normalizer") != fingerprint
            or opts.get("extract") != options.extract or (options.deep and not opts.get("deep"))):
        return None
    try:
        st = os.stat(layout.manifest(source, plan.split))
    except FileNotFoundError:
        return None
    man = marker.get("manifest", {})
    if st.st_size != man.get("size") or st.st_mtime_ns != man.get("mtime_ns"):
        return None
    if options.extract:  # a deleted or added clip is noticed here (a changed one by the gate)
        try:
            with os.scandir(layout.audio_dir(source, plan.split)) as entries:
                if sum(1 for _ in entries) != man.get("lines"):
                    return None
        except FileNotFoundError:
            return None
    return marker


def _discard(layout: Layout, path: Path) -> None:
    """Move a folder out of the layout in one rename, then delete it."""
    if not path.exists():
        return
    trash = _trash(layout)
    trash.mkdir(parents=True, exist_ok=True)
    target = trash / uuid.uuid4().hex
    os.rename(path, target)
    shutil.rmtree(target, ignore_errors=True)


def _publish(layout: Layout, source: Source, plan: SplitPlan, sink: SplitSink, options: SpeechOptions,
             fingerprint: str, cache: HashCache | None) -> dict:
    """Audio folder and manifest (streamed into staging by `sink`, closed) renamed in, then the marker.

    The hash cache learns every clip and the manifest with the sha256 taken while they were
    written (the clips' in the workers), so records and gates after the stage only stat them."""
    manifest_tmp = sink.path(MANIFEST)
    clips, seconds, speakers, genders, rejects = sink.clips, sink.seconds, sink.speakers, sink.genders, sink.rejects
    marker_file = _marker_path(layout, source, plan.split)
    marker_file.unlink(missing_ok=True)
    final_audio = layout.audio_dir(source, plan.split)
    _discard(layout, final_audio)
    if options.extract:
        final_audio.parent.mkdir(parents=True, exist_ok=True)
        os.rename(sink.staging / "audio", final_audio)
        fsync_dir(final_audio.parent)
        if cache is not None:
            cache.placed_many(final_audio, sink.written)
    manifest = layout.manifest(source, plan.split)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(manifest_tmp, manifest)
    fsync_dir(manifest.parent)
    if cache is not None:
        cache.placed(manifest, sink.sha256[MANIFEST])
    st = os.stat(manifest)
    speaker_count = len(speakers) if source.speech.speaker else None  # a corpus without speaker ids: unknown
    marker = {
        "version": MANIFEST_VERSION,
        "corpus": source.folder,
        "split": plan.split,
        "source_split": plan.source_split,
        "identity": plan.identity,
        "options": {"extract": options.extract, "deep": options.deep},
        "normalizer": fingerprint,
        "manifest": {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "lines": clips, "sha256": sink.sha256[MANIFEST]},
        # the (name, sha256) of every clip written: the gate after this run compares it with the
        # records' listing instead of parsing the manifest again (verify still parses it)
        "clips_digest": clips_digest((w[0], w[1]) for w in sink.written) if options.extract else None,
        "stats": _split_stats(plan.source_rows, clips, seconds, speaker_count, genders, rejects),
        "speakers": sorted(speakers),
        "rejects": rejects,
    }
    atomic_write_bytes(marker_file, orjson.dumps(marker), layout.tmp_dir)
    return marker


def _split_stats(source_rows: int, clips: int, seconds: float, speakers: int | None, genders: Counter,
                 rejects: list[dict]) -> dict:
    return {
        "source_rows": source_rows,
        "clips": clips,
        "seconds": round(seconds, 3),
        "hours": round(seconds / 3600, 4),
        "speakers": speakers,
        "gender": dict(sorted(genders.items())),
        "rejected_rows": sum(1 for r in rejects if r.get("kind") == "row"),
        "reported_members": sum(1 for r in rejects if r.get("kind") == "member"),
        "rejects": dict(sorted(Counter(r["reason"] for r in rejects).items())),
    }


# == the stage ==================================================================================

@dataclass
class SpeechStats:
    corpus: str  # source key
    folder: str
    splits: dict[str, dict]
    total: dict
    rejects_by_reason: dict[str, int]
    options: dict
    reused_splits: list[str] = field(default_factory=list)  # finished earlier, not redone
    split_names: dict[str, str] = field(default_factory=dict)  # source split -> published name, where renamed
    inputs: dict[str, str] = field(default_factory=dict)  # source file -> sha256 (provenance: stale outputs)

    def to_json(self) -> dict:
        return {"corpus": self.folder, "source": self.corpus, "splits": self.splits, "total": self.total,
                "rejects_by_reason": self.rejects_by_reason, "options": self.options,
                "split_names": self.split_names,
                "inputs": self.inputs}


def prepare_speech(layout: Layout, sources: list[Source] | None = None, options: SpeechOptions = SpeechOptions(),
                   *, logger: logging.Logger | None = None, cache: HashCache | None = None,
                   engine=None) -> dict[str, SpeechStats]:
    """Prepare every given speech source (default: those of the five that are fetched). Returns stats
    by source key.

    With `cache` (the run's hash cache), every file placed under `datasets/` is recorded there with
    the sha256 of the bytes written, so the records and gates that follow never read it again.
    `engine` (`persian_data.engine`) runs the units of work: worker processes here by default."""
    logger = logger or log
    unknown = [f for f in options.exports if f not in EXPORT_FORMATS]
    if unknown:
        raise ValueError(f"unknown speech export(s) {unknown}; known: {list(EXPORT_FORMATS)}")
    explicit = sources is not None
    chosen = [s for s in (sources if explicit else CATALOG) if s.bucket == SPEECH_BUCKET]
    present = []
    for source in chosen:
        if layout.content_dir(source).is_dir():
            present.append(source)
        elif explicit:
            raise SpeechPrepareError(f"{source.key}: {layout.relative(layout.content_dir(source))} is missing; "
                                     f"fetch it first")
        else:
            logger.info("speech: %s not fetched; skipped", source.key)
    if not present:
        return {}
    preload = _worker_imports(present)
    engine = engine or LocalEngine()
    if not engine.local or (options.workers or default_workers()) > 1:
        engine.warm_up(preload)
    fingerprint = normalizer_fingerprint()
    shutil.rmtree(_trash(layout), ignore_errors=True)
    plans: dict[str, list[SplitPlan]] = {}
    markers: dict[tuple, Any] = {}  # by (key, split); export files written with the split by (key, split, "exports")
    reused: dict[str, list[str]] = {}
    pending: list[tuple[Source, SplitPlan]] = []
    for source in present:
        shutil.rmtree(_staging_root(layout, source), ignore_errors=True)  # a killed run's leftovers
        plans[source.key] = source.reader.plan(layout, source)
        for plan in plans[source.key]:
            plan.identity = _identity(layout, plan.inputs)
            marker = _valid_marker(layout, source, plan, options, fingerprint)
            if marker is not None:
                markers[(source.key, plan.split)] = marker
                reused.setdefault(source.key, []).append(plan.split)
                logger.info("speech: %s/%s already prepared (source unchanged); kept", source.folder, plan.split)
            else:
                pending.append((source, plan))
    started = time.monotonic()
    try:
        _run(layout, pending, options, fingerprint, markers, logger, cache, preload, engine)
    except BaseException:
        shutil.rmtree(layout.staging_dir / "speech", ignore_errors=True)  # finished splits are published
        raise
    stats = {}
    for source in present:
        stats[source.key] = _finalize(layout, source, plans[source.key], markers, options, logger, cache)
        stats[source.key].reused_splits = reused.get(source.key, [])
    clips = sum(p.source_rows for _, p in pending)
    if pending:
        elapsed = time.monotonic() - started
        logger.info("speech: %d source row(s) prepared in %.1fs (%.0f/s)", clips, elapsed, clips / max(elapsed, 1e-9))
    staging = layout.staging_dir / "speech"
    shutil.rmtree(staging, ignore_errors=True)
    return stats


def _unit_context(layout: Layout, source: Source, plan: SplitPlan, staging: Path, options: SpeechOptions) -> UnitContext:
    audio = None
    if options.extract:
        (staging / "audio").mkdir(parents=True)
        audio = str(staging / "audio")
    prefix = layout.relative(layout.audio_dir(source, plan.split)) + "/"
    exports = options.exports if options.extract else ()
    nemo_audio = nemo_audio_folder(str(layout.root), prefix[:-1],
                                   layout.relative(speech_export.nemo_path(layout, source, plan.split).parent))
    return UnitContext(source.folder, plan.split, prefix, audio, options.deep, exports, str(layout.root), nemo_audio,
                       layout.relative(layout.content_dir(source)), source.speech.speaker, source.speech.gender)


def _run(layout: Layout, pending: list[tuple[Source, SplitPlan]], options: SpeechOptions, fingerprint: str,
         markers: dict, logger: logging.Logger, cache: HashCache | None, preload: list[str], engine) -> None:
    if not pending:
        return
    jobs = []
    for source, plan in pending:
        staging = _staging_root(layout, source) / plan.split
        staging.mkdir(parents=True)
        ctx = _unit_context(layout, source, plan, staging, options)
        jobs.append((source, plan, staging, ctx))
    n_units = sum(len(plan.units) for _, plan, _, _ in jobs)
    workers = max(1, min(options.workers or default_workers(), n_units)) if engine.local else 0
    total_rows = sum(plan.source_rows for _, plan, _, _ in jobs)
    with progress(total_rows, "speech", "clip", logger=logger) as bar:
        if engine.local and workers == 1:
            for source, plan, staging, ctx in jobs:
                results = (fn(args, ctx) for fn, args in plan.units)
                sink = _collect(SplitSink(staging, ctx.exports), results, bar.update)
                _finish_split(layout, source, plan, sink, options, fingerprint, markers, logger, cache)
            return
        pool = engine.executor(workers, preload=preload)
        try:
            futures = []
            for source, plan, staging, ctx in jobs:
                split_futures = []
                for fn, args in plan.units:
                    # an engine that retries may run a unit twice: each run writes its clips apart first
                    fut = (pool.submit(run_unit_rerunnable, fn, args, ctx) if engine.retries
                           else pool.submit(fn, args, ctx))
                    fut.add_done_callback(functools.partial(_advance, bar))
                    split_futures.append(fut)
                futures.append(split_futures)
            for (source, plan, staging, ctx), split_futures in zip(jobs, futures):
                sink = _collect(SplitSink(staging, ctx.exports), _in_order(split_futures))
                _finish_split(layout, source, plan, sink, options, fingerprint, markers, logger, cache)
        except BaseException:
            pool.abort()  # units still running would write into staging we are about to clear
            raise
        else:
            pool.close()


def _worker_imports(sources: list[Source]) -> list[str]:
    """What the readers of `sources` want loaded in the workers' server (`worker_imports`)."""
    return list(dict.fromkeys(name for source in sources for name in source.reader.worker_imports()))


def _in_order(futures: list) -> Iterable[UnitResult]:
    """The units' results in source order (with their lines, where a unit set them aside in the
    root: `speech_units`), each let go (with its future) once consumed."""
    for index, future in enumerate(futures):
        result = load_result(future.result())
        futures[index] = None
        yield result


def _collect(sink: SplitSink, results: Iterable[UnitResult], advance=None) -> SplitSink:
    """Stream a split's unit results into its staging files as they come back; the sink is closed
    (files complete and fsynced) on return, its handles closed on failure."""
    try:
        for result in results:
            sink.add(result)
            if advance is not None:
                advance(result.rows)
        sink.close()
    except BaseException:
        sink.abort()
        raise
    return sink


def _advance(bar, future) -> None:
    if not future.cancelled() and future.exception() is None:
        bar.update(future.result().rows)


def _finish_split(layout, source, plan, sink: SplitSink, options, fingerprint, markers, logger, cache) -> None:
    marker = _publish(layout, source, plan, sink, options, fingerprint, cache)
    markers[(source.key, plan.split)] = marker
    if options.extract and options.exports:  # streamed by the sink from the lines the workers built
        staged = {key: (sink.path(name), sink.sha256[name]) for key, name in
                  (("nemo", NEMO), ("recordings", RECORDINGS), ("supervisions", SUPERVISIONS)) if name in sink.sha256}
        markers[(source.key, plan.split, "exports")] = speech_export.place_split_exports(
            layout, source, plan.split, options.exports, staged, cache.placed if cache is not None else None)
    shutil.rmtree(sink.staging, ignore_errors=True)
    s = marker["stats"]
    logger.info("speech: %s/%s: %d clip(s), %.2f h, %s speaker(s), gender: %s; rejects: %s", source.folder,
                plan.split, s["clips"], s["hours"], "?" if s["speakers"] is None else s["speakers"],
                counts_text(s["gender"]), counts_text(s["rejects"]))


def _finalize(layout: Layout, source: Source, plans: list[SplitPlan], markers: dict, options: SpeechOptions,
              logger: logging.Logger, cache: HashCache | None) -> SpeechStats:
    placed = cache.placed if cache is not None else None
    splits = [p.split for p in plans]
    _drop_stale_splits(layout, source, set(splits), logger)
    rejects = b"".join(orjson.dumps({"corpus": source.folder, **rec}, option=orjson.OPT_APPEND_NEWLINE)
                       for split in splits for rec in markers[(source.key, split)]["rejects"])
    write_if_changed(layout.speech_rejects(source), rejects, layout.tmp_dir, placed)
    split_stats = {split: markers[(source.key, split)]["stats"] for split in splits}
    speakers = set()
    for split in splits:
        speakers.update(markers[(source.key, split)]["speakers"])
    total = _split_stats(
        sum(s["source_rows"] for s in split_stats.values()), sum(s["clips"] for s in split_stats.values()),
        sum(s["seconds"] for s in split_stats.values()), len(speakers) if source.speech.speaker else None,
        sum((Counter(s["gender"]) for s in split_stats.values()), Counter()),
        [r for split in splits for r in markers[(source.key, split)]["rejects"]])
    stats = SpeechStats(source.key, source.folder, split_stats, total, total["rejects"],
                        {"extract": options.extract, "deep": any(markers[(source.key, s)]["options"]["deep"]
                                                                 for s in splits)},
                        split_names={p.source_split: p.split for p in plans if p.source_split != p.split},
                        inputs=input_record(layout, [path for plan in plans for path in plan.inputs], cache))
    text = orjson.dumps(stats.to_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode()
    write_if_changed(layout.speech_stats(source), text, layout.tmp_dir, placed)
    if options.extract and options.exports:
        done = {split: markers.pop((source.key, split, "exports")) for split in splits
                if (source.key, split, "exports") in markers}
        speech_export.write_exports(layout, source, splits, options.exports, placed, done)
    else:
        if speech_export.remove_exports(layout, source):
            logger.info("speech: %s exports removed (they need extracted audio)", source.folder)
        if options.exports and not options.extract:
            logger.warning("speech: %s: NeMo/lhotse exports need extracted audio; skipped with --no-extract",
                           source.folder)
    logger.info("speech: %s total: %d clip(s), %.2f h, %s speaker(s), gender: %s; rejects: %s", source.folder,
                total["clips"], total["hours"], "?" if total["speakers"] is None else total["speakers"],
                counts_text(total["gender"]), counts_text(total["rejects"]))
    return stats


def _drop_stale_splits(layout: Layout, source: Source, current: set[str], logger: logging.Logger) -> None:
    """Splits that a previous run published but the source no longer has."""
    state = _state(layout, source)
    for marker in sorted(state.glob("*.done.json")) if state.is_dir() else []:
        split = marker.name[: -len(".done.json")]
        if split in current:
            continue
        logger.warning("speech: %s/%s is no longer in the source; its outputs are removed", source.folder, split)
        marker.unlink(missing_ok=True)
        layout.manifest(source, split).unlink(missing_ok=True)
        _discard(layout, layout.audio_dir(source, split))
