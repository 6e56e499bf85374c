"""The speech gate: manifest counts = source rows - rejected rows; every audio path exists; every
sha256 matches (from the run's hash cache when a file is unchanged since it was written or last
hashed, re-read when `verify` asks for a thorough check or the file changed).

Right after a stage, a split is proven from the records step's listing and the stage's marker
(`_proven_by_listing`) instead of parsing its manifest again; any doubt falls back to the full
check, and `verify` always does the full check."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from ..catalog import CATALOG, SPEECH_BUCKET, Source
from ..errors import PersianDataError
from ..gates import GateFailure, GateNote, gate
from ..integrity import Digests
from ..layout import Layout
from ..corpora.speech_clips import split_sort_key
from .speech_manifests import clips_digest, iter_manifest, iter_referenced, manifest_lines, marker_path, read_marker

MAX_FAILURES_PER_CHECK = 50


def _speech_sources(sources) -> list[Source]:
    return [s for s in sources if s.bucket == SPEECH_BUCKET]


@gate("speech", stage=SPEECH_BUCKET,
      markers=lambda layout, sources: [layout.manifests_dir(s) for s in _speech_sources(sources)])
def speech_gates(ctx) -> list[GateFailure | GateNote]:
    """Manifest counts = source rows - rejected rows; every audio path exists; every sha256 matches.
    `ctx`: the run's GateContext, or a Layout (the five's speech corpora, thorough)."""
    layout = ctx if isinstance(ctx, Layout) else ctx.layout
    wanted = getattr(ctx, "sources", None) or CATALOG
    cache = getattr(ctx, "cache", None)
    thorough = getattr(ctx, "thorough", True)
    known = None if thorough else getattr(ctx, "known", None)
    out: list = []
    for source in _speech_sources(wanted):
        if layout.content_dir(source).is_dir():
            out.extend(_gate_source(layout, source, cache, thorough, known))
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


def _gate_source(layout: Layout, source: Source, cache, thorough: bool,
                 known: dict[str, str] | None = None) -> list[GateFailure | GateNote]:
    manifests_dir = layout.manifests_dir(source)
    if not manifests_dir.is_dir() or not any(manifests_dir.glob("*.jsonl")):
        # fetched, never prepared (`persian-data fetch` alone): said, not failed
        return [GateNote("speech", f"{source.folder}: no manifests yet; `persian-data prepare speech` makes them")]
    fail = _Failures()
    try:
        rows = source.reader.source_rows(layout, source)
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
        if known is not None and _proven_by_listing(layout, source, split, rows[split] - rejected[split], known):
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
    _gate_hashes(layout, source, files, referenced, fail, cache, thorough, known)
    return fail.done()


def _proven_by_listing(layout: Layout, source: Source, split: str, expected: int, known: dict[str, str]) -> bool:
    """Whether this run's records listing (each file stat'ed against the hash taken as it was
    written) shows the split exactly as the stage published it, without parsing the manifest:
    the manifest's bytes are those the marker recorded, it has the expected number of lines, and
    the audio folder holds exactly the (name, sha256) pairs the stage wrote, nothing else. Any
    doubt (no marker, an older marker, --no-extract, a change) falls back to the full check,
    which names what differs; `verify` always does the full check."""
    marker = read_marker(marker_path(layout, source, split))
    if not marker or not marker.get("clips_digest"):
        return False
    recorded = marker.get("manifest") or {}
    listed = known.get(layout.relative(layout.manifest(source, split)))
    if listed is None or listed != recorded.get("sha256") or recorded.get("lines") != expected:
        return False
    audio_dir = layout.audio_dir(source, split)
    prefix = layout.relative(audio_dir) + "/"
    cut = len(prefix)
    pairs = [(rel[cut:], sha) for rel, sha in known.items() if rel.startswith(prefix) and "/" not in rel[cut:]]
    if len(pairs) != expected:
        return False
    try:
        with os.scandir(audio_dir) as entries:
            if sum(1 for _ in entries) != expected:  # an empty file, a link or a folder is not in the listing
                return False
    except FileNotFoundError:
        return False
    return clips_digest(pairs) == marker["clips_digest"]


def _gate_hashes(layout: Layout, source: Source, files: list[tuple[str, str, str]], referenced: list[dict],
                 fail: _Failures, cache, thorough: bool, known: dict[str, str] | None = None) -> None:
    """Each clip's sha256 against its manifest line: from the hash cache when the clip is unchanged
    since it was written or hashed (a stat, in this thread), else read, in threads, in batches (a
    future per clip would cost more than the stat)."""
    root = str(layout.root)
    digests: list[str | None] = [None] * len(files)  # None: missing
    to_read: list[tuple[int, str, os.stat_result]] = []
    for index, (rel, _, _) in enumerate(files):
        if known is not None and (listed := known.get(rel)) is not None:
            digests[index] = listed  # this run's records step just stat'ed it against the hash cache
            continue
        path = f"{root}/{rel}"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        hit = cache.lookup(Path(path), st) if cache is not None and not thorough else None
        if hit is not None:
            digests[index] = hit.sha256
        else:
            to_read.append((index, path, st))

    def read(batch: list[tuple[int, str, os.stat_result]]) -> None:
        for index, path, st in batch:
            try:
                with open(path, "rb", buffering=0) as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()  # hashlib releases the GIL
            except FileNotFoundError:
                continue
            digests[index] = digest
            if cache is not None:
                cache.put(Path(path), Digests(digest, None), st)

    if to_read:
        threads = min(8, 2 * (os.cpu_count() or 1))
        size = max(1, -(-len(to_read) // (threads * 4)))
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(read, [to_read[i:i + size] for i in range(0, len(to_read), size)]))
    for (rel, sha, cid), digest in zip(files, digests):
        if digest is None:
            fail.add("exists", rel, f"audio file missing (manifest line {cid})")
        elif digest != sha:
            fail.add("sha256", rel, f"sha256 is {digest}, the manifest says {sha}")
    if referenced:
        for line, data in iter_referenced(layout, referenced, source):
            where = f"{line.get('audio_path')} {orjson.dumps(line.get('audio_ref')).decode()}"
            if data is None:
                fail.add("exists", where, f"referenced audio missing (manifest line {line.get('id')})")
            elif hashlib.sha256(data).hexdigest() != line.get("sha256"):
                fail.add("sha256", where, "sha256 of the referenced bytes differs from the manifest")
