"""Common Voice 13 fa (hezarai/common-voice-13-fa): parquet shards with embedded MP3 bytes.

Shards are `data/<split>-NNNNN-of-NNNNN.parquet`; columns client_id, path, sentence, audio
{bytes, path}, up_votes, down_votes, age, gender, accent, locale, segment, variant. Shards are read
a few row groups at a time (never whole into memory); each unit of work is a run of row groups of
one shard, so units run in parallel and their lines are joined back in source order.

A clip's file name is the basename of its `path` column (of `audio.path` when `path` is empty); its
id is that name without the extension. The first row of an id wins; later rows with the same id
are rejected as `duplicate_id`, decided here before any work starts so the result never depends
on which worker ran first.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..catalog import Source
from ..layout import Layout
from ..normalize import normalize_many
from .speech_clips import (Collector, SpeechPrepareError, SplitPlan, UnitContext, UnitResult, published_split,
                           safe_name, split_sort_key)

SHARD_RE = re.compile(r"^(?P<split>[A-Za-z0-9_.]+?)(?:-\d+-of-\d+)?\.parquet$")
TEXT_COLUMN = "sentence"
AUDIO_COLUMN = "audio"
META_COLUMNS = ("client_id", "path", "up_votes", "down_votes", "age", "gender", "accent", "locale", "segment",
                "variant")
ROWS_PER_UNIT = 1000
BATCH_ROWS = 128
STREAM_BUFFER = 1 << 20  # read column chunks page by page: a huge row group never sits whole in memory


def shards(layout: Layout, source: Source) -> dict[str, list[Path]]:
    """Parquet shards by source split name, each list in shard order."""
    content = layout.content_dir(source)
    found: dict[str, list[Path]] = {}
    for path in sorted(content.rglob("*.parquet")):
        rel = path.relative_to(content).parts
        if any(part.startswith(".") for part in rel):
            continue  # e.g. .cache/huggingface bookkeeping
        match = SHARD_RE.match(path.name)
        if match:
            found.setdefault(match["split"], []).append(path)
    return found


def clip_name(path: str | None, audio_path: str | None) -> str | None:
    for value in (path, audio_path):
        if value:
            name = value.replace("\\", "/").rsplit("/", 1)[-1]
            return name if safe_name(name) else None
    return None


def clip_id(name: str) -> str:
    stem, dot, _ = name.rpartition(".")
    return stem if dot and stem else name


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise SpeechPrepareError(f"{path}: not a readable parquet file: {_line(exc)}; fetch it again") from None


def _check_schema(path: Path, pf: pq.ParquetFile) -> None:
    names = pf.schema_arrow.names
    missing = [c for c in (AUDIO_COLUMN, TEXT_COLUMN) if c not in names]
    if missing:
        raise SpeechPrepareError(f"{path}: not a Common Voice shard (no column {', '.join(missing)})")


def _names(pf: pq.ParquetFile) -> list[str | None]:
    """Every row's clip name, reading only the name column(s)."""
    schema = pf.schema_arrow
    if "path" in schema.names:
        paths = pf.read(columns=["path"]).column(0).to_pylist()
    else:
        paths = [None] * pf.metadata.num_rows
    if all(paths):
        return [clip_name(p, None) for p in paths]
    audio_paths: list = []
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[AUDIO_COLUMN], use_threads=False):
        column = batch.column(0)
        audio_paths.extend(column.field("path").to_pylist() if pa.types.is_struct(column.type)
                           else [None] * len(column))
    return [clip_name(p, a) for p, a in zip(paths, audio_paths)]


def plan(layout: Layout, source: Source) -> list[SplitPlan]:
    plans = []
    for source_split, files in shards(layout, source).items():
        seen: dict[str, str] = {}
        units = []
        rows = 0
        for path in files:
            pf = _open(path)
            _check_schema(path, pf)
            rel = layout.relative(path)
            duplicates: dict[int, str] = {}
            try:
                names = _names(pf)
            except (pa.ArrowException, OSError) as exc:
                raise SpeechPrepareError(f"{rel}: cannot read its names: {_line(exc)}; fetch it again") from None
            for row, name in enumerate(names):
                if name is None:
                    continue
                cid = clip_id(name)
                if cid in seen:
                    duplicates[row] = f"id {cid} already at {seen[cid]}"
                else:
                    seen[cid] = f"{rel} row {row}"
            md = pf.metadata
            group: list[int] = []
            group_rows = 0
            first = 0
            for index in range(md.num_row_groups):
                group.append(index)
                group_rows += md.row_group(index).num_rows
                if group_rows >= ROWS_PER_UNIT or index == md.num_row_groups - 1:
                    dups = {r: d for r, d in duplicates.items() if first <= r < first + group_rows}
                    units.append((run_unit, (str(path), rel, tuple(group), first, dups)))
                    first += group_rows
                    group, group_rows = [], 0
            rows += md.num_rows
        plans.append(SplitPlan(published_split(source_split), source_split, list(files), rows, units))
    return sorted(plans, key=lambda p: split_sort_key(p.split))


