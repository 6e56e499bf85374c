"""Latin tokens keep their digits: the part of the normalizer's digit policy that looks at tokens.

A token is a run of characters between whitespace (or the batch separator, NUL). Its digits keep
their characters, whatever the digit policy, when the token holds an ASCII letter (an email, a
URL, an @handle, an IBAN, a file name, "A4-17", "mp3"), or when it holds no letter at all and the
nearest token before it that holds a letter is such a Latin token, at most CHAIN_TOKENS tokens
back on the same line ("Windows 10", the groups of "IR82 0540 1026 ..."). Everywhere else
(Persian text, "ماده 10", a number before a Latin word: "10 GB") the policy applies.

Tokens are taken on the character table's output, so a deleted control character is invisible
here and a token is what the next pass sees: the rule is idempotent (the rules after the table
only join tokens or drop empty ones, so a second pass protects at least the digits the first one
did). Cost: a few numpy passes over the batch and over the spans after each Latin token; no
Python work per character.
"""

from __future__ import annotations

import re

import numpy as np

_SEP = "\x00"  # the normalizer's batch separator

CHAIN_TOKENS = 8
ASCII_LETTER = re.compile("[A-Za-z]")
_K_ASCII, _K_LETTER, _K_LINE = 1, 2, 4  # character classes, one byte a code point


def _kinds(limit: int) -> np.ndarray:
    kinds = np.zeros(limit, dtype=np.uint8)
    kinds[[c for c in range(limit) if not 0xD800 <= c < 0xE000 and chr(c).isalpha()]] = _K_LETTER
    kinds[ord("A"):ord("Z") + 1] |= _K_ASCII
    kinds[ord("a"):ord("z") + 1] |= _K_ASCII
    kinds[ord("\n")] = kinds[ord(_SEP)] = _K_LINE
    return kinds


_KINDS16 = _kinds(0x10000)
_KINDS_FULL: np.ndarray | None = None  # built on the first batch with a character above U+FFFF


def _kinds_full() -> np.ndarray:
    global _KINDS_FULL
    if _KINDS_FULL is None:
        _KINDS_FULL = _kinds(0x110000)
    return _KINDS_FULL


def _first_of_runs(sorted_ids: np.ndarray) -> np.ndarray:
    """Where each run of equal values starts in a sorted array (a boolean mask)."""
    return np.concatenate(([True], sorted_ids[1:] != sorted_ids[:-1])) if len(sorted_ids) else np.zeros(0, bool)


def latin_digits(src: np.ndarray, out: np.ndarray, changed: np.ndarray) -> np.ndarray | None:
    """`out` (the table's output; `src`: its input, aligned) with the digits of Latin tokens put
    back as written, or None when there are none. `changed`: the digits the table changes (BMP).
    After the table the only characters <= U+0020 are space, newline and _SEP: the boundaries."""
    letters = np.flatnonzero(((out | 0x20) - 0x61) < 26)  # a-z, A-Z (unsigned: the rest wraps above)
    if not len(letters):
        return None
    bounds = np.flatnonzero(out <= 0x20)
    ends = np.append(bounds, len(out))  # token i is out[ends[i - 1] + 1:ends[i]]
    tok = np.searchsorted(bounds, letters)
    latin = tok[_first_of_runs(tok)]  # the tokens holding an ASCII letter
    # the positions where a digit may keep its characters: each Latin token and the
    # CHAIN_TOKENS tokens after it (spans merged where they overlap; both ends are sorted)
    lo = np.where(latin > 0, ends[np.maximum(latin - 1, 0)] + 1, 0)
    hi = ends[np.minimum(latin + CHAIN_TOKENS, len(bounds))]
    new = np.concatenate(([True], lo[1:] > hi[:-1]))
    lo, hi = lo[new], np.append(hi[np.flatnonzero(new)[1:] - 1], hi[-1])
    sizes = hi - lo
    where = np.arange(int(sizes.sum())) + np.repeat(lo - (np.cumsum(sizes) - sizes), sizes)
    seen = src.take(where)
    is_digit = changed.take(seen if seen.dtype == np.uint16 else np.minimum(seen, 0xFFFF))
    if not is_digit.any():
        return None
    # per token of the spans: its classes, OR-ed with the boundary after it (a line end there)
    pos_tok = np.searchsorted(bounds, where)
    first = np.flatnonzero(_first_of_runs(pos_tok))
    span_tok = pos_tok[first]
    kinds = _KINDS16 if out.dtype == np.uint16 else _kinds_full()
    bits = np.bitwise_or.reduceat(kinds.take(out.take(where)), first)
    own = np.searchsorted(span_tok, pos_tok[is_digit])  # each digit's token, as an index into span_tok
    protected = (bits[own] & _K_ASCII) != 0
    # a letterless token chained to the Latin token before it: no letter in any token after that
    # one up to this one, no line end between (the tokens of one merged span are consecutive)
    k = np.searchsorted(latin, span_tok[own]) - 1
    prev = latin[np.maximum(k, 0)]
    before = np.searchsorted(span_tok, prev)
    lettered = np.cumsum((bits & _K_LETTER) != 0)
    line_end = np.concatenate(([0], np.cumsum((bits & _K_LINE) != 0)))
    protected |= ((k >= 0) & (span_tok[own] - prev <= CHAIN_TOKENS)
                  & (lettered[own] == lettered[before]) & (line_end[own] == line_end[before]))
    if not protected.any():
        return None
    keep = where[is_digit][protected]
    fixed = out.copy()
    fixed[keep] = src[keep]
    return fixed
