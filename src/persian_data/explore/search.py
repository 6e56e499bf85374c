"""Persian-aware full-text search: one form of the text in the index, the same form of the query.

Both sides go through the project's normalizer (`persian_data.normalize`), the one the manifests'
`text_normalized` and `combined.jsonl` were made with: Arabic ي/ك become ی/ک, Latin and
Arabic-Indic digits become Persian, diacritics and tatweel go, `می خواهم` becomes `می‌خواهم`.

ZWNJ: SQLite's unicode61 tokenizer splits at it (it is not a letter), so `می‌خواهم` is indexed as
`می` + `خواهم`, which a search for `خواهم` or `می‌خواهم` finds. A word written glued
(`میخواهم`) is a third spelling: every word that holds a ZWNJ is also indexed glued, and a
query word with a ZWNJ matches either form. So the three spellings find each other.

Query syntax: words (all must occur, in any order), "a quoted phrase" (in that order), and
nothing else: every other character is data, never FTS5 syntax (no injection, no syntax error).
"""

from __future__ import annotations

import re

from ..normalize import ZWNJ, normalize, normalize_many

_WORD = re.compile(r"[^\W_]+")  # what unicode61 keeps as a token: letters and digits
_PHRASE = re.compile(r'"([^"]*)"')
MAX_TERMS = 12


def index_form(text: str) -> str:
    """The text as it goes into the FTS index (already normalized): ZWNJ words also glued."""
    if ZWNJ not in text:
        return text
    glued = [word.replace(ZWNJ, "") for word in text.split() if ZWNJ in word]
    return text + "\n" + " ".join(glued)


def index_forms(texts: list[str]) -> list[str]:
    """index_form of normalize(text), for a batch (normalize_many runs the table once)."""
    return [index_form(t) for t in normalize_many(texts)]


def _fts_word(tokens: list[str], joined: str | None) -> str:
    phrase = '"' + " ".join(tokens) + '"'
    if joined and len(tokens) > 1:
        return f'({phrase} OR "{joined}")'
    return phrase


def parse_query(query: str) -> tuple[str | None, list[str]]:
    """(FTS5 MATCH expression or None when nothing searchable, the normalized words to highlight)."""
    if not query or not query.strip():
        return None, []
    parts: list[str] = []
    words: list[str] = []
    rest = query
    for phrase in _PHRASE.findall(query):
        tokens = _WORD.findall(normalize(phrase).replace(ZWNJ, " "))
        if tokens:
            parts.append('"' + " ".join(tokens) + '"')
            words.extend(tokens)
    rest = _PHRASE.sub(" ", query)
    for raw in normalize(rest).split():
        tokens = _WORD.findall(raw.replace(ZWNJ, " "))
        if not tokens:
            continue
        joined = "".join(tokens) if ZWNJ in raw else None
        parts.append(_fts_word(tokens, joined))
        words.extend(tokens)
        if joined:
            words.append(joined)
    if not parts:
        return None, []
    return " AND ".join(parts[:MAX_TERMS]), words
