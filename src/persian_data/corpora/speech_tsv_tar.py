"""Shape `speech-tsv-tar`: one TSV of transcripts and one tar.gz of audio files per split (FLEURS).

Each split is a TSV (`tsv` template, e.g. `data/fa_ir/{split}.tsv`) and an archive (`audio`
template, e.g. `data/fa_ir/audio/{split}.tar.gz`) whose members are `member` (default
`{split}/{file}`). A TSV has a header line naming its columns, or none (`header = false`) and then
`columns` names them in order (None: a column not carried). One column holds the audio file name,
one the transcript; `num_samples`, when given, is checked against the clip's frames; `numeric`
columns are written as integers when they are all digits. A clip's id is the `id` column, else its
file name without the extension. Every named column is kept in the manifest line.

Tars are read as a stream, one member at a time; only regular files named exactly as `member`
says, whose file name is in the TSV, are written, byte for byte, into the split's audio folder.
Everything else is reported (rejects.jsonl, kind "member") and never written: absolute or `..`
paths, links, devices, other special files, unexpected paths, files with no TSV row, repeated
members. TSV rows with no audio file are rejected (kind "row").
"""

from __future__ import annotations

import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .speech_clips import (Collector, SpeechPrepareError, SplitPlan, UnitContext, UnitResult, clip_id,
                                    manifest_key, safe_name, split_sort_key, unsafe_member_path)
from .config import Fields, policy_columns, speech_policy
from ..source import SPEECH_BUCKET, Source, files_by_split, template_regex

if TYPE_CHECKING:
    from ..layout import Layout

SHAPE = "speech-tsv-tar"
MAX_MEMBER_BYTES = 256 << 20  # a clip is well under 2 MB; never read a giant member into memory


@dataclass(frozen=True)
class TsvTarReader:
    """How a `speech-tsv-tar` corpus is read."""

    tsv: str  # the TSV of a split, relative to the content folder, with {split}
    audio: str  # the tar.gz of a split, with {split}
    file: str  # column holding the audio file name
    text: str  # transcript column
    member: str = "{split}/{file}"  # a clip's member name in the tar
    header: bool = True  # the first line names the columns
    columns: tuple[str | None, ...] = ()  # without a header: each column's name, in order (None: not kept)
    id: str | None = None  # clip id column; None: the file name without its extension
    num_samples: str | None = None  # column with each clip's frame count, checked against the audio
    numeric: tuple[str, ...] = ()  # columns written as integers when they are all digits

    # -- the speech reader's protocol (see corpora.speech_clips) --------------------------------
    def plan(self, layout: Layout, source: Source) -> list[SplitPlan]:
        return plan(layout, source)

    def source_rows(self, layout: Layout, source: Source) -> dict[str, int]:
        return source_rows(layout, source)

    def read_referenced(self, layout: Layout, source: Source, container: Path, refs: list[dict]) -> dict:
        return read_referenced(layout, source, container, refs)

    def worker_imports(self) -> tuple[str, ...]:
        """Loaded once by the worker processes' server, so each worker starts in milliseconds."""
        return (__name__, "soundfile")

    def member_dir(self, split: str) -> list[str]:
        """The folder parts a member must have for `split` (`{split}/{file}` -> [split])."""
        return [part.replace("{split}", split) for part in self.member.split("/")[:-1]]


def splits(layout: Layout, source: Source) -> dict[str, tuple[Path, Path | None]]:
    """Source split name -> (tsv, tar.gz or None)."""
    reader: TsvTarReader = source.reader
    content = layout.content_dir(source)
    out = {}
    for split, tsvs in files_by_split(content, reader.tsv, Path(reader.tsv).suffix or ".tsv").items():
        tar = content / reader.audio.replace("{split}", split)
        out[split] = (tsvs[0], tar if tar.is_file() else None)
    return out


