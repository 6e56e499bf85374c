"""FLEURS fa_ir (google/fleurs, data/fa_ir/): headerless TSVs and tar.gz archives of 16 kHz WAVs.

TSV columns (no header, tab separated): id, wav file name, raw transcription, transcription,
character-level transcription, num_samples, gender. `id` repeats once per speaker; the wav name
is unique, so the clip id is the wav name without `.wav` and the TSV `id` is kept as `fleurs_id`.
`text` is the raw transcription; both transcriptions are kept as `raw_transcription` and
`transcription` (the HF loader's names). The character-level column is not carried.

Tars are read as a stream, one member at a time; only regular files named exactly
`<split>/<file>` whose file name is in the TSV are written, byte for byte, into the split's audio
folder. Everything else is reported (rejects.jsonl, kind "member") and never written: absolute
or `..` paths, links, devices, other special files, unexpected paths, wavs with no TSV row,
repeated members. TSV rows with no wav are rejected (kind "row"). The `dev` split is published as
`validation`.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path

from ..catalog import Source
from ..layout import Layout
from .speech_clips import (Collector, SpeechPrepareError, SplitPlan, UnitContext, UnitResult, published_split,
                           safe_name, split_sort_key, unsafe_member_path)

LANG = "fa_ir"
COLUMNS = 7
MAX_MEMBER_BYTES = 256 << 20  # a FLEURS clip is well under 2 MB; never read a giant member into memory


def language_dir(layout: Layout, source: Source) -> Path | None:
    content = layout.content_dir(source)
    direct = content / "data" / LANG
    if direct.is_dir():
        return direct
    for path in sorted(content.rglob(LANG)):
        if path.is_dir() and not any(p.startswith(".") for p in path.relative_to(content).parts):
            return path
    return None


def splits(layout: Layout, source: Source) -> dict[str, tuple[Path, Path | None]]:
    """Source split name -> (tsv, tar.gz or None)."""
    base = language_dir(layout, source)
    if base is None:
        return {}
    out = {}
    for tsv in sorted(base.glob("*.tsv")):
        tar = base / "audio" / f"{tsv.stem}.tar.gz"
        out[tsv.stem] = (tsv, tar if tar.is_file() else None)
    return out


def read_tsv(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every non-empty line."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpeechPrepareError(f"{path}: not UTF-8 ({exc})") from None
    rows = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if line.strip():
            rows.append((number, line.split("\t")))
    return rows


def plan(layout: Layout, source: Source) -> list[SplitPlan]:
    plans = []
    for source_split, (tsv, tar) in splits(layout, source).items():
        if tar is None:
            raise SpeechPrepareError(f"FLEURS {source_split}: {layout.relative(tsv)} has no audio/{source_split}.tar.gz "
                                     f"beside it; fetch again")
        rows = len(read_tsv(tsv))
        args = (str(tsv), layout.relative(tsv), str(tar), layout.relative(tar), source_split)
        plans.append(SplitPlan(published_split(source_split), source_split, [tsv, tar], rows, [(run_unit, args)]))
    return sorted(plans, key=lambda p: split_sort_key(p.split))


def source_rows(layout: Layout, source: Source) -> dict[str, int]:
    return {published_split(name): len(read_tsv(tsv)) for name, (tsv, _) in splits(layout, source).items()}


def _as_int(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def member_problem(member: tarfile.TarInfo, source_split: str) -> tuple[str, str] | None | bool:
    """(reason, detail) for a member that must not be written; None if fine; False to skip quietly."""
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
    if len(parts) != 2 or parts[0] != source_split or not safe_name(parts[1]):
        return "unexpected_member", f"not {source_split}/<file>"
    return None


def run_unit(args: tuple, ctx: UnitContext) -> UnitResult:
    tsv, tsv_rel, tar, tar_rel, source_split = args
    out = Collector(ctx)
    rows: list[tuple[int, list[str]] | None] = []  # by TSV row index; None once rejected
    by_name: dict[str, int] = {}
    for index, (number, fields) in enumerate(read_tsv(Path(tsv))):
        name = fields[1] if len(fields) > 1 else ""
        cid = name[:-4] if name.endswith(".wav") else name or None
        if len(fields) != COLUMNS or not fields[5].strip().isdigit():
            out.reject("malformed_row", f"line {number}: {len(fields)} column(s), num_samples {fields[5:6]}",
                       source=tsv_rel, clip_id=cid, row=index)
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
    for member, read in _stream(tar, tar_rel):
        problem = member_problem(member, source_split)
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
        meta = {"fleurs_id": _as_int(fields[0]), "path": fields[1], "raw_transcription": fields[2],
                "transcription": fields[3], "num_samples": int(fields[5]), "gender": fields[6]}
        lines[index] = out.clip(clip_id=name[:-4] if name.endswith(".wav") else name, name=name, data=read(),
                                text=fields[2], meta=meta, source=tar_rel, ref={"member": member.name},
                                row=index, speaker=None, gender=fields[6], expect_frames=int(fields[5]))
        rows[index] = None  # handled (clip or reject)
    for index, entry in enumerate(rows):
        if entry is not None:
            number, fields = entry
            out.reject("missing_wav", f"line {number}: {fields[1]} is not in {tar_rel}", source=tsv_rel,
                       clip_id=fields[1][:-4] if fields[1].endswith(".wav") else fields[1], row=index)
    out.result.lines = b"".join(line for line in lines if line is not None)
    return out.result


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
