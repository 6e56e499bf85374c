"""`persian-data shards`: prepared splits -> WebDataset, lhotse Shar or NeMo tarred shard sets.

Under the root lock and the run log, like every command that writes: read the manifest, plan
(plan.py), write what the journal does not already hold into staging (write.py), then publish:
per split, the old index goes first when it will change (no index ever describes a half-replaced set), the
staged files are renamed into the split folder, leftovers of an earlier plan are removed, and the
new index is written last. A rerun with the same inputs finds every file finished and in place and
writes nothing. A failure keeps the last published set as it was; what was finished stays staged
for the next run. The set is then checked against its index (the `shards` gate) and the outcome
appended to logs/dataset_download.log.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import time
from dataclasses import dataclass

import orjson

from ..atomic import fsync_dir, write_if_changed
from ..catalog import CATALOG, Source
from ..layout import Layout
from .corpus import SPLITS, CorpusSplit, corpus_split
from .errors import ShardsInputError
from .formats import FORMATS, WRITER_VERSION, describer, shard_pattern
from .index import INDEX_VERSION, OWN_NAMES, SetPaths, check_set, own_files
from .plan import Plan, make_plan
from .samples import read_samples
from .lanes import Lanes
from .write import Journal, write_one

log = logging.getLogger("persian_data.shards")

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


@dataclass(frozen=True)
class ShardOptions:
    corpus: str
    fmt: str = "webdataset"
    split: str = "train"
    shard_size: int = 500 * 10**6
    buckets: int = 1
    seed: int = 0
    workers: int | None = None  # tars written at once (default: one per CPU, at most 4)
    catalog: tuple[Source, ...] = CATALOG  # the root's sources: the five and those it declares


def parse_size(text: str) -> int:
    """'500MB', '1GB', '256MiB', '100000' -> bytes (MB = 10^6, MiB = 2^20)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match and _UNITS.get(match[2].lower())
    if not match or unit is None or float(match[1]) * unit < 1:
        raise ShardsInputError(f"--shard-size {text!r} is not a size; write it like 500MB, 1GB or 256MiB")
    return int(float(match[1]) * unit)


def check_options(layout: Layout, options: ShardOptions) -> list[CorpusSplit]:
    """Every input problem, before anything is written (one line, exit 2). Returns the splits:
    `--split` names one, several (comma separated) or `all` (every prepared split)."""
    if options.fmt not in FORMATS:
        raise ShardsInputError(f"--format {options.fmt!r} is not a shard format; use one of {', '.join(FORMATS)}")
    if options.buckets < 1:
        raise ShardsInputError(f"--buckets {options.buckets} must be 1 or more")
    if options.shard_size < 1:
        raise ShardsInputError(f"--shard-size {options.shard_size} must be more than 0 bytes")
    if options.workers is not None and options.workers < 1:
        raise ShardsInputError(f"--workers {options.workers} must be 1 or more")
    if options.split != "all":
        found = [corpus_split(layout, options.corpus, name.strip(), options.catalog) for name in options.split.split(",")]
        return list({corpus.split: corpus for corpus in found}.values())  # `dev` and `validation` are one split
    found = []
    for name in SPLITS:
        try:
            found.append(corpus_split(layout, options.corpus, name, options.catalog))
        except ShardsInputError:
            continue
    if not found:
        corpus_split(layout, options.corpus, SPLITS[0], options.catalog)  # raises the message naming `prepare speech`
    return found


@dataclass
class ShardsOutcome:
    ok: bool
    failures: list[str]
    written: int = 0
    kept: int = 0
    removed: int = 0


@dataclass
class _SetJob:
    """One split's set in this run: its plan and what is already done."""

    corpus: CorpusSplit
    paths: SetPaths
    plan: Plan
    journal: Journal
    manifest_sha256: str
    kept: dict
    staged: dict
    pending: list


def run_shards(layout: Layout, options: ShardOptions, *, verbose: bool = False) -> ShardsOutcome:
    from ..run import Run  # the run lock, the log file, temp files cleared at start; a failure ends the log

    splits = check_options(layout, options)
    sets = [SetPaths(layout, corpus.key, options.fmt, corpus.split) for corpus in splits]
    with Run(layout, verbose=verbose, command="shards") as run:
        started = time.monotonic()
        outcome = _run(layout, run.cache, splits, options)
        failures = [f"FAIL [shards] {where}: {reason}" for paths in sets for where, reason in
                    check_set(paths, lambda path, st: run.cache.digests(path).sha256)]
        outcome.ok, outcome.failures = not failures, failures
        for line in failures:
            log.error("%s", line)
        _append_summary(layout, sets, failures, outcome, ok=not failures, seconds=time.monotonic() - started)
        return outcome


