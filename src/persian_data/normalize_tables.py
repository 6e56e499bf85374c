"""The normalizer's character data: which characters fold to which (letters, digits, diacritics,
spaces, controls, presentation forms), and the character table of one `NormalizerConfig`
(`persian_data.normalize` applies it; its module docstring says what each entry is for)."""

from __future__ import annotations

import unicodedata

import numpy as np

ZWNJ = "\u200c"
ZWJ = "\u200d"
TATWEEL = "\u0640"

# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"
ARABIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"
LATIN_DIGITS = "0123456789"

# Arabic-script letter variants -> the Persian letter. Follows hazm 0.10 (MIT) for U+0600-08FF,
# except: U+06C2 (heh goal with hamza) -> ۀ and U+06C3 (teh marbuta goal) -> ة (hazm: ه for
# both), and alef wasla / wavy-hamza alefs, which hazm leaves, are added.
_BASE_SRC = (
    "ؠػؽؾؿكىيٮٯٵٶٷٸٹٺٻټٽٿڀځڂڅڇڈډڊڋڌڍڎڏڐڑڒړڔڕږڗڙښڛڜڝڞڟڠڡڢڣڤڥڦڧڨڪګڬ"
    "ڭڮڰڱڲڳڴڵڶڷڸڹںڻڼڽھڿہۂۃۄۅۆۇۈۉۊۋۍێۏېۑےۓەۮۯۺۻۼۿݐݑݒݓݔݕݖݗݘݙݚݛݜݝݞݟݠ"
    "ݡݢݣݤݥݦݧݨݩݪݫݬݭݮݯݰݱݲݳݴݵݶݷݸݹݺݻݼݽݾݿࢠࢡࢢࢣࢤࢥࢦࢧࢨࢩࢪࢫࢬࢮࢯࢰࢱࢲࢳࢴࢶࢷࢸࢹࢺࢻࢼࢽ"
)
_BASE_DST = (
    "یکیییکییبقاوویتتبتتتبحححچدددددددددررررررررسسسصصطعففففففققککک"
    "ککگگگگگللللنننننهچهههووووووووییوییییهدرشضغهبببببببححددرسعععف"
    "فکککممنننلررسححسرحاایییووییحسسکببجطفقلمییرویدصگوزعکبپتریفقن"
)
assert len(_BASE_SRC) == len(_BASE_DST), (len(_BASE_SRC), len(_BASE_DST))
_BASE_FOLD: dict[str, str] = dict(zip(_BASE_SRC, _BASE_DST))
_BASE_FOLD.update({
    "\u06c2": "\u06c0",  # ۂ heh goal with hamza above -> ۀ
    "\u06c3": "\u0629",  # ۃ teh marbuta goal -> ة
    "\u0671": "\u0627",  # ٱ alef wasla -> ا
    "\u0672": "\u0623",  # ٲ alef with wavy hamza above -> أ
    "\u0673": "\u0625",  # ٳ alef with wavy hamza below -> إ
})

# Diacritics (removed when remove_diacritics). U+0653-0655 (madda, hamza above/below) are
# handled after NFC composition, so they never appear here.
_DIACRITICS = (
    [chr(c) for c in range(0x064B, 0x0653)]  # tanwin, harakat, shadda, sukun
    + [chr(c) for c in range(0x0656, 0x0660)]  # subscript alef, other small marks
    + ["\u0670"]  # superscript alef
    + [chr(c) for c in range(0x0610, 0x061B)]  # honorific and Quranic signs above/below
    + [chr(c) for c in range(0x06D6, 0x06DD)]  # Quranic small high ligatures
    + [chr(c) for c in range(0x06DF, 0x06E5)]
    + ["\u06e7", "\u06e8"]
    + [chr(c) for c in range(0x06EA, 0x06EE)]
    + [chr(c) for c in range(0x08D3, 0x0900) if unicodedata.category(chr(c)) == "Mn"]
)
_HAMZA_MARKS = "\u0653\u0654\u0655"

# Spaces that become one plain space; separators that become a newline.
_ODD_SPACES = ["\t", "\u00a0", "\u1680", "\u180e", "\u202f", "\u205f", "\u3000"] + [
    chr(c) for c in range(0x2000, 0x200B)
]
_NEWLINES = ["\n", "\x0b", "\x0c", "\r", "\x85", "\u2028", "\u2029"]


def _removed_controls() -> list[str]:
    """Control, format (bar ZWNJ/ZWJ), surrogate and noncharacter code points: deleted."""
    out = [chr(c) for c in range(0x00, 0x20) if chr(c) not in "\t\n\x0b\x0c\r"]
    out += [chr(0x7F)] + [chr(c) for c in range(0x80, 0xA0) if c != 0x85]
    for c in range(0xA0, 0x10000):
        ch = chr(c)
        cat = unicodedata.category(ch)
        if cat == "Cf" and ch not in (ZWNJ, ZWJ) or cat == "Cs":
            out.append(ch)
    out += [chr(c) for c in range(0xFDD0, 0xFDF0)] + ["\ufffe", "\uffff"]
    for lo, hi in ((0x110BD, 0x110CE), (0x13430, 0x13440), (0x1BCA0, 0x1BCA4),
                   (0x1D173, 0x1D17B), (0xE0000, 0xE0080)):
        out += [chr(c) for c in range(lo, hi) if unicodedata.category(chr(c)) == "Cf"]
    return sorted(set(out) - {"\u180e"} - set(_AS_ZWNJ))  # U+180E is a space (above)


