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

Digits: step 1 leaves the digits of Latin tokens as written (``mp3``, ``Windows 10``); for
scoring every digit is unified to Persian anyway, in the step 2-4 table (``mp3`` and ``mp۳`` are
the same word when spoken).

ZWNJ convention: join, not split. ``می‌خواهم``, ``می خواهم`` and ``میخواهم`` all become
``میخواهم``: step 1 turns the spaced form into the ZWNJ form (hazm's affix rules), step 3 turns
the ZWNJ form into the glued one. Joining keeps the word count of the reference as it is written
(a ZWNJ word is one whitespace token in the reference, so the WER denominator does not move), and
the glued form, which models emit often, cannot be split back without a lexicon.

6. **spacing** (hypotheses only, `normalize_pairs`): a hypothesis's word boundary at a bound
   affix follows its reference. Where the reference has one word and the hypothesis splits it
   with a space, the pieces are joined; where the reference has two words and the hypothesis has
   them as one, it is split. Only at a *bound-affix junction*: the piece after the junction is a
   suffix ``تر ترین ها های هایی ام ات اش ای اند ایم اید`` or the piece before it a prefix
   ``می نمی بی``, or the reference (or the hypothesis) wrote a ZWNJ exactly there (so a compound
   the reference writes with ZWNJ, ``زمین‌لرزه``, scores the same spaced or glued too). So ZWNJ,
   space and nothing score the same at those junctions, and the raw WER still shows the
   difference.

Why the reference decides, and not a fixed rule on each text alone. Step 1 already joins the
space-split affixes that are not words by themselves wherever they occur (hazm's rules: می/نمی
before a word, ها/های/هایی/ترین after one, the personal endings ام ایم اش اند ای اید ات after a
final ه). The rest of the list are also free words: ``تر`` (wet: «لباس تر»), ``ای`` (the vocative:
«ای خدا», «ای کاش»), ``بی`` (the letter B: «بی ام و»), ``ام`` (Arabic mother: «ام کلثوم»), and the
endings after any other letter are rare as suffixes split by a space. Joining them everywhere
would merge real separate words, on both sides, and change the reference's word count: «گفت ای
دوست» against «گفت دوست» would score 1 substitution of 2 words instead of 1 deletion of 3. Here
a free word is only joined where the reference writes that very word joined, and a reference
is never changed.

Counters: for each rule, how many texts it changed (``spacing``: hypotheses only). The shared step is also broken down by what
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

RULES = ("shared", "letters", "digits", "diacritics", "punctuation", "zwnj", "case", "spacing")
RULE_HELP = {
    "shared": "shared Persian normalizer (any change)",
    "letters": "Arabic letter variants folded (ي ى ك ۀ ...)",
    "digits": "Latin / Arabic-Indic digits unified to Persian",
    "diacritics": "diacritics and tatweel removed",
    "punctuation": "punctuation removed",
    "zwnj": "ZWNJ joined (written ZWNJ or a space-split affix)",
    "case": "Latin letters lower-cased",
    "spacing": "a split or glued bound affix follows the reference's word boundary",
}
_LETTERS, _DIGITS, _DIACRITICS, _PUNCT, _ZWNJ, _UPPER, _LATIN_DIGIT = (1 << i for i in range(7))
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
        if 0x30 <= cp <= 0x39 or 0x0660 <= cp <= 0x0669:  # also those step 1 kept (Latin tokens)
            self.mapping[cp] = 0x06F0 + (cp & 0xF)
            self.post_bits[cp] |= _LATIN_DIGIT
        if cat[0] == "P":
            self.post_bits[cp] |= _PUNCT
            self.mapping[cp] = 0x20
        elif cat in ("Lu", "Lt"):
            low = ch.lower()
            if len(low) == 1 and low != ch:
                self.post_bits[cp] |= _UPPER
                self.mapping[cp] = ord(low)
        elif ch == ZWNJ:  # kept through the table (`normalize_pairs` reads where it was), then deleted
            self.post_bits[cp] |= _ZWNJ


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
    return _normalize(texts)[0]


def _normalize(texts: list[str]) -> tuple[NormalizeResult, list[str]]:
    """The normalized texts, and the same with their ZWNJs still in (where the writer put one)."""
    tables = _tables()
    changed = dict.fromkeys(RULES, 0)
    with_zwnj: list[str] = []
    for start in range(0, len(texts), _CHUNK):
        with_zwnj += _normalize_chunk(texts[start:start + _CHUNK], tables, changed)
    out = [t.replace(ZWNJ, "") if ZWNJ in t else t for t in with_zwnj]
    return NormalizeResult(out, changed, len(texts)), with_zwnj


def _normalize_chunk(texts: list[str], tables: _Tables, changed: dict[str, int]) -> list[str]:
    """Steps 1, 2 and 4 (ZWNJ still in: the caller deletes it)."""
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
    if not (found & ~np.uint8(_ZWNJ)).any():  # nothing for steps 2 and 4 to do (spaces are single already)
        return shared
    joined = _SEP.join(shared)
    mapped = tables.mapping.take(np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32))
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


# ---------------------------------------------------------------------------------------------
# step 6: a hypothesis's word boundaries at bound affixes follow its reference
# ---------------------------------------------------------------------------------------------

SUFFIXES = frozenset(("تر", "ترین", "ها", "های", "هایی", "ام", "ات", "اش", "ای", "اند", "ایم", "اید"))
PREFIXES = frozenset(("می", "نمی", "بی"))
_ENDS, _STARTS, _AFFIXES = tuple(SUFFIXES), tuple(PREFIXES), SUFFIXES | PREFIXES
_AFFIX_WORD = re.compile("(?:^| )(?:" + "|".join(sorted(_AFFIXES, key=len, reverse=True)) + ")(?= |$)")
_MAX_PIECES = 4  # a word and up to three affixes: «نمی‌دانستند», «بزرگ‌ترین‌ها»


