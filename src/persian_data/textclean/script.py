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


# Letters are what str.isalpha() calls letters; in C: \w minus digits and "_" (Python's \w is
# isalnum() or "_"), then the Arabic-script blocks (Arabic, Supplement, Presentation Forms A/B).
_NOT_LETTER = re.compile(r"[\W\d_]+")
_ARABIC_SCRIPT = re.compile(r"[\u0600-\u06FF\u0750-\u077F\uFB50-\uFDFF\uFE70-\uFEFF]+")


def persian_ratio(text: str) -> float:
    """Arabic-script letters / all letters (0.0 when there is no letter)."""
    letters = _NOT_LETTER.sub("", _PLACEHOLDER.sub(" ", text))
    if not letters:
        return 0.0
    return (len(letters) - len(_ARABIC_SCRIPT.sub("", letters))) / len(letters)


# A letter outside the Arabic-script blocks (the class is "letter" minus those blocks).
_ARABIC_LETTER = re.compile(r"(?=[^\W\d_])[\u0600-\u06FF\u0750-\u077F\uFB50-\uFDFF\uFE70-\uFEFF]")
_OTHER_LETTER = re.compile(r"[^\W\d_\u0600-\u06FF\u0750-\u077F\uFB50-\uFDFF\uFE70-\uFEFF]")


def is_mostly_persian(text: str, threshold: float = DEFAULT_THRESHOLD,
                      counts: tuple[int, int] | None = None) -> bool:
    """`persian_ratio(text) >= threshold`. `counts`: (Arabic-script letters, other letters) of
    `text`, when a batch pass counted them (`batch.analyze`); used unless the text holds a "[" (a
    placeholder is not counted)."""
    if counts is not None and "[" not in text:
        arabic, other = counts
        if not other:
            return (1.0 if arabic else 0.0) >= threshold
        return arabic / (arabic + other) >= threshold
    if "[" in text:
        text = _PLACEHOLDER.sub(" ", text)
    if _OTHER_LETTER.search(text) is None:  # the common case: one scan, no copy of the text
        return (1.0 if _ARABIC_LETTER.search(text) is not None else 0.0) >= threshold
    return persian_ratio(text) >= threshold
