"""One vectorized pass over a batch of texts for the prefilters of every rule.

The chat stage runs four rules on each user turn and answer (PII, answer rules, script check, and
the normalizer before them). Each rule alone scans the whole text again with a regex that starts
with a character class (10-40 ns a character in CPython's `re`), mostly to find out that there is
nothing to do. `analyze` looks at a whole batch once, as one numpy array of code points with one
byte of classes per character, and returns for each text what the rules need to know:

- ``runs``: the spans where a digit run of 10 digits or more stands, with at most two visible
  separators between its digits (invisible marks free): exactly where `pii._RUN` can match, so the
  masker looks at those spans only (a text with none has no PII number);
- ``latin``: the whitespace-delimited tokens that hold an ASCII letter: every URL and every Sheba
  number starts inside one, so those patterns look there only;
- ``arabic``/``other``: Arabic-script and other letters (what `script.persian_ratio` counts), in
  the whole text and in its first ``head`` characters.

Each rule then gives exactly the answer its plain form gives on the whole text (the plain forms
stay the reference; tests compare them on random text and on the whole corpus).
"""

from __future__ import annotations

import functools
import re
from itertools import repeat
from typing import NamedTuple

import numpy as np

from ..compiled import SPEEDUPS

_SEP = "\x00"  # joins the batch; a text never holds one here (the normalizer removed them)
_DIGIT, _VISIBLE_SEP, _INVISIBLE, _ARABIC, _OTHER, _ASCII, _SPACE = (1 << i for i in range(7))
_WORD_LETTER = re.compile(r"[^\W\d_]")  # script.py's letters
_ARABIC_BLOCKS = ((0x0600, 0x0700), (0x0750, 0x0780), (0xFB50, 0xFE00), (0xFE70, 0xFF00))


class TextFacts(NamedTuple):
    runs: tuple[tuple[int, int], ...]
    latin: tuple[tuple[int, int], ...]
    arabic: int
    other: int
    arabic_head: int
    other_head: int


def _classes(limit: int) -> np.ndarray:
    """One byte of classes per code point below `limit`, found by the very patterns the rules use
    (run over a string of every code point: one regex pass, not a Python loop)."""
    from .pii import _INVISIBLE_CHARS, _VISIBLE_SEPARATORS

    cls = np.zeros(limit, dtype=np.uint8)
    every = "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, limit)))

    def where(pattern: str) -> np.ndarray:
        at = np.fromiter((m.start() for m in re.finditer(pattern, every)), dtype=np.int64)
        return np.where(at >= 0xD800, at + 0x800, at)  # back to code points past the surrogates

    cls[where(r"\d")] |= _DIGIT
    letters = where(r"[^\W\d_]")
    arabic = np.zeros(len(letters), dtype=bool)
    for lo, hi in _ARABIC_BLOCKS:
        arabic |= (letters >= lo) & (letters < hi)
    cls[letters[arabic]] |= _ARABIC
    cls[letters[~arabic]] |= _OTHER
    cls[where(r"\s")] |= _SPACE  # what `re` calls whitespace
    cls[ord(_SEP)] |= _SPACE
    for ch in _VISIBLE_SEPARATORS:
        cls[ord(ch)] |= _VISIBLE_SEP
    for ch in _INVISIBLE_CHARS:
        cls[ord(ch)] |= _INVISIBLE
    cls[ord("A"):ord("Z") + 1] |= _ASCII
    cls[ord("a"):ord("z") + 1] |= _ASCII
    return cls


_CLASSES: dict[int, np.ndarray] = {}


def _table(limit: int) -> np.ndarray:
    if limit not in _CLASSES:
        _CLASSES[limit] = _classes(limit)
    return _CLASSES[limit]


