"""Persian text for matplotlib: shaped, right to left, in a font that has the glyphs.

matplotlib 3.11 lays text out with libraqm, which shapes and reorders by itself: there the text is
passed through untouched. Older matplotlib draws one glyph per code point, left to right, with no
shaping: Persian would come out as isolated letters in reverse order; there arabic_reshaper turns letters into their contextual
presentation forms (initial/medial/final/isolated, lam-alef ligatures) and python-bidi's
`get_display` reorders a mixed Persian/Latin line into visual order, the well-kept pair for this.
The font is found through matplotlib's font manager: the first installed family whose glyph map
holds the Persian letters and their presentation forms; Latin falls back to DejaVu Sans.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ..errors import PersianDataError

# Arabic script blocks (base, supplement, presentation forms A and B).
_ARABIC = re.compile("[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]")
_JOINERS = str.maketrans("", "", "\u200c\u200d")  # shaping is done; the font needs no ZWNJ glyph
# Preferred families, best first. DejaVu Sans holds Arabic presentation forms too (last resort).
PREFERRED_FAMILIES = ("Vazirmatn", "Noto Naskh Arabic", "Noto Sans Arabic", "DejaVu Sans")
# What a family must cover: the Persian letters پ چ ژ گ ی ک and the presentation forms the
# reshaper emits for them (final yeh farsi, medial gaf, lam-alef ligature).
_REQUIRED = [0x067E, 0x0686, 0x0698, 0x06AF, 0x06CC, 0x06A9, 0xFBFD, 0xFB95, 0xFEFB, 0xFE8E]


class FontMissingError(PersianDataError):
    """No installed font can draw Persian."""


def has_persian(text: str) -> bool:
    return bool(_ARABIC.search(text or ""))


@lru_cache(maxsize=1)
def native_shaping() -> bool:
    """matplotlib >= 3.11 lays text out with libraqm (shaping and bidi of its own): then the text
    must go in as it is, in logical order; reshaping it first would reverse it twice."""
    from matplotlib import ft2font

    return bool(getattr(ft2font, "__libraqm_version__", None))


def shape(text: str) -> str:
    """`text` as matplotlib must be given it to draw it shaped and right to left."""
    if not has_persian(text) or native_shaping():
        return text
    import arabic_reshaper
    # The pure-Python algorithm, not python-bidi 0.6's Rust `bidi.get_display`: the latter does
    # not mirror brackets, so "(hours)" inside Persian came out as ")hours(".
    from bidi.algorithm import get_display

    return get_display(arabic_reshaper.reshape(text)).translate(_JOINERS)


@lru_cache(maxsize=1)
def persian_font() -> tuple[str, str]:
    """(family, file) of the first installed font that draws Persian; FontMissingError if none."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    by_family: dict[str, list] = {}
    for entry in font_manager.fontManager.ttflist:
        by_family.setdefault(entry.name, []).append(entry)
    for family in PREFERRED_FAMILIES:
        for entry in sorted(by_family.get(family, []), key=lambda e: (e.style != "normal", abs(e.weight - 400))):
            try:
                charmap = FT2Font(entry.fname).get_charmap()
            except (OSError, RuntimeError):
                continue
            if all(code in charmap for code in _REQUIRED):
                return family, entry.fname
    raise FontMissingError(
        "card: no installed font can draw Persian (tried " + ", ".join(PREFERRED_FAMILIES) + "); install one, "
        "e.g. `apt-get install fonts-noto-core` (Noto Naskh/Sans Arabic) or fonts-vazirmatn")


def font_families() -> list[str]:
    """matplotlib's font.family: the Persian font first, DejaVu Sans for what it lacks (Latin)."""
    family, _ = persian_font()
    return [family] if family == "DejaVu Sans" else [family, "DejaVu Sans"]
