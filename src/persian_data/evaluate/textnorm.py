"""The evaluation normalizer: the shared Persian normalizer plus the scoring rules, with counters.

A hypothesis and its reference are compared after both pass through the same steps:

1. **shared** - `persian_data.normalize` (the rules the manifests' `text_normalized` uses), with
   transcript settings: newlines become spaces and ``ۀ`` folds to ``ه`` (the ezafe mark is often
   left out in speech transcripts). It folds Arabic letters (``ي ى ك`` -> ``ی ک``), removes
   diacritics and tatweel, unifies digits to Persian ``۰-۹``, and joins the affixes a writer
   split with a space (``می خواهم`` -> ``می‌خواهم``, ``کتاب ها`` -> ``کتاب‌ها``).
2. **punctuation** - every Unicode punctuation character (category P*: ``، ؛ ؟ « » . ! :`` ...)
   becomes a space. Symbols (``٪ $ +``) are kept: they are spoken.
3. **zwnj** - ZWNJ is deleted: the two halves are *joined* into one word.
4. **case** - Latin letters are lower-cased.
5. Runs of spaces become one space; the text is stripped.

ZWNJ convention: join, not split. ``می‌خواهم``, ``می خواهم`` and ``میخواهم`` all become
``میخواهم``: step 1 turns the spaced form into the ZWNJ form (hazm's affix rules), step 3 turns
the ZWNJ form into the glued one. Joining keeps the word count of the reference as it is written
(a ZWNJ word is one whitespace token in the reference, so the WER denominator does not move), and
the glued form, which models emit often, cannot be split back without a lexicon. Limit: a
compound that a model splits with a space and that no affix rule knows (``زمین لرزه`` for
``زمین‌لرزه``) still scores as a substitution plus an insertion.

Counters: for each rule, how many texts it changed. The shared step is also broken down by what
it found: Arabic letter variants, non-Persian digits, diacritics/tatweel. The zwnj counter counts
texts holding a ZWNJ after step 1, so it covers both the written ZWNJ and the joined affixes.
Counting is vectorised (one numpy lookup over all texts, OR-reduced per text), so it costs almost
nothing beside the normalizer itself.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from ..normalize import ZWNJ, NormalizerConfig, normalize, normalize_many

# Transcript settings of the shared normalizer (see the module docstring).
SHARED_CONFIG = NormalizerConfig(keep_newlines=False, heh_yeh="heh")

RULES = ("shared", "letters", "digits", "diacritics", "punctuation", "zwnj", "case")
RULE_HELP = {
    "shared": "shared Persian normalizer (any change)",
    "letters": "Arabic letter variants folded (ي ى ك ۀ ...)",
    "digits": "Latin / Arabic-Indic digits unified to Persian",
    "diacritics": "diacritics and tatweel removed",
    "punctuation": "punctuation removed",
    "zwnj": "ZWNJ joined (written ZWNJ or a space-split affix)",
    "case": "Latin letters lower-cased",
}
_LETTERS, _DIGITS, _DIACRITICS, _PUNCT, _ZWNJ, _UPPER = (1 << i for i in range(6))
_DELETE = 0xFFFFFFFF
_SEP = "\x00"  # joins a batch; the shared normalizer removes NULs, so none survive into step 2
_SPACES = re.compile("  +")


class _Tables:
    """Per code point: the rule bits found in raw text, those found after the shared step, and the
    step 2-4 mapping. Filled lazily for the code points a batch holds (a few hundred, not 1.1 M)."""

    def __init__(self) -> None:
        self.raw_bits = np.zeros(0x110000, dtype=np.uint8)
        self.post_bits = np.zeros(0x110000, dtype=np.uint8)
        self.mapping = np.arange(0x110000, dtype=np.uint32)
        self.known = np.zeros(0x110000, dtype=bool)

    def cover(self, codes: np.ndarray) -> None:
        if not len(codes):
            return
        present = np.flatnonzero(np.bincount(codes, minlength=1))
        for cp in present[~self.known[present]].tolist():
            self._classify(cp)
            self.known[cp] = True

    def _classify(self, cp: int) -> None:
        if 0xD800 <= cp < 0xE000:
            return
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cp == 0x0640 or cat == "Mn" and _is_arabic(cp):
            self.raw_bits[cp] |= _DIACRITICS
        elif cat.startswith("L") and _is_arabic(cp):
            folded = normalize(ch, SHARED_CONFIG)
            if folded and folded != ch:
                self.raw_bits[cp] |= _LETTERS
        elif 0x30 <= cp <= 0x39 or 0x0660 <= cp <= 0x0669:
            self.raw_bits[cp] |= _DIGITS
        if cat[0] == "P":
            self.post_bits[cp] |= _PUNCT
            self.mapping[cp] = 0x20
        elif cat in ("Lu", "Lt"):
            low = ch.lower()
            if len(low) == 1 and low != ch:
                self.post_bits[cp] |= _UPPER
                self.mapping[cp] = ord(low)
        elif ch == ZWNJ:
            self.post_bits[cp] |= _ZWNJ
            self.mapping[cp] = _DELETE


def _is_arabic(cp: int) -> bool:
    return (0x0600 <= cp < 0x0700 or 0x0750 <= cp < 0x0780 or 0x08A0 <= cp < 0x0900 or 0xFB50 <= cp < 0xFE00
            or 0xFE70 <= cp < 0xFF00)


_TABLES: _Tables | None = None


def _tables() -> _Tables:
    global _TABLES
    if _TABLES is None:
        _TABLES = _Tables()
    return _TABLES


def _codes(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All texts as one code-point array, with each text's start and length."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    starts = np.zeros(len(texts), dtype=np.int64)
    if len(texts) > 1:
        np.cumsum(lengths[:-1], out=starts[1:])
    codes = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return codes, starts, lengths


def _bits_per_text(table: np.ndarray, codes: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """OR of table[c] over each text's characters."""
    if not len(starts):
        return np.zeros(0, dtype=np.uint8)
    flags = np.append(table.take(codes), np.uint8(0))  # the sentinel lets an empty last text index it
    out = np.bitwise_or.reduceat(flags, np.minimum(starts, len(flags) - 1))
    out[lengths == 0] = 0  # reduceat gives the next element for an empty segment
    return out