def _per_text(owner: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict[int, tuple[tuple[int, int], ...]]:
    """Spans (in text offsets) grouped by the text that owns them (only the texts that have any)."""
    out: dict[int, list[tuple[int, int]]] = {}
    for t, a, b in zip(owner.tolist(), lo.tolist(), hi.tolist()):
        got = out.get(t)
        if got is None:
            out[t] = [(a, b)]
        else:
            got.append((a, b))
    return {t: tuple(v) for t, v in out.items()}


_NEW_FACTS = functools.partial(tuple.__new__, TextFacts)  # TextFacts(*args) without the Python-level __new__


_compiled_facts = SPEEDUPS  # the same pass in C, one loop a text (None: not built)


def analyze(texts: list[str], head: int) -> list[TextFacts]:
    """The facts of each text (see the module docstring). No text may hold a NUL."""
    if not texts:
        return []
    if _compiled_facts is not None:
        return analyze_compiled(texts, head)
    return analyze_numpy(texts, head)


def analyze_compiled(texts: list[str], head: int) -> list[TextFacts]:
    """`analyze` by the C extension: 5-10x the numpy pass on a chat batch, the same facts."""
    table16 = _table(0x10000)
    facts = _compiled_facts.facts(TextFacts, texts, head, table16, None)
    if facts is None:  # a character above U+FFFF: the full table (built once)
        facts = _compiled_facts.facts(TextFacts, texts, head, table16, _table(0x110000))
    return facts


def analyze_numpy(texts: list[str], head: int) -> list[TextFacts]:
    """`analyze` as numpy passes over the whole batch (the reference; used without the extension)."""
    if not texts:
        return []
    joined = _SEP.join(texts)
    n = len(joined)
    b = joined.encode("utf-16-le", "surrogatepass")
    if len(b) == 2 * n:
        codes = np.frombuffer(b, dtype=np.uint16)
        cls = _table(0x10000).take(codes)
    else:  # a character above U+FFFF: one 32-bit unit a character, so offsets stay str offsets
        codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        cls = _table(0x110000).take(codes)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    starts = np.zeros(len(texts), dtype=np.int64)
    np.cumsum(lengths[:-1] + 1, out=starts[1:])
    ends = starts + lengths

    # One sparse list of the characters the runs and tokens are made of: digits, separators,
    # invisible marks, whitespace (a quarter of the text or so); everything below works on it.
    where = np.flatnonzero(cls & (_DIGIT | _VISIBLE_SEP | _INVISIBLE | _SPACE))
    kind = cls.take(where)
    # digit runs: consecutive digits are linked when only separators and invisible marks stand
    # between them, at most two of them visible (pii._GAP); a chain of 10 digits or more is where
    # pii._RUN may match (from one character before its first digit, a "+" or "(", to one after
    # its last, a ")")
    runs: dict[int, tuple] = {}
    di = np.flatnonzero(kind & _DIGIT)
    if len(di) >= 10:
        vis = np.cumsum((kind & _VISIBLE_SEP) != 0, dtype=np.int32)
        stop = np.cumsum((kind & (_DIGIT | _VISIBLE_SEP | _INVISIBLE)) == 0, dtype=np.int32)  # "\n", NUL
        a, z = di[:-1], di[1:]
        linked = ((where[z] - where[a]) == (z - a)) & (stop[z] == stop[a]) & (vis[z] - vis[a] <= 2)
        first = np.flatnonzero(np.concatenate(([True], ~linked)))
        size = np.diff(np.append(first, len(di)))
        keep = size >= 10
        if keep.any():
            lo = where[di[first[keep]]]
            hi = where[di[first[keep] + size[keep] - 1]] + 1
            owner = np.searchsorted(starts, lo, side="right") - 1
            base = starts[owner]
            runs = _per_text(owner, np.maximum(lo - 1, base) - base, np.minimum(hi + 1, ends[owner]) - base)
    # Latin tokens: the whitespace-delimited tokens holding an ASCII letter
    latin: dict[int, tuple] = {}
    letters = np.flatnonzero(cls & _ASCII)
    if len(letters):
        spaces = where[(kind & _SPACE) != 0]
        tok = np.searchsorted(spaces, letters)
        tok = tok[np.concatenate(([True], tok[1:] != tok[:-1]))]
        bounds = np.concatenate(([-1], spaces, [n]))
        lo, hi = bounds[tok] + 1, bounds[tok + 1]
        owner = np.searchsorted(starts, lo, side="right") - 1
        latin = _per_text(owner, lo - starts[owner], hi - starts[owner])
    # letters, in the whole text and in its head (a sentinel makes index n valid for reduceat)
    arabic = np.append((cls & _ARABIC) != 0, False)
    other = np.append((cls & _OTHER) != 0, False)
    head_end = np.minimum(starts + head, ends)
    cut = np.empty(2 * len(texts), dtype=np.int64)
    cut[0::2] = starts
    cut[1::2] = head_end
    ar, ot = np.add.reduceat(arabic, cut, dtype=np.int64), np.add.reduceat(other, cut, dtype=np.int64)
    # reduceat gives the element itself for an empty span [i, i): zero those (an empty head; a
    # tail when the text is no longer than `head`); a tail runs on to the next text's start over
    # the separator, which is no letter
    no_head = starts == head_end
    no_tail = head_end == ends
    ar_head, ot_head = np.where(no_head, 0, ar[0::2]), np.where(no_head, 0, ot[0::2])
    ar_tail, ot_tail = np.where(no_tail, 0, ar[1::2]), np.where(no_tail, 0, ot[1::2])
    n_texts = len(texts)
    ar_head_l, ot_head_l = ar_head.tolist(), ot_head.tolist()
    return list(map(_NEW_FACTS, zip(map(runs.get, range(n_texts), repeat(())), map(latin.get, range(n_texts), repeat(())),
                                    (ar_head + ar_tail).tolist(), (ot_head + ot_tail).tolist(), ar_head_l, ot_head_l)))