def _run(layout: Layout, cache, splits: list[CorpusSplit], options: ShardOptions) -> ShardsOutcome:
    """Plan the splits smallest first; each starts writing (in a child process) while the next is
    planned, and the last one's files are dealt into `workers` lanes (lanes.py)."""
    workers = options.workers or min(4, os.cpu_count() or 1)
    order = sorted(splits, key=lambda corpus: os.path.getsize(corpus.manifest))
    # The plan is ~10 long-lived objects per sample and no cycles: the collector would only walk them
    # (three full passes on the 48,904 clips, ~0.15 s) and, in a forked writer, copy every page it visits.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _plan_write_publish(layout, cache, order, options, workers)
    finally:
        if collecting:
            gc.enable()


def _plan_write_publish(layout: Layout, cache, order: list[CorpusSplit], options: ShardOptions,
                        workers: int) -> ShardsOutcome:
    from ..progress import progress

    jobs: list[_SetJob] = []
    with Lanes(layout, write_one, workers) as lanes:
        for number, corpus in enumerate(order):
            job = _plan_set(layout, cache, corpus, options)
            jobs.append(job)
            pending = [(planned, job.paths.staging, job.journal) for planned in job.pending]
            if number < len(order) - 1 and lanes.workers > 1:
                lanes.start(pending)
        total = sum(planned.size or 0 for job in jobs for planned in job.pending)
        with progress(total, "shards", "B", logger=log, unit_scale=True) as bar:
            lanes.attach(bar.update)
            lanes.deal(pending if lanes.workers > 1 else [(p, j.paths.staging, j.journal) for j in jobs
                                                          for p in j.pending])
    outcome = ShardsOutcome(True, [])
    for job in sorted(jobs, key=lambda job: SPLITS.index(job.corpus.split)):
        index = _index(layout, job.corpus, job.paths, options, job.plan, job.manifest_sha256, job.journal)
        outcome.removed += _publish(job.paths, job.plan, job.kept, index, cache, job.journal)
        job.journal.keep_only({p.name for p in job.plan.files()})
        outcome.written += len(job.pending) + len(job.staged)
        outcome.kept += len(job.kept)
    return outcome


def _plan_set(layout: Layout, cache, corpus: CorpusSplit, options: ShardOptions) -> _SetJob:
    paths = SetPaths(layout, corpus.key, options.fmt, corpus.split)
    manifest_sha256 = cache.digests(corpus.manifest).sha256
    samples = read_samples(layout, corpus, cache, describer(options.fmt))
    plan = make_plan(options.fmt, corpus.split, samples, options.shard_size, options.buckets, options.seed)
    job = _SetJob(corpus, paths, plan, Journal(paths.journal, layout.tmp_dir), manifest_sha256, {}, {}, [])
    for planned in plan.files():
        found = job.journal.finished(planned, paths.folder / planned.name, paths.staging / planned.name)
        if found is None:
            job.pending.append(planned)
        elif found[0] == paths.folder / planned.name:
            job.kept[planned.name] = found[1]
        else:
            job.staged[planned.name] = found[1]
    log.info("shards: %s %s %s: %d sample(s), %.2f h -> %d shard(s) in %s; %d file(s) to write (%s), %d in place, "
             "%d staged by an earlier run; %d clip(s) known to the hash cache, the others are hashed on the way",
             corpus.key, corpus.split, options.fmt, len(samples), sum(s.duration for s in samples) / 3600,
             len(plan.shards), layout.relative(paths.folder), len(job.pending),
             _mb(sum(p.size or 0 for p in job.pending)), len(job.kept), len(job.staged),
             sum(s.trusted for s in samples))
    return job


