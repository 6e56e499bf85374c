"""Issue 23: the chat rules at the speed of one pass give exactly what the rules give one by one.

- per text, on random text (raw and normalized): `find_pii` with the facts of a batch pass
  (`textclean.batch.analyze`) finds the same spans as on its own; `is_mostly_persian` with the
  counted letters and `clean_answer` on normalized text give the same verdicts;
- per stage: `prepare_chat` on a small corpus of the realistic bench kind (digit-rich legal
  Persian, bench/chat_corpus.py) writes the very bytes (sha256) of the straightforward
  composition kept beside the tests (tests/chat_reference.py), with and without near-duplicates.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat_reference import reference_combined
from persian_data.catalog import BY_KEY
from persian_data.layout import Layout
from persian_data.normalize import normalize
from persian_data.prepare.chat import ChatOptions, prepare_chat, raw_files
from persian_data.textclean.answers import clean_answer
from persian_data.textclean.batch import analyze
from persian_data.textclean.pii import find_pii
from persian_data.textclean.script import is_mostly_persian

HEAD = 300
ZWNJ = "\u200c"
PIECES = (
    list("0123456789۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩") * 3
    + list(" \n-()+@._/،.؟!:؛«»[]") + ["  ", "\u00a0", ZWNJ, "\u200f", "\u200e", "\u200b", "\u2009", "\t", "𝟙", "😀"]
    + ["سلام", "ماده", "قانون", "ریال", "تومان", "وکیل", "قرارداد", "پرونده", "تماس بگیرید", "شماره تماس",
       "جهت مشاوره", "با یک وکیل مشورت کنید", "بررسی مدارک لازم", "نهایتا", "موفق باشید", "با سلام و احترام",
       "در خدمت شما هستیم", "واتساپ", "سایت ما", "پیام دهید", "بدون بررسی پرونده"]
    + ["IR", "ir", "www.", "https://", ".ir", ".com", "user", "mail", "A4", "Windows", "é", "Д", "[PHONE]", "[URL]"]
)
texts = st.lists(st.sampled_from(PIECES), max_size=40).map("".join).map(lambda t: t.replace("\x00", ""))
_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))


@_SETTINGS
@given(st.lists(texts, min_size=1, max_size=6), st.booleans())
def test_pii_with_batch_facts_finds_what_the_plain_scan_finds(batch, normalized):
    batch = [normalize(t) for t in batch] if normalized else batch
    for text, facts in zip(batch, analyze(batch, HEAD)):
        assert find_pii(text, facts) == find_pii(text), text


@_SETTINGS
@given(st.lists(texts, min_size=1, max_size=6), st.sampled_from([0.0, 0.6, 1.0]))
def test_script_check_on_counted_letters_agrees(batch, threshold):
    for text, facts in zip(batch, analyze(batch, HEAD)):
        assert is_mostly_persian(text, threshold, (facts.arabic, facts.other)) == is_mostly_persian(text, threshold)
        assert (is_mostly_persian(text[:HEAD], threshold, (facts.arabic_head, facts.other_head))
                == is_mostly_persian(text[:HEAD], threshold))


@_SETTINGS
@given(texts, st.sampled_from([0, 15, 40]))
def test_answer_rules_on_normalized_text_agree(text, min_chars):
    text = normalize(text)
    assert clean_answer(text, min_chars, normalized=True) == clean_answer(text, min_chars)


def _bench_corpus():
    path = Path(__file__).resolve().parent.parent / "bench" / "chat_corpus.py"
    spec = importlib.util.spec_from_file_location("chat_corpus", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def realistic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("realistic")
    chat_corpus = _bench_corpus()
    paths = chat_corpus.generate(Layout(root).content_dir(BY_KEY["text"]), scale=0.0025, seed=11)
    stats = chat_corpus.describe(paths)
    assert stats["digits_per_1000_chars"] > 20 and stats["latin_letter_share"] > 0.005  # it is the digit-rich kind
    return root


@pytest.mark.parametrize("near_dup", [False, True])
def test_stage_writes_what_the_plain_composition_writes(realistic_root, near_dup):
    layout = Layout(realistic_root)
    options = ChatOptions(workers=0, near_dup=near_dup)
    stats = prepare_chat(layout, options)
    written = layout.chat_combined().read_bytes()
    want = reference_combined(raw_files(layout), options)  # in the stage's file order
    assert hashlib.sha256(written).hexdigest() == hashlib.sha256(want).hexdigest()
    # the rules had work to do on this corpus: masked, dropped, trimmed
    assert stats.pii_masked and stats.answers_dropped and stats.contact_lines_removed
    assert stats.written > 500