# Invisible characters that, like ZWNJ, break cursive joining and are what a writer (or a
# keyboard layout) put where a ZWNJ belongs: ZWSP and the bidi marks LRM, RLM, ALM. They become
# ZWNJ, and the ZWNJ rules then keep them only inside a word ("درباره\u200fنفقه" renders, and
# now reads, as "درباره‌نفقه"; beside a space they go).
_AS_ZWNJ = ("\u200b", "\u200e", "\u200f", "\u061c")


_CONTROLS = _removed_controls()


def _presentation_forms() -> dict[str, str]:
    """Arabic presentation forms -> NFKC, folded through the letter table (marks kept bare)."""
    out: dict[str, str] = {}
    for lo, hi in ((0xFB50, 0xFE00), (0xFE70, 0xFF00)):
        for c in range(lo, hi):
            ch = chr(c)
            if unicodedata.category(ch) == "Cn":
                continue
            folded = unicodedata.normalize("NFKC", ch)
            if folded == ch:
                continue
            folded = "".join(_BASE_FOLD.get(x, x) for x in folded)
            if any(unicodedata.category(x) == "Mn" for x in folded):
                # isolated/medial forms of diacritics: " ً", "ـً" -> the mark alone
                folded = folded.replace(" ", "").replace(TATWEEL, "")
            out[ch] = unicodedata.normalize("NFC", folded)
    return out


_PRESENTATION = _presentation_forms()

_DEL_INT = 0xFFFFFFFF  # "delete this character" in the lookup tables
_DEL = np.uint32(_DEL_INT)
_DEL16 = np.uint16(0xFFFF)  # the same in the 16-bit table: U+FFFF (a noncharacter) is deleted
_SEP = "\x00"  # joins a batch of fields; NULs are removed from the fields first
_FIRST_MULTI = 0xFB50  # no character below this expands to several (Arabic presentation forms)
_SMALL = 48  # below this many characters, plain str.translate beats the numpy round trip
_ONE_STRING = 4096  # below this many characters, regex probes decide whether Latin digits need the numpy pass


def _charclass(chars) -> str:
    """A regex character class for `chars`, as compact ranges."""
    cps = sorted({ord(c) for c in chars})
    parts: list[str] = []
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        lo, hi = cps[i], cps[j]
        parts.append(_esc(lo) if lo == hi else f"{_esc(lo)}-{_esc(hi)}")
        i = j + 1
    return "[" + "".join(parts) + "]"


def _esc(cp: int) -> str:
    return f"\\U{cp:08x}" if cp > 0xFFFF else f"\\u{cp:04x}"


def char_table(cfg) -> tuple[dict[str, str], dict[str, str]]:
    """The character table of one `NormalizerConfig`: single characters -> at most one character
    (``""``: deleted), and the characters that expand to several (presentation-form ligatures)."""
    nl = "\n" if cfg.keep_newlines else " "
    table: dict[str, str] = {}
    table.update(_BASE_FOLD)
    if cfg.teh_marbuta == "heh":
        table["\u0629"] = "\u0647"
        table["\u06c3"] = "\u0647"
    if cfg.heh_yeh == "heh":
        table["\u06c0"] = "\u0647"
        table["\u06c2"] = "\u0647"
    table[TATWEEL] = ""
    if cfg.remove_diacritics:
        table.update(dict.fromkeys(_DIACRITICS, ""))
    if cfg.digits == "persian":
        table.update(zip(LATIN_DIGITS, PERSIAN_DIGITS))
        table.update(zip(ARABIC_DIGITS, PERSIAN_DIGITS))
    elif cfg.digits == "latin":
        table.update(zip(PERSIAN_DIGITS, LATIN_DIGITS))
        table.update(zip(ARABIC_DIGITS, LATIN_DIGITS))
    table.update(dict.fromkeys(_CONTROLS, ""))
    table.update(dict.fromkeys(_AS_ZWNJ, ZWNJ))
    table.update(dict.fromkeys(_ODD_SPACES, " "))
    for ch in _NEWLINES:
        if ch != "\n" or nl != "\n":
            table[ch] = nl
    # Presentation forms: fold once more through this config's table (digits, ۀ/ة, marks).
    multi: dict[str, str] = {}
    for ch, folded in _PRESENTATION.items():
        folded = "".join(table.get(x, x) for x in folded)
        if len(folded) <= 1:
            table[ch] = folded
        else:
            multi[ch] = folded
    return {k: v for k, v in table.items() if v != k}, multi
