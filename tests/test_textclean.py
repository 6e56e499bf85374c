"""textclean: personal data, non-answers, script, near-duplicates (pure functions)."""

from __future__ import annotations

import random
from hashlib import blake2b

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persian_data.textclean.answers import clean_answer
from persian_data.textclean.near_dup import collapse, minhash_values, shingles, signatures
from persian_data.textclean.pii import find_pii, iban_valid, luhn_valid, mask_pii, national_id_valid
from persian_data.textclean.script import is_mostly_persian, persian_ratio

FA = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
AR = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def _national_id(body: str) -> str:
    s = sum(int(body[i]) * (10 - i) for i in range(9)) % 11
    return body + str(s if s < 2 else 11 - s)


def _card(body15: str) -> str:
    for d in "0123456789":
        if luhn_valid(body15 + d):
            return body15 + d
    raise AssertionError


def _iban(bban22: str) -> str:
    check = 98 - int(bban22 + "1827" + "00") % 97
    return f"IR{check:02d}{bban22}"


NID = _national_id("001354241")
CARD = _card("603799123456789")
IBAN = _iban("0170000000100324200001")


@pytest.mark.parametrize("digits", [FA, AR, None, "mixed"])
@pytest.mark.parametrize("written", [
    "09121234567", "0912 123 4567", "0912-123-4567", "(0912) 123 4567", "+98 912 123 4567",
    "+989121234567", "0098 912 123 4567", "0098-9121234567", "989121234567", "021-88776655",
    "021 8877 6655", "(021) 88776655",
])
def test_phones_in_every_spelling_and_digit_script(written, digits):
    if digits == "mixed":
        text = "".join(ch.translate(FA if i % 2 else AR) for i, ch in enumerate(written))
    else:
        text = written.translate(digits) if digits else written
    masked, counts = mask_pii(f"لطفا با شماره {text} تماس بگیرید.")
    assert masked == "لطفا با شماره [PHONE] تماس بگیرید."
    assert counts == {"PHONE": 1}


@pytest.mark.parametrize("digits", [FA, AR, None])
def test_national_id_card_and_iban(digits):
    tr = (lambda s: s.translate(digits)) if digits else (lambda s: s)
    card_spaced = " ".join(CARD[i:i + 4] for i in range(0, 16, 4))
    iban_spaced = IBAN[:4] + " " + " ".join(IBAN[i:i + 4] for i in range(4, 26, 4))
    text = (f"کد ملی {tr(NID)} و کارت {tr(CARD)} یا {tr(card_spaced)} و شبا {tr(IBAN[:2]) + tr(IBAN[2:])} "
            f"و {tr(iban_spaced)}")
    masked, counts = mask_pii(text)
    assert masked == "کد ملی [NATIONAL_ID] و کارت [CARD] یا [CARD] و شبا [IBAN] و [IBAN]"
    assert counts == {"NATIONAL_ID": 1, "CARD": 2, "IBAN": 2}


def test_email_url_handle():
    masked, counts = mask_pii("ایمیل ali.rezaei@gmail.com، سایت https://vakil.ir/a?b=1 و www.example.com. "
                              "آیدی تلگرام @vakil_ahmadi و dadrah.ir")
    assert masked == "ایمیل [EMAIL]، سایت [URL] و [URL]. آیدی تلگرام [HANDLE] و [URL]"
    assert counts == {"EMAIL": 1, "URL": 3, "HANDLE": 1}


@pytest.mark.parametrize("text", [
    "در سال ۱۴۰۲ و 1998", "ماده ۱۰ قانون مدنی و ماده 1133", "مبلغ ۵۰٬۰۰۰٬۰۰۰ تومان", "50,000,000 ریال",
    "مبلغ 1000000000 ریال", "تاریخ ۱۴۰۲/۰۵/۱۲ و 1398/12/29", "۳ سال و ۶ ماه", "پرونده 1234567890",
    "کلاسه 9909982120100123", "شماره 12345", "ساعت ۱۰:۳۰", "۱۰ درصد", "کارت 6037991234567890",
])
def test_look_alikes_stay(text):
    assert find_pii(text) == [], text
    assert mask_pii(text) == (text, {})


def test_check_digits_decide():
    assert national_id_valid(NID) and not national_id_valid(NID[:-1] + str((int(NID[-1]) + 1) % 10))
    assert not national_id_valid("1111111111")
    assert luhn_valid(CARD) and not luhn_valid(CARD[:-1] + str((int(CARD[-1]) + 1) % 10))
    assert iban_valid(IBAN) and not iban_valid(IBAN[:-1] + str((int(IBAN[-1]) + 1) % 10))


