"""Speech preparation for Common Voice 13 fa and FLEURS fa_ir: manifests, checks, stats, gates.

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

Split names: FLEURS calls its validation split `dev`; it is written as `validation` (manifests,
audio folder, exports, stats) so tools that expect `validation` find it. Its rejects and stats keep
the source file names (`dev.tsv`, `audio/dev.tar.gz`) as their `source`.

--no-extract (`SpeechOptions(extract=False)`): no audio is written. `audio_path` names the source
container (the parquet file or the tar.gz, root-relative) and `audio_ref` says where the clip is in
it: `{"row": <row index in that parquet file>}` or `{"member": "<tar member name>"}`. sha256 and
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
count are known, it has > 0 frames; FLEURS: num_samples equals the WAV's frames. `deep` decodes
every frame: a decode error or a stream shorter than its header (by > 1%) rejects the clip, and
the decoded frame count becomes the duration. Reject reasons: unreadable, unknown_format,
zero_duration, num_samples_mismatch, decode_failed, short_decode, duplicate_id, unsafe_path,
no_audio (CV); malformed_row, duplicate_wav, missing_wav, orphan_wav, unsafe_member, link_member,
device_member, special_member, unexpected_member, duplicate_member, oversized_member (FLEURS).
`kind` is "row" for a rejected source row (counted by the gate) and "member" for a tar member
that matches no row.

Workers: `SpeechOptions.workers` processes (default one per CPU, at most 8) from a forkserver that
has the corpus modules imported. As with any multiprocessing code, a script that calls
`prepare_speech` must keep its top level under `if __name__ == "__main__":`; `workers=1` runs
everything in the calling process.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import re
import shutil
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, NamedTuple

import orjson

from ..atomic import atomic_write_bytes, fsync_dir, write_if_changed
from ..catalog import BY_KEY, Source
from ..errors import PersianDataError
from ..gates import GateFailure, GateNote, gate
from ..layout import Layout
from ..progress import progress
from ..workers import exit_with

log = logging.getLogger("persian_data.prepare.speech")

MANIFEST_VERSION = 1
SPEECH_KEYS = ("commonvoice", "fleurs")
SPLIT_ALIASES = {"dev": "validation"}  # source split name -> published name
SPLIT_ORDER = ("train", "validation", "test")
EXPORT_FORMATS = ("nemo", "lhotse")
MAX_FAILURES_PER_CHECK = 50


class SpeechPrepareError(PersianDataError):
    """A speech source cannot be prepared (unreadable shard, TSV without its tar, ...)."""


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


def published_split(name: str) -> str:
    return SPLIT_ALIASES.get(name, name)


def split_sort_key(name: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER), name)


# == worker side: one clip ======================================================================

class Reject(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


class Probe(NamedTuple):
    frames: int
    sample_rate: int
    channels: int


_MAX_FRAMES = 1 << 40
_DEEP_BLOCK = 1 << 16


def probe(data: bytes, deep: bool = False) -> Probe:
    """Check one clip with soundfile. Header only by default; `deep` decodes every frame.

    Raises Reject(reason) with reason unreadable, unknown_format, zero_duration, decode_failed or
    short_decode (deep: fewer frames decode than the header announces).
    """
    import soundfile as sf

    try:
        handle = sf.SoundFile(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - anything soundfile refuses is unreadable
        raise Reject("unreadable", _short(exc)) from None
    with handle:
        sr, ch, frames = handle.samplerate, handle.channels, handle.frames
        if sr <= 0 or ch <= 0:
            raise Reject("unknown_format", f"sample rate {sr}, channels {ch}")
        header_known = 0 <= frames < _MAX_FRAMES
        if deep or not header_known:
            decoded = _decode_count(handle, ch)
            if header_known and frames - decoded > max(2304, frames // 100):
                raise Reject("short_decode", f"header says {frames} frames, {decoded} decode")
            frames = decoded
    if frames <= 0:
        raise Reject("zero_duration", "0 frames")
    return Probe(int(frames), int(sr), int(ch))


def _decode_count(handle, channels: int) -> int:
    import numpy as np

    out = np.empty((_DEEP_BLOCK, channels), dtype=np.float32)
    total = 0
    try:
        while True:
            got = handle.read(_DEEP_BLOCK, dtype="float32", always_2d=True, out=out)
            total += len(got)
            if len(got) < _DEEP_BLOCK:
                return total
    except Exception as exc:  # noqa: BLE001
        raise Reject("decode_failed", f"after {total} frames: {_short(exc)}") from None


_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>")


def _short(exc: BaseException) -> str:
    """First line of an error, without object addresses (rejects must be the same run to run)."""
    text = _REPR.sub("clip", str(exc)).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def safe_name(name: str | None) -> bool:
    """A plain file name that cannot leave its folder or hide: no separators, no dot prefix."""
    return bool(name) and "/" not in name and "\\" not in name and "\x00" not in name \
        and not name.startswith(".") and len(name.encode("utf-8", "surrogatepass")) <= 255


def unsafe_member_path(name: str) -> bool:
    """Absolute, drive-letter, backslash or `..` paths (tar member names)."""
    return name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":") \
        or ".." in PurePosixPath(name).parts or "\x00" in name


def write_new(path: str, data: bytes) -> None:
    """Create `path` (never overwrite, never follow a link) and write all of `data`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=8192)
