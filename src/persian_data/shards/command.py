"""`persian-data shards`: prepared splits -> WebDataset, lhotse Shar or NeMo tarred shard sets.

Under the root lock and the run log, like every command that writes: read the manifest, plan
(plan.py), write what the journal does not already hold into staging (write.py; with 2+ workers
each split in a process of its own, lanes.py), then publish:
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
import math
import os
import re
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable

import orjson

from ..atomic import fsync_dir, write_if_changed
from ..catalog import CATALOG, Source
from ..layout import Layout
from .corpus import SPLITS, CorpusSplit, corpus_split
from .documents import describer, line_planner
from .errors import ShardsInputError
from .formats import FORMATS, WRITER_VERSION, shard_pattern
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
    workers: int | None = None  # writer processes, shared among the splits (default: one per CPU, at most 4)
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
    """Shard every split (with 2+ workers each in a child of its own, its files dealt into lanes:
    the splits are planned at once), then publish them all."""
    workers = options.workers or min(4, os.cpu_count() or 1)
    manifests = {corpus.split: cache.digests(corpus.manifest).sha256 for corpus in splits}  # the cache stays here
    # The plan is ~10 long-lived objects per sample and no cycles: the collector would only walk them
    # (three full passes on the 48,904 clips, ~0.15 s) and, in a forked writer, copy every page it visits.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if workers > 1 and hasattr(os, "fork"):
            done = _shard_in_children(layout, cache, splits, options, workers, manifests)
        else:
            done = [_shard_here(layout, cache, corpus, options, manifests[corpus.split]) for corpus in splits]
    finally:
        if collecting:
            gc.enable()
    outcome = ShardsOutcome(True, [])
    for result in sorted(done, key=lambda result: SPLITS.index(result.split)):
        paths = SetPaths(layout, result.key, options.fmt, result.split)
        journal = Journal(paths.journal, layout.tmp_dir)  # as the split's writer left it
        outcome.removed += _publish(paths, result.names, result.kept, result.index, cache, journal)
        journal.keep_only(set(result.names))
        outcome.written += result.written
        outcome.kept += len(result.kept)
    return outcome


_LEFT_TO_EXIT: list = []
"""In a split's child, which ends as soon as its set is sent: its plan (~10 objects a sample), left
to the process's exit rather than freed object by object (~0.1 s for the 48,904 clips, at the end
of the run)."""


@dataclass
class _SetDone:
    """A split's set, written to staging: what publishing it needs."""

    key: str
    split: str
    index: bytes
    names: list[str]  # every file of the plan
    kept: list[str]  # those already in place
    written: int  # those written now or by an earlier run (staged)


def _shard_split(layout: Layout, cache, corpus: CorpusSplit, options: ShardOptions, manifest_sha256: str,
                 lanes: int, started: Callable[[int], Callable[[int], None]], keep: list | None = None) -> _SetDone:
    """Plan one split and write what its journal does not hold, in `lanes` processes (this one
    included); `started(bytes to write)` gives the progress callback. The plan is appended to
    `keep` when given (see _LEFT_TO_EXIT)."""
    job = _plan_set(layout, cache, corpus, options, manifest_sha256)
    if keep is not None:
        keep.append(job)
    pending = [(planned, job.paths.staging, job.journal) for planned in job.pending]
    on_bytes = started(sum(planned.size or 0 for planned in job.pending))
    with Lanes(layout, write_one, lanes) as writers:
        writers.attach(on_bytes)
        writers.deal(pending, here=True)
    index = _index(layout, job.corpus, job.paths, options, job.plan, manifest_sha256, job.journal)
    return _SetDone(corpus.key, corpus.split, index, [p.name for p in job.plan.files()], list(job.kept),
                    len(job.pending) + len(job.staged))


def _shard_here(layout: Layout, cache, corpus: CorpusSplit, options: ShardOptions, manifest_sha256: str) -> _SetDone:
    from ..progress import progress

    with ExitStack() as stack:
        return _shard_split(layout, cache, corpus, options, manifest_sha256, 1, lambda total: stack.enter_context(
            progress(total, f"shards {corpus.split}", "B", logger=log, unit_scale=True)).update)


def _shard_in_children(layout: Layout, cache, splits: list[CorpusSplit], options: ShardOptions, workers: int,
                       manifests: dict[str, str]) -> list[_SetDone]:
    """Each split in a child of its own (biggest first), planned at once; a split gets a share of
    the `workers` lanes by its manifest's size (at least one). One progress bar once all are planned."""
    from ..progress import progress

    sizes = {corpus.split: os.path.getsize(corpus.manifest) for corpus in splits}
    done: list[_SetDone] = []
    planned: dict[str, int] = {}
    all_planned = threading.Event()
    with Lanes(layout, write_one, workers) as children, ExitStack() as stack:
        for corpus in sorted(splits, key=lambda corpus: -sizes[corpus.split]):
            lanes = max(1, math.ceil(workers * sizes[corpus.split] / sum(sizes.values()) - 1e-9))

            def task(send, corpus=corpus, lanes=lanes) -> None:
                def started(total: int) -> Callable[[int], None]:
                    send(("planned", total))
                    return lambda n: send(("bytes", n)) if n else None

                send(("set", _shard_split(layout, cache, corpus, options, manifests[corpus.split], lanes, started,
                                          _LEFT_TO_EXIT)))

            def handle(message, split=corpus.split) -> bool:
                if message[0] == "planned":
                    planned[split] = message[1]
                    if len(planned) == len(splits):
                        all_planned.set()
                    return False
                done.append(message[1])
                return True

            children.spawn(task, handle)
        while not all_planned.wait(0.05):
            if children.failed:
                return []  # leaving the block stops the others and raises the failure
        bar = stack.enter_context(progress(sum(planned.values()), "shards", "B", logger=log, unit_scale=True))
        children.attach(bar.update)
    return done


def _plan_set(layout: Layout, cache, corpus: CorpusSplit, options: ShardOptions, manifest_sha256: str) -> _SetJob:
    paths = SetPaths(layout, corpus.key, options.fmt, corpus.split)
    samples = read_samples(layout, corpus, cache, describer(options.fmt, corpus),
                           lambda root, seen: line_planner(options.fmt, corpus, root, cache, seen))
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


def _publish(paths: SetPaths, names: list[str], kept: list[str], index: bytes, cache, journal: Journal) -> int:
    """Staged files into the split folder, leftovers out, the index last. Returns files removed."""
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
