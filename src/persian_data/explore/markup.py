"""Small HTML helpers for the templates (Jinja filters). Every piece of data is escaped here.

`highlight` marks search hits (`<mark class="hit">`) and the chat corpus's masked placeholders
(`<mark class="pii">[PHONE]</mark>`; the review file writes them in bold as `**[PHONE]**`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable
from urllib.parse import quote, urlencode

from markupsafe import Markup, escape

from ..normalize import normalize
from ..textclean.pii import PLACEHOLDERS

_PLACEHOLDER = re.compile(r"\*\*(\[(?:%s)\])\*\*|(\[(?:%s)\])" % (("|".join(PLACEHOLDERS),) * 2))
_WORD = re.compile(r"[^\W_]+")


@lru_cache(maxsize=65536)
def _norm(token: str) -> str:
    return normalize(token).lower()


def _hits(text: str, wanted: frozenset[str]) -> Markup:
    if not wanted:
        return escape(text)
    out: list[str] = []
    last = 0
    for match in _WORD.finditer(text):
        if _norm(match.group()) in wanted:
            out.append(str(escape(text[last:match.start()])))
            out.append(f'<mark class="hit">{escape(match.group())}</mark>')
            last = match.end()
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


def highlight(text: object, words: Iterable[str] = ()) -> Markup:
    """Escaped `text` with search hits and placeholders marked."""
    text = "" if text is None else str(text)
    wanted = frozenset(w.lower() for w in words)
    out: list[str] = []
    last = 0
    for match in _PLACEHOLDER.finditer(text):
        out.append(str(_hits(text[last:match.start()], wanted)))
        out.append(f'<mark class="pii">{escape(match.group(1) or match.group(2))}</mark>')
        last = match.end()
    out.append(str(_hits(text[last:], wanted)))
    return Markup("".join(out))


def seconds(value: object) -> str:
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return "-"


def hours(value: object) -> str:
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return "-"


def number(value: object) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "-"


def short(value: object, keep: int = 10) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= keep + 1 else text[:keep] + "…"


def media_url(path: object) -> str:
    """/media/<root-relative path>, each segment percent-encoded."""
    return "/media/" + "/".join(quote(part) for part in str(path or "").split("/"))


def with_query(base: str, params: dict, **changes: object) -> str:
    """`base?query` from params with `changes` applied; empty values left out."""
    merged = {**params, **changes}
    query = urlencode([(k, v) for k, v in merged.items() if v not in (None, "", False)])
    return f"{base}?{query}" if query else base


FILTERS = {"highlight": highlight, "seconds": seconds, "hours": hours, "number": number, "short": short,
           "media_url": media_url}
