"""The normalizer's context rules (stage B, after the character table): regexes that start with a
literal, each skipped by an `in` test when it has nothing to do; ZWJ and ZWNJ placement, spaces,
affix spacing (hazm's rules) and punctuation spacing. Every rule treats the batch separator
(`normalize_tables._SEP`) like the end of a string, so a batch gives what each field alone gives."""

from __future__ import annotations

import re

from .compiled import SPEEDUPS
from .normalize_tables import _SEP, ZWJ, ZWNJ

_W = r"\w\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed"  # word characters: \w plus marks
_MARKS = frozenset(
    [chr(c) for c in range(0x0610, 0x061B)] + [chr(c) for c in range(0x064B, 0x0660)]
    + ["\u0670"] + [chr(c) for c in range(0x06D6, 0x06EE)]
)
_ARABIC_BLOCKS = r"\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff"
_FA_LETTERS = "آاأإئؤءبپتثجچحخدذرزژسشصضطظعغفقکگلمنوهیۀة"
_CLOSE = ".:!،؛؟»)]}"
_OPEN = "«([{"

_NON_ARABIC = rf"[^\s{_ARABIC_BLOCKS}{ZWNJ}{ZWJ}{_SEP}]"
# ZWJ stays only between two non-Arabic, non-space characters (emoji sequences)
_ZWJ_DROP = re.compile(rf"{ZWJ}(?:(?<!{_NON_ARABIC}{ZWJ})|(?!{_NON_ARABIC}))")
# a ZWNJ run preceded, or followed, by a non-word character (the string start: see _rules)
# (whole runs only: the lookarounds exclude ZWNJ, so a match never starts or ends inside a run)
_ZWNJ_BAD = re.compile(rf"{ZWNJ}(?:(?<=[^{_W}{ZWNJ}]{ZWNJ}){ZWNJ}*|{ZWNJ}*(?![{_W}{ZWNJ}]))")
_ZWNJ_RUN = re.compile(f"{ZWNJ}{{2,}}")
_SPACES = re.compile("  +")
_BLANK_LINES = re.compile("\n\n\n+")

# affix spacing (hazm's regexes, rewritten to start with a literal; see the module docstring)
_END = rf"(?=[\s{re.escape(_CLOSE)}{_SEP}]|$)"
_L = f"[{_FA_LETTERS}]"
_MI = re.compile(rf"می (?={_L})")
_HEH_YEH = re.compile(rf"ه ی(?<={_L}ه ی){_END}")
_HEH_AM = re.compile(rf"ه ا(?<={_L}ه ا)(م|یم|ش|ند|ی|ید|ت){_END}")
_HA = re.compile(rf" ها(?<={_L}{_L} ها)(یی?)?{_END}")
_TARIN = re.compile(rf" ترین(?<={_L}{_L} ترین){_END}")


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_" or ch in _MARKS or ch == ZWNJ


def _mi(m: re.Match) -> str:
    """'می ' + letter, joined when می (or نمی) starts a word."""
    s, i = m.string, m.start()
    if i and s[i - 1] == "ن":
        i -= 1
    if i and _is_word(s[i - 1]):
        return "می "
    return "می" + ZWNJ


def _affix(s: str) -> str:
    # an `in` probe (a C substring search) is cheaper than the regex's own search
    if "می " in s:
        s = _MI.sub(_mi, s)
    if "ه ی" in s:
        s = _HEH_YEH.sub("ه" + ZWNJ + "ی", s)
    if "ه ا" in s:
        s = _HEH_AM.sub("ه" + ZWNJ + "ا\\1", s)
    if " ها" in s:
        s = _HA.sub(ZWNJ + "ها\\1", s)
    if " ترین" in s:
        s = _TARIN.sub(ZWNJ + "ترین", s)
    return s


# no space before a closing mark that ends a word (" ..." keeps its space), none after an
# opening mark
_CLOSE_RES = tuple(
    (" " + x, x, re.compile(
        " " + re.escape(x)
        + "(?=[\\s" + re.escape(_CLOSE.replace(".", "") if x == "." else _CLOSE)
        + re.escape(_OPEN) + _SEP + "]|$)"))
    for x in _CLOSE
)
_OPEN_PAIRS = tuple((x + " ", x) for x in _OPEN)


def spaces_and_lines(s: str) -> str:
    """Runs of spaces become one, no space before or after a newline, at most one blank line."""
    if "  " in s:
        s = _SPACES.sub(" ", s)
    if "\n" in s:
        if " \n" in s:
            s = s.replace(" \n", "\n")
        if "\n " in s:
            s = s.replace("\n ", "\n")
        if "\n\n\n" in s:
            s = _BLANK_LINES.sub("\n\n", s)
    return s


def _punct(s: str) -> str:
    for probe, x, rx in _CLOSE_RES:
        if x in s and probe in s:  # one-character `in` is a memchr: test it first
            s = rx.sub(x, s)
    for probe, x in _OPEN_PAIRS:
        if x in s and probe in s:
            s = s.replace(probe, x)
    return s


def _compiled_rules():
    """The C forms of `spaces_and_lines` and `_punct` (persian_data._speedups; tests/test_speedups.py
    compares them with the Python forms), or the Python forms where the extension is not built."""
    if SPEEDUPS is None:
        return spaces_and_lines, _punct
    SPEEDUPS.set_punct_rules(_CLOSE, _OPEN, _SEP)
    return SPEEDUPS.spaces_and_lines, SPEEDUPS.punct


SPACES_AND_LINES, PUNCT = _compiled_rules()
