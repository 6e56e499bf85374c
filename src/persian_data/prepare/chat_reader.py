"""The raw conversational corpus, read in bounded memory.

Each raw file is ONE JSON array of rows ``[title, question, answers, keywords]``. The main process
cuts a file into pieces of about 4 MiB right after a row separator (``]], [`` as ``json.dump``
writes it); a piece is parsed row by row with the json C scanner. Bytes that only look like a
separator make a piece end inside a row ("bad_cut"): the caller parses it again joined with the
next piece. Invalid UTF-8, invalid JSON and a truncated array are `RawFileError`s with the byte
offset.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..catalog import BY_KEY
from ..layout import Layout

CHUNK_BYTES = 4 << 20  # a piece: the unit of work (parse + convert) given to a worker

class RawFileError(Exception):
    """A raw file is not a valid UTF-8 JSON array. `reason`: invalid_utf8, invalid_json, truncated."""

    def __init__(self, reason: str, byte_offset: int, rows_before: int, detail: str, context: str = ""):
        super().__init__(f"{reason} at byte {byte_offset}: {detail}")
        self.reason = reason
        self.byte_offset = byte_offset
        self.rows_before = rows_before
        self.detail = detail
        self.context = context


_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder(strict=False)  # raw control characters inside strings are tolerated
# Where one row ends and the next begins, as json.dump writes it: the row's last list closes
# ("]]"), a comma, the next row opens ("["). The same bytes can occur elsewhere (inside a string,
# or in a malformed row); a cut there is detected and undone (see `_parse_piece`).
_CUT = re.compile(rb"\]\][ \t\r\n]*,[ \t\r\n]*(?=\[)")
_CUT_WINDOW = 256 << 10
# A piece that still ends inside a row at this size means rows this big, or no row separators
# at all (not an array of [title, question, answers, keywords]): the file is reported damaged
# rather than parsed whole in memory.
MAX_PIECE_BYTES = 64 << 20


@dataclass
class _Piece:
    """A byte range of a raw file, cut (we hope) between two rows."""

    offset: int  # byte offset of data[0] in the file
    data: bytes
    first: bool  # starts at the file start (expects "[")
    last: bool  # ends at the file end (expects "]")


def _pieces(path: Path, chunk_bytes: int, on_bytes=None) -> Iterator[_Piece]:
    """Cut the file into pieces of about `chunk_bytes`, each cut right after a row separator."""
    with open(path, "rb") as fh:
        buf = b""
        offset = 0
        first = True
        while True:
            chunk = fh.read(chunk_bytes)
            if on_bytes is not None and chunk:
                on_bytes(len(chunk))
            if not chunk:
                yield _Piece(offset, buf, first, True)
                return
            buf += chunk
            if len(buf) < chunk_bytes:
                continue
            cut = -1
            lo = max(0, len(buf) - _CUT_WINDOW)
            for m in _CUT.finditer(buf, lo):
                cut = m.end()
            if cut < 0 and lo:
                for m in _CUT.finditer(buf):
                    cut = m.end()
            if cut < 0:
                if len(buf) < MAX_PIECE_BYTES:
                    continue  # one very long row: read on
                cut = len(buf)
            yield _Piece(offset, buf[:cut], first, False)
            offset += cut
            buf = buf[cut:]
            first = False


@dataclass
class _Parsed:
    rows: list[Any]
    status: str  # "ok", "bad_cut" (the piece does not end between rows), or "damage"
    reason: str = ""  # damage: invalid_utf8, invalid_json or truncated
    byte_offset: int = 0
    detail: str = ""
    context: str = ""


def _parse_piece(piece: _Piece) -> _Parsed:
    """Decode and parse the rows of one piece, exactly (json's C scanner, one row at a time).

    A piece starts at the file start or at a row; it is "ok" when it ends between rows (right
    after a separator) or, for the last piece, after the closing "]". When it ends inside a row
    (a cut at bytes that only looked like a separator) it is "bad_cut", and the caller parses it
    again joined with the next piece; at the file end the same thing is a truncated file.
    """
    data = piece.data
    bad_utf8: tuple[int, str] | None = None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        text = data[: e.start].decode("utf-8")
        if not (piece.last and e.end == len(data) and "unexpected end" in e.reason):
            bad_utf8 = (piece.offset + e.start, e.reason)
        # else: the file ends inside a character: it is cut, reported as truncated below

    rows: list[Any] = []
    raw_decode = _DECODER.raw_decode
    ws = _WS.match
    n = len(text)
    pos = 0
    state = "start" if piece.first else "value"

    def result(status: str, reason: str = "", at: int = 0, detail: str = "") -> _Parsed:
        if status == "damage" and reason == "truncated" and bad_utf8 is not None:
            return _Parsed(rows, "damage", "invalid_utf8", bad_utf8[0], bad_utf8[1],
                           text[-80:])
        off = piece.offset + len(text[:at].encode("utf-8", "surrogatepass"))
        return _Parsed(rows, status, reason, off, detail, text[max(0, at - 80): at + 80])

    def ran_out(at: int, detail: str) -> _Parsed:
        if bad_utf8 is not None or piece.last:
            return result("damage", "truncated", at, detail)
        return result("bad_cut", at=at)

    while True:
        pos = ws(text, pos).end()
        if pos >= n:
            if state == "end" or (state == "value" and not piece.last and bad_utf8 is None):
                break  # the array ended, or the piece ends right after a separator
            if state == "start":
                if bad_utf8 is not None:
                    return result("damage", "truncated", pos, "")
                return result("damage", "invalid_json", pos, "empty file, expected a JSON array")
            return ran_out(pos, "the JSON array does not end")
        ch = text[pos]
        if state == "start":
            if ch == "\ufeff":
                pos += 1
                continue
            if ch != "[":
                return result("damage", "invalid_json", pos, f"expected '[' (a JSON array), found {ch!r}")
            pos += 1
            state = "first"
        elif state in ("first", "value"):
            if state == "first" and ch == "]":
                pos += 1
                state = "end"
                continue
            try:
                obj, end = raw_decode(text, pos)
            except json.JSONDecodeError as e:
                if e.pos >= n - 16 or e.msg.startswith("Unterminated string"):
                    return ran_out(e.pos, f"the text ends inside row {len(rows)} ({e.msg})")
                return result("damage", "invalid_json", e.pos, e.msg)
            if end >= n and not isinstance(obj, (list, dict, str)):
                return ran_out(end, "the text ends inside a number or literal")
            pos = end
            rows.append(obj)
            state = "sep"
        elif state == "sep":
            if ch == ",":
                pos += 1
                state = "value"
            elif ch == "]":
                pos += 1
                state = "end"
            else:
                return result("damage", "invalid_json", pos,
                              f"expected ',' or ']' after row {len(rows) - 1}, found {ch!r}")
        else:  # end: only whitespace may follow
            return result("damage", "invalid_json", pos, f"data after the end of the array: {ch!r}")
    if bad_utf8 is not None:
        return _Parsed(rows, "damage", "invalid_utf8", bad_utf8[0], bad_utf8[1], text[-80:])
    if state != "end" and piece.last:
        return ran_out(pos, "the JSON array does not end")
    return _Parsed(rows, "ok")


def _join(a: _Piece, b: _Piece) -> _Piece:
    return _Piece(a.offset, a.data + b.data, a.first, b.last)


def _too_big(piece: _Piece, rows_before: int) -> tuple:
    return ("damage", 0, "invalid_json", piece.offset,
            f"no row boundary (']], [') in {len(piece.data) >> 20} MiB from row {rows_before}: "
            "rows this large, or not an array of [title, question, answers, keywords] rows", "")


def iter_raw_rows(path: Path, on_bytes=None, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Any]:
    """Yield the elements of the JSON array in `path`, in bounded memory (one piece of about
    `chunk_bytes` at a time).

    Raises `RawFileError` on invalid UTF-8, invalid JSON, or an array that does not end (the
    elements before the damage have been yielded by then). `on_bytes(n)` is called as bytes
    are read. A UTF-8 BOM at the start is accepted.
    """
    rows_before = 0
    held: _Piece | None = None
    for piece in _pieces(path, chunk_bytes, on_bytes):
        if held is not None:
            piece = _join(held, piece)
            held = None
        if len(piece.data) > MAX_PIECE_BYTES and not piece.last:
            _, _, reason, off, detail, ctx = _too_big(piece, rows_before)
            raise RawFileError(reason, off, rows_before, detail, ctx)
        parsed = _parse_piece(piece)
        if parsed.status == "bad_cut":
            held = piece
            continue
        yield from parsed.rows
        if parsed.status == "damage":
            raise RawFileError(parsed.reason, parsed.byte_offset, rows_before + len(parsed.rows),
                               parsed.detail, parsed.context)
        rows_before += len(parsed.rows)



_NUM = re.compile(r"(\d+)")


def _natural(rel: str) -> list:
    """'dadrah_dataset1-1000_10000' < 'dadrah_dataset1-10000_100000' (numbers compare as numbers)."""
    return [int(t) if t.isdigit() else t for t in _NUM.split(rel)]


def raw_files(layout: Layout) -> list[Path]:
    """The raw *.json files of the text source, in natural name order (hidden folders skipped)."""
    root = layout.content_dir(BY_KEY["text"])
    if not root.is_dir():
        return []
    files = [p for p in root.rglob("*.json")
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    def key(p: Path) -> tuple:
        rel = p.relative_to(root).with_suffix("").as_posix()
        return (_natural(rel), p.as_posix())

    return sorted(files, key=key)

