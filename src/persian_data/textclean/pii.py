"""Personal data in Persian text: find it and replace it with typed placeholders.

Types and placeholders: ``[PHONE]`` (Iranian mobiles and landlines with an area code),
``[NATIONAL_ID]`` (کد ملی), ``[CARD]`` (bank card), ``[IBAN]`` (Sheba), ``[EMAIL]``, ``[URL]``,
``[HANDLE]`` (Telegram/Instagram ``@name``).

How numbers are found. People write a phone number in many ways (``09121234567``,
``0912 123 4567``, ``(0912) 123-4567``, ``+98 912 123 4567``, ``0098-912…``, ``98912…``) and in
Persian (۰–۹), Arabic-Indic (٠–٩) or Latin digits, or a mix. So the masker does not try one regex
per spelling: it finds *digit runs* (digits with at most two separator characters — space,
hyphen, parentheses, NBSP, ZWNJ — between them, a leading ``+`` allowed), cuts each run into its
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

Nothing here logs: the text is personal data.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import NamedTuple

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

_DIGIT = "0-9\u06f0-\u06f9\u0660-\u0669"
D = f"[{_DIGIT}]"
_TO_LATIN = str.maketrans("\u06f0\u06f1\u06f2\u06f3\u06f4\u06f5\u06f6\u06f7\u06f8\u06f9"
                          "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",
                          "01234567890123456789")
_SEP = " \u00a0\u200c\u2009\u202f\\-\u2010\u2011\u2012\u2013()"
# A digit run: digits with at most two separator characters between them (a leading + or "("),
# 10 digits at least (the shortest PII number, a national ID): short numbers never reach Python.
_RUN = re.compile(rf"(?<![{_DIGIT}A-Za-z_])[+(]?{D}(?:[{_SEP}]{{0,2}}{D}){{9,}}\)?")
_GROUP = re.compile(rf"{D}+")
_LATIN = re.compile(r"[A-Za-z]")
_TEN_DIGITS = re.compile(rf"(?:{D}[^{_DIGIT}]{{0,2}}){{9}}{D}")  # 10 digits, ≤ 2 characters apart
_MONEY = re.compile(r"\s*(?:تومان|تومن|ریال|درصد|میلیون|میلیارد|هزار)")

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_URL = re.compile(r"(?i)(?:\bhttps?://|\bwww\.)[^\s<>\"'«»()]+"
                  r"|(?<![\w@.])(?:[a-z0-9-]+\.)+(?:ir|com|org|net|info|me|co|io)\b(?:/[^\s<>\"'«»()]*)?")
_HANDLE = re.compile(r"(?<![\w@.])@[A-Za-z_][A-Za-z0-9_.]{2,30}[A-Za-z0-9_]")
_IBAN = re.compile(rf"(?i)(?<![A-Za-z0-9])IR[ \u00a0-]?{D}{D}(?:[ \u00a0-]?{D}){{22}}(?!{D})")
_TRAILING = ".,;:!?؟،؛)»"

_MOBILE = re.compile(r"(?:0|98|0098)9\d{9}")
_LANDLINE = re.compile(r"(?:0|98|0098)[1-8]\d{9}")


class Match(NamedTuple):
    type: str
    start: int
    end: int


def national_id_valid(digits: str) -> bool:
    """کد ملی: 10 digits; s = Σ d_i·(11−i) for i = 1..9, r = s mod 11; valid iff d10 = r when r < 2,
    else d10 = 11 − r. All-equal digits are never issued."""
    if len(digits) != 10 or not digits.isdigit() or len(set(digits)) == 1:
        return False
    s = sum(int(digits[i]) * (10 - i) for i in range(9)) % 11
    check = int(digits[9])
    return check == s if s < 2 else check == 11 - s


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit() or len(set(digits)) == 1:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


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
    """PII numbers inside one digit run: the longest range of consecutive groups that is one."""
    tail = text[run.end():run.end() + 12]
    if _MONEY.match(tail):
        return []
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


def find_pii(text: str) -> list[Match]:
    """Every personal-data span in `text`, in order, not overlapping."""
    spans: list[Match] = []
    latin = _LATIN.search(text) is not None  # emails, URLs, handles and Sheba all need a Latin letter
    for kind, pattern in (("EMAIL", _EMAIL), ("URL", _URL), ("HANDLE", _HANDLE)) if latin else ():
        for m in pattern.finditer(text):
            end = m.end()
            while end > m.start() and text[end - 1] in _TRAILING:
                end -= 1
            spans.append(Match(kind, m.start(), end))
    for m in _IBAN.finditer(text) if latin else ():
        compact = re.sub(r"[ \u00a0-]", "", m.group()).translate(_TO_LATIN)
        if iban_valid(compact):
            spans.append(Match("IBAN", m.start(), m.end()))
    if _TEN_DIGITS.search(text):  # prefilters in C: most texts have no Latin letter and few digits
        for run in _RUN.finditer(text):
            spans.extend(_numbers(text, run))
    spans.sort(key=lambda m: (m.start, -(m.end - m.start)))
    out: list[Match] = []
    for m in spans:  # the first (and longest) span wins where two overlap
        if not out or m.start >= out[-1].end:
            out.append(m)
    return out


def mask_pii(text: str, mode: str = "mask") -> tuple[str, Counter]:
    """`text` with every personal-data span replaced by its placeholder, and the count per type
    found. Text outside the spans is kept byte for byte. ``mode="keep"`` counts without masking
    (``"drop"`` masks too: dropping the conversation is the caller's decision)."""
    if mode not in ("mask", "drop", "keep"):
        raise ValueError(f"mode must be mask, drop or keep, not {mode!r}")
    spans = find_pii(text)
    if not spans or mode == "keep":
        return text, Counter(m.type for m in spans)
    parts: list[str] = []
    at = 0
    for m in spans:
        parts.append(text[at:m.start])
        parts.append(PLACEHOLDERS[m.type])
        at = m.end
    parts.append(text[at:])
    return "".join(parts), Counter(m.type for m in spans)
