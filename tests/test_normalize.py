"""The shared Persian normalizer: specific cases, hazm's documented examples, properties."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persian_data.normalize import (
    DEFAULT,
    ZWNJ,
    NormalizerConfig,
    make_normalizer,
    normalize,
    normalize_many,
)

Z = ZWNJ
ZWJ = "\u200d"


# ---------------------------------------------------------------------------------------------
# specific cases
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, want", [
    # Arabic letters -> Persian
    ("يك", "یک"),
    ("مصطفى", "مصطفی"),
    ("كتاب علي", "کتاب علی"),
    ("ھمه", "همه"),  # heh doachashmee
    ("ەوە", "هوه"),  # ae
    # ZWNJ
    (f"می{Z}خواهم", f"می{Z}خواهم"),  # kept inside a word
    (f"کاروان{Z}{Z}{Z}سرا", f"کاروان{Z}سرا"),  # runs collapse
    (f"{Z}سلام{Z} به {Z}همه{Z}", "سلام به همه"),  # word edges, beside spaces, string edges
    (f"کتاب{Z}.", "کتاب."),  # before punctuation
    (f"{Z}", ""),
    (f"{Z} {Z}", ""),
    (f"کتاب{Z} ها", f"کتاب{Z}ها"),  # ZWNJ beside a space goes; the plural rule joins
    # tatweel
    ("سلام دنیـــا", "سلام دنیا"),
    ("ســــوال", "سوال"),
    # control characters and odd spaces
    ("a\u00a0b\u2009c\x07d\ufeffe\u00adf\u3000g\th", "a b cdef g h"),
    ("سلام\u200f\u200e دنیا\u202fخوب", "سلام دنیا خوب"),
    ("درباره\u200fنفقه", f"درباره{Z}نفقه"),  # RLM/LRM/ZWSP break joining like ZWNJ: become it
    ("\u200bسلام\u200e\u200bدنیا\u061c", f"سلام{Z}دنیا"),
    ("سلام\x00\x01\x1b\x7f دنیا\x85خوب", "سلام دنیا\nخوب"),
    ("اول\r\nدوم\rسوم\u2028چهارم\n\n\n\nپنجم", "اول\nدوم\nسوم\nچهارم\n\nپنجم"),
    ("  سلام  \n  دنیا  ", "سلام\nدنیا"),
    ("سلام\ud800دنیا", "سلامدنیا"),  # a lone surrogate cannot be written as UTF-8
    # ZWJ: kept in emoji sequences, removed in Persian
    ("👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),
    ("سلام\u200dدنیا", "سلامدنیا"),
    # diacritics (default: removed)
    ("حَذفِ اِعراب", "حذف اعراب"),
    ("اَوَّلاً", "اولا"),
    ("حتیٰ", "حتی"),  # superscript alef
    # digits (default: Persian)
    ("5 درصد", "۵ درصد"),
    ("١٢٣ 456 ۷۸۹", "۱۲۳ ۴۵۶ ۷۸۹"),
    # composition first, so marks are never split off letters (the NFKC/NFD trap)
    ("ا\u0653ب", "آب"),  # alef + madda -> آ, not ا once marks are removed
    ("ي\u0654", "ئ"),  # Arabic yeh + hamza -> ئ, not ی + a stray mark
    ("ی\u0654", "ئ"),
    ("ﺉ", "ئ"),  # presentation form: hazm gives ی
    ("ﺁب", "آب"),  # presentation form: hazm gives اب
    ("ﻻ", "لا"),
    ("ﷲ", "الله"),
    ("﷼", "ریال"),
    ("ﮐﺘﺎﺏ", "کتاب"),
    # ۀ kept, its variants folded to it; ة kept
    ("خانۀ من", "خانۀ من"),
    ("خانه\u0654 من", "خانۀ من"),
    ("ﮤ", "ۀ"),
    ("ۂ", "ۀ"),
    ("شرکة", "شرکة"),
    ("ۃ", "ة"),
    # affix spacing (hazm's regex rules)
    ("خانه ی من", f"خانه{Z}ی من"),
    ("خسته ام", f"خسته{Z}ام"),
    ("کتاب ها را خریدم", f"کتاب{Z}ها را خریدم"),
    ("نمی کنم", f"نمی{Z}کنم"),
    ("( می خواهم", f"(می{Z}خواهم"),
    ("دائمی کردن", "دائمی کردن"),  # "می " ending a word is not the prefix
    ("لباس تر", "لباس تر"),  # not joined: تر is also a word (wet)
    # punctuation spacing
    ("( سلام )", "(سلام)"),
    ("سلام ، خوبی ؟", "سلام، خوبی؟"),
    ("اعلام کرد : « خبر »", "اعلام کرد: «خبر»"),
    ("و ...", "و ..."),  # an ellipsis keeps its space
    ("از .NET استفاده", "از .NET استفاده"),  # a mark that does not end a word keeps it
    ("", ""),
    ("   ", ""),
])
def test_cases(raw, want):
    assert normalize(raw) == want


def test_digit_policies():
    mixed = "١٢٣ 456 ۷۸۹"
    assert normalize(mixed, NormalizerConfig(digits="persian")) == "۱۲۳ ۴۵۶ ۷۸۹"
    assert normalize(mixed, NormalizerConfig(digits="latin")) == "123 456 789"
    assert normalize(mixed, NormalizerConfig(digits="keep")) == mixed


def test_diacritics_optional():
    keep = NormalizerConfig(remove_diacritics=False)
    assert normalize("حَذفِ اِعراب", keep) == "حَذفِ اِعراب"
    assert normalize("حَذفِ اِعراب") == "حذف اعراب"


def test_heh_yeh_and_teh_marbuta_options():
    cfg = NormalizerConfig(heh_yeh="heh", teh_marbuta="heh")
    assert normalize("خانۀ شرکة", cfg) == "خانه شرکه"
    assert normalize("خانه\u0654\u0654", cfg) == "خانه"
    assert normalize("ﮤ ۃ", cfg) == "ه ه"


def test_keep_newlines_off():
    assert normalize("اول\nدوم\u2028سوم", NormalizerConfig(keep_newlines=False)) == "اول دوم سوم"


def test_spacing_rules_can_be_switched_off():
    cfg = NormalizerConfig(affix_spacing=False, punctuation_spacing=False)
    assert normalize("کتاب ها ( سلام ) .", cfg) == "کتاب ها ( سلام ) ."


def test_config_validation_and_api():
    with pytest.raises(ValueError):
        NormalizerConfig(digits="roman")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        normalize(None)  # type: ignore[arg-type]
    assert normalize("يك", DEFAULT) == normalize("يك") == make_normalizer()("يك") == "یک"
    assert make_normalizer(NormalizerConfig(digits="latin"))("۵") == "5"
    assert normalize_many([]) == []
    assert normalize_many(["يك", "", "  ", "5"]) == ["یک", "", "", "۵"]
    with pytest.raises(TypeError):
        normalize_many(["a", 1])  # type: ignore[list-item]
    # a NUL in a field does not split it (the batch separator is a NUL)
    assert normalize_many(["a\x00b", "c"]) == ["ab", "c"]


def test_long_text_takes_the_batch_path():
    text = "كتاب " * 200 + "5"
    assert normalize(text) == ("کتاب " * 200 + "۵")


# ---------------------------------------------------------------------------------------------
# hazm's documented examples (hazm 0.10.0 Normalizer docstrings and README)
# ---------------------------------------------------------------------------------------------

HAZM_SAME = [
    # README
    ("اصلاح نويسه ها و استفاده از نیم‌فاصله پردازش را آسان مي كند",
     "اصلاح نویسه‌ها و استفاده از نیم‌فاصله پردازش را آسان می‌کند"),
    # correct_spacing
    ("سلام   دنیا", "سلام دنیا"),
    ("کاروان‌‌سرا", "کاروان‌سرا"),
    ("‌سلام‌ به ‌همه‌", "سلام به همه"),
    ("سلام دنیـــا", "سلام دنیا"),
    ("جمعهها که کار نمی کنم مطالعه می کنم", "جمعه‌ها که کار نمی‌کنم مطالعه می‌کنم"),
    (' "سلام به همه"   ', '"سلام به همه"'),
    ("", ""),
    # remove_diacritics
    ("حَذفِ اِعراب", "حذف اعراب"),
    ("آمدند", "آمدند"),
    ("متن بدون اعراب", "متن بدون اعراب"),
    # persian_number
    ("5 درصد", "۵ درصد"),
    ("۵ درصد", "۵ درصد"),
    # token_spacing, as text
    ("کتاب ها", "کتاب‌ها"),
    ("او می رود", "او می‌رود"),
    # seperate_mi, the negative example
    ("میز", "میز"),
]

# Where we differ, and why (each needs hazm's lexicon, or is a deliberate choice).
HAZM_DIFFERENT = [
    # (input, hazm's output, ours, why)
    ('اِعلاممممم کَرد : « زمین لرزه ای به بُزرگیِ 6 دهم ریشتر ...»',
     "اعلام کرد: «زمین‌لرزه‌ای به بزرگی ۶ دهم ریشتر …»",
     "اعلاممممم کرد: «زمین لرزه‌ای به بزرگی ۶ دهم ریشتر ...»",
     "repeated letters and compound words need the lexicon; ... is not rewritten to …"),
    ("به طول ۹متر و عرض۶", "به طول ۹ متر و عرض ۶", "به طول ۹متر و عرض۶",
     "no space inserted between digits and letters"),
    ("نمیدانم چه میگفت", "نمی‌دانم چه می‌گفت", "نمیدانم چه میگفت", "a glued می needs the verb list"),
    ("سلاممممم به همه", "سلام به همه", "سلاممممم به همه", "repeated letters need the lexicon"),
    ("اخلال گر", "اخلال‌گر", "اخلال گر", "گر is also a word (if)"),
    ("زمین لرزه ای", "زمین‌لرزه‌ای", "زمین لرزه‌ای", "compound words need the lexicon"),
    ("پیامبر اکرم ﷺ", "پیامبر اکرم", "پیامبر اکرم صلی الله علیه وسلم",
     "ligatures are expanded (their NFKC text), not dropped"),
    ('"نرمال‌سازی"', "«نرمال‌سازی»", '"نرمال‌سازی"', "quotes are the author's style"),
]


@pytest.mark.parametrize("raw, want", HAZM_SAME)
def test_hazm_examples_same(raw, want):
    assert normalize(raw) == want


@pytest.mark.parametrize("raw, hazm, ours, why", HAZM_DIFFERENT)
def test_hazm_examples_documented_differences(raw, hazm, ours, why):
    got = normalize(raw)
    assert got == ours, why
    assert got != hazm


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------

_PIECES = (
    list("ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهیآيكىةۀەھئؤأإء0123456789۰۱۲۳۴۵۶۷۸۹٠١٢٣")
    + list(" \n\t\r\u200c\u200d\u200b\u200e\u200f\ufeff\u00a0\u2009\u0640\x00\x1c")
    + [chr(c) for c in range(0x64B, 0x656)] + ["\u0670"]
    + list(".:!،؛؟»)]}«([{\"'-_/abcXYZ")
    + ["ﻻ", "ﷲ", "ﮤ", "ﺉ", "ﹰ", "ﹱ", "ﱞ", "﷼", "\ud800", "\x85", "\u2028", "😀", "\u0301", "é",
       "ۂ", "ۃ", "ی\u0654", "ه\u0654", "ا\u0653", "ي\u064e\u0654", "\u06c1", "\u06d2", "ﺁ", "ﻵ",
       "می", "نمی", "ها", "های", "ه", "ی", "ام", "ترین", "هها", " ها", "می ", "ه ی", "ه ا"]
)
persianish = st.lists(st.sampled_from(_PIECES), max_size=30).map("".join)
any_text = st.one_of(persianish, st.text(max_size=60))
# every option away from its default at least once (a fixed set keeps the compiled tables
# cached; all 192 combinations were run once, 20 000 examples, outside the test suite)
configs = st.sampled_from([
    DEFAULT,
    NormalizerConfig(remove_diacritics=False),
    NormalizerConfig(digits="latin"),
    NormalizerConfig(digits="keep", keep_newlines=False),
    NormalizerConfig(heh_yeh="heh", teh_marbuta="heh"),
    NormalizerConfig(affix_spacing=False),
    NormalizerConfig(punctuation_spacing=False),
    NormalizerConfig(remove_diacritics=False, digits="latin", heh_yeh="heh", teh_marbuta="heh",
                     keep_newlines=False, affix_spacing=False, punctuation_spacing=False),
])
_WORD = re.compile(r"[\w\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")
_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))


@_SETTINGS
@given(any_text, configs)
def test_idempotent_and_never_raises(text, cfg):
    once = normalize(text, cfg)
    assert normalize(once, cfg) == once


@_SETTINGS
@given(any_text, configs)
def test_output_is_clean(text, cfg):
    out = normalize(text, cfg)
    out.encode("utf-8")  # no lone surrogates
    assert unicodedata.is_normalized("NFC", out)
    assert out == out.strip()
    assert not any(unicodedata.category(c) == "Cc" and c != "\n" for c in out)
    assert "\u0640" not in out
    for i, ch in enumerate(out):
        if ch == ZWNJ:  # only inside a word: never at an edge, beside a space or punctuation
            assert 0 < i < len(out) - 1, (text, out)
            assert _WORD.match(out[i - 1]) and _WORD.match(out[i + 1]), (text, out)


@_SETTINGS
@given(st.sampled_from(list("ابپتکگیهو۱a")), st.integers(1, 5), st.sampled_from(list("ابپتکگیهو۲b")),
       configs)
def test_zwnj_run_between_letters_becomes_one(left, k, right, cfg):
    out = normalize(left + ZWNJ * k + right, cfg)
    assert out.count(ZWNJ) == 1 and len(out) == 3


@_SETTINGS
@given(st.lists(any_text, max_size=5), configs)
def test_batch_equals_one_by_one(texts, cfg):
    assert normalize_many(texts, cfg) == [normalize(t, cfg) for t in texts]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=50, max_size=150), min_size=1, max_size=3))
def test_batch_equals_one_by_one_long(texts):  # past the small-string threshold
    assert normalize_many(texts) == [normalize(t) for t in texts]
