"""The C form of the chat rules' batch pass (`_speedups`) gives the numpy form's facts.

The extension is built by the install (setup.py; CI has a C compiler), so it must be there: a test
run without it would be comparing the numpy form with itself.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from persian_data.normalize import normalize_many
from persian_data.textclean import batch
from persian_data.textclean.pii import _INVISIBLE_CHARS, _VISIBLE_SEPARATORS

# what the runs, tokens and counts turn on: digits of three scripts, visible separators, invisible
# marks, whitespace of several kinds, ASCII and Persian letters, other letters, characters above
# U+FFFF, punctuation
_ALPHABET = list("0123456789۰۱۲۳۴۵۶۷۸۹٠١٢٣ aZxسلامکیه.,/@+()\n\t") + list(_VISIBLE_SEPARATORS) \
    + list(_INVISIBLE_CHARS) + ["\u2028", "\u3000", "é", "Ω", "ж", "𝟘", "😀", "𐌰", "\u0301", "_"]
_TEXTS = st.lists(st.text(alphabet=st.sampled_from(_ALPHABET), max_size=60), max_size=12)


def test_the_extension_is_built():
    assert batch._compiled_facts is not None


@settings(max_examples=500, deadline=None)
@given(texts=_TEXTS, head=st.integers(0, 70))
def test_compiled_facts_equal_numpy_facts(texts, head):
    assert batch.analyze_compiled(texts, head) == batch.analyze_numpy(texts, head)


@settings(max_examples=200, deadline=None)
@given(texts=_TEXTS)
def test_on_normalized_text(texts):
    # what the chat stage really gives it: the normalizer's output
    normed = [t for t in normalize_many(texts) if t]
    assert batch.analyze_compiled(normed, 300) == batch.analyze_numpy(normed, 300)


def test_long_runs_and_tokens():
    texts = ["شماره ۰۹۱۲ ۳۴۵ ۶۷۸۹ و IR820540102680020817909002 و 1234567890", "x" * 500 + " 12345678901",
             "۱۲۳۴۵۶۷۸۹۰", "", " ", "a b\nc", "12345 / 67890", "(0912)-345-6789"]
    got = batch.analyze_compiled(texts, 300)
    assert got == batch.analyze_numpy(texts, 300)
    assert got[2].runs == ((0, 10),) and got[0].latin and not got[6].runs



# -- the answer rules' common case ---------------------------------------------------------------

from persian_data.textclean import answers  # noqa: E402

_WORDS = ["سلام", "با سلام و احترام", "موفق باشید", "تماس بگیرید", "شماره تماس", "جهت مشاوره", "وکیل",
          "مشورت کنید", "قرارداد", "دفتر وکالت", "در خدمت شما هستیم", "ماده ۱۰", "دادگاه", "حکم", "پرونده",
          "بررسی مدارک لازم است", "[PHONE]", "[EMAIL]", "[X]", "واتساپ", "با تشکر", "انشاالله", "x" * 45,
          "با وکیل مشاوره", "مشاوره حضوری", "به سایت ما", "با بنده تماس", "نیاز به بررسی دقیق پرونده",
          "بدون مطالعه قرارداد", "در خدمت شما عزیزان هستیم", "پیامک بدهید", "ایتا", "وقت مشاوره",
          "دفتر", "آدرس", "ماده " * 30]
_SEPS = [" ", ". ", "؟ ", "!", "\n", "\n\n", "...", " . ", "\u200c", "،"]


@settings(max_examples=800, deadline=None)
@given(parts=st.lists(st.tuples(st.sampled_from(_WORDS), st.sampled_from(_SEPS)), max_size=10),
       min_chars=st.integers(0, 60))
def test_compiled_answer_verdict_equals_the_rule(parts, min_chars):
    text = normalize_many(["".join(w + sep for w, sep in parts)])[0]
    assert answers.AnswerVerdict(*answers._compiled_verdict(text, min_chars)) == \
        answers.clean_normalized(text, min_chars)
    assert answers.clean_answer(text, min_chars, True) == answers.clean_normalized(text, min_chars)


def test_compiled_answer_verdict_cases():
    cases = {("سلام. موفق باشید", 5): (None, "no_content", []),
             ("طبق ماده ۱۰", 50): (None, "too_short", []),
             ("طبق ماده ۱۰ قانون مدنی حق با شماست. لطفا با شماره تماس بگیرید.", 5):
                 ("طبق ماده ۱۰ قانون مدنی حق با شماست.", None, ["لطفا با شماره تماس بگیرید."]),
             ("با یک وکیل مشورت کنید.", 5): (None, "referral_only", []),
             ("[PHONE] تماس بگیرید", 5): (None, "contact_only", ["[PHONE] تماس بگیرید"])}
    for (text, min_chars), want in cases.items():
        assert answers._compiled_verdict(text, min_chars) == want, text
        assert tuple(answers.clean_normalized(text, min_chars)) == want, text


# -- PII numbers inside a digit run --------------------------------------------------------------

from persian_data.textclean import pii  # noqa: E402

_NUM_ALPHABET = list("0123456789۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩") + [" ", "-", "(", ")", "+", "\u200c", "\u200f", "\u00a0", "/"]
_NUMBER_PARTS = st.lists(st.one_of(
    st.text(alphabet=st.sampled_from(_NUM_ALPHABET), min_size=1, max_size=8),
    st.sampled_from(["09121234567", "+98 912 123 4567", "0098-912-123-4567", "(021) 8888 7777", "0084390231",
                     "۰۰۱۱۲۲۳۳۴۴", "4111 1111 1111 1111", "6037-9975-9759-7562", " تومان", " ریال", "  هزار",
                     "1399/03/17", "98912", "1234567890123456789012345678901234567890"])), max_size=8)


@settings(max_examples=800, deadline=None)
@given(parts=_NUMBER_PARTS, prefix=st.sampled_from(["", "شماره ", "x", "کد ملی: "]))
def test_compiled_numbers_equal_the_rule(parts, prefix):
    text = prefix + "".join(parts)
    for run in pii._RUN.finditer(text):
        got = pii._compiled_numbers(text, run.start(), run.end())
        assert got is None or [pii.Match(*m) for m in got] == pii._numbers_python(text, run), (text, run)


# -- the normalizer's spacing rules --------------------------------------------------------------

from persian_data import _speedups, normalize_context  # noqa: E402

_SPACING = st.text(alphabet=st.sampled_from(list("  \n\n\x00ab سل...:!،؛؟»)]}«([{…-\u200c\t")), max_size=40)


@settings(max_examples=1500, deadline=None)
@given(s=_SPACING)
def test_compiled_spacing_equals_the_rules(s):
    assert _speedups.spaces_and_lines(s) == normalize_context.spaces_and_lines(s)
    spaced = normalize_context.spaces_and_lines(s)  # what the punctuation rule gets in the normalizer
    assert _speedups.punct(spaced) == normalize_context._punct(spaced)


def test_the_normalizer_uses_them():
    assert normalize_context.SPACES_AND_LINES is _speedups.spaces_and_lines
    assert normalize_context.PUNCT is _speedups.punct


# -- every personal-data span of a text whose facts are known ------------------------------------

_PII_FRAGMENTS = ["user4.law@example.com", ".a@b.co", "x@y", "https://vakil.ir/پرونده/12", "www.dadrah.com).",
                  "site.ir", "vakil.com/a?b=1", "@ali_1370", "@@x_yz", "IR820540102680020817909002",
                  "ir82 0540 1026 8002 0817 9090 02", "IR82-0540-1026-8002-0817-9090-03", "ıR820540102680020817909002",
                  "09121234567", "+98 912 123 4567", "(021) 8888 7777", "0084390231", "۰۰۸۴۳۹۰۲۳۱",
                  "4111 1111 1111 1111", " تومان", "1399/03/17", "Windows 10", "A4-17", "mp3", " ", "\n", "،", ".",
                  "سلام", "ماده ۱۰", "\u200c", "\u200f", "»", ")", "1 2 3 4 5 6 7 8 9 10 11 12 13"]


@settings(max_examples=800, deadline=None)
@given(parts=st.lists(st.sampled_from(_PII_FRAGMENTS), max_size=10), normalized=st.booleans())
def test_compiled_find_pii_equals_the_rule(parts, normalized):
    text = "".join(parts)
    if normalized:
        text = normalize_many([text])[0]
    if "\x00" in text:
        return
    facts = batch.analyze([text], 300)[0]
    assert pii.find_pii(text, facts) == pii.find_pii_python(text, facts) == pii.find_pii_python(text)


# -- the words of the near-duplicate signatures ----------------------------------------------------

import numpy as np  # noqa: E402

from persian_data.textclean import near_dup  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.text(alphabet=st.sampled_from(list("ab سلام\u200c.،؛«»-/\\\n\t\u2028\u3000\x00😀ک1۲")),
                              max_size=40), max_size=20))
def test_compiled_word_hashes_equal_the_rule(texts):
    got_flat, got_lengths = near_dup._compiled_words(texts)
    flat, lengths = near_dup.word_hashes_python(texts)
    assert np.array_equal(np.frombuffer(got_flat, dtype=np.uint32), flat)
    assert np.array_equal(np.frombuffer(got_lengths, dtype=np.int64), lengths)


# -- the title rule -----------------------------------------------------------------------------------

from persian_data.prepare import chat_convert  # noqa: E402

_TITLE_PARTS = st.lists(st.sampled_from(list("ab سلام\u200c.،؟«»-\n\x00") + ["ماده ۱۰", "طلاق", "  "]),
                        max_size=12).map("".join)


@settings(max_examples=500, deadline=None)
@given(pairs=st.lists(st.tuples(_TITLE_PARTS, _TITLE_PARTS), max_size=12), normalized=st.booleans())
def test_compiled_user_turns_equal_the_rule(pairs, normalized):
    titles = [t for t, _ in pairs]
    questions = [q or "پرسش" for _, q in pairs]
    if normalized:
        titles, questions = normalize_many(titles), [q or "پرسش" for q in normalize_many(questions)]
    got = chat_convert._compiled_user_turns(titles, questions, chat_convert._TITLE_STRIP)
    assert got == chat_convert.user_turns_python(titles, questions)
    assert got == [chat_convert.user_turn(t, q) for t, q in zip(titles, questions)]