def source_rows(layout: Layout, source: Source) -> dict[str, int]:
    out: dict[str, int] = {}
    for source_split, files in shards(layout, source).items():
        out[published_split(source_split)] = sum(_open(p).metadata.num_rows for p in files)
    return out


def _batches(pf: pq.ParquetFile, rel: str, row_groups: tuple[int, ...], columns: list[str] | None = None):
    """The shard's record batches; a read or decode failure names the shard (our own write errors,
    such as a full disk, are not caught here and keep their own message)."""
    batches = pf.iter_batches(batch_size=BATCH_ROWS, row_groups=list(row_groups), columns=columns,
                              use_threads=False)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise SpeechPrepareError(f"{rel}: cannot read row groups {row_groups[0]}-{row_groups[-1]}: "
                                     f"{_line(exc)}; the shard is damaged, fetch it again") from None
        yield batch


def run_unit(args: tuple, ctx: UnitContext) -> UnitResult:
    path, rel, row_groups, first_row, duplicates = args
    pf = pq.ParquetFile(path, buffer_size=STREAM_BUFFER, pre_buffer=False)
    names = pf.schema_arrow.names
    meta_columns = [c for c in META_COLUMNS if c in names] + \
        [c for c in names if c not in META_COLUMNS and c not in (AUDIO_COLUMN, TEXT_COLUMN)]
    out = Collector(ctx)
    lines: list[bytes] = []
    row = first_row
    for batch in _batches(pf, rel, row_groups):
        audio = batch.column(AUDIO_COLUMN)
        if pa.types.is_struct(audio.type):
            datas = audio.field("bytes").to_pylist()
            audio_paths = audio.field("path").to_pylist() if audio.type.get_field_index("path") >= 0 \
                else [None] * len(audio)
            nulls = audio.is_null().to_pylist()
        else:
            datas, audio_paths, nulls = audio.to_pylist(), [None] * len(audio), [False] * len(audio)
        texts = batch.column(TEXT_COLUMN).to_pylist()
        normalized = normalize_many([t or "" for t in texts])  # the whole batch at once: ~6x faster
        meta_values = [batch.column(c).to_pylist() for c in meta_columns]
        for i in range(batch.num_rows):
            meta = {c: values[i] for c, values in zip(meta_columns, meta_values)}
            name = clip_name(meta.get("path"), audio_paths[i])
            cid = clip_id(name) if name else None
            data = None if nulls[i] else datas[i]
            if row in duplicates:
                out.reject("duplicate_id", duplicates[row], source=rel, clip_id=cid, row=row)
            elif name is None:
                out.reject("unsafe_path", f"path {meta.get('path')!r} gives no safe file name", source=rel, row=row)
            elif not data:
                out.reject("no_audio", "the row has no audio bytes", source=rel, clip_id=cid, row=row)
            else:
                line = out.clip(clip_id=cid, name=name, data=data, text=texts[i], meta=meta, source=rel,
                                ref={"row": row}, row=row, speaker=meta.get("client_id"), gender=meta.get("gender"),
                                text_normalized=normalized[i])
                if line is not None:
                    lines.append(line)
            row += 1
    out.result.lines = b"".join(lines)
    # Arrow's allocator (mimalloc) keeps the unit's freed read buffers: ~180 MB per worker by the
    # end of a shard instead of ~110 MB. Handing them back once per unit costs about nothing.
    pa.default_memory_pool().release_unused()
    return out.result


def read_rows(path: Path, rows: set[int]):
    """(row, audio bytes) for the wanted rows of one shard, in row order, a batch at a time."""
    pf = pq.ParquetFile(path, buffer_size=STREAM_BUFFER, pre_buffer=False)
    md = pf.metadata
    wanted = sorted(rows)
    at, start = 0, 0
    for index in range(md.num_row_groups):
        end = start + md.row_group(index).num_rows
        while at < len(wanted) and wanted[at] < start:
            at += 1  # negative or otherwise impossible rows
        if at < len(wanted) and wanted[at] < end:
            first = start
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[index], columns=[AUDIO_COLUMN],
                                         use_threads=False):
                column = batch.column(0)
                last = first + batch.num_rows
                while at < len(wanted) and wanted[at] < last:
                    value = column[wanted[at] - first].as_py()
                    yield wanted[at], value.get("bytes") if isinstance(value, dict) else value
                    at += 1
                first = last
        start = end
