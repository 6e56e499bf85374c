"""The project's Persian text normalizer: table-driven, fast, idempotent.

    >>> normalize("اصلاح نويسه ها و استفاده از نیم‌فاصله پردازش را آسان مي كند")
    'اصلاح نویسه‌ها و استفاده از نیم‌فاصله پردازش را آسان می‌کند'

Used for every chat row and every speech transcript, so it is built for speed: one character
table applied through a numpy lookup (`normalize_many` runs it once over a whole batch of
fields), and a handful of precompiled regexes that start with a literal, each skipped by a
cheap substring test when it has nothing to do (~40 ns a character for the whole pipeline on
batches, on this machine).
hazm's `Normalizer` is the behaviour the field expects; hazm itself is not a dependency (0.10.0
pins numpy==1.24.3 and pulls gensim, fasttext and scikit-learn, and its lexicon passes are
slow), so this module reproduces its table-driven part and its regex spacing rules, and leaves
out the parts that need hazm's lexicon (see below).

What `normalize` does, in order
-------------------------------
1. ``\\r\\n`` becomes ``\\n``; the text is put in Unicode **NFC** (see "Unicode form").
2. Arabic presentation forms (U+FB50-FDFF, U+FE70-FEFF) fold to the letters they show: their
   compatibility (NFKC) mapping, then step 3's letter table. ``ﻻ`` -> ``لا``, ``ﮐ`` -> ``ک``,
   ``ﺉ`` -> ``ئ``, ``﷼`` -> ``ریال``. Stray presentation forms of diacritics become the bare mark.
3. One character table:
   * Arabic letters to Persian: ``ي ى`` -> ``ی``, ``ك`` -> ``ک``, ``ە`` ``ھ`` ``ہ`` -> ``ه``,
     plus the long tail of Urdu/Pashto/Sindhi/Kurdish/Quranic variants (the list follows hazm
     0.10's table, MIT licence, with the exceptions noted in `normalize_tables._BASE_FOLD`).
   * ``ۀ`` / ``ة``: see "The ۀ / ة decision".
   * Tatweel (U+0640) removed.
   * Diacritics (harakat U+064B-065F, superscript alef U+0670, Quranic marks) removed when
     ``remove_diacritics`` (the default, as in hazm).
   * Digits follow ``digits``: ``"persian"`` (default, as hazm) maps Latin 0-9 and Arabic-Indic
     ٠-٩ to ۰-۹; ``"latin"`` maps both Persian and Arabic-Indic to 0-9; ``"keep"`` leaves them.
     Unlike hazm, **Latin tokens keep their digits** whatever the policy: a whitespace-separated
     token holding an ASCII letter (``user4.law@example.com``, ``https://…/12``, ``@ali_1370``,
     ``IR82…``, ``report_2023.pdf``, ``A4-17``, ``mp3``), and a token of no letter at all whose
     nearest lettered token before it, on the same line, is such a token (``Windows 10``, the
     groups of ``IR82 0540 1026 …``). A number before a Latin word (``۱۰ GB``) or among Persian
     words (``ماده ۱۰``) follows the policy.
   * Control characters (C0/C1 except tab and newline) and format characters (BOM, soft
     hyphen, bidi embeddings and isolates, ...) are removed; ZWSP and the bidi marks LRM, RLM
     and ALM, which also break cursive joining and stand where a ZWNJ belongs, become ZWNJ (and
     go unless inside a word, step 5); lone surrogates and noncharacters are removed (they
     cannot be written as UTF-8).
   * Odd spaces (NBSP, en/em/thin/narrow spaces, ideographic space, tab) become one space;
     line/paragraph separators and NEL become ``\\n`` (or a space with ``keep_newlines=False``).
4. A hamza written as a separate mark after yeh or heh is joined: ``ی`` + U+0654 -> ``ئ``,
   ``ه`` + U+0654 -> ``ۀ``; leftover madda/hamza marks go with the diacritics.
5. ZWJ is removed unless it sits between two non-Arabic, non-space characters (emoji
   sequences). ZWNJ: runs collapse to one; a ZWNJ survives only *inside* a word, between two
   word characters (letters, digits, marks). Next to a space, at either end of a word, next to
   punctuation or at either end of the string, it is removed. ``می‌خواهم`` keeps its ZWNJ.
6. Spaces: runs become one space, no space at the start or end of a line, at most one blank
   line (three or more newlines become two), the string is stripped.
7. ``affix_spacing`` (default on; hazm's regex rules): ``نمی کنم`` -> ``نمی‌کنم``,
   ``می خواهم`` -> ``می‌خواهم``, ``کتاب ها`` -> ``کتاب‌ها`` (also ``های``, ``هایی``, ``ترین``),
   ``خانه ی`` -> ``خانه‌ی``, ``خسته ام`` -> ``خسته‌ام`` (``ام ایم اش اند ای اید ات`` after a
   final ``ه``), ``جمعهها`` -> ``جمعه‌ها``. Unlike hazm, ``تر``/``تری``/``گر``/``گری`` are not
   joined: they are also words (wet, if) and without hazm's lexicon a join would be a guess.
8. ``punctuation_spacing`` (default on): no space before ``. : ! ، ؛ ؟ » ) ] }`` when the mark
   ends a word (is followed by a space, the end of the text or another mark; `` ...`` keeps
   its space), none after ``« ( [ {``. Unlike hazm, no space is *added* after punctuation
   (that breaks URLs, ``1.5``, ``e.g.``).

Not done (they need hazm's lexicon, or rewrite the author's style, or cost too much for what
they fix): merging compound words (``زمین لرزه`` -> ``زمین‌لرزه``), cutting repeated letters
(``سلاممممم``), separating a glued ``می`` (``میخواهم``), a space between a number and a word
(``۹متر``), quotes to guillemets, ``...`` to ``…``, ``%`` to ``٪``. Unlike hazm the digit
policy stops at Latin tokens (``mp3`` stays ``mp3``, not ``mp۳``): an email, URL or IBAN with a
Persian digit in it is neither what its owner wrote nor what a pattern for it expects.

Unicode form: NFC plus targeted folding, not NFKC
-------------------------------------------------
NFC only composes canonically equivalent sequences, so it never changes what a Persian reader
sees; it does turn ``ا`` + U+0653 into ``آ``, ``ي`` + U+0654 into ``ئ`` and ``ە`` + U+0654 into
``ۀ``. Those compositions run *before* the letter table, so ``ئ`` is not split into ``ی`` plus
a stray mark by the ``ي`` -> ``ی`` rule.
NFKC is not applied to the whole text because it breaks Persian text in several ways:
* its decomposition half (NFKD) splits ``آ``, ``أ``, ``ئ``, ``ۀ`` into a letter plus a
  combining mark; a pipeline that then folds letters or strips marks (as every Persian
  normalizer does) turns ``ئ`` into ``ی``+mark and ``ۀ`` into ``ه``+mark (hazm's own table
  maps the presentation forms of ``آ ئ ۀ`` to ``ا ی ه``, losing the madda and hamza), and
  dropping marks turns ``آ`` into ``ا``;
* it rewrites the high-hamza letters ``ٵ ٶ ٷ ٸ`` into two characters, and the presentation
  forms of Arabic *yeh* and *alef maksura* into Arabic ``ي``/``ى``, not Persian ``ی``;
* outside Arabic it changes meaning: ``m²`` -> ``m2``, ``½`` -> ``1⁄2``, ``…`` -> ``...``.
So compatibility folding is applied only where it is wanted: the Arabic presentation-form
blocks (folded through the letter table afterwards) and the space characters.

The ۀ / ة decision
------------------
* ``ۀ`` (U+06C0, heh with yeh above: the ezafe after a silent heh, ``خانۀ من``) is a Persian
  letter and is **kept**, as hazm keeps it. Its other spellings fold to it: ``ه``/``ە`` +
  U+0654, ``ۂ`` (U+06C2), and its presentation forms (which hazm folds to a bare ``ه``,
  dropping the ezafe). ``heh_yeh="heh"`` folds it to ``ه`` instead.
* ``ة`` (teh marbuta) is **kept** by default: in this corpus it appears in Arabic quotations,
  legal Arabic terms and names, where ``ه`` would misspell the Arabic; Persian spellings of
  those words already use ``ه``/``ت``. ``ۃ`` (U+06C3) folds to ``ة``. ``teh_marbuta="heh"``
  maps it to ``ه``.

Guarantees (tested with hypothesis): `normalize` never raises on any `str`, is idempotent
(``normalize(normalize(x)) == normalize(x)``), returns NFC text that encodes as UTF-8, and never
leaves a ZWNJ next to whitespace, at a word edge or at either end of the string.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Literal

import numpy as np

from .latin_tokens import ASCII_LETTER as _ASCII_LETTER
from .latin_tokens import latin_digits as _latin_digits
from .normalize_context import PUNCT, SPACES_AND_LINES, _ZWJ_DROP, _ZWNJ_BAD, _ZWNJ_RUN, _affix
from .normalize_tables import (_DEL, _DEL16, _DEL_INT, _FIRST_MULTI, _ONE_STRING, _SEP, _SMALL, _charclass,
                               char_table)
from .normalize_tables import ARABIC_DIGITS, LATIN_DIGITS, PERSIAN_DIGITS, TATWEEL, ZWJ, ZWNJ  # noqa: F401

__all__ = ["NormalizerConfig", "DEFAULT", "normalize", "normalize_many", "make_normalizer", "ZWNJ"]

DigitsPolicy = Literal["persian", "latin", "keep"]


@dataclass(frozen=True)
class NormalizerConfig:
    """Switches of the normalizer. Frozen and hashable: compiled tables are cached per config."""

    remove_diacritics: bool = True
    digits: DigitsPolicy = "persian"
    # ۀ: "keep" (fold its variants to U+06C0) or "heh" (fold it to ه).
    heh_yeh: Literal["keep", "heh"] = "keep"
    # ة: "keep" or "heh" (map to ه).
    teh_marbuta: Literal["keep", "heh"] = "keep"
    # False: newlines (and line separators) become spaces; for one-line fields (transcripts).
    keep_newlines: bool = True
    affix_spacing: bool = True
    punctuation_spacing: bool = True

    def __post_init__(self) -> None:
        if self.digits not in ("persian", "latin", "keep"):
            raise ValueError(f"digits must be 'persian', 'latin' or 'keep', not {self.digits!r}")
        if self.heh_yeh not in ("keep", "heh"):
            raise ValueError(f"heh_yeh must be 'keep' or 'heh', not {self.heh_yeh!r}")
        if self.teh_marbuta not in ("keep", "heh"):
            raise ValueError(f"teh_marbuta must be 'keep' or 'heh', not {self.teh_marbuta!r}")


DEFAULT = NormalizerConfig()

# --------------------------------------------------------------------------------------------
# Compiled form of one config
# --------------------------------------------------------------------------------------------
#
# Speed notes. A regex that starts with a character class scans at ~40 ns/char in CPython's
# `re`, and `str.translate` costs ~40-80 ns/char on non-ASCII text; a regex that starts with a
# literal, `in`, `str.replace` and NFC cost 0.1-4 ns/char. So: the character table runs through
# a numpy lookup table (one pass over a whole batch of fields in `normalize_many`), and every
# regex below starts with a literal and is skipped by an `in` test when it has nothing to do.


class _Compiled:
    """Tables and regexes for one NormalizerConfig."""

    def __init__(self, cfg: NormalizerConfig) -> None:
        self.cfg = cfg
        table, multi = char_table(cfg)
        # dict for str.translate (small strings): one- and many-character values alike
        self.trans = {ord(k): v for k, v in table.items()}
        self.trans.update({ord(k): v for k, v in multi.items()})
        self.trans.pop(ord(_SEP), None)  # the batch separator passes through (see `many`)
        # numpy lookup tables (batches): code point -> code point, or "delete". The 16-bit BMP
        # one (128 KiB, stays in cache) serves nearly every batch; the full 32-bit one (4.4 MB)
        # is built on the first batch with a character above U+FFFF (an emoji, say).
        self.single = {ord(k): (ord(v) if v else _DEL_INT) for k, v in table.items()}
        keys = np.fromiter(self.single.keys(), dtype=np.int64, count=len(self.single))
        vals = np.fromiter(self.single.values(), dtype=np.uint32, count=len(self.single))
        bmp = keys < 0x10000
        lut = np.arange(0x10000, dtype=np.uint32)
        lut[keys[bmp]] = vals[bmp]
        lut[ord(_SEP)] = ord(_SEP)  # the batch separator passes through (input NULs are removed)
        self.lut_bmp = lut
        kept = lut[lut != _DEL]
        assert lut[0xFFFF] == _DEL and not ((kept >= 0xD800) & (kept < 0xE000)).any()
        self.lut16 = np.where(lut == _DEL, _DEL16, lut).astype(np.uint16)
        self.multi_marks = np.zeros(0x10000, dtype=bool)  # expands to several characters
        for k in multi:
            self.multi_marks[ord(k)] = True
        self._lut_full: np.ndarray | None = None
        self.multi = multi
        assert all(ord(k) >= _FIRST_MULTI for k in multi)
        self.multi_re = re.compile(_charclass(multi)) if multi else None
        # digits the policy changes; inside Latin tokens they are put back (see `_latin_digits`)
        changed = [d for d in LATIN_DIGITS + PERSIAN_DIGITS + ARABIC_DIGITS if self.trans.get(ord(d), d) != d]
        self.digit_changed = np.zeros(0x10000, dtype=bool)
        self.digit_changed[[ord(d) for d in changed]] = True
        self.small_digits = re.compile(_charclass(changed)) if changed else None
        self.heh_yeh_target = "\u0647" if cfg.heh_yeh == "heh" else "\u06c0"
        # ه + hamza above is ۀ; when ۀ itself folds to ه, every such hamza goes
        self.heh_hamza_re = re.compile("\u0647\u0654+" if cfg.heh_yeh == "heh" else "\u0647\u0654")
        self.remove_hamza_marks = cfg.remove_diacritics
        self.affix = cfg.affix_spacing
        self.punct = cfg.punctuation_spacing

    # -- stage A: the character table ----------------------------------------------------
    def _table(self, s: str) -> str:
        """NFC, presentation forms, the character table. `s` may hold _SEP-joined fields."""
        if "\r" in s:
            s = s.replace("\r\n", "\n")
        s = unicodedata.normalize("NFC", s)  # returns at once when already NFC
        # Latin-token digits to put back? Found with numpy on batches; on one string, two regex
        # probes first (the numpy pass costs tens of microseconds whatever the length)
        latin_digits = self.small_digits is not None and (len(s) >= _ONE_STRING or (
            _ASCII_LETTER.search(s) is not None and self.small_digits.search(s) is not None))
        if len(s) < _SMALL and not latin_digits:
            return s.translate(self.trans)
        b = s.encode("utf-16-le", "surrogatepass")
        a16 = np.frombuffer(b, dtype=np.uint16)
        if self.multi_re is not None and a16.max() >= _FIRST_MULTI:
            hi = a16[a16 >= _FIRST_MULTI]  # presentation forms and a few others
            if self.multi_marks.take(hi).any():
                multi = self.multi
                s = self.multi_re.sub(lambda m: multi[m.group()], s)
                b = s.encode("utf-16-le", "surrogatepass")
                a16 = np.frombuffer(b, dtype=np.uint16)
        if len(b) == 2 * len(s):  # nothing above U+FFFF: 16-bit units, the 128 KiB table
            m16 = self.lut16.take(a16)
            gone16 = m16 == _DEL16
            if gone16.any():
                keep16 = ~gone16
                m16, a16 = m16[keep16], a16[keep16]
            if latin_digits:
                fixed = _latin_digits(a16, m16, self.digit_changed)
                m16 = m16 if fixed is None else fixed
            return m16.tobytes().decode("utf-16-le")
        a32 = np.frombuffer(s.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        m = self._full_lut().take(a32)
        gone = m == _DEL
        if gone.any():
            keep = ~gone
            m, a32 = m[keep], a32[keep]
        if latin_digits:
            fixed = _latin_digits(a32, m, self.digit_changed)
            m = m if fixed is None else fixed
        return m.tobytes().decode("utf-32-le")

    def _full_lut(self) -> np.ndarray:
        if self._lut_full is None:
            full = np.arange(0x110000, dtype=np.uint32)
            full[:0x10000] = self.lut_bmp
            for k, v in self.single.items():
                if k >= 0x10000:
                    full[k] = v
            self._lut_full = full
        return self._lut_full

    # -- stage B: context rules -----------------------------------------------------------
    def _rules(self, s: str) -> str:
        """Everything after the table. `s` may hold _SEP-joined fields: every rule treats the
        separator like the end of a string, so a batch gives what each field alone gives."""
        if "\u0653" in s or "\u0654" in s or "\u0655" in s:
            s = unicodedata.normalize("NFC", s)
            if "\u06cc\u0654" in s:
                s = s.replace("\u06cc\u0654", "\u0626")
            if "\u0647\u0654" in s:
                s = self.heh_hamza_re.sub(self.heh_yeh_target, s)
            if self.remove_hamza_marks:
                s = s.replace("\u0653", "").replace("\u0654", "").replace("\u0655", "")
        if ZWJ in s:
            s = _ZWJ_DROP.sub("", s)
        if ZWNJ in s:
            s = _ZWNJ_BAD.sub("", s)
            if s.startswith(ZWNJ):
                s = s.lstrip(ZWNJ)
            if ZWNJ + ZWNJ in s:
                s = _ZWNJ_RUN.sub(ZWNJ, s)
        if "  " in s or "\n" in s:
            s = SPACES_AND_LINES(s)
        # (fields are stripped by the caller, after these rules: every rule below treats
        # whitespace at a field's edge like the edge itself)
        if self.affix and " " in s:
            s = _affix(s)
        if self.affix and "هها" in s:
            s = s.replace("هها", "ه" + ZWNJ + "ها")
        if self.punct and " " in s:
            s = PUNCT(s)
        if not unicodedata.is_normalized("NFC", s):  # a deletion exposed marks to reorder
            s = unicodedata.normalize("NFC", s)
        return s

    # -- entry points ---------------------------------------------------------------------
    def __call__(self, text: str) -> str:
        if not isinstance(text, str):
            raise TypeError(f"normalize() wants str, got {type(text).__name__}")
        if not text:
            return ""
        if _SEP in text:  # the table would delete it anyway; here it would split the text
            text = text.replace(_SEP, "")
        return self._rules(self._table(text)).strip()

    def many(self, texts: list[str]) -> list[str]:
        """Normalize many fields in one pass over their _SEP-joined text."""
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"normalize_many() wants str items, got {type(t).__name__}")
        if not texts:
            return []
        joined = _SEP.join(t.replace(_SEP, "") if _SEP in t else t for t in texts)
        out = [f.strip() for f in self._rules(self._table(joined)).split(_SEP)]
        if len(out) != len(texts):  # cannot happen: NULs were removed, the rules keep _SEP
            raise AssertionError("normalize_many: field separator lost")
        return out


@lru_cache(maxsize=32)
def _compiled(cfg: NormalizerConfig) -> _Compiled:
    return _Compiled(cfg)


_DEFAULT_COMPILED = _compiled(DEFAULT)


def make_normalizer(config: NormalizerConfig | None = None) -> Callable[[str], str]:
    """The normalizer for `config` as a plain callable (for hot loops: no per-call lookup)."""
    return _DEFAULT_COMPILED if config is None or config == DEFAULT else _compiled(config)


def normalize(text: str, config: NormalizerConfig | None = None) -> str:
    """Normalize Persian `text` (see the module docstring). `config` defaults to `DEFAULT`."""
    if config is None or config is DEFAULT:
        return _DEFAULT_COMPILED(text)
    return _compiled(config)(text)


def normalize_many(texts: list[str], config: NormalizerConfig | None = None) -> list[str]:
    """`[normalize(t, config) for t in texts]`, faster: the table runs once over the batch."""
    c = _DEFAULT_COMPILED if config is None or config is DEFAULT else _compiled(config)
    return c.many(texts)


if __name__ == "__main__":  # pragma: no cover - `python -m persian_data.normalize < text`
    for line in sys.stdin:
        print(normalize(line.rstrip("\n")))
