"""Shape `chat-jsonl`: one JSON object per line, read in bounded memory.

A row holds its conversation as a `messages` list (`[{"role": "user", "content": ...},
{"role": "assistant", "content": ...}]`, an optional system turn first) or as fields
(`{"question": ..., "answer": ...}`, by the keys `RowFields` names). Rows become the same neutral
records as `chat-json`'s: `(title, question, answers)`, or the reason a row makes no conversation
(`not_an_object`, `missing_field`, `not_single_turn` for anything but one user and one assistant
turn, `non_string_field`, `no_answers`). Every conversation gets the corpus's system turn: a row's
own system turn is replaced, and counted (`system_turn_replaced`).

Files are cut into pieces of about 4 MiB right after a newline, so a piece never ends inside a
row. A line that is not JSON, or bytes that are not UTF-8, make the whole file damaged (as a
`chat-json` file is): the stage skips it and names it, the line and the byte offset.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import orjson

from .chat_json import SAMPLE_BYTES, Record, RowFields, check_row, data_files, first_file_head, row_fields
from .chat_pieces import CHUNK_BYTES, _join, _Parsed, _Piece, _pieces, rows_of_pieces
from .config import Fields
from ..source import CHAT_BUCKET, ChatPolicy, Source

SHAPE = "chat-jsonl"
_NEWLINE = re.compile(rb"\n")


def _parse_lines(piece: _Piece) -> _Parsed:
    """The rows of one piece (whole lines, cut after a newline), or where the file is damaged."""
    data = piece.data
    end = len(data)
    bad_utf8 = None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        bad_utf8 = (e.start, e.reason)
        end = data.rfind(b"\n", 0, e.start) + 1  # the whole lines before the bad bytes
    if not piece.last and bad_utf8 is None and not data.endswith(b"\n"):
        return _Parsed([], "bad_cut")  # no newline in a very long stretch: the caller joins or gives up
    rows: list[Any] = []
    at = 0
    while at < end:
        stop = data.find(b"\n", at, end)
        stop = end if stop < 0 else stop
        line = data[at:stop]
        if at == 0 and piece.first:
            line = line.removeprefix(b"\xef\xbb\xbf")
        if line.strip():
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError as e:
                return _Parsed(rows, "damage", "invalid_json", piece.offset + at, f"line {len(rows) + 1}: {e}",
                               line[:160].decode("utf-8", "replace"))
        at = stop + 1
    if bad_utf8 is not None:
        offset, reason = bad_utf8
        return _Parsed(rows, "damage", "invalid_utf8", piece.offset + offset, reason,
                       data[max(0, offset - 80):offset + 80].decode("utf-8", "replace"))
    return _Parsed(rows, "ok")


def iter_lines(path: Path, on_bytes=None, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Any]:
    """Yield the rows of a JSONL file in bounded memory; `RawFileError` where it is damaged."""
    return rows_of_pieces(_pieces(path, chunk_bytes, on_bytes, _NEWLINE), _parse_lines)


def message_records(rows: list[Any], key: str) -> tuple[list[Record], Counter]:
    """Records from rows holding a `messages`-style list under `key`."""
    accepted: Counter = Counter()
    records: list[Record] = []
    for row in rows:
        if not isinstance(row, dict):
            records.append("not_an_object")
            continue
        messages = row.get(key)
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            records.append("missing_field")
            continue
        roles = [m.get("role") for m in messages]
        system = roles[:1] == ["system"]
        if roles[system:] != ["user", "assistant"]:
            records.append("not_single_turn")
            continue
        user, assistant = messages[system].get("content"), messages[system + 1].get("content")
        if not isinstance(user, str) or not isinstance(assistant, str):
            records.append("non_string_field")
            continue
        if system:
            accepted["system_turn_replaced"] += 1
        records.append(("", user, [assistant]))
    return records, accepted


@dataclass(frozen=True)
class ChatJsonlReader:
    """How a `chat-jsonl` corpus is read: a `messages` key, or the fields of a question and its answers."""

    messages: str | None = "messages"  # key of the message list; None: rows name their parts by `fields`
    fields: RowFields | None = None
    files: tuple[str, ...] = ("*.jsonl",)

    def data_files(self, content: Path) -> list[Path]:
        return data_files(content, self.files)

    def pieces(self, path: Path, chunk_bytes: int, on_bytes=None) -> Iterator[_Piece]:
        return _pieces(path, chunk_bytes, on_bytes, _NEWLINE)

    def parse(self, piece: _Piece) -> _Parsed:
        return _parse_lines(piece)

    def join(self, a: _Piece, b: _Piece) -> _Piece:
        return _join(a, b)

    def too_big(self, piece: _Piece, rows_before: int) -> tuple:
        return ("damage", 0, "invalid_json", piece.offset,
                f"no line end in {len(piece.data) >> 20} MiB from row {rows_before}: not JSON lines", "")

    def records(self, rows: list[Any]) -> tuple[list[Record], Counter]:
        if self.messages is not None:
            return message_records(rows, self.messages)
        return self.fields.records(rows)

    def iter_rows(self, path: Path, on_bytes=None, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Any]:
        return iter_lines(path, on_bytes, chunk_bytes)


# -- a declared corpus (persian-data.toml) ---------------------------------------------------------

BUCKET = CHAT_BUCKET


def from_config(fields: Fields) -> dict:
    """The reader and policy of a declared `chat-jsonl` corpus: `messages` rows (the default), or
    rows with `question`/`answers` keys (and an optional `title`)."""
    rows = row_fields(fields, required=False)
    messages = fields.text("messages")
    if rows is not None and messages is not None:
        raise fields.error("messages", "name either the messages key or question/answers keys, not both")
    if rows is not None and rows.positional:
        raise fields.error("question", "JSON lines are objects: name their keys, not positions")
    reader = ChatJsonlReader(messages=None if rows is not None else (messages or "messages"), fields=rows,
                             files=fields.texts("files", ("*.jsonl",)))
    named = {"messages": reader.messages} if rows is None else \
        {"question": rows.question, "answers": rows.answers, "title": rows.title}
    return {"reader": reader, "chat": ChatPolicy(system_prompt=fields.text("system_prompt")),
            "data_fields": tuple((f, v) for f, v in named.items() if v is not None)}


def check_remote(source: Source, listing: list[str], sample, fail) -> None:
    """The declaration against the repo: some file matches `files`, and its first line has the
    keys the declaration names."""
    reader: ChatJsonlReader = source.reader
    name, head = first_file_head(reader.files, listing, sample, fail)
    if head is None:
        return
    first = head.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)
    if len(first) < 2 and len(head) >= SAMPLE_BYTES:
        return  # a first line longer than the sample: the stage judges the rows
    try:
        row = orjson.loads(first[0])
    except orjson.JSONDecodeError as exc:
        fail("files", f"the first line of {name} is not JSON ({exc})")
    if reader.messages is not None:
        if not isinstance(row, dict) or reader.messages not in row:
            keys = ", ".join(map(str, row)) if isinstance(row, dict) else type(row).__name__
            fail("messages", f"key {reader.messages!r} is not in the first line of {name} ({keys}); "
                             "rows with question/answer fields: name them with question = ..., answers = ...")
        return
    check_row(reader.fields, row, name, fail)
