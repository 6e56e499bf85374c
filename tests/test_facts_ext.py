"""The C form of the chat rules' batch pass (`textclean._facts`) gives the numpy form's facts.

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

