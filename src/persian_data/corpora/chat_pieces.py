"""Reading a JSON array of rows in bounded memory: pieces of about 4 MiB, each cut right after a row
separator (``]], [`` or ``}, {`` as ``json.dump`` writes them), read where they are parsed.

A piece is parsed in one `orjson.loads` when it is plainly well formed, else row by row with json's
C scanner, which also finds what is wrong and where. Bytes that only look like a separator make a
piece end inside a row ("bad_cut"): the caller parses it again joined with the next piece. Invalid
UTF-8, invalid JSON and a truncated array are `RawFileError`s with the byte offset. Shared by the
`chat-json` shape (`chat_json`) and, for its pieces, `chat-jsonl`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

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
_CUT_OBJECTS = re.compile(rb"\}[ \t\r\n]*,[ \t\r\n]*(?=\{)")  # rows that are objects
_CUT_WINDOW = 256 << 10
# A piece that still ends inside a row at this size means rows this big, or no row separators
# at all (not an array of [title, question, answers, keywords]): the file is reported damaged
# rather than parsed whole in memory.
MAX_PIECE_BYTES = 64 << 20


class _Piece:
    """A byte range of a raw file, cut (we hope) between two rows.

    Made by `_pieces` it holds only where it is (`path`, `offset`, `size`): its bytes are read
    when first asked for (`data`), in the process that parses it, so the main process reads only
    around the cuts and sends each worker a few dozen bytes instead of 4 MiB (it can be given its
    bytes instead: `_Piece(offset, data, first, last)`)."""

    __slots__ = ("offset", "first", "last", "path", "size", "_data")

    def __init__(self, offset: int, data: bytes | None, first: bool, last: bool, *,
                 path: str | None = None, size: int | None = None) -> None:
        self.offset = offset  # byte offset of data[0] in the file
        self.first = first  # starts at the file start (expects "[")
        self.last = last  # ends at the file end (expects "]")
        self.path = path
        self._data = data
        self.size = len(data) if data is not None else size

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = _read_range(self.path, self.offset, self.size)
        return self._data

    def __getstate__(self):
        return (self.offset, self._data, self.first, self.last, self.path, self.size)

    def __setstate__(self, state) -> None:
        self.offset, self._data, self.first, self.last, self.path, self.size = state


def _read_range(path: str, offset: int, size: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(size)
    if len(data) < size:
        raise RawFileError("truncated", offset + len(data), 0, "the file became shorter while it was read")
    return data


def _pieces(path: Path, chunk_bytes: int, on_bytes=None, cut_at: re.Pattern = _CUT) -> Iterator[_Piece]:
    """Cut the file into pieces of about `chunk_bytes`, each cut right after a row separator
    (`cut_at`: where one row ends and the next begins): the last separator in the last
    `_CUT_WINDOW` bytes of each `chunk_bytes`-aligned stretch (or anywhere in it when there is
    none). Only those windows are read here; each piece reads its own bytes where it is parsed."""
    name = os.fspath(path)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        offset = 0  # where the next piece starts
        end = 0  # what has been "read" so far: the piece under way is [offset, end)
        first = True

        def window(lo: int, hi: int) -> bytes:
            fh.seek(lo)
            return fh.read(hi - lo)

        while True:
            step = min(chunk_bytes, size - end)
            if step <= 0:
                yield _Piece(offset, None, first, True, path=name, size=end - offset)
                return
            if on_bytes is not None:
                on_bytes(step)
            end += step
            held = end - offset
            if held < chunk_bytes:
                continue
            cut = -1
            lo = max(0, held - _CUT_WINDOW)
            for m in cut_at.finditer(window(offset + lo, end)):
                cut = lo + m.end()
            if cut < 0 and lo:
                for m in cut_at.finditer(window(offset, end)):
                    cut = m.end()
            if cut < 0:
                if held < MAX_PIECE_BYTES:
                    continue  # one very long row: read on
                cut = held
            yield _Piece(offset, None, first, False, path=name, size=cut)
            offset += cut
            first = False


@dataclass
class _Parsed:
    rows: list[Any]
    status: str  # "ok", "bad_cut" (the piece does not end between rows), or "damage"
    reason: str = ""  # damage: invalid_utf8, invalid_json or truncated
    byte_offset: int = 0
    detail: str = ""
    context: str = ""


_JSON_WS = b" \t\r\n"
_WS_BYTES = re.compile(rb"[ \t\r\n]*")


def _parse_whole(data: bytes, first: bool, last: bool) -> list[Any] | None:
    """The rows of a piece in one `orjson.loads` (~1.7x json's scanner on these files), when the
    piece is plainly well formed: its rows, each followed by a comma (or, in the last piece, by the
    array's "]"), made into one array. None otherwise, and `_parse_piece` reads it row by row,
    which also finds what is wrong and where.

    It gives what the row-by-row path gives: orjson takes strict JSON only (no lone surrogate, raw
    control character, NaN or infinity: those return None), whose values json reads alike except an
    integer past 64 bits (a float in orjson: a piece holding a float returns None); and a piece that ends inside a row leaves a bracket open (or a string unterminated), so
    the one "]" added cannot close the array and the load fails, as `bad_cut` wants."""
    at = _WS_BYTES.match(data).end()
    if first:
        if data[at:at + 1] != b"[":
            return None  # a BOM, or not an array: the exact path says which
        at = _WS_BYTES.match(data, at + 1).end()
    # `at`: the first byte of the rows (an empty first piece of an array ends with its "]")
    if last:
        if not first and data[at:at + 1] == b"]":
            return None  # "[..., ]": no row after the last comma
        whole = b"".join((b"[", memoryview(data)[at:]))
    else:
        end = len(data)
        while end and data[end - 1] in _JSON_WS:
            end -= 1
        end -= 1  # the comma after the piece's last row
        if end <= at or data[end] != 0x2C:
            return None
        whole = b"".join((b"[", memoryview(data)[at:end], b"]"))
    try:
        rows = orjson.loads(whole)
    except orjson.JSONDecodeError:
        return None
    return None if _holds_float(rows) else rows


def _holds_float(rows: list[Any]) -> bool:
    """Is there a float anywhere in `rows`? orjson reads an integer past 64 bits as a float where
    json reads an int: a piece holding any float (rows rarely do) is read again by the exact path.
    Walked a level at a time (rows, their fields, the items of list fields...), the types of each
    level gathered in C."""
    level = rows
    while level:
        kinds = set(map(type, level))
        if float in kinds:
            return True
        if dict in kinds:
            level = [x for x in level if type(x) is list or type(x) is dict]
            level = list(itertools.chain.from_iterable(x.values() if type(x) is dict else x for x in level))
        elif list in kinds:
            level = list(itertools.chain.from_iterable(x for x in level if type(x) is list))
        else:
            return False
    return False


def _parse_piece(piece: _Piece) -> _Parsed:
    """Decode and parse the rows of one piece, exactly (json's C scanner, one row at a time).

    A piece starts at the file start or at a row; it is "ok" when it ends between rows (right
    after a separator) or, for the last piece, after the closing "]". When it ends inside a row
    (a cut at bytes that only looked like a separator) it is "bad_cut", and the caller parses it
    again joined with the next piece; at the file end the same thing is a truncated file.
    """
    rows = _parse_whole(piece.data, piece.first, piece.last)
    return _parse_rows(piece) if rows is None else _Parsed(rows, "ok")


def _parse_rows(piece: _Piece) -> _Parsed:
    """`_parse_piece` row by row (json's C scanner): exact, and says what is wrong and where."""
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
    if a._data is None and b._data is None and a.path == b.path and a.offset + a.size == b.offset:
        return _Piece(a.offset, None, a.first, b.last, path=a.path, size=a.size + b.size)
    return _Piece(a.offset, a.data + b.data, a.first, b.last)


def _too_big(piece: _Piece, rows_before: int, rows: str = "[title, question, answers, keywords]",
             boundary: str = "]], [") -> tuple:
    return ("damage", 0, "invalid_json", piece.offset,
            f"no row boundary ('{boundary}') in {len(piece.data) >> 20} MiB from row {rows_before}: "
            f"rows this large, or not an array of {rows} rows", "")


def iter_raw_rows(path: Path, on_bytes=None, chunk_bytes: int = CHUNK_BYTES, cut_at: re.Pattern = _CUT) -> Iterator[Any]:
    """Yield the elements of the JSON array in `path`, in bounded memory (one piece of about
    `chunk_bytes` at a time).

    Raises `RawFileError` on invalid UTF-8, invalid JSON, or an array that does not end (the
    elements before the damage have been yielded by then). `on_bytes(n)` is called as bytes
    are read. A UTF-8 BOM at the start is accepted.
    """
    return rows_of_pieces(_pieces(path, chunk_bytes, on_bytes, cut_at), _parse_piece, _refuse_too_big)


def _refuse_too_big(piece: _Piece, rows_before: int) -> None:
    if len(piece.data) > MAX_PIECE_BYTES and not piece.last:
        _, _, reason, off, detail, ctx = _too_big(piece, rows_before)
        raise RawFileError(reason, off, rows_before, detail, ctx)


def rows_of_pieces(pieces: Iterator[_Piece], parse: Callable[[_Piece], _Parsed],
                   check: Callable[[_Piece, int], None] | None = None) -> Iterator[Any]:
    """The rows `parse` finds in `pieces`, in order. A piece cut inside a row ("bad_cut") is
    joined to the next; at the first damage, the rows before it are yielded, then `RawFileError`.
    `check(piece, rows_before)` may refuse a piece before it is parsed."""
    rows_before = 0
    held: _Piece | None = None
    for piece in pieces:
        if held is not None:
            piece, held = _join(held, piece), None
        if check is not None:
            check(piece, rows_before)
        parsed = parse(piece)
        if parsed.status == "bad_cut":
            held = piece
            continue
        yield from parsed.rows
        if parsed.status == "damage":
            raise RawFileError(parsed.reason, parsed.byte_offset, rows_before + len(parsed.rows),
                               parsed.detail, parsed.context)
        rows_before += len(parsed.rows)