def normalize_text(text: str | None) -> str:
    """The shared normalizer, cached: FLEURS repeats each sentence once per speaker."""
    from ..normalize import normalize

    return normalize(text or "")


def normalizer_fingerprint() -> str:
    """Changes when the shared normalizer's code changes: finished splits are then redone."""
    from .. import normalize as module

    return hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class UnitContext:
    """What a worker needs to turn source rows into manifest lines (picklable)."""

    corpus: str  # folder name, e.g. commonvoice_fa
    split: str  # published split name
    audio_prefix: str  # root-relative final audio folder, ending in "/"
    staging_audio: str | None  # where to write clips; None = --no-extract
    deep: bool


@dataclass
class UnitResult:
    lines: bytes = b""
    rows: int = 0  # source rows seen (clips + row rejects), for progress
    clips: int = 0
    seconds: float = 0.0
    speakers: set = field(default_factory=set)
    genders: Counter = field(default_factory=Counter)
    rejects: list = field(default_factory=list)


class Collector:
    """Builds a unit's manifest lines, rejects and tallies."""

    def __init__(self, ctx: UnitContext) -> None:
        self.ctx = ctx
        self.result = UnitResult()
        self._hash = hashlib.sha256

    def reject(self, reason: str, detail: str, *, source: str, clip_id: str | None = None,
               row: int | None = None, member: str | None = None) -> None:
        record: dict[str, Any] = {"split": self.ctx.split, "id": clip_id, "reason": reason, "detail": detail,
                                  "kind": "row" if row is not None else "member", "source": source}
        if row is not None:
            record["row"] = row
            self.result.rows += 1
        if member is not None:
            record["member"] = member
        self.result.rejects.append(record)

    def clip(self, *, clip_id: str, name: str, data: bytes, text: str | None, meta: dict,
             source: str, ref: dict, row: int | None, speaker: str | None, gender: str | None,
             expect_frames: int | None = None) -> bytes | None:
        """Check one clip; on success write it (or keep its reference) and return its line."""
        ctx = self.ctx
        try:
            info = probe(data, ctx.deep)
            if expect_frames is not None and info.frames != expect_frames:
                raise Reject("num_samples_mismatch", f"num_samples {expect_frames}, the audio has {info.frames}")
        except Reject as rej:
            self.reject(rej.reason, rej.detail, source=source, clip_id=clip_id, row=row, member=ref.get("member"))
            return None
        if ctx.staging_audio is not None:
            write_new(os.path.join(ctx.staging_audio, name), data)
            head = {"id": clip_id, "split": ctx.split, "audio_path": ctx.audio_prefix + name}
        else:
            head = {"id": clip_id, "split": ctx.split, "audio_path": source, "audio_ref": ref}
        duration = info.frames / info.sample_rate
        head.update(duration=round(duration, 6), frames=info.frames, sample_rate=info.sample_rate,
                    channels=info.channels, sha256=self._hash(data).hexdigest(), text=text,
                    text_normalized=normalize_text(text))
        head.update(meta)
        res = self.result
        res.rows += 1
        res.clips += 1
        res.seconds += duration
        if speaker:
            res.speakers.add(speaker)
        res.genders[(gender or "").strip().lower() or "unknown"] += 1
        return orjson.dumps(head, option=orjson.OPT_APPEND_NEWLINE)


# == parent side: plans, markers, publishing ====================================================

