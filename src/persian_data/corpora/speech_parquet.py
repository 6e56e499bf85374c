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

This module finds the shards and plans the units; `speech_parquet_rows` runs a unit and reads the
audio --no-extract references point to. pyarrow is imported where used: the catalog imports this
module for `ParquetReader`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .speech_clips import SpeechPrepareError, SplitPlan, clip_id, manifest_key, split_sort_key
from .speech_parquet_rows import BATCH_ROWS, clip_name, id_text, is_path_column, one_line, read_referenced, \
    resolve_audio_file, run_unit
from .config import Fields, policy_columns, speech_policy
from ..source import SPEECH_BUCKET, Source, files_by_split, template_regex

if TYPE_CHECKING:
    import pyarrow.parquet as pq

    from ..layout import Layout

SHAPE = "speech-parquet"
# <split>[-00000-of-00002][-<hash>].parquet: the names `datasets` and huggingface_hub give shards
SHARD_RE = re.compile(r"^(?P<split>[A-Za-z0-9_.]+?)(?:-\d+-of-\d+)?(?:-[0-9a-f]{8,})?\.parquet$")
ROWS_PER_UNIT = 1000


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
        return (__name__, run_unit.__module__, "soundfile", "pyarrow", "pyarrow.parquet", "pyarrow.compute")

    def columns(self) -> tuple[str, ...]:
        """The source columns this reader needs to find in the data."""
        return tuple(c for c in (self.text, self.audio, self.name, self.id, self.split) if c)


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


def _open(path: Path) -> pq.ParquetFile:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise SpeechPrepareError(f"{path}: not a readable parquet file: {one_line(exc)}; fetch it again") from None


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
    if is_path_column(pf, reader.audio) or (reader.id is None and not all(names)):  # the audio column only if needed
        audio_paths = _audio_paths(pf, reader)
    if reader.id is not None:  # rows without an id are rejected
        return [id_text(cid) for cid in ids], audio_paths
    out = []
    for name, audio_path in zip(names, audio_paths):
        found = clip_name(name, audio_path)
        out.append(clip_id(found) if found else None)  # None: rejected, or named by its shard and row (unique)
    return out, audio_paths


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
                raise SpeechPrepareError(f"{rel}: cannot read its names: {one_line(exc)}; fetch it again") from None
            if is_path_column(pf, reader.audio):  # the audio files are inputs too: a changed one redoes the split
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
        raise SpeechPrepareError(f"its parquet footer is unreadable: {one_line(exc)}") from None
