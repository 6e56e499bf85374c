"""Shape `speech-parquet`: parquet shards of a speech corpus (the Hugging Face `datasets` export).

Shards are read a few row groups at a time (never whole into memory); each unit of work is a run
of row groups of one shard, so units run in parallel and their lines are joined back in source
order. The split of a row comes from its shard's file name (`data/<split>-00000-of-00002.parquet`,
or the `files` template, e.g. `data/{split}/*.parquet`) or from a column (`split`).

Audio is an `audio` struct `{bytes, path}` (what `datasets` writes), a binary column, or a string
column holding the path of an audio file in the repo (relative to the shard's folder, else to the
repo root). A clip's file name is the basename of the `name` column (Common Voice: `path`), else
of the audio path, else `<id>.<ext>` or `<shard>-<row>.<ext>` (the extension from the bytes). Its
id is the `id` column, else that name without the extension. The first row of an id wins; later
rows with the same id are rejected as `duplicate_id`, decided before any work starts so the
result never depends on which worker ran first.

Every other source column is kept in the manifest line (those in `first_columns` first, then in
file order); a source column named like one of the manifest's own keys is written `source_<name>`.

pyarrow is imported where used: the catalog imports this module for `ParquetReader`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from .speech_clips import (Collector, SpeechPrepareError, SplitPlan, UnitContext, UnitResult, clip_id,
                                    manifest_key, safe_name, sniff_extension, split_sort_key)
from .config import Fields, policy_columns, speech_policy
from ..source import SPEECH_BUCKET, Source, files_by_split, template_regex

if TYPE_CHECKING:
    import pyarrow.parquet as pq

    from ..layout import Layout

SHAPE = "speech-parquet"
# <split>[-00000-of-00002][-<hash>].parquet: the names `datasets` and huggingface_hub give shards
SHARD_RE = re.compile(r"^(?P<split>[A-Za-z0-9_.]+?)(?:-\d+-of-\d+)?(?:-[0-9a-f]{8,})?\.parquet$")
ROWS_PER_UNIT = 1000
BATCH_ROWS = 128
STREAM_BUFFER = 1 << 20  # read column chunks page by page: a huge row group never sits whole in memory


@dataclass(frozen=True)
class ParquetReader:
    """How a `speech-parquet` corpus is read (the column names are the source's)."""

    text: str = "sentence"  # transcript column
    audio: str = "audio"  # struct {bytes, path}, binary, or a path (string) to an audio file in the repo
    name: str | None = None  # column whose basename is the clip's file name (Common Voice: path)
    id: str | None = None  # clip id column; None: the file name without its extension
    split: str | None = None  # column holding each row's split; None: the shard's file name says it
    files: str | None = None  # shard template relative to the content folder, with {split} (* and **)
    first_columns: tuple[str, ...] = ()  # source columns written first in each manifest line

    # -- the speech reader's protocol (see corpora.speech_clips) --------------------------------
    def plan(self, layout: Layout, source: Source) -> list[SplitPlan]:
        return plan(layout, source)

    def source_rows(self, layout: Layout, source: Source) -> dict[str, int]:
        return source_rows(layout, source)

    def read_referenced(self, layout: Layout, source: Source, container: Path, refs: list[dict]) -> dict:
        return read_referenced(layout, source, container, refs)

    def worker_imports(self) -> tuple[str, ...]:
        """Loaded once by the worker processes' server, so each worker starts in milliseconds."""
        # pyarrow.compute: the units' null checks import it; loaded once here, its pages are shared
        return (__name__, "soundfile", "pyarrow", "pyarrow.parquet", "pyarrow.compute")

    def columns(self) -> tuple[str, ...]:
        """The source columns this reader needs to find in the data."""
        return tuple(c for c in (self.text, self.audio, self.name, self.id, self.split) if c)


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _all_shards(layout: Layout, source: Source) -> list[Path]:
    """Every shard (those the `files` template names, when it is given), in path order."""
    content = layout.content_dir(source)
    pattern = template_regex(source.reader.files) if source.reader.files else None
    return [path for path in sorted(content.rglob("*.parquet"))
            if not any(part.startswith(".") for part in path.relative_to(content).parts)  # e.g. .cache/huggingface
            and (pattern is None or pattern.match(path.relative_to(content).as_posix()))]


def shards(layout: Layout, source: Source) -> dict[str, list[Path]]:
    """Parquet shards by source split name, each list in shard order (file-named splits)."""
    reader: ParquetReader = source.reader
    if reader.files:
        return files_by_split(layout.content_dir(source), reader.files, ".parquet")
    found: dict[str, list[Path]] = {}
    for path in _all_shards(layout, source):
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


def _open(path: Path) -> pq.ParquetFile:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise SpeechPrepareError(f"{path}: not a readable parquet file: {_line(exc)}; fetch it again") from None


def _check_schema(path: Path, pf: pq.ParquetFile, source: Source) -> None:
    names = pf.schema_arrow.names
    missing = [c for c in (source.reader.audio, source.reader.text) if c not in names]
    if missing:
        raise SpeechPrepareError(f"{path}: not a {source.key} shard (no column {', '.join(missing)})")


def _column(pf: pq.ParquetFile, name: str | None) -> list:
    if name is None or name not in pf.schema_arrow.names:
        return [None] * pf.metadata.num_rows
    return pf.read(columns=[name]).column(0).to_pylist()


def _audio_paths(pf: pq.ParquetFile, reader: ParquetReader) -> list:
    """Every row's audio path: the struct's `path`, or the column itself when it holds paths."""
    import pyarrow as pa

    out: list = []
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[reader.audio], use_threads=False):
        column = batch.column(0)
        if pa.types.is_struct(column.type):
            out.extend(column.field("path").to_pylist() if column.type.get_field_index("path") >= 0
                       else [None] * len(column))
        elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            out.extend(column.to_pylist())
        else:
            out.extend([None] * len(column))
    return out