@dataclass
class SplitPlan:
    split: str  # published name
    source_split: str  # name in the source
    inputs: list[Path]  # source files; their identity keys the completion marker
    source_rows: int
    units: list[tuple[Callable[[Any, UnitContext], UnitResult], tuple]]
    identity: list[dict] = field(default_factory=list)  # taken before the work starts


def corpus_module(source: Source):
    if source.key == "commonvoice":
        from . import commonvoice as module
    elif source.key == "fleurs":
        from . import fleurs as module
    else:
        raise ValueError(f"{source.key} is not a speech source")
    return module


def _state(layout: Layout, source: Source) -> Path:
    return layout.state_dir / "speech" / source.folder


def _marker_path(layout: Layout, source: Source, split: str) -> Path:
    return _state(layout, source) / f"{split}.done.json"


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


def _read_marker(path: Path) -> dict | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError, OSError):
        return None
    return data if isinstance(data, dict) and data.get("version") == MANIFEST_VERSION else None


def _valid_marker(layout: Layout, source: Source, plan: SplitPlan, options: SpeechOptions,
                  fingerprint: str) -> dict | None:
    marker = _read_marker(_marker_path(layout, source, plan.split))
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


def _publish(layout: Layout, source: Source, plan: SplitPlan, staging: Path, results: list[UnitResult],
             options: SpeechOptions, fingerprint: str) -> dict:
    """Manifest from the units' lines, then audio folder and manifest renamed in, then the marker."""
    manifest_tmp = staging / "manifest.jsonl"
    with open(manifest_tmp, "wb") as handle:
        for res in results:
            handle.write(res.lines)
        handle.flush()
        os.fsync(handle.fileno())
    clips = sum(r.clips for r in results)
    seconds = sum(r.seconds for r in results)
    speakers = set().union(*(r.speakers for r in results)) if results else set()
    genders: Counter = Counter()
    for res in results:
        genders.update(res.genders)
    rejects = [rec for res in results for rec in res.rejects]
    marker_file = _marker_path(layout, source, plan.split)
    marker_file.unlink(missing_ok=True)
    final_audio = layout.audio_dir(source, plan.split)
    _discard(layout, final_audio)
    if options.extract:
        final_audio.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging / "audio", final_audio)
        fsync_dir(final_audio.parent)
    manifest = layout.manifest(source, plan.split)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(manifest_tmp, manifest)
    fsync_dir(manifest.parent)
    st = os.stat(manifest)
    speaker_count = len(speakers) if source.key == "commonvoice" else None
    marker = {
        "version": MANIFEST_VERSION,
        "corpus": source.folder,
        "split": plan.split,
        "source_split": plan.source_split,
        "identity": plan.identity,
        "options": {"extract": options.extract, "deep": options.deep},
        "normalizer": fingerprint,
        "manifest": {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "lines": clips},
        "stats": _split_stats(plan.source_rows, clips, seconds, speaker_count, genders, rejects),
        "speakers": sorted(speakers),
        "rejects": rejects,
    }
    atomic_write_bytes(marker_file, orjson.dumps(marker), layout.tmp_dir)
    shutil.rmtree(staging, ignore_errors=True)
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

    def to_json(self) -> dict:
        return {"corpus": self.folder, "source": self.corpus, "splits": self.splits, "total": self.total,
                "rejects_by_reason": self.rejects_by_reason, "options": self.options,
                "split_names": {"dev": "validation"} if self.corpus == "fleurs" else {}}


def prepare_speech(layout: Layout, sources: list[Source] | None = None, options: SpeechOptions = SpeechOptions(),
                   *, logger: logging.Logger | None = None, cache=None) -> dict[str, SpeechStats]:
    """Prepare every given speech source (default: those fetched). Returns stats by source key."""
    logger = logger or log
    unknown = [f for f in options.exports if f not in EXPORT_FORMATS]
    if unknown:
        raise ValueError(f"unknown speech export(s) {unknown}; known: {list(EXPORT_FORMATS)}")
    explicit = sources is not None
    chosen = [s for s in (sources if explicit else [BY_KEY[k] for k in SPEECH_KEYS]) if s.key in SPEECH_KEYS]
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
    fingerprint = normalizer_fingerprint()
    shutil.rmtree(_trash(layout), ignore_errors=True)
    plans: dict[str, list[SplitPlan]] = {}
    markers: dict[tuple[str, str], dict] = {}
    reused: dict[str, list[str]] = {}
    pending: list[tuple[Source, SplitPlan]] = []
    for source in present:
        shutil.rmtree(_staging_root(layout, source), ignore_errors=True)  # a killed run's leftovers
        plans[source.key] = corpus_module(source).plan(layout, source)
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
        _run(layout, pending, options, fingerprint, markers, logger)
    except BaseException:
        shutil.rmtree(layout.staging_dir / "speech", ignore_errors=True)  # finished splits are published
        raise
    stats = {}
    for source in present:
        stats[source.key] = _finalize(layout, source, plans[source.key], markers, options, logger)
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
    return UnitContext(source.folder, plan.split, prefix, audio, options.deep)