def test_the_rest_of_the_text_is_kept_byte_for_byte():
    before, after = "سلام\u200cعلیکم؛ شرایط  طلاق توافقی چیست؟\n", " با تشکر ، مهريه  ۱۱۰ سکه"
    masked, _ = mask_pii(before + "09121234567" + after)
    assert masked == before + "[PHONE]" + after


def test_keep_mode_counts_without_masking():
    text = "شماره 09121234567"
    assert mask_pii(text, "keep") == (text, {"PHONE": 1})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("0123456789۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩ -()+@.:/IRir_ab٬،سلامتماسwww")
                                + ["\u200c", "ماده", "تومان", ".ir", "09", "+98", "IR", "0098"]), max_size=60)
       .map("".join))
def test_masker_never_crashes_and_is_idempotent(text):
    masked, _ = mask_pii(text)
    assert mask_pii(masked)[0] == masked
    spans = find_pii(text)
    assert all(0 <= m.start < m.end <= len(text) for m in spans)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))


# -- answers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("answer,reason", [
    ("لطفا با یک وکیل مشورت کنید.", "referral_only"),
    ("سلام. بهتر است به وکیل متخصص مراجعه کنید. موفق باشید", "referral_only"),
    ("جهت مشاوره با شماره [PHONE] تماس بگیرید.", "contact_only"),
    ("با سلام. برای مشاوره تلفنی در خدمت شما هستیم.", "contact_only"),
    ("با سلام و احترام. موفق باشید.", "no_content"),
    ("بله", "too_short"),
])
def test_non_answers_are_dropped_by_reason(answer, reason):
    verdict = clean_answer(answer, min_chars=15)
    assert verdict.text is None and verdict.reason == reason


def test_advice_keeps_its_text_and_loses_the_contact_line():
    advice = "با سلام. طبق ماده ۱۱۳۳ قانون مدنی مرد می‌تواند با رعایت شرایط همسر خود را طلاق دهد."
    verdict = clean_answer(advice + " جهت مشاوره تلفنی با شماره [PHONE] تماس بگیرید.", min_chars=15)
    assert verdict.text == advice and verdict.reason is None
    assert verdict.removed == ["جهت مشاوره تلفنی با شماره [PHONE] تماس بگیرید."]


def test_advice_with_a_recommendation_stays_whole():
    text = "مهریه عندالمطالبه است و زوجه می‌تواند از طریق اجرای ثبت اقدام کند. بهتر است با وکیل مشورت کنید."
    assert clean_answer(text, 15).text == text


# -- script ------------------------------------------------------------------------------------

def test_script_check():
    assert is_mostly_persian("سلام، شرایط طلاق توافقی چیست؟ ماده 1133 (Civil Code)")
    assert not is_mostly_persian("salam, sharayete talaghe tavafoghi chist?")
    assert not is_mostly_persian("What are the conditions of divorce?")
    assert not is_mostly_persian("09121234567 !!!")
    assert persian_ratio("[PHONE] [URL] سلام") == 1.0


# -- near-duplicates ---------------------------------------------------------------------------