def _publish(paths: SetPaths, plan: Plan, kept: dict, index: bytes, cache, journal: Journal) -> int:
    """Staged files into the split folder, leftovers out, the index last. Returns files removed."""
    names = [p.name for p in plan.files()]
    moving = [name for name in names if name not in kept]
    leftovers = [name for name in own_files(paths.folder, OWN_NAMES[paths.fmt]) if name not in set(names)]
    try:
        unchanged = paths.index.read_bytes() == index
    except FileNotFoundError:
        unchanged = False
    if (moving or leftovers) and not unchanged:
        paths.index.unlink(missing_ok=True)  # from here to the new index the set is "being replaced"
    for name in moving:
        final = paths.folder / name
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(paths.staging / name, final)
    for name in leftovers:
        (paths.folder / name).unlink(missing_ok=True)
        log.info("shards: removed %s (not part of this plan)", paths.layout.relative(paths.folder / name))
    for folder in {(paths.folder / n).parent for n in moving + leftovers}:
        fsync_dir(folder)
    _remove_empty_dirs(paths)
    write_if_changed(paths.index, index, paths.layout.tmp_dir)
    for name in names:  # the gate after this run (and verify --quick) trusts these hashes by stat
        entry = journal.files[name]
        final = paths.folder / name
        known = cache.lookup(final)
        if known is None or known.sha256 != entry["sha256"]:
            cache.placed(final, entry["sha256"])
    return len(leftovers)


def _remove_empty_dirs(paths: SetPaths) -> None:
    """Bucket folders an earlier plan left empty, and the set's staging folder once it is empty."""
    for root, keep in ((paths.folder, True), (paths.staging, False)):
        if not root.is_dir():
            continue
        for dirpath, _, _ in sorted(os.walk(root), key=lambda t: -len(t[0])):  # deepest first
            if keep and dirpath == os.fspath(root):
                continue
            try:
                os.rmdir(dirpath)  # only succeeds when empty
            except OSError:
                pass


def _index(layout: Layout, corpus: CorpusSplit, paths: SetPaths, options: ShardOptions, plan: Plan,
           manifest_sha256: str, journal: Journal) -> bytes:
    def file_entry(planned) -> dict:
        entry = journal.files[planned.name]
        return {"name": planned.name, "sha256": entry["sha256"], "bytes": entry["bytes"], "plan": planned.digest}

    shards = []
    for shard in plan.shards:
        durations = [s.duration for s in shard.samples]
        shards.append({**file_entry(shard.files[0]), "bucket": shard.bucket, "samples": len(shard.samples),
                       "hours": round(shard.seconds / 3600, 6), "min_duration": min(durations),
                       "max_duration": max(durations), "files": [file_entry(f) for f in shard.files[1:]]})
    patterns = {}
    for bucket in plan.buckets or [{"folder": "", "shards": len(plan.shards)}]:
        if bucket["shards"]:
            folder = bucket["folder"] + "/" if bucket["folder"] else ""
            patterns[bucket["folder"] or "."] = {k: folder + v for k, v in
                                                 shard_pattern(options.fmt, corpus.split, bucket["shards"]).items()}
    seconds = sum(s.seconds for s in plan.shards)
    index = {"version": INDEX_VERSION, "writer": WRITER_VERSION, "format": options.fmt, "corpus": corpus.key,
             "split": corpus.split, "folder": paths.folder.name, "manifest": layout.relative(corpus.manifest),
             "manifest_sha256": manifest_sha256,
             "options": {"seed": options.seed, "shard_size": options.shard_size, "buckets": options.buckets},
             "samples": sum(len(s.samples) for s in plan.shards), "hours": round(seconds / 3600, 6),
             "bytes": sum(s["bytes"] for s in shards) + sum(f["bytes"] for s in shards for f in s["files"]),
             "patterns": patterns, "buckets": plan.buckets, "shards": shards,
             "files": [file_entry(f) for f in plan.extra]}
    return orjson.dumps(index, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def _append_summary(layout: Layout, sets: list[SetPaths], problems: list[str], outcome: ShardsOutcome | None, *,
                    ok: bool, seconds: float | None = None) -> None:
    from ..records import append_summary

    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    lines = [f"===== persian-data shards {stamp} =====",
             f"status: {'COMPLETE' if ok else 'NOT COMPLETE'}"]
    lines += [f"set: {layout.relative(paths.folder)} (index {layout.relative(paths.index)})" for paths in sets]
    if outcome is not None:
        lines.append(f"files: {outcome.written} written, {outcome.kept} kept, {outcome.removed} removed"
                     + (f" in {seconds:.1f}s" if seconds is not None else ""))
    lines.append("gates:")
    lines += [f"  {line}" for line in problems] or ["  PASS: shards"]
    lines.append("===== end of shards =====")
    append_summary(layout, "\n".join(lines) + "\n")
