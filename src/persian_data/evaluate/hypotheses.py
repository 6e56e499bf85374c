"""Hypotheses files: reading the three formats, and matching their ids against a split's manifest.

Formats (told apart by content, not by file name):

* JSONL, one ``{"id": ..., "text": ...}`` per line (ids as in our manifests);
* a NeMo manifest, one JSON object per line with ``pred_text`` (as NeMo's ``transcribe_speech.py``
  writes it; its ``text`` is the reference and is ignored). The id is ``id`` when present, else
  the file name of ``audio_filepath`` without its extension (our clip ids are exactly that);
* TSV, ``id<TAB>text`` per line, exactly two columns; a first line ``id<TAB>text`` is a header.

Id checks: an id given twice with the same text is reported and counted once; with different
texts it is an error (which one to score?). Ids the manifest does not have are an error unless
the caller allows them (they are then reported and left out). Manifest ids with no hypothesis
are *missing*: scored as an empty hypothesis (every reference word a deletion) and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import orjson

from .errors import EvalInputError
from .references import References

EXAMPLES = 5


@dataclass
class Hypotheses:
    path: Path
    format: str  # "jsonl", "nemo" or "tsv"
    texts: dict[str, str]
    duplicates: list[str] = field(default_factory=list)  # ids given again with the same text


@dataclass
class Matched:
    """Hypothesis texts in manifest order ("" where missing), and what did not match."""

    texts: list[str]
    present: list[bool]
    missing: list[str]
    unknown: list[str]
    duplicates: list[str]
    beyond_limit: int = 0  # hypotheses for manifest clips that --limit left out (not scored)

    def summary(self) -> dict:
        return {"beyond_limit": self.beyond_limit, "missing": len(self.missing), "missing_examples": self.missing[:EXAMPLES],
                "unknown": len(self.unknown), "unknown_examples": self.unknown[:EXAMPLES],
                "duplicates": len(self.duplicates), "duplicate_examples": self.duplicates[:EXAMPLES]}


def read_hypotheses(path: Path) -> Hypotheses:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EvalInputError(f"{path}: cannot read the hypotheses file ({exc.strerror or exc})") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    del data
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        raise EvalInputError(f"{path}: the hypotheses file is empty")
    if first.lstrip().startswith(b"{"):
        return _read_json_lines(path, lines)
    return _read_tsv(path, lines)


def _text(path: Path, line: bytes, lineno: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EvalInputError(f"{path}:{lineno}: not valid UTF-8 (byte {exc.start} of the line: {exc.reason}); save "
                             f"the hypotheses as UTF-8") from None


def _add(out: Hypotheses, seen_line: dict[str, int], cid: str, hyp: str, lineno: int) -> None:
    old = out.texts.get(cid)
    if old is None:
        out.texts[cid] = hyp
        seen_line[cid] = lineno
    elif old == hyp:
        out.duplicates.append(cid)
    else:
        raise EvalInputError(f"{out.path}:{lineno}: id {cid!r} is given twice with different texts (first on line "
                             f"{seen_line[cid]}); keep one hypothesis per id")


def _read_json_lines(path: Path, lines: list[bytes]) -> Hypotheses:
    out = Hypotheses(path, "", {})
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)  # orjson checks UTF-8 itself: no decoded copy of the whole file
        except orjson.JSONDecodeError as exc:
            _text(path, line, lineno)  # invalid UTF-8 gets its own message
            raise EvalInputError(f"{path}:{lineno}: not a JSON object ({exc}); expected one "
                                 '{"id": ..., "text": ...} per line') from None
        if not isinstance(row, dict):
            raise EvalInputError(f"{path}:{lineno}: not a JSON object; expected one "
                                 '{"id": ..., "text": ...} per line')
        fmt = "nemo" if "pred_text" in row else "jsonl"
        if not out.format:
            out.format = fmt
        elif fmt != out.format:
            raise EvalInputError(f"{path}:{lineno}: mixes NeMo lines (pred_text) with plain ones (text)")
        key = "pred_text" if fmt == "nemo" else "text"
        if key not in row:
            raise EvalInputError(f"{path}:{lineno}: no {key!r} key (found: {', '.join(map(str, row)) or 'none'}); "
                                 'expected {"id": ..., "text": ...} or a NeMo line with pred_text')
        cid = row.get("id")
        if cid is None and fmt == "nemo" and isinstance(row.get("audio_filepath"), str):
            cid = PurePosixPath(row["audio_filepath"].replace("\\", "/")).stem
        if cid is None:
            raise EvalInputError(f"{path}:{lineno}: no 'id' key (found: {', '.join(map(str, row)) or 'none'})")
        if isinstance(cid, int) and not isinstance(cid, bool):
            cid = str(cid)
        hyp = row[key]
        if not isinstance(cid, str) or not isinstance(hyp, str):
            raise EvalInputError(f"{path}:{lineno}: 'id' and {key!r} must be strings")
        _add(out, seen, cid, hyp, lineno)
    return out


def _read_tsv(path: Path, lines: list[bytes]) -> Hypotheses:
    out = Hypotheses(path, "tsv", {})
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(lines, 1):
        line = _text(path, raw, lineno).rstrip("\r")
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 2:
            raise EvalInputError(f"{path}:{lineno}: expected 2 tab-separated columns (id, text), found {len(cols)}")
        cid, hyp = cols
        if lineno == 1 and cid.strip().lower() == "id" and hyp.strip().lower() in ("text", "hypothesis", "pred_text"):
            continue  # a header line (its second column's usual names)
        if not cid.strip():
            raise EvalInputError(f"{path}:{lineno}: empty id")
        _add(out, seen, cid.strip(), hyp, lineno)
    return out


def match(hyps: Hypotheses, refs: References, *, allow_unknown: bool = False) -> Matched:
    known = refs.index
    beyond = [cid for cid in hyps.texts if cid in refs.outside]  # in the manifest, past --limit
    unknown = [cid for cid in hyps.texts if cid not in known and cid not in refs.outside]
    if not refs.ids:
        raise EvalInputError(f"{refs.manifest}: the {refs.corpus} {refs.split} manifest has no clips")
    if unknown and len(unknown) + len(beyond) == len(hyps.texts):
        raise EvalInputError(f"{hyps.path}: none of its {len(unknown)} id(s) is a {refs.corpus} {refs.split} clip "
                             f"(e.g. {unknown[0]!r}; the manifest's ids look like {refs.ids[0]!r}): wrong --corpus "
                             f"or --split?")
    if unknown and not allow_unknown:
        raise EvalInputError(f"{hyps.path}: {len(unknown)} id(s) are not in the {refs.corpus} {refs.split} manifest "
                             f"(e.g. {', '.join(map(repr, unknown[:3]))}); pass --allow-unknown-ids to score the rest")
    texts, present, missing = [], [], []
    for cid in refs.ids:
        hyp = hyps.texts.get(cid)
        if hyp is None:
            missing.append(cid)
            texts.append("")
            present.append(False)
        else:
            texts.append(hyp)
            present.append(True)
    return Matched(texts, present, missing, unknown, list(hyps.duplicates), len(beyond))