def _run(layout: Layout, pending: list[tuple[Source, SplitPlan]], options: SpeechOptions, fingerprint: str,
         markers: dict, logger: logging.Logger) -> None:
    if not pending:
        return
    jobs = []
    for source, plan in pending:
        staging = _staging_root(layout, source) / plan.split
        staging.mkdir(parents=True)
        ctx = _unit_context(layout, source, plan, staging, options)
        jobs.append((source, plan, staging, ctx))
    n_units = sum(len(plan.units) for _, plan, _, _ in jobs)
    workers = max(1, min(options.workers or default_workers(), n_units))
    total_rows = sum(plan.source_rows for _, plan, _, _ in jobs)
    with progress(total_rows, "speech", "clip", logger=logger) as bar:
        if workers == 1:
            for source, plan, staging, ctx in jobs:
                results = []
                for fn, args in plan.units:
                    results.append(fn(args, ctx))
                    bar.update(results[-1].rows)
                _finish_split(layout, source, plan, staging, results, options, fingerprint, markers, logger)
            return
        import multiprocessing as mp

        if "forkserver" in mp.get_all_start_methods():
            # Workers fork from a clean server (never from this process and its threads) that has
            # already imported the corpus modules, so each starts in milliseconds.
            context = mp.get_context("forkserver")
            context.set_forkserver_preload(["persian_data.prepare.commonvoice", "persian_data.prepare.fleurs",
                                            "soundfile"])
        else:
            context = mp.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=exit_with,
                                   initargs=(os.getpid(),))  # a killed run leaves no worker behind
        try:
            futures = []
            for source, plan, staging, ctx in jobs:
                split_futures = []
                for fn, args in plan.units:
                    fut = pool.submit(fn, args, ctx)
                    fut.add_done_callback(functools.partial(_advance, bar))
                    split_futures.append(fut)
                futures.append(split_futures)
            for (source, plan, staging, ctx), split_futures in zip(jobs, futures):
                results = [f.result() for f in split_futures]
                _finish_split(layout, source, plan, staging, results, options, fingerprint, markers, logger)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()  # units still running would write into staging we are about to clear
            raise
        else:
            pool.shutdown()


def _advance(bar, future) -> None:
    if not future.cancelled() and future.exception() is None:
        bar.update(future.result().rows)


def _finish_split(layout, source, plan, staging, results, options, fingerprint, markers, logger) -> None:
    marker = _publish(layout, source, plan, staging, results, options, fingerprint)
    markers[(source.key, plan.split)] = marker
    s = marker["stats"]
    logger.info("speech: %s/%s: %d clip(s), %.2f h, %s speaker(s), gender %s, rejects %s", source.folder,
                plan.split, s["clips"], s["hours"], "?" if s["speakers"] is None else s["speakers"],
                s["gender"], s["rejects"] or "none")