class NormalizeResult:
    """Normalized texts and, per rule, how many of them it changed."""

    def __init__(self, texts: list[str], changed: dict[str, int], total: int) -> None:
        self.texts, self.changed, self.total = texts, changed, total

    def fractions(self) -> dict[str, float]:
        return {k: (v / self.total if self.total else 0.0) for k, v in self.changed.items()}


_CHUNK = 8192  # texts per pass: the numpy temporaries of a whole 100,000-text split would cost ~150 MB


def normalize_for_scoring(texts: list[str]) -> NormalizeResult:
    """Apply the evaluation normalizer to a batch and count what each rule changed."""
    tables = _tables()
    changed = dict.fromkeys(RULES, 0)
    out: list[str] = []
    for start in range(0, len(texts), _CHUNK):
        out += _normalize_chunk(texts[start:start + _CHUNK], tables, changed)
    return NormalizeResult(out, changed, len(texts))


def _normalize_chunk(texts: list[str], tables: _Tables, changed: dict[str, int]) -> list[str]:
    codes, starts, lengths = _codes(texts)
    tables.cover(codes)
    found = _bits_per_text(tables.raw_bits, codes, starts, lengths)
    shared = normalize_many(texts, SHARED_CONFIG)
    changed["shared"] += sum(a != b for a, b in zip(texts, shared))
    for name, bit in (("letters", _LETTERS), ("digits", _DIGITS), ("diacritics", _DIACRITICS)):
        changed[name] += int(np.count_nonzero(found & bit))

    codes, starts, lengths = _codes(shared)
    tables.cover(codes)
    found = _bits_per_text(tables.post_bits, codes, starts, lengths)
    for name, bit in (("punctuation", _PUNCT), ("zwnj", _ZWNJ), ("case", _UPPER)):
        changed[name] += int(np.count_nonzero(found & bit))
    if not found.any():  # nothing for steps 2-4 to do (spaces are already single: the shared step)
        return shared
    joined = _SEP.join(shared)
    mapped = tables.mapping.take(np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32))
    mapped = mapped[mapped != _DELETE]
    out = mapped.tobytes().decode("utf-32-le", "surrogatepass")
    if "  " in out:
        out = _SPACES.sub(" ", out)
    parts = out.split(_SEP)
    if len(parts) != len(texts):  # cannot happen: _SEP is neither in the texts nor mapped
        raise AssertionError("normalize_for_scoring: batch separator lost")
    return [p.strip(" ") for p in parts]


def normalize_one(text: str) -> str:
    """The evaluation normalizer on one text."""
    return normalize_for_scoring([text]).texts[0]