def _identities(pf: pq.ParquetFile, reader: ParquetReader) -> tuple[list[str | None], list]:
    """Every row's clip id (None: no id, no safe name) and audio path, reading only those columns."""
    names = _column(pf, reader.name)
    ids = _column(pf, reader.id)
    audio_paths = [None] * len(names)
    if _is_path_column(pf, reader) or (reader.id is None and not all(names)):  # the audio column only if needed
        audio_paths = _audio_paths(pf, reader)
    if reader.id is not None:  # rows without an id are rejected
        return [_id_text(cid) for cid in ids], audio_paths
    out = []
    for name, audio_path in zip(names, audio_paths):
        found = clip_name(name, audio_path)
        out.append(clip_id(found) if found else None)  # None: rejected, or named by its shard and row (unique)
    return out, audio_paths


def _is_path_column(pf: pq.ParquetFile, reader: ParquetReader) -> bool:
    import pyarrow as pa

    typ = pf.schema_arrow.field(reader.audio).type
    return pa.types.is_string(typ) or pa.types.is_large_string(typ)


def resolve_audio_file(content: Path, shard: Path, value: str | None) -> Path | None:
    """A path column's value as a file of the repo: beside the shard, else from the repo root;
    None when it names no file there (or would leave the content folder)."""
    if not value:
        return None
    rel = PurePosixPath(value.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts:
        return None
    for base in (shard.parent, content):
        candidate = base / rel
        if candidate.is_file() and candidate.resolve().is_relative_to(content.resolve()):
            return candidate
    return None


def _split_rows(pf: pq.ParquetFile, reader: ParquetReader) -> list[str | None]:
    return [None if v is None else str(v) for v in _column(pf, reader.split)]


def plan(layout: Layout, source: Source) -> list[SplitPlan]:
    reader: ParquetReader = source.reader
    policy = source.speech
    if reader.split is not None:
        groups = {split: [(path, None) for path in _all_shards(layout, source)] for split in _column_splits(layout, source)}
    else:
        groups = {split: [(path, None) for path in files] for split, files in shards(layout, source).items()}
    content = layout.content_dir(source)
    plans = []
    for source_split, files in groups.items():
        seen: dict[str, str] = {}
        units = []
        rows = 0
        inputs = [path for path, _ in files]
        for path, _ in files:
            pf = _open(path)
            _check_schema(path, pf, source)
            rel = layout.relative(path)
            duplicates: dict[int, str] = {}
            try:
                ids, audio_paths = _identities(pf, reader)
                in_split = (None if reader.split is None else
                            {row for row, s in enumerate(_split_rows(pf, reader)) if s == source_split})
            except Exception as exc:  # noqa: BLE001 - pyarrow's read errors: the shard is damaged
                raise SpeechPrepareError(f"{rel}: cannot read its names: {_line(exc)}; fetch it again") from None
            if _is_path_column(pf, reader):  # the audio files are inputs too: a changed one redoes the split
                inputs += [f for row, value in enumerate(audio_paths) if in_split is None or row in in_split
                           if (f := resolve_audio_file(content, path, value)) is not None]
            for row, cid in enumerate(ids):
                if cid is None or (in_split is not None and row not in in_split):
                    continue
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
                    span = range(first, first + group_rows)
                    keep = None if in_split is None else frozenset(r for r in span if r in in_split)
                    if keep is None or keep:
                        dups = {r: d for r, d in duplicates.items() if first <= r < first + group_rows}
                        units.append((run_unit, (reader, path.as_posix(), rel, tuple(group), first, dups, keep)))
                    first += group_rows
                    group, group_rows = [], 0
            rows += md.num_rows if in_split is None else len(in_split)
        plans.append(SplitPlan(policy.published(source_split), source_split, list(dict.fromkeys(inputs)), rows, units))
    return sorted(plans, key=lambda p: split_sort_key(p.split))


def _column_splits(layout: Layout, source: Source) -> list[str]:
    splits: dict[str, None] = {}
    for path in _all_shards(layout, source):
        pf = _open(path)
        if source.reader.split not in pf.schema_arrow.names:
            raise SpeechPrepareError(f"{layout.relative(path)}: no column {source.reader.split!r} (the split column "
                                     f"{source.key} declares)")
        splits.update(dict.fromkeys(s for s in _split_rows(pf, source.reader) if s))
    return list(splits)


def source_rows(layout: Layout, source: Source) -> dict[str, int]:
    reader: ParquetReader = source.reader
    policy = source.speech
    out: dict[str, int] = {}
    if reader.split is not None:
        for path in _all_shards(layout, source):
            for split in _split_rows(_open(path), reader):
                if split:
                    out[policy.published(split)] = out.get(policy.published(split), 0) + 1
        return out
    for source_split, files in shards(layout, source).items():
        out[policy.published(source_split)] = sum(_open(p).metadata.num_rows for p in files)
    return out


def _batches(pf: pq.ParquetFile, rel: str, row_groups: tuple[int, ...], columns: list[str] | None = None):
    """The shard's record batches; a read or decode failure names the shard (our own write errors,
    such as a full disk, are not caught here and keep their own message)."""
    import pyarrow as pa

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


def _audio_values(audio) -> tuple[list, list, list]:
    """(bytes or None, path or None, is-null) of each row of an audio column."""
    import pyarrow as pa

    n = len(audio)
    if pa.types.is_struct(audio.type):
        datas = audio.field("bytes").to_pylist() if audio.type.get_field_index("bytes") >= 0 else [None] * n
        paths = audio.field("path").to_pylist() if audio.type.get_field_index("path") >= 0 else [None] * n
        return datas, paths, audio.is_null().to_pylist()
    if pa.types.is_string(audio.type) or pa.types.is_large_string(audio.type):
        return [None] * n, audio.to_pylist(), [False] * n
    return audio.to_pylist(), [None] * n, [False] * n


def run_unit(args: tuple, ctx: UnitContext) -> UnitResult:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..normalize import normalize_many

    reader, path, rel, row_groups, first_row, duplicates, keep = args
    shard = Path(path)
    content = Path(ctx.root) / ctx.content
    pf = pq.ParquetFile(path, buffer_size=STREAM_BUFFER, pre_buffer=False)
    names = pf.schema_arrow.names
    path_audio = _is_path_column(pf, reader)
    firsts = reader.first_columns
    meta_columns = [c for c in firsts if c in names] + \
        [c for c in names if c not in firsts and c not in (reader.audio, reader.text)]
    if path_audio:  # the path is a source column like any other; the bytes come from the file
        meta_columns = [c for c in firsts if c in names] + [c for c in names if c not in firsts and c != reader.text]
    keys = [manifest_key(c) for c in meta_columns]
    out = Collector(ctx)
    lines: list[bytes] = []
    row = first_row
    for batch in _batches(pf, rel, row_groups):
        datas, audio_paths, nulls = _audio_values(batch.column(reader.audio))
        texts = batch.column(reader.text).to_pylist()
        normalized = normalize_many([t or "" for t in texts])  # the whole batch at once: ~6x faster
        meta_values = [batch.column(c).to_pylist() for c in meta_columns]
        ids = batch.column(reader.id).to_pylist() if reader.id else None
        for i in range(batch.num_rows):
            if keep is not None and row not in keep:
                row += 1
                continue
            meta = {k: values[i] for k, values in zip(keys, meta_values)}
            raw_name = meta.get(manifest_key(reader.name)) if reader.name else None
            data = None if nulls[i] else datas[i]
            audio_file = resolve_audio_file(content, shard, audio_paths[i]) if path_audio else None
            if path_audio and audio_file is not None:
                data = audio_file.read_bytes()
            name = clip_name(raw_name, audio_paths[i])
            if ids is not None:  # the id names the clip's file, so file names are as unique as ids
                cid = _id_text(ids[i])
                name = _named_by_id(cid, name, data) if cid else None
            else:
                if name is None and reader.name is None and not audio_paths[i] and data:
                    name = _fallback_name(content, shard, row, data)
                cid = clip_id(name) if name else None
            if row in duplicates:
                out.reject("duplicate_id", duplicates[row], source=rel, clip_id=cid, row=row)
            elif ids is not None and not cid:
                out.reject("no_id", f"the row has no {reader.id}", source=rel, row=row)
            elif name is None:
                what = raw_name if reader.name else audio_paths[i]
                out.reject("unsafe_path", f"path {what!r} gives no safe file name", source=rel, row=row)
            elif path_audio and audio_file is None:
                out.reject("no_audio", f"{audio_paths[i]!r} is not a file of the repo", source=rel, clip_id=cid,
                           row=row)
            elif not data:
                out.reject("no_audio", "the row has no audio bytes", source=rel, clip_id=cid, row=row)
            else:
                where = ctx.relative(audio_file) if path_audio else rel  # the container --no-extract points into
                line = out.clip(clip_id=cid, name=name, data=data, text=texts[i], meta=meta, source=where,
                                ref={"file": where} if path_audio else {"row": row}, row=row,
                                speaker=_value(meta, ctx.speaker), gender=_value(meta, ctx.gender),
                                text_normalized=normalized[i])
                if line is not None:
                    lines.append(line)
            row += 1
    out.result.lines = b"".join(lines)
    # Arrow's allocator (mimalloc) keeps the unit's freed read buffers: ~180 MB per worker by the
    # end of a shard instead of ~110 MB. Handing them back once per unit costs about nothing.
    pa.default_memory_pool().release_unused()
    return out.result


def _value(meta: dict, column: str | None):
    return meta.get(column) if column else None


def _id_text(value) -> str | None:
    return None if value is None or str(value) == "" else str(value)


def _named_by_id(cid: str, source_name: str | None, data: bytes | None) -> str | None:
    """`<id>.<ext>`: the extension of the source's file name, else from the bytes."""
    ext = PurePosixPath(source_name).suffix if source_name else ""
    name = cid + (ext or (sniff_extension(data) if data else ""))
    return name if safe_name(name) else None


def _fallback_name(content: Path, shard: Path, row: int, data: bytes) -> str | None:
    """A clip with no name, path or id: named by its shard (path within the repo) and row."""
    stem = shard.relative_to(content).with_suffix("").as_posix().replace("/", "__")
    name = f"{stem}-{row:06d}{sniff_extension(data)}"
    return name if safe_name(name) else None


def read_referenced(layout: Layout, source: Source, container: Path, refs: list[dict]) -> dict:
    """The audio bytes of --no-extract references into one shard (`{"row": n}`, by ("row", n)) or
    to audio files of the repo (`{"file": root-relative path}`, by ("file", path)); a reference
    not found is absent."""
    found: dict = {}
    for ref in refs:
        path = layout.root / ref["file"] if isinstance(ref.get("file"), str) else None
        if path is not None and path.is_file():
            found[("file", ref["file"])] = path.read_bytes()
    rows = {ref["row"] for ref in refs if isinstance(ref.get("row"), int)}
    if rows:
        found.update((("row", row), data) for row, data in read_rows(container, rows, source.reader.audio))
    return found


def read_rows(path: Path, rows: set[int], audio_column: str = "audio"):
    """(row, audio bytes) for the wanted rows of one shard, in row order, a batch at a time."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path, buffer_size=STREAM_BUFFER, pre_buffer=False)
    md = pf.metadata
    wanted = sorted(r for r in rows if isinstance(r, int))
    at, start = 0, 0
    for index in range(md.num_row_groups):
        end = start + md.row_group(index).num_rows
        while at < len(wanted) and wanted[at] < start:
            at += 1  # negative or otherwise impossible rows
        if at < len(wanted) and wanted[at] < end:
            first = start
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[index], columns=[audio_column],
                                         use_threads=False):
                column = batch.column(0)
                last = first + batch.num_rows
                while at < len(wanted) and wanted[at] < last:
                    value = column[wanted[at] - first].as_py()
                    yield wanted[at], value.get("bytes") if isinstance(value, dict) else value
                    at += 1
                first = last
        start = end


# -- a declared corpus (persian-data.toml) ---------------------------------------------------------

BUCKET = SPEECH_BUCKET


def from_config(fields: Fields) -> dict:
    """The reader and policy of a declared `speech-parquet` corpus (columns by their source names)."""
    reader = ParquetReader(text=fields.text("text", required=True), audio=fields.text("audio", "audio"),
                           name=fields.text("name"), id=fields.text("id"), split=fields.text("split"),
                           files=fields.text("files"))
    if reader.files is not None and reader.split is None and "{split}" not in reader.files:
        raise fields.error("files", f"{reader.files!r} has no {{split}} (or name a `split` column)")
    policy = speech_policy(fields, manifest_key)
    named = {"text": reader.text, "audio": reader.audio, "name": reader.name, "id": reader.id, "split": reader.split,
             **policy_columns(fields)}
    return {"reader": reader, "speech": policy, "data_fields": tuple((f, c) for f, c in named.items() if c)}


def shard_paths(reader: ParquetReader, listing: list[str]) -> list[str]:
    """The repo paths (of `listing`) this reader would read as shards."""
    pattern = template_regex(reader.files) if reader.files else None
    out = []
    for path in listing:
        if not path.endswith(".parquet") or any(part.startswith(".") for part in path.split("/")):
            continue
        if pattern.match(path) if pattern else (reader.split is not None or SHARD_RE.match(path.rsplit("/", 1)[-1])):
            out.append(path)
    return sorted(out)


def check_remote(source: Source, listing: list[str], sample, fail) -> None:
    """The declaration against the repo: some shard is selected, and every column it names is in
    the first shard's schema (read from its footer: two ranged reads, nothing downloaded)."""
    reader: ParquetReader = source.reader
    shards_found = shard_paths(reader, listing)
    if not shards_found:
        field = "files" if reader.files else "patterns"
        fail(field, f"no parquet shard ({reader.files or '<split>-*.parquet'}) among the {len(listing)} file(s) "
                    "the patterns select")
    first = shards_found[0]
    try:
        names = parquet_columns(lambda n, tail: sample(first, n, tail))
    except SpeechPrepareError as exc:
        fail("files" if reader.files else "patterns", f"{first}: {exc}")
    if names is None:
        return  # the endpoint ignores ranges: the stage checks the columns when it reads the shard
    for field, column in source.data_fields:
        if column not in names:
            fail(field, f"column {column!r} is not in {first} (its columns: {', '.join(names)})")


def parquet_columns(read_tail) -> list[str] | None:
    """The column names of a parquet file from its footer; `read_tail(n, True)` gives its last n
    bytes (None when they cannot be read by range)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tail = read_tail(1 << 16, True)
    if tail is None:
        return None
    if len(tail) < 12 or tail[-4:] != b"PAR1":
        raise SpeechPrepareError("not a parquet file (no PAR1 at its end)")
    length = int.from_bytes(tail[-8:-4], "little")
    if length + 8 > len(tail):
        tail = read_tail(length + 8, True)
        if tail is None:
            return None
    footer = tail[-(length + 8):]
    try:  # the footer alone, behind a magic: enough for the schema (no column chunk is read)
        return pq.ParquetFile(pa.BufferReader(b"PAR1" + footer)).schema_arrow.names
    except (pa.ArrowException, OSError) as exc:
        raise SpeechPrepareError(f"its parquet footer is unreadable: {_line(exc)}") from None