def _finalize(layout: Layout, source: Source, plans: list[SplitPlan], markers: dict, options: SpeechOptions,
              logger: logging.Logger) -> SpeechStats:
    from . import speech_export

    splits = [p.split for p in plans]
    _drop_stale_splits(layout, source, set(splits), logger)
    rejects = b"".join(orjson.dumps({"corpus": source.folder, **rec}, option=orjson.OPT_APPEND_NEWLINE)
                       for split in splits for rec in markers[(source.key, split)]["rejects"])
    write_if_changed(layout.speech_rejects(source), rejects.decode("utf-8"), layout.tmp_dir)
    split_stats = {split: markers[(source.key, split)]["stats"] for split in splits}
    speakers = set()
    for split in splits:
        speakers.update(markers[(source.key, split)]["speakers"])
    total = _split_stats(
        sum(s["source_rows"] for s in split_stats.values()), sum(s["clips"] for s in split_stats.values()),
        sum(s["seconds"] for s in split_stats.values()), len(speakers) if source.key == "commonvoice" else None,
        sum((Counter(s["gender"]) for s in split_stats.values()), Counter()),
        [r for split in splits for r in markers[(source.key, split)]["rejects"]])
    stats = SpeechStats(source.key, source.folder, split_stats, total, total["rejects"],
                        {"extract": options.extract, "deep": any(markers[(source.key, s)]["options"]["deep"]
                                                                 for s in splits)})
    text = orjson.dumps(stats.to_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode()
    write_if_changed(layout.speech_stats(source), text, layout.tmp_dir)
    if options.extract and options.exports:
        speech_export.write_exports(layout, source, splits, options.exports)
    else:
        if speech_export.remove_exports(layout, source):
            logger.info("speech: %s exports removed (they need extracted audio)", source.folder)
        if options.exports and not options.extract:
            logger.warning("speech: %s: NeMo/lhotse exports need extracted audio; skipped with --no-extract",
                           source.folder)
    logger.info("speech: %s total: %d clip(s), %.2f h, %s speaker(s), gender %s, rejects %s", source.folder,
                total["clips"], total["hours"], "?" if total["speakers"] is None else total["speakers"],
                total["gender"], total["rejects"] or "none")
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


# == reading clips back (gates, loaders) ========================================================

def iter_manifest(path: Path) -> Iterable[dict]:
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)


def manifest_lines(path: Path) -> list[dict]:
    return list(iter_manifest(path))


def iter_referenced(layout: Layout, lines: list[dict]) -> Iterable[tuple[dict, bytes | None]]:
    """(line, bytes) for manifest lines that reference a parquet row or tar member (--no-extract).

    Each container is read once, in order; bytes is None for a reference that is not found.
    """
    from . import commonvoice, fleurs

    by_container: dict[str, list[dict]] = {}
    for line in lines:
        by_container.setdefault(line["audio_path"], []).append(line)
    for container, group in by_container.items():
        path = layout.root / container
        if "row" in group[0]["audio_ref"]:
            found = dict(commonvoice.read_rows(path, {ln["audio_ref"]["row"] for ln in group}))
            for ln in group:
                yield ln, found.get(ln["audio_ref"]["row"])
        else:
            found = dict(fleurs.read_members(path, {ln["audio_ref"]["member"] for ln in group}))
            for ln in group:
                yield ln, found.get(ln["audio_ref"]["member"])


# == gates ======================================================================================

@gate("speech", stage="speech",
      markers=lambda layout: [layout.manifests_dir(BY_KEY[k]) for k in SPEECH_KEYS])
def speech_gates(ctx) -> list[GateFailure | GateNote]:
    """Manifest counts = source rows - rejected rows; every audio path exists; every sha256 matches."""
    layout = ctx if isinstance(ctx, Layout) else ctx.layout
    wanted = getattr(ctx, "sources", None) or [BY_KEY[k] for k in SPEECH_KEYS]
    cache = getattr(ctx, "cache", None)
    thorough = getattr(ctx, "thorough", True)
    out: list = []
    for source in wanted:
        if source.key in SPEECH_KEYS and layout.content_dir(source).is_dir():
            out.extend(_gate_source(layout, source, cache, thorough))
    return out


class _Failures:
    def __init__(self) -> None:
        self.items: list[GateFailure] = []
        self.counts: Counter = Counter()

    def add(self, check: str, path: str, reason: str) -> None:
        self.counts[check] += 1
        if self.counts[check] <= MAX_FAILURES_PER_CHECK:
            self.items.append(GateFailure("speech", path, reason))

    def done(self) -> list[GateFailure]:
        for check, n in self.counts.items():
            if n > MAX_FAILURES_PER_CHECK:
                self.items.append(GateFailure("speech", "", f"{n - MAX_FAILURES_PER_CHECK} more {check} failure(s)"))
        return self.items