def normalize_pairs(refs: list[str], hyps: list[str]) -> tuple[NormalizeResult, NormalizeResult]:
    """`normalize_for_scoring` of the references and of the hypotheses (aligned lists), then step
    6 on each hypothesis (counted as ``spacing``). The references are never changed."""
    if len(refs) != len(hyps):
        raise ValueError(f"normalize_pairs: {len(refs)} references but {len(hyps)} hypotheses")
    ref_norm, ref_zw = _normalize(refs)
    hyp_norm, hyp_zw = _normalize(hyps)
    texts = hyp_norm.texts
    for i, (r, h) in enumerate(zip(ref_norm.texts, texts)):
        if r == h or not h or not r:
            continue
        rz, hz = ref_zw[i], hyp_zw[i]
        # nothing to join or split without a ZWNJ or an affix standing alone (a C-speed look first)
        if ZWNJ not in rz and ZWNJ not in hz and _AFFIX_WORD.search(r) is None and _AFFIX_WORD.search(h) is None:
            continue
        fixed = _follow_reference(r, rz, h, hz)
        if fixed is not None:
            texts[i] = fixed
            hyp_norm.changed["spacing"] += 1
    return ref_norm, hyp_norm


def _zwnj_offsets(word_zw: str) -> frozenset[int]:
    """Where, in the word without its ZWNJs, a ZWNJ stood (inside it only)."""
    offsets, at = set(), 0
    for part in word_zw.split(ZWNJ)[:-1]:
        at += len(part)
        offsets.add(at)
    return frozenset(offsets)


def _follow_reference(ref: str, ref_zw: str, hyp: str, hyp_zw: str) -> str | None:
    """The hypothesis with its words joined or split as the reference has them at bound-affix
    junctions and at the reference's ZWNJs (step 6), or None when nothing changes. Most pairs
    leave after a set test: nothing is looked at unless a hypothesis word is not a reference word."""
    ref_words, hyp_words = ref.split(" "), hyp.split(" ")
    known = set(ref_words)
    if known.issuperset(hyp_words):
        return None
    ref_cuts: dict[str, frozenset[int]] = {}  # reference word -> where its ZWNJs were
    if ZWNJ in ref_zw:
        for w in ref_zw.split(" "):
            if ZWNJ in w:
                ref_cuts[w.replace(ZWNJ, "")] = ref_cuts.get(w.replace(ZWNJ, ""), frozenset()) | _zwnj_offsets(w)
    # a join needs an affix among the hypothesis words, or a reference word written with ZWNJ; a
    # split, an affix among the reference words, or a hypothesis word written with ZWNJ
    firsts = {w[:c] for w, cuts in ref_cuts.items() for c in cuts}  # what a ZWNJ junction's left piece can be
    may_join = bool(firsts) or not _AFFIXES.isdisjoint(hyp_words)
    hyp_zw_words = hyp_zw.split(" ") if ZWNJ in hyp_zw else None
    may_split = hyp_zw_words is not None or not _AFFIXES.isdisjoint(ref_words)
    if not (may_join or may_split):
        return None
    out: list[str] = []
    changed = False
    i, n = 0, len(hyp_words)
    while i < n:
        word = hyp_words[i]
        j = 0
        if may_join and i + 1 < n and (hyp_words[i + 1] in SUFFIXES or word in PREFIXES or word in firsts):
            j = _join_at(hyp_words, i, known, ref_cuts)
        if j:
            out.append("".join(hyp_words[i:j]))
            changed = True
            i = j
            continue
        run = None
        if may_split and word not in known:
            cuts = _zwnj_offsets(hyp_zw_words[i]) if hyp_zw_words is not None and ZWNJ in hyp_zw_words[i] else frozenset()
            if cuts or word.endswith(_ENDS) or word.startswith(_STARTS):
                run = _split_of(word, ref_words, cuts)
        if run:
            out.extend(run)
            changed = True
        else:
            out.append(word)
        i += 1
    return " ".join(out) if changed else None


def _join_at(words: list[str], i: int, known: set[str], ref_cuts: dict[str, frozenset[int]]) -> int:
    """The end j of the longest run words[i:j] (2 words or more) that is one reference word, each
    junction a bound affix's or a ZWNJ of that reference word; 0 when there is none."""
    for j in range(min(i + _MAX_PIECES, len(words)), i + 1, -1):
        whole = "".join(words[i:j])
        if whole not in known:
            continue
        cuts = ref_cuts.get(whole, frozenset())
        at = 0
        for left, right in zip(words[i:j], words[i + 1:j]):
            at += len(left)
            if not (right in SUFFIXES or left in PREFIXES or at in cuts):
                break
        else:
            return j
    return 0


def _split_of(word: str, ref_words: list[str], cuts: frozenset[int]) -> list[str] | None:
    """Consecutive reference words that run together are `word`, each junction a bound affix's or
    where the hypothesis wrote a ZWNJ (`cuts`); None when there are none."""
    for k, first in enumerate(ref_words):
        if not word.startswith(first) or len(first) == len(word):
            continue
        at, m = len(first), k + 1
        while m < len(ref_words) and m - k < _MAX_PIECES and word.startswith(ref_words[m], at):
            left, right = ref_words[m - 1], ref_words[m]
            if not (right in SUFFIXES or left in PREFIXES or at in cuts):
                break
            at += len(right)
            m += 1
            if at == len(word):
                return ref_words[k:m]
    return None