def read_tsv(path: Path, header: bool = False) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """(the header's column names or None, [(line number, fields)] of every other non-empty line)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpeechPrepareError(f"{path}: not UTF-8 ({exc})") from None
    names = None
    rows = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")  # a CRLF line ending; a \r before it is the last field's
        if not line.strip():
            continue
        if header and names is None:
            names = line.removeprefix("\ufeff").split("\t")
            continue
        rows.append((number, line.split("\t")))
    return names, rows


def column_names(reader: TsvTarReader, path: Path) -> list[str | None]:
    if not reader.header:
        return list(reader.columns)
    names, _ = read_tsv(path, header=True)
    return list(names or [])


def plan(layout: Layout, source: Source) -> list[SplitPlan]:
    reader: TsvTarReader = source.reader
    plans = []
    for source_split, (tsv, tar) in splits(layout, source).items():
        if tar is None:
            raise SpeechPrepareError(f"{source.key} {source_split}: {layout.relative(tsv)} has no "
                                     f"{reader.audio.replace('{split}', source_split)} beside it; fetch again")
        rows = len(read_tsv(tsv, reader.header)[1])
        args = (reader, str(tsv), layout.relative(tsv), str(tar), layout.relative(tar), source_split)
        plans.append(SplitPlan(source.speech.published(source_split), source_split, [tsv, tar], rows,
                               [(run_unit, args)]))
    return sorted(plans, key=lambda p: split_sort_key(p.split))


def source_rows(layout: Layout, source: Source) -> dict[str, int]:
    return {source.speech.published(name): len(read_tsv(tsv, source.reader.header)[1])
            for name, (tsv, _) in splits(layout, source).items()}


def _as_int(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def member_problem(member: tarfile.TarInfo, folder: list[str]) -> tuple[str, str] | None | bool:
    """(reason, detail) for a member that must not be written; None if fine; False to skip quietly.
    `folder`: the folder parts a clip's member name must have (FLEURS: [split])."""
    name = member.name
    if unsafe_member_path(name):
        return "unsafe_member", "absolute path, `..` or backslash"
    if member.issym() or member.islnk():
        return "link_member", f"link to {member.linkname!r}"
    if member.ischr() or member.isblk() or member.isfifo():
        return "device_member", "device or fifo"
    if member.isdir():
        return False
    if not member.isreg():
        return "special_member", f"tar type {member.type!r}"
    if member.size > MAX_MEMBER_BYTES:
        return "oversized_member", f"{member.size} bytes"
    parts = name.removeprefix("./").split("/")
    if parts[:-1] != folder or not safe_name(parts[-1]):
        return "unexpected_member", f"not {'/'.join([*folder, '<file>'])}"
    return None


def _index(columns: list[str | None], name: str | None) -> int | None:
    return columns.index(name) if name is not None and name in columns else None


def run_unit(args: tuple, ctx: UnitContext) -> UnitResult:
    reader, tsv, tsv_rel, tar, tar_rel, source_split = args
    header, table = read_tsv(Path(tsv), reader.header)
    columns: list[str | None] = list(header) if reader.header else list(reader.columns)
    at_file, at_text = _index(columns, reader.file), _index(columns, reader.text)
    at_id, at_samples = _index(columns, reader.id), _index(columns, reader.num_samples)
    if at_file is None or at_text is None:
        raise SpeechPrepareError(f"{tsv_rel}: no column {reader.file if at_file is None else reader.text!r}")
    out = Collector(ctx)
    rows: list[tuple[int, list[str]] | None] = []  # by TSV row index; None once rejected
    by_name: dict[str, int] = {}
    for index, (number, fields) in enumerate(table):
        name = fields[at_file] if len(fields) > at_file else ""
        cid = clip_id(name) if name else None
        if len(fields) != len(columns) or (at_samples is not None and not fields[at_samples].strip().isdigit()):
            detail = f"line {number}: {len(fields)} column(s)"
            if at_samples is not None:
                detail += f", {reader.num_samples} {fields[at_samples:at_samples + 1]}"
            out.reject("malformed_row", detail, source=tsv_rel, clip_id=cid, row=index)
            rows.append(None)
        elif not safe_name(name):
            out.reject("unsafe_path", f"line {number}: wav name {name!r}", source=tsv_rel, row=index)
            rows.append(None)
        elif name in by_name:
            out.reject("duplicate_wav", f"line {number}: {name} already on row {by_name[name]}", source=tsv_rel,
                       clip_id=cid, row=index)
            rows.append(None)
        else:
            by_name[name] = index
            rows.append((number, fields))
    lines: list[bytes | None] = [None] * len(rows)
    seen: set[str] = set()
    folder = reader.member_dir(source_split)
    for member, read in _stream(tar, tar_rel):
        problem = member_problem(member, folder)
        if problem is False:
            continue
        if problem is not None:
            out.reject(problem[0], problem[1], source=tar_rel, member=member.name)
            continue
        name = member.name.rsplit("/", 1)[-1]
        index = by_name.get(name)
        if name in seen:
            out.reject("duplicate_member", f"{name} appears again", source=tar_rel, member=member.name)
            continue
        seen.add(name)
        if index is None:
            out.reject("orphan_wav", "no TSV row names this wav", source=tar_rel, member=member.name)
            continue
        number, fields = rows[index]
        meta = _meta(reader, columns, fields)
        lines[index] = out.clip(
            clip_id=fields[at_id] if at_id is not None and fields[at_id] else clip_id(name), name=name, data=read(),
            text=fields[at_text], meta=meta, source=tar_rel, ref={"member": member.name}, row=index,
            speaker=meta.get(ctx.speaker) if ctx.speaker else None, gender=meta.get(ctx.gender) if ctx.gender else None,
            expect_frames=int(fields[at_samples]) if at_samples is not None else None)
        rows[index] = None  # handled (clip or reject)
    for index, entry in enumerate(rows):
        if entry is not None:
            number, fields = entry
            out.reject("missing_wav", f"line {number}: {fields[at_file]} is not in {tar_rel}", source=tsv_rel,
                       clip_id=clip_id(fields[at_file]), row=index)
    out.result.lines = b"".join(line for line in lines if line is not None)
    return out.result


def _meta(reader: TsvTarReader, columns: list[str | None], fields: list[str]) -> dict:
    meta: dict = {}
    for column, value in zip(columns, fields):
        if column is None:
            continue
        if column == reader.num_samples:
            meta[manifest_key(column)] = int(value)
        elif column in reader.numeric:
            meta[manifest_key(column)] = _as_int(value)
        else:
            meta[manifest_key(column)] = value
    return meta


