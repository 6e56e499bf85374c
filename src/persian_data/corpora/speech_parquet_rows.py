"""Rows of a `speech-parquet` shard (see `speech_parquet`): one unit of work, a run of row groups
read a batch at a time into manifest lines, clips and rejects (in a worker process), and the audio
bytes that --no-extract references point back to.

pyarrow is imported where used.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from .speech_clips import Collector, SpeechPrepareError, UnitContext, UnitResult, clip_id, manifest_key, \
    safe_name, sniff_extension

if TYPE_CHECKING:
    import pyarrow.parquet as pq

    from ..layout import Layout
    from ..source import Source

BATCH_ROWS = 128
STREAM_BUFFER = 1 << 20  # read column chunks page by page: a huge row group never sits whole in memory


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def clip_name(path: str | None, audio_path: str | None) -> str | None:
    for value in (path, audio_path):
        if value:
            name = value.replace("\\", "/").rsplit("/", 1)[-1]
            return name if safe_name(name) else None
    return None


def is_path_column(pf: pq.ParquetFile, audio: str) -> bool:
    """Whether the audio column holds paths to audio files of the repo (strings)."""
    import pyarrow as pa

    typ = pf.schema_arrow.field(audio).type
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
                                     f"{one_line(exc)}; the shard is damaged, fetch it again") from None
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
    """One unit: (the corpus's ParquetReader, shard path, its root-relative path, row groups, first row,
    rows already taken by an earlier id, rows of the split or None) -> lines, clips, rejects."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..normalize import normalize_many

    reader, path, rel, row_groups, first_row, duplicates, keep = args
    shard = Path(path)
    content = Path(ctx.root) / ctx.content
    pf = pq.ParquetFile(path, buffer_size=STREAM_BUFFER, pre_buffer=False)
    names = pf.schema_arrow.names
    path_audio = is_path_column(pf, reader.audio)
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
                cid = id_text(ids[i])
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


def id_text(value) -> str | None:
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
