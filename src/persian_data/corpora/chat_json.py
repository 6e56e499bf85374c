"""Shape `chat-json`: files that are each ONE JSON array of rows, read in bounded memory.

A row is a list (`[title, question, answers, keywords]`, the specification's corpus: fields by
position) or an object (fields by key). The main process cuts a file into pieces of about 4 MiB
right after a row separator, each parsed where it is converted (`chat_pieces`: bounded memory,
damage reported with its byte offset).

`RowFields.records` turns parsed rows into the neutral records the chat stage converts:
`(title, question, answers)` with `answers` a non-empty list, or the reason a row cannot make a
conversation. In list rows two forms found in the wild are accepted and counted (`accepted`): an
answer given as one string instead of a list (`answer_not_list`), and a row without its optional
trailing fields, e.g. `[title, question, answers]` without keywords (`missing_keywords`). In object
rows an answer field may hold one string or a list.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Union

from .chat_pieces import (CHUNK_BYTES, _CUT, _CUT_OBJECTS, _DECODER, _WS, _join, _parse_piece, _Parsed, _Piece,
                          _pieces, _too_big, iter_raw_rows)
from .config import Fields
from ..source import CHAT_BUCKET, ChatPolicy, Source

SHAPE = "chat-json"
_NUM = re.compile(r"(\d+)")


def _natural(rel: str) -> list:
    """'dadrah_dataset1-1000_10000' < 'dadrah_dataset1-10000_100000' (numbers compare as numbers)."""
    return [int(t) if t.isdigit() else t for t in _NUM.split(rel)]


def data_files(content: Path, patterns: tuple[str, ...]) -> list[Path]:
    """The files under `content` matching `patterns` (fnmatch on the relative path, `*` crosses
    `/`), in natural name order; hidden folders (e.g. .cache/huggingface) skipped."""
    if not content.is_dir():
        return []
    files = []
    for p in content.rglob("*"):
        rel = p.relative_to(content)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if any(fnmatch.fnmatchcase(rel.as_posix(), pattern) for pattern in patterns):
            files.append(p)

    def key(p: Path) -> tuple:
        rel = p.relative_to(content).with_suffix("").as_posix()
        return (_natural(rel), p.as_posix())

    return sorted(files, key=key)


# -- rows -> records ------------------------------------------------------------------------------

Field = Union[int, str]  # a list row's position, or an object row's key
Record = Union[tuple, str]  # (title, question, answers) or why the row makes no conversation


@dataclass(frozen=True)
class RowFields:
    """Where a row's parts are: positions in a list row, keys in an object row (all of one kind)."""

    question: Field
    answers: Field  # a list of answers, or one answer as a string (accepted, counted)
    title: Field | None = None  # None: rows have no title
    optional: tuple[tuple[str, Field], ...] = ()  # parts a row may carry, unused (name, where)

    @property
    def positional(self) -> bool:
        return isinstance(self.question, int)

    def describe(self) -> str:
        """The row shape in words, for error messages: `[title, question, answers, keywords]`."""
        where = {self.question: "question", self.answers: "answers", **dict((w, n) for n, w in self.optional)}
        if self.title is not None:
            where[self.title] = "title"
        if self.positional:
            return "[" + ", ".join(where.get(i, "_") for i in range(max(where) + 1)) + "]"
        return "{" + ", ".join(f'"{k}": {v}' for k, v in where.items()) + "}"

    def records(self, rows: list[Any]) -> tuple[list[Record], Counter]:
        """One record per row, and the rows accepted in a tolerated form, by form."""
        accepted: Counter = Counter()
        records: list[Record] = []
        if self.positional:
            need = max(p for p in (self.title, self.question, self.answers) if p is not None) + 1
            most = max([need, *(p + 1 for _, p in self.optional)])
            for row in rows:
                if not isinstance(row, list):
                    records.append("not_a_list")
                    continue
                if not need <= len(row) <= most:
                    records.append("wrong_item_count")
                    continue
                record = self._record(row[self.title] if self.title is not None else "", row[self.question],
                                      row[self.answers], accepted, tolerated=True)
                if not isinstance(record, str):
                    for name, at in self.optional:
                        if at >= len(row):
                            accepted[f"missing_{name}"] += 1
                records.append(record)
            return records, accepted
        for row in rows:
            if not isinstance(row, dict):
                records.append("not_an_object")
            elif self.question not in row or self.answers not in row:
                records.append("missing_field")
            else:
                title = row.get(self.title) if self.title is not None else ""
                records.append(self._record("" if title is None else title, row[self.question], row[self.answers],
                                            accepted, tolerated=False))
        return records, accepted

    @staticmethod
    def _record(title: Any, question: Any, answers: Any, accepted: Counter, tolerated: bool) -> Record:
        """`tolerated`: a bare-string answer is a tolerated form, counted (list rows, whose answers
        are a list); in object rows one answer as a string is simply how the corpus writes it."""
        if not isinstance(title, str) or not isinstance(question, str):
            return "non_string_field"
        if isinstance(answers, str):
            if tolerated:
                accepted["answer_not_list"] += 1
            answers = [answers]
        if not isinstance(answers, list):
            return "answers_not_list"
        if not answers:
            return "no_answers"
        return (title, question, answers)