def _corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = [f"واژه{i}" for i in range(3000)]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 70))) for _ in range(n)]
    texts += [t + " لطفا راهنمایی کنید" for t in texts[: n // 10]]  # near-duplicates (or not, if short)
    return texts


def test_signatures_are_datasketchs_minhash():
    from datasketch import MinHash

    texts = _corpus(50)
    sigs = signatures(texts)
    for i, text in enumerate(texts):
        h = shingles(text)
        assert np.array_equal(np.unique(sigs.shingles_of(i)), h)
        m = MinHash(num_perm=64, seed=1, scheme="affine32", hashfunc=int)
        m.update_batch(h.tolist())
        assert np.array_equal(sigs.values[i], m.hashvalues)
        assert np.array_equal(minhash_values(h), m.hashvalues)


def _exact_jaccard(a: str, b: str) -> float:
    sa, sb = set(shingles(a).tolist()), set(shingles(b).tolist())
    return len(sa & sb) / len(sa | sb)


def test_collapse_is_exact_at_the_threshold_and_order_independent():
    texts = _corpus(600)
    keys = [blake2b(t.encode(), digest_size=16).digest() for t in texts]
    result = collapse(signatures(texts), keys)
    assert result.drop
    assert sorted(d for _, d, _ in result.pairs) == sorted(result.drop)  # one example per dropped row
    for partner, dropped, score in result.pairs:
        assert score >= 0.8 and abs(_exact_jaccard(texts[partner], texts[dropped]) - score) < 1e-12
    kept = [i for i in range(len(texts)) if i not in result.drop]
    for i in kept[:200]:  # no confirmed near-duplicate left among the kept (spot check, exact)
        for j in kept[:200]:
            if i < j:
                assert _exact_jaccard(texts[i], texts[j]) < 0.8 or texts[i] == texts[j]
    order = list(range(len(texts)))
    random.Random(1).shuffle(order)
    shuffled = collapse(signatures([texts[i] for i in order]), [keys[i] for i in order])
    assert {keys[order[i]] for i in shuffled.drop} == {keys[i] for i in result.drop}


def test_identical_questions_collapse_to_one_in_linear_checks():
    texts = ["سلام وقت بخیر من یک سوال درباره مهریه دارم لطفا راهنمایی کنید"] * 3000 + _corpus(200, seed=3)
    keys = [blake2b(f"{i}".encode(), digest_size=16).digest() for i in range(len(texts))]
    result = collapse(signatures(texts), keys)
    dropped_identical = [i for i in result.drop if i < 3000]
    assert len(dropped_identical) == 2999
    assert min(range(3000), key=keys.__getitem__) not in result.drop  # the smallest key stays
    assert result.candidates < 3000 + 2000  # not 3000² / 2 pairs


def test_pairs_right_above_the_threshold_are_found():
    rng = random.Random(5)
    words = [f"واژه{i}" for i in range(5000)]
    found = total = 0
    for _ in range(150):
        base = [rng.choice(words) for _ in range(60)]
        edited = base[:]
        edited[rng.randrange(3, 57)] = "ویرایش"  # one word: 3 of 58 shingles change, J = 55/61 ≈ 0.90
        a, b = " ".join(base), " ".join(edited)
        if _exact_jaccard(a, b) >= 0.8:
            total += 1
            res = collapse(signatures([a, b]), [b"a", b"b"])
            found += res.drop == {1}
    assert total > 100 and found / total > 0.98


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list("سلامبرکیگچپژ،؟ abcXYZ019۰۹٠.-_[]") + ["[PHONE]", "\u200c", "é"]))
       .map("".join))
def test_persian_ratio_counts_what_isalpha_calls_letters(text):
    import re

    rest = re.sub(r"\[(?:PHONE|NATIONAL_ID|CARD|IBAN|EMAIL|URL|HANDLE)\]", " ", text)
    letters = [ch for ch in rest if ch.isalpha()]
    arabic = [ch for ch in letters if "\u0600" <= ch <= "\u06ff"]
    assert persian_ratio(text) == (len(arabic) / len(letters) if letters else 0.0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([
    "سلام", "با سلام و احترام", "موفق باشید", "لطفا با یک وکیل مشورت کنید", "جهت مشاوره تماس بگیرید",
    "شماره [PHONE]", "مهریه عندالمطالبه است", "طبق ماده ۱۱۳۳ قانون مدنی اقدام کنید", "بله", "\u200c",
    ".", "؟", "\n", " ", "(", "تماس", "بگیرید", "وکیل", "مشورت", "در خدمت شما هستیم",
]), max_size=12).map("".join))
def test_the_verdict_follows_the_sentence_kinds(text):
    from persian_data.textclean.answers import _CONTACT, _KEYWORDS, _REFERRAL, _SENTENCE, _loose, sentence_kind

    kinds = [(s, sentence_kind(s)) for s in _SENTENCE.findall(text) if s]
    for s, _ in kinds:  # the keyword prefilter never hides a phrase
        loose = _loose(s)
        if _CONTACT.search(loose) or _REFERRAL.search(loose):
            assert any(k in loose for k in _KEYWORDS)
    kept = "".join(s for s, k in kinds if k != "contact").strip()
    verdict = clean_answer(text, 15)
    assert verdict.removed == [s.strip() for s, k in kinds if k == "contact"]
    if any(k == "content" for _, k in kinds) and len(kept) >= 15:
        assert verdict.text == kept and verdict.reason is None
    else:
        assert verdict.text is None and verdict.reason is not None


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(list("abcXYZ سلامپژکی۱۲3_[]é.ДЖ٠ًٌ") + ["[PHONE]", "[URL]", "\u200c"]),
                max_size=40).map("".join), st.sampled_from([0.0, 0.3, 0.6, 1.0]))
def test_is_mostly_persian_fast_path_agrees_with_the_ratio(text, threshold):
    assert is_mostly_persian(text, threshold) == (persian_ratio(text) >= threshold)
