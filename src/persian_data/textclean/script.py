"""Is a text mostly Persian script?

`persian_ratio` is the share of Arabic-script letters among all letters, after the placeholders
of the PII masker are taken out (they are Latin by design). Digits, punctuation and spaces are not
letters and do not count either way. The default threshold 0.6 keeps legal Persian that quotes a
Latin term, a law's English name or a URL, and drops text that is mostly Latin (English, Finglish:
Persian typed in Latin letters) or mostly another script; a text with no letter at all is not
Persian.
"""

from __future__ import annotations

import re

DEFAULT_THRESHOLD = 0.6
_PLACEHOLDER = re.compile(r"\[(?:PHONE|NATIONAL_ID|CARD|IBAN|EMAIL|URL|HANDLE)\]")


def _arabic_script(ch: str) -> bool:
    o = ord(ch)
    return 0x0600 <= o <= 0x06FF or 0x0750 <= o <= 0x077F or 0xFB50 <= o <= 0xFDFF or 0xFE70 <= o <= 0xFEFF


def persian_ratio(text: str) -> float:
    """Arabic-script letters / all letters (0.0 when there is no letter)."""
    text = _PLACEHOLDER.sub(" ", text)
    letters = persian = 0
    for ch in text:
        if ch.isalpha():
            letters += 1
            persian += _arabic_script(ch)
    return persian / letters if letters else 0.0


def is_mostly_persian(text: str, threshold: float = DEFAULT_THRESHOLD) -> bool:
    return persian_ratio(text) >= threshold