@dataclass(frozen=True)
class ChatJsonReader:
    """How a `chat-json` corpus is read: which files, and where a row's parts are."""

    fields: RowFields
    files: tuple[str, ...] = ("*.json",)

    def data_files(self, content: Path) -> list[Path]:
        return data_files(content, self.files)

    def pieces(self, path: Path, chunk_bytes: int, on_bytes=None) -> Iterator[_Piece]:
        return _pieces(path, chunk_bytes, on_bytes, self._cut())

    def parse(self, piece: _Piece) -> _Parsed:
        return _parse_piece(piece)

    def join(self, a: _Piece, b: _Piece) -> _Piece:
        return _join(a, b)

    def too_big(self, piece: _Piece, rows_before: int) -> tuple:
        return _too_big(piece, rows_before, self.fields.describe(), "]], [" if self.fields.positional else "}, {")

    def records(self, rows: list[Any]) -> tuple[list[Record], Counter]:
        return self.fields.records(rows)

    def iter_rows(self, path: Path, on_bytes=None, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Any]:
        return iter_raw_rows(path, on_bytes, chunk_bytes, self._cut())

    def _cut(self) -> re.Pattern:
        return _CUT if self.fields.positional else _CUT_OBJECTS


# -- a declared corpus (persian-data.toml) ---------------------------------------------------------

BUCKET = CHAT_BUCKET


def row_fields(fields: Fields, *, required: bool = True) -> RowFields | None:
    """`question`, `answers` and an optional `title`: keys of object rows, or positions of list rows."""
    question = fields.where_in_row("question", required=required)
    answers = fields.where_in_row("answers", required=required or question is not None)
    title = fields.where_in_row("title")
    if question is None:
        return None
    kinds = {type(v) for v in (question, answers, title) if v is not None}
    if len(kinds) > 1:
        raise fields.error("question", "question, answers and title must all be keys (strings) or all positions")
    if len({question, answers, title} - {None}) < len([v for v in (question, answers, title) if v is not None]):
        raise fields.error("answers", "question, answers and title must name different parts of a row")
    return RowFields(question=question, answers=answers, title=title)


def from_config(fields: Fields) -> dict:
    """The reader and policy of a declared `chat-json` corpus."""
    rows = row_fields(fields)
    reader = ChatJsonReader(rows, files=fields.texts("files", ("*.json",)))
    named = {"question": rows.question, "answers": rows.answers, "title": rows.title}
    return {"reader": reader, "chat": ChatPolicy(system_prompt=fields.text("system_prompt")),
            "data_fields": tuple((f, v) for f, v in named.items() if v is not None)}


def matching(patterns: tuple[str, ...], listing: list[str]) -> list[str]:
    """The repo paths (of `listing`) a chat reader would read, in natural order."""
    found = [p for p in listing if not any(part.startswith(".") for part in p.split("/"))
             and any(fnmatch.fnmatchcase(p, pattern) for pattern in patterns)]
    return sorted(found, key=lambda p: (_natural(p.rsplit(".", 1)[0]), p))


SAMPLE_BYTES = 1 << 20  # what a declaration check reads of a chat file's start


def first_file_head(patterns: tuple[str, ...], listing: list[str], sample, fail) -> tuple[str, bytes | None]:
    """The first repo file a chat reader would read (none: `fail` on `files`) and its first
    SAMPLE_BYTES (None when `sample` cannot get them)."""
    files = matching(patterns, listing)
    if not files:
        fail("files", f"{list(patterns)} match none of the {len(listing)} file(s) the patterns select")
    return files[0], sample(files[0], SAMPLE_BYTES, False)


def check_remote(source: Source, listing: list[str], sample, fail) -> None:
    """The declaration against the repo: some file matches `files`, and the first row of the first
    one has the keys (or the length) the declaration names."""
    reader: ChatJsonReader = source.reader
    name, head = first_file_head(reader.files, listing, sample, fail)
    if head is None:
        return
    text = head.decode("utf-8", "ignore").lstrip("\ufeff \t\r\n")
    if not text.startswith("["):
        fail("files", f"{name} is not a JSON array of rows")
    try:
        row, _ = _DECODER.raw_decode(text, _WS.match(text, 1).end())
    except json.JSONDecodeError:
        return  # a first row longer than the sample (or an empty array): the stage judges the rows
    check_row(reader.fields, row, name, fail)


def check_row(rows: RowFields, row: Any, where: str, fail) -> None:
    """One sample row against where the declaration says its parts are."""
    named = [(f, v) for f, v in (("question", rows.question), ("answers", rows.answers)) if v is not None]
    if rows.positional:
        if not isinstance(row, list):
            fail("question", f"the first row of {where} is not a list, so positions cannot name its parts")
        for field, at in named:
            if at >= len(row):
                fail(field, f"position {at}: the first row of {where} has {len(row)} item(s)")
        return
    if not isinstance(row, dict):
        fail("question", f"the first row of {where} is not an object, so keys cannot name its parts")
    for field, key in named:
        if key not in row:
            fail(field, f"key {key!r} is not in the first row of {where} (its keys: {', '.join(map(str, row))})")
