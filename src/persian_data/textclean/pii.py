"""Personal data in Persian text: find it and replace it with typed placeholders.

Types and placeholders: ``[PHONE]`` (Iranian mobiles and landlines with an area code),
``[NATIONAL_ID]`` (کد ملی), ``[CARD]`` (bank card), ``[IBAN]`` (Sheba), ``[EMAIL]``, ``[URL]``,
``[HANDLE]`` (Telegram/Instagram ``@name``).

How numbers are found. People write a phone number in many ways (``09121234567``,
``0912 123 4567``, ``(0912) 123-4567``, ``+98 912 123 4567``, ``0098-912…``, ``98912…``) and in
Persian (۰–۹), Arabic-Indic (٠–٩) or Latin digits, or a mix. So the masker does not try one regex
per spelling: it finds *digit runs* (digits with at most two separator characters — space,
hyphen, parentheses, NBSP — between them, a leading ``+`` allowed), cuts each run into its
groups, and tries every range of consecutive groups, longest first, as a number of each type:

- mobile: ``09`` + 9 digits, or ``98``/``0098``/``+98`` + ``9`` + 9 digits;
- landline: ``0`` + an area code ``[1-8]x`` + 8 digits, or the same with ``98``/``0098``/``+98``
  instead of the ``0``;
- national ID: 10 digits whose check digit is valid (SOURCES.md E), not all equal;
- card: 16 digits passing the Luhn check;
- Sheba: ``IR`` + 24 digits passing mod-97 (found by its own pattern, spaces allowed).

A range is only masked when its digits form one of those exactly, so what must stay stays: years
(۱۴۰۲, 1998), article numbers (ماده ۱۰), dates (``/`` is not a separator), amounts (``٬``, ``,``
and ``.`` are not separators either, and a run followed by تومان/ریال is never PII), short
numbers, and a 10-digit case number whose check digit fails. Text outside a match is kept byte for
byte; masking is idempotent (placeholders hold no digit, ``@`` or URL).

Independent of the normalizer. Every pattern is script-agnostic: a digit is any Unicode decimal
digit (Latin, Persian, Arabic-Indic, ...) wherever one may stand, also inside emails, URLs,
handles and Sheba numbers, and the edges of a name are ASCII letters and digits, not Python's
word class (a Persian letter, a ZWNJ or a bidi mark glued to an email is not part of it). Invisible characters
(ZWSP, ZWNJ, ZWJ, LRM, RLM, ALM, bidi embeddings and isolates, BOM, soft hyphen) may sit anywhere
in a digit run or a Sheba number without counting as separators. The chat stage masks *after*
normalizing, on the very text it writes: masking first would leave the normalizer free to
change the text afterwards (a deleted control character or a folded digit can turn two pieces
into one number), and only the text written is what the promise is about. With these patterns the
same items are found in the raw text and in its normalized form, whatever the digit policy, so
the order is not what keeps the data out.

Nothing here logs: the text is personal data.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import NamedTuple

from ..compiled import SPEEDUPS

PLACEHOLDERS = {
    "PHONE": "[PHONE]",
    "NATIONAL_ID": "[NATIONAL_ID]",
    "CARD": "[CARD]",
    "IBAN": "[IBAN]",
    "EMAIL": "[EMAIL]",
    "URL": "[URL]",
    "HANDLE": "[HANDLE]",
}
TYPES = tuple(PLACEHOLDERS)

# Every pattern takes a digit of any script where a digit goes (`\d`: Unicode decimal digits, so
# Latin, Persian, Arabic-Indic and the rest), and its boundaries are ASCII letters and digits, never
# `\w` (a Persian letter glued to an email or a URL is not part of it). So what is found does not
# depend on the digit policy of the normalizer that ran before, nor on whether one ran: the stage
# masks the text it writes (normalized or raw), and the same text is found either way.


class _ToLatin(dict):
    """str.translate table: any decimal digit -> its Latin digit, filled as digits are met."""

    def __missing__(self, cp: int) -> str:
        d = unicodedata.decimal(chr(cp), None)
        self[cp] = value = chr(cp) if d is None else str(d)
        return value


_TO_LATIN = _ToLatin()
# Invisible characters a digit run may carry anywhere (bidi marks, ZWSP/ZWNJ/ZWJ, isolates) in raw
# text: they do not count as separators.
_INVISIBLE_CHARS = ("".join(map(chr, range(0x200B, 0x2010))) + "\u061c" + "".join(map(chr, range(0x202A, 0x202F)))
                    + "".join(map(chr, range(0x2066, 0x206A))) + "\ufeff\u00ad")
_VISIBLE_SEPARATORS = " \u00a0\u2009\u202f-\u2010\u2011\u2012\u2013()"
_INVISIBLE = "".join(f"\\u{ord(c):04x}" for c in _INVISIBLE_CHARS)  # as a regex class body
_SEP = "".join(f"\\u{ord(c):04x}" for c in _VISIBLE_SEPARATORS)
_GAP = rf"[{_INVISIBLE}]*(?:[{_SEP}][{_INVISIBLE}]*){{0,2}}"  # at most two visible separators
# A digit run: digits with at most two separator characters between them (a leading + or "("),
# 10 digits at least (the shortest PII number, a national ID): short numbers never reach Python.
_RUN = re.compile(rf"(?<![\dA-Za-z_])[+(]?\d(?:{_GAP}\d){{9,}}\)?")
_GROUP = re.compile(r"\d+")
_LATIN = re.compile(r"[A-Za-z]")
# 10 digits, ≤ 2 visible characters apart: what every run holds (a prefilter, in C)
_TEN_DIGITS = re.compile(rf"(?:\d[{_INVISIBLE}]*(?:\D[{_INVISIBLE}]*){{0,2}}){{9}}\d")
_MONEY_WORDS = ("تومان", "تومن", "ریال", "درصد", "میلیون", "میلیارد", "هزار")
_MONEY = re.compile(r"\s*(?:" + "|".join(_MONEY_WORDS) + ")")

_L = r"A-Za-z\d"  # what makes up a name: ASCII letters and any digit
_EMAIL = re.compile(rf"(?<![{_L}._%+-])[{_L}._%+-]*[{_L}]@[{_L}-]+(?:\.[{_L}-]+)*\.[A-Za-z]{{2,}}")
_URL = re.compile(rf"(?i)(?:(?<![A-Za-z])https?://|(?<![{_L}])www\.)[^\s<>\"'«»()]+"
                  rf"|(?<![{_L}@._-])(?:[{_L}-]+\.)+(?:ir|com|org|net|info|me|co|io)(?![{_L}])(?:/[^\s<>\"'«»()]*)?")
_HANDLE = re.compile(rf"(?<![{_L}_@.])@[A-Za-z_][{_L}_.]{{2,30}}[{_L}_]")
_IBAN_SEP = rf"[{_INVISIBLE}]*[ \u00a0-]?[{_INVISIBLE}]*"
_IBAN = re.compile(rf"(?i)(?<![A-Za-z\d])IR{_IBAN_SEP}\d\d(?:{_IBAN_SEP}\d){{22}}(?!\d)")
_IR = re.compile("(?i)ir")
_IBAN_DROP = re.compile(rf"[ \u00a0{_INVISIBLE}-]")
_TRAILING = ".,;:!?؟،؛)»"

_MOBILE = re.compile(r"(?:0|98|0098)9\d{9}")
_LANDLINE = re.compile(r"(?:0|98|0098)[1-8]\d{9}")


class Match(NamedTuple):
    type: str
    start: int
    end: int


_ID_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_ID_ZERO = 48 * sum(_ID_WEIGHTS)  # the weights times ord("0")
_LUHN_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")  # 2d, minus 9 above 9, as a digit


def national_id_valid(digits: str) -> bool:
    """کد ملی: 10 digits; s = Σ d_i·(11−i) for i = 1..9, r = s mod 11; valid iff d10 = r when r < 2,
    else d10 = 11 − r. All-equal digits are never issued."""
    if len(digits) != 10 or not digits.isdigit() or len(set(digits)) == 1:
        return False
    if not digits.isascii():
        digits = digits.translate(_TO_LATIN)
        if not digits.isascii():  # a digit that is no decimal digit (superscripts)
            return False
    b = digits.encode("ascii")
    s = (sum(map(int.__mul__, b, _ID_WEIGHTS)) - _ID_ZERO) % 11  # (the products in C, no loop here)
    check = b[9] - 48
    return check == s if s < 2 else check == 11 - s


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit() or len(set(digits)) == 1:
        return False
    if not digits.isascii():
        digits = digits.translate(_TO_LATIN)
        if not digits.isascii():  # a digit that is no decimal digit (superscripts)
            return False
    b = digits.encode("ascii")
    kept, doubled = b[::-1][0::2], b[::-1][1::2].translate(_LUHN_DOUBLED)
    return (sum(kept) + sum(doubled) - 48 * len(b)) % 10 == 0


def iban_valid(compact: str) -> bool:
    """IR + 24 digits: move the first four characters to the end, I→18, R→27, ≡ 1 (mod 97)."""
    if len(compact) != 26 or compact[:2].upper() != "IR" or not compact[2:].isdigit():
        return False
    return int(compact[4:] + "1827" + compact[2:4]) % 97 == 1


def _classify(digits: str, plus: bool) -> str | None:
    """The type of a number written as these digits (Latin), or None."""
    n = len(digits)
    if n in (11, 12, 14) and (_MOBILE.fullmatch(digits) or _LANDLINE.fullmatch(digits)):
        if plus and not digits.startswith("98"):
            return None
        return "PHONE"
    if plus:
        return None
    if n == 10 and national_id_valid(digits):
        return "NATIONAL_ID"
    if n == 16 and luhn_valid(digits):
        return "CARD"
    return None


def _numbers(text: str, run: re.Match) -> list[Match]:
    """PII numbers inside one digit run: the longest range of consecutive groups that is one (in C
    where the extension is built: `_numbers_python` is the reference, tests/test_speedups.py)."""
    if _compiled_numbers is not None:
        found = _compiled_numbers(text, run.start(), run.end())
        if found is not None:
            return [Match(*m) for m in found] if found else found
    return _numbers_python(text, run)


def _numbers_python(text: str, run: re.Match) -> list[Match]:
    """`_numbers` in Python."""
    end = run.end()
    if _MONEY.match(text, end, end + 12):
        return []
    whole = run.group()
    if whole.isdecimal():  # one group (most runs): a number of one of the lengths, or none
        if len(whole) not in (10, 11, 12, 14, 16):
            return []
        kind = _classify(whole.translate(_TO_LATIN), False)
        return [Match(kind, run.start(), end)] if kind is not None else []
    groups = [(g.start() + run.start(), g.end() + run.start(), g.group().translate(_TO_LATIN))
              for g in _GROUP.finditer(run.group())]
    plus = run.group().startswith("+")
    found: list[Match] = []
    i = 0
    while i < len(groups):
        best = None
        digits = ""
        for j in range(i, min(len(groups), i + 8)):
            digits += groups[j][2]
            if len(digits) > 16:
                break
            kind = _classify(digits, plus and i == 0)
            if kind is not None:
                best = (j, kind)
        if best is None:
            i += 1
            continue
        j, kind = best
        start = groups[i][0]
        if i == 0 and (plus or run.group().startswith("(")):
            start = run.start()  # the "+" or "(" in front belongs to the number
        end = groups[j][1]
        if text[end:end + 1] == ")" and "(" in text[start:end]:
            end += 1
        found.append(Match(kind, start, end))
        i = j + 1
    return found


def _install_compiled():
    """`_speedups.numbers` and `_speedups.find_pii` told these rules (None, None without the C
    extension)."""
    if SPEEDUPS is None:
        return None, None
    SPEEDUPS.set_pii_rules(_MONEY_WORDS, "PHONE", "NATIONAL_ID", "CARD", (
        _EMAIL.finditer, _URL.finditer, _HANDLE.match, _IR.finditer, _IBAN.match, _RUN.finditer, _numbers_python,
        Match, "EMAIL", "URL", "HANDLE", "IBAN", _TRAILING, " \u00a0" + _INVISIBLE_CHARS + "-"))
    return SPEEDUPS.numbers, SPEEDUPS.find_pii


_compiled_numbers, _compiled_find = _install_compiled()


def _positions(text: str, ch: str) -> list[int]:
    out = []
    i = text.find(ch)
    while i >= 0:
        out.append(i)
        i = text.find(ch, i + 1)
    return out


def find_pii(text: str, facts=None) -> list[Match]:
    """Every personal-data span in `text`, in order, not overlapping. `facts`: the text's
    `batch.TextFacts`, when a batch pass found where digit runs and Latin tokens stand: then only
    those spans are looked at (the same spans are found: every match lies inside one), in C where
    the extension is built (`find_pii_python` is the reference: tests/test_speedups.py)."""
    if facts is not None and _compiled_find is not None:
        if not facts.runs and not facts.latin and "@" not in text:
            return []
        return _compiled_find(text, facts)
    return find_pii_python(text, facts)


def find_pii_python(text: str, facts=None) -> list[Match]:
    """`find_pii` in Python."""
    at = "@" in text
    if facts is not None and not facts.runs and not facts.latin and not at:
        return []  # no digit run, no Latin token, no "@": nothing any pattern can match
    spans: list[Match] = []
    # prefilters in C: emails and handles need an "@", URLs and Sheba a Latin letter
    latin = (_LATIN.search(text) is not None) if facts is None else bool(facts.latin)
    for kind, pattern, wanted in (("EMAIL", _EMAIL, at and latin), ("URL", _URL, latin), ("HANDLE", _HANDLE, at)):
        if not wanted:
            continue
        if facts is None:
            found = pattern.finditer(text)
        elif kind != "HANDLE":  # an email or a URL holds no whitespace and an ASCII letter
            found = [m for lo, hi in facts.latin for m in pattern.finditer(text, lo, hi)]
        else:  # a handle starts at an "@" and holds no other: tried at each "@" only
            found = [m for i in _positions(text, "@") if (m := pattern.match(text, i)) is not None]
        for m in found:
            start, end = m.start(), m.end()
            while end > start and text[end - 1] in _TRAILING:
                end -= 1
            while kind == "EMAIL" and text[start] == ".":  # a local part never starts with a dot
                start += 1
            spans.append(Match(kind, start, end))
    if latin:
        if facts is None:
            ibans = _IBAN.finditer(text)
        else:  # a Sheba number starts with the only letters it holds, inside a Latin token
            ibans = (m for lo, hi in facts.latin for ir in _IR.finditer(text, lo, hi)
                     if (m := _IBAN.match(text, ir.start())) is not None)
        for m in ibans:
            compact = _IBAN_DROP.sub("", m.group()).translate(_TO_LATIN)
            if iban_valid(compact):
                spans.append(Match("IBAN", m.start(), m.end()))
    if facts is not None:
        for lo, hi in facts.runs:
            for run in _RUN.finditer(text, lo, hi):
                spans.extend(_numbers(text, run))
    elif _TEN_DIGITS.search(text):  # most texts have few digits
        for run in _RUN.finditer(text):
            spans.extend(_numbers(text, run))
    spans.sort(key=lambda m: (m.start, -(m.end - m.start)))
    out: list[Match] = []
    for m in spans:  # the first (and longest) span wins where two overlap
        if not out or m.start >= out[-1].end:
            out.append(m)
    return out


def mask_spans(text: str, spans: list[Match]) -> str:
    """`text` with each of `spans` (from `find_pii`: in order, not overlapping) replaced by its
    placeholder; the text outside them kept byte for byte."""
    parts: list[str] = []
    at = 0
    for m in spans:
        parts.append(text[at:m.start])
        parts.append(PLACEHOLDERS[m.type])
        at = m.end
    parts.append(text[at:])
    return "".join(parts)


def mask_pii(text: str, mode: str = "mask", facts=None) -> tuple[str, Counter]:
    """`text` with every personal-data span replaced by its placeholder, and the count per type
    found. Text outside the spans is kept byte for byte. ``mode="keep"`` counts without masking
    (``"drop"`` masks too: dropping the conversation is the caller's decision). `facts`: see
    `find_pii`."""
    if mode not in ("mask", "drop", "keep"):
        raise ValueError(f"mode must be mask, drop or keep, not {mode!r}")
    spans = find_pii(text, facts)
    if not spans:
        return text, Counter()
    if mode == "keep":
        return text, Counter(m.type for m in spans)
    return mask_spans(text, spans), Counter(m.type for m in spans)