_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)


def _stream(tar: str | Path, tar_rel: str):
    """(member, read) for each member in archive order, one pass, nothing extracted to disk.

    `read()` returns the member's bytes. Read and decompression failures name the archive; errors
    of our own writes (a full disk) happen outside and keep their own message.
    """
    try:
        archive = tarfile.open(tar, "r|gz")
    except _TAR_ERRORS as exc:
        raise SpeechPrepareError(f"{tar_rel}: not a readable tar.gz: {exc}; fetch it again") from None

    def reader(member: tarfile.TarInfo):
        def read() -> bytes:
            try:
                handle = archive.extractfile(member)
                return handle.read() if handle is not None else b""
            except _TAR_ERRORS as exc:
                raise SpeechPrepareError(f"{tar_rel}: damaged at {member.name}: {exc}; fetch it again") from None
        return read

    with archive:
        members = iter(archive)
        while True:
            try:
                member = next(members)
            except StopIteration:
                return
            except _TAR_ERRORS as exc:
                raise SpeechPrepareError(f"{tar_rel}: damaged tar.gz: {exc}; fetch it again") from None
            yield member, reader(member)


def read_members(path: Path, members: set[str]):
    """(member name, bytes) for the wanted regular members of one tar.gz, in one streaming pass.

    A repeated member name yields only its first occurrence, the one `prepare` keeps.
    """
    wanted = set(members)
    for member, read in _stream(path, str(path)):
        if member.isreg() and member.name in wanted:
            wanted.discard(member.name)
            yield member.name, read()
        if not wanted:
            return


def read_referenced(layout: Layout, source: Source, container: Path, refs: list[dict]) -> dict:
    """The audio bytes of --no-extract references (`{"member": name}`) into one tar.gz, by
    ("member", name); a member not found is absent."""
    wanted = {ref.get("member") for ref in refs if isinstance(ref.get("member"), str)}
    return {("member", name): data for name, data in read_members(container, wanted)}


# -- a declared corpus (persian-data.toml) ---------------------------------------------------------

BUCKET = SPEECH_BUCKET


def from_config(fields: Fields) -> dict:
    """The reader and policy of a declared `speech-tsv-tar` corpus."""
    reader = TsvTarReader(tsv=fields.text("tsv", required=True), audio=fields.text("audio", required=True),
                          file=fields.text("file", required=True), text=fields.text("text", required=True),
                          member=fields.text("member", "{split}/{file}"), header=fields.flag("header", True),
                          columns=fields.names("columns"), id=fields.text("id"),
                          num_samples=fields.text("num_samples"), numeric=fields.texts("numeric", ()))
    for field, template in (("tsv", reader.tsv), ("audio", reader.audio)):
        if "{split}" not in template:
            raise fields.error(field, f"{template!r} has no {{split}}")
    if not reader.member.endswith("{file}"):
        raise fields.error("member", f"{reader.member!r} must end with {{file}}")
    if reader.header and reader.columns:
        raise fields.error("columns", "the TSV has a header (header = true): its columns are named there")
    if not reader.header and not reader.columns:
        raise fields.error("columns", "without a header (header = false), name the columns in order")
    policy = speech_policy(fields, manifest_key)
    named = {"file": reader.file, "text": reader.text, "id": reader.id, "num_samples": reader.num_samples,
             **policy_columns(fields)}
    named = {f: c for f, c in named.items() if c}
    if not reader.header:
        for field, column in named.items():
            if column not in reader.columns:
                raise fields.error(field, f"column {column!r} is not one of `columns` "
                                          f"({', '.join(filter(None, reader.columns))})")
    return {"reader": reader, "speech": policy, "data_fields": tuple(named.items())}


def check_remote(source: Source, listing: list[str], sample, fail) -> None:
    """The declaration against the repo: some TSV matches, each has its archive, and the first
    TSV's header (or column count) fits the columns the declaration names."""
    reader: TsvTarReader = source.reader
    pattern = template_regex(reader.tsv)
    tsvs = sorted(p for p in listing if pattern.match(p))
    if not tsvs:
        fail("tsv", f"{reader.tsv!r} matches none of the {len(listing)} file(s) the patterns select")
    present = set(listing)
    for tsv in tsvs:
        split = pattern.match(tsv)["split"]
        archive = reader.audio.replace("{split}", split)
        if archive not in present:
            fail("audio", f"{archive} (the audio of {tsv}) is not among the files the patterns select")
    head = sample(tsvs[0], 1 << 16, False)
    if head is None:
        return
    line = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace").removeprefix("\ufeff")
    cells = line.split("\t")
    if reader.header:
        for field, column in source.data_fields:
            if column not in cells:
                fail(field, f"column {column!r} is not in the header of {tsvs[0]} ({', '.join(cells)})")
    elif len(cells) != len(reader.columns):
        fail("columns", f"{len(reader.columns)} column(s) named, the first line of {tsvs[0]} has {len(cells)}")