def _gate_source(layout: Layout, source: Source, cache, thorough: bool) -> list[GateFailure | GateNote]:
    manifests_dir = layout.manifests_dir(source)
    if not manifests_dir.is_dir() or not any(manifests_dir.glob("*.jsonl")):
        # fetched, never prepared (`persian-data fetch` alone): said, not failed
        return [GateNote("speech", f"{source.folder}: no manifests yet; `persian-data prepare speech` makes them")]
    fail = _Failures()
    module = corpus_module(source)
    try:
        rows = module.source_rows(layout, source)
    except PersianDataError as exc:
        return [GateFailure("speech", layout.relative(layout.content_dir(source)), str(exc))]
    rejects_file = layout.speech_rejects(source)
    rejected: Counter = Counter()
    if rejects_file.exists():
        for rec in manifest_lines(rejects_file):
            if isinstance(rec, dict) and rec.get("kind") == "row":
                rejected[rec.get("split")] += 1
    elif rows:
        fail.add("rejects", layout.relative(rejects_file), "missing: run `persian-data prepare speech`")
    files: list[tuple[str, str, str]] = []  # (audio_path, sha256, id)
    referenced: list[dict] = []
    for split in sorted(rows, key=split_sort_key):
        manifest = layout.manifest(source, split)
        rel = layout.relative(manifest)
        if not manifest.exists():
            fail.add("count", rel, "missing: run `persian-data prepare speech`")
            continue
        prefix = layout.relative(layout.audio_dir(source, split)) + "/"
        listed: set[str] = set()
        count = 0
        try:
            for line in iter_manifest(manifest):
                count += 1
                if not isinstance(line, dict):
                    fail.add("count", rel, f"line {count} is not a JSON object")
                    continue
                audio, sha, cid = line.get("audio_path"), line.get("sha256"), line.get("id")
                if line.get("audio_ref") is not None:
                    referenced.append({"audio_path": audio, "audio_ref": line["audio_ref"], "sha256": sha, "id": cid})
                elif not isinstance(audio, str) or not audio.startswith(prefix) or "/" in audio[len(prefix):]:
                    fail.add("exists", rel, f"line {count} ({cid}): audio_path {audio!r} is not in {prefix}")
                else:
                    files.append((audio, sha, cid))
                    listed.add(audio[len(prefix):])
        except (orjson.JSONDecodeError, OSError) as exc:
            fail.add("count", rel, f"unreadable: {exc}")
            continue
        expected = rows[split] - rejected[split]
        if count != expected:
            fail.add("count", rel, f"{count} line(s); the source has {rows[split]} row(s) and "
                                   f"{rejected[split]} rejected, so {expected} expected")
        audio_dir = layout.audio_dir(source, split)
        if audio_dir.is_dir():
            for entry in os.scandir(audio_dir):
                if entry.name not in listed:
                    fail.add("stray", layout.relative(Path(entry.path)), f"not in {rel}")
    if manifests_dir.is_dir():
        for path in sorted(manifests_dir.glob("*.jsonl")):
            if path.stem not in rows and path != rejects_file:
                fail.add("count", layout.relative(path), "manifest for a split the source does not have")
    _gate_hashes(layout, files, referenced, fail, cache, thorough)
    return fail.done()


def _gate_hashes(layout: Layout, files: list[tuple[str, str, str]], referenced: list[dict], fail: _Failures,
                 cache, thorough: bool) -> None:
    root = str(layout.root)

    def check(item: tuple[str, str, str]) -> str | None:
        path = f"{root}/{item[0]}"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        if cache is not None and not thorough:
            hit = cache.lookup(Path(path), st)
            if hit is not None:
                return hit.sha256
        with open(path, "rb", buffering=0) as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        if cache is not None:
            from ..integrity import Digests

            cache.put(Path(path), Digests(digest, None), st)
        return digest

    with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1))) as pool:
        for (rel, sha, cid), digest in zip(files, pool.map(check, files, chunksize=64)):
            if digest is None:
                fail.add("exists", rel, f"audio file missing (manifest line {cid})")
            elif digest != sha:
                fail.add("sha256", rel, f"sha256 is {digest}, the manifest says {sha}")
    if referenced:
        for line, data in iter_referenced(layout, referenced):
            where = f"{line.get('audio_path')} {orjson.dumps(line.get('audio_ref')).decode()}"
            if data is None:
                fail.add("exists", where, f"referenced audio missing (manifest line {line.get('id')})")
            elif hashlib.sha256(data).hexdigest() != line.get("sha256"):
                fail.add("sha256", where, "sha256 of the referenced bytes differs from the manifest")


def load_hf_dataset(root, corpus: str, split: str):
    """A `datasets.Dataset` of one prepared split, with an `audio` column of type `datasets.Audio`."""
    from .speech_export import load_hf_dataset as load

    return load(root, corpus, split)
