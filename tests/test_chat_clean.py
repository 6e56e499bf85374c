"""Chat, issue 12: the cleaning rules inside `prepare text` — personal data masked (or the row
dropped), non-answers and contact lines, the script check, near-duplicate questions collapsed —
counted in the stats, shown (masked) in combined.review.md, never leaking personal data into the
outputs, the rejects, the review or the log; the result does not depend on the input order."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import orjson
import pytest

from persian_data.catalog import BY_KEY
from persian_data.cli import main
from persian_data.layout import Layout
from persian_data.prepare.chat import ChatOptions, prepare_chat
from persian_data.prepare.chat_review import review_path

PHONE = "0912 123 4567"  # a mobile, written with spaces
PHONE_DIGITS = ("09121234567", "۰۹۱۲۱۲۳۴۵۶۷", "۰۹۱۲ ۱۲۳ ۴۵۶۷", "1234567", "۱۲۳۴۵۶۷")
EMAIL = "vakil.ahmadi@example.com"
ADVICE = "طبق ماده ۱۰ قانون مدنی قرارداد شما معتبر است و می‌توانید از طریق دادگاه الزام به انجام تعهد را بخواهید."
TOPICS = ["اجاره", "ارث", "چک", "مهریه", "سفته", "بیمه", "دیه", "نفقه", "ملک", "کار", "وام", "سند"]
WORDS = ("قانون ماده دادگاه حکم رأی دعوا دادخواست شکایت وکیل موکل قرارداد مالک مستأجر ودیعه طلاق "
         "حضانت وارث خودرو ضامن بانک کارفرما کارگر دستمزد اخراج سابقه دفترخانه اظهارنامه کارشناس "
         "دادسرا بازپرس جرم مجازات حبس تصادف راننده خسارت پرداخت مبلغ همسر پدر مادر برادر خواهر").split()


def _question(r: random.Random, i: int) -> str:
    return "سلام. " + " ".join(r.choice(WORDS) for _ in range(25)) + f" درباره {TOPICS[i % len(TOPICS)]} چه کنم؟"


def _rows() -> list:
    r = random.Random(5)
    rows = []
    for i in range(30):  # ordinary rows, distinct questions, real advice
        rows.append([f"پرسش {i}", _question(r, i), [ADVICE + f" مورد {i}."], []])
    base = _question(r, 99)
    rows += [
        # PII in the question and in the answer; the advice around it must stay byte for byte
        ["تماس", f"سلام. شماره من {PHONE} است و ایمیلم {EMAIL} است. چک برگشتی را چه کنم؟",
         [ADVICE + " جهت مشاوره با شماره 09351112233 تماس بگیرید."], []],
        # only a referral: dropped, the row has no answer left
        ["ارجاع", _question(r, 40), ["لطفا با یک وکیل مشورت کنید."], []],
        # too short once masked
        ["کوتاه", _question(r, 41), ["بله."], []],
        # not Persian
        ["english", "Hello, my landlord kept my deposit and will not answer my calls, what can I do now?",
         [ADVICE], []],
        # near-duplicates: the same question with a greeting added and one word changed
        ["تکرار", base, [ADVICE + " نسخه یک."], []],
        ["تکرار", "با سلام و احترام " + base, [ADVICE + " نسخه دو."], []],
        ["تکرار", base.replace("چه کنم؟", "چه کار کنم؟"), [ADVICE + " نسخه سه."], []],
        # a repost holding a phone: with --pii keep its near-duplicate example must still be masked
        ["تکرار تلفن", base2 := _question(r, 98) + f" شماره {PHONE}", [ADVICE + " الف."], []],
        ["تکرار تلفن", base2.replace("چه کنم؟", "چه کار کنم؟"), [ADVICE + " ب."], []],
        # a bad row holding personal data: the rejects file must carry it masked
        ["بد", f"تلفن {PHONE}", [ADVICE], [], "پنجم"],  # 5 items: rejected
    ]
    return rows


NAMES = ("dadrah_dataset.json", "dadrah_dataset1-1000_10000.json", "dadrah_dataset1-10000_100000.json")


def _write(root: Path, rows: list, files: int = 3) -> Layout:
    layout = Layout(root)
    d = layout.content_dir(BY_KEY["text"])
    d.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        (d / NAMES[k]).write_bytes(json.dumps(rows[k::files]).encode("ascii"))
    return layout


def _all_text(layout: Layout) -> str:
    return "\n".join(p.read_text("utf-8") for p in sorted(layout.chat_combined().parent.glob("combined*")))


def _no_pii(text: str) -> None:
    for digits in PHONE_DIGITS:
        assert digits not in text
    assert EMAIL not in text and "09351112233" not in text and "۰۹۳۵۱۱۱۲۲۳۳" not in text


def test_every_rule_fires_counts_and_leaks_nothing(tmp_path: Path, caplog):
    layout = _write(tmp_path / "r", _rows())
    caplog.set_level("DEBUG")
    st = prepare_chat(layout, ChatOptions(workers=0))
    stats = orjson.loads(layout.chat_stats().read_bytes())
    rules = stats["rules"]
    assert rules["pii"]["found"] == {"EMAIL": 1, "PHONE": 4} == rules["pii"]["masked"]
    assert rules["answers_dropped"] == {"referral_only": 1, "too_short": 1}
    assert rules["contact_lines_removed"] == 1 and rules["answers_trimmed"] == 1
    assert stats["skipped"]["non_answer"] == 2 and stats["skipped"]["not_persian"] == 1
    assert rules["near_duplicates"]["rows_collapsed"] == 3
    assert len(rules["near_duplicates"]["examples"]) == 3
    assert st.written == 30 + 1 + 1 + 1  # ordinary, the PII row, one of each near-duplicate group

    convs = [orjson.loads(line)["messages"] for line in layout.chat_combined().read_bytes().splitlines()]
    pii = [m for m in convs if "[PHONE]" in m[1]["content"]]
    pii.sort(key=lambda m: not m[1]["content"].startswith("تماس"))
    assert len(pii) == 2
    # the masked conversation keeps the rest of its text byte for byte; the contact line is gone
    assert pii[0][1]["content"] == "تماس\n\nسلام. شماره من [PHONE] است و ایمیلم [EMAIL] است. چک برگشتی را چه کنم؟"
    assert pii[0][2]["content"].startswith("طبق ماده ۱۰ قانون مدنی") and "تماس بگیرید" not in pii[0][2]["content"]
    kept_dup = [m for m in convs if "نسخه" in m[2]["content"]]
    assert len(kept_dup) == 1

    # nothing personal in any output, the rejects (a bad row held a phone), the review or the log
    everything = _all_text(layout)
    assert "[PHONE]" in layout.chat_rejects().read_text("utf-8")
    _no_pii(everything)
    _no_pii(caplog.text)

    # the review names every rule that fired, with masked examples
    review = review_path(layout).read_text("utf-8")
    fired = set(re.findall(r"^## `([a-z_]+)`", review, flags=re.M))
    assert fired == {"pii_mask", "not_persian", "answer_contact_removed", "answer_referral_only",
                     "answer_too_short", "near_duplicate"}
    assert "**[PHONE]**" in review and "**[EMAIL]**" in review


def test_pii_drop_and_keep(tmp_path: Path):
    layout = _write(tmp_path / "drop", _rows())
    st = prepare_chat(layout, ChatOptions(workers=0, pii="drop"))
    assert st.skipped["pii"] == 3
    assert orjson.loads(layout.chat_stats().read_bytes())["rules"]["pii"]["conversations_dropped"] == 3
    _no_pii(_all_text(layout))

    layout = _write(tmp_path / "keep", _rows())
    prepare_chat(layout, ChatOptions(workers=0, pii="keep"))
    assert "۰۹۱۲ ۱۲۳ ۴۵۶۷" in layout.chat_combined().read_text("utf-8")  # the user asked to keep it
    # the rejects, the review and the stats' examples are masked whatever the mode
    _no_pii(layout.chat_rejects().read_text("utf-8") + review_path(layout).read_text("utf-8")
            + layout.chat_stats().read_text("utf-8"))


@pytest.mark.parametrize("workers", [0, 2])
def test_output_does_not_depend_on_the_input_order(tmp_path: Path, workers: int):
    rows = _rows()
    a = _write(tmp_path / "a", rows)
    prepare_chat(a, ChatOptions(workers=workers))
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    b = _write(tmp_path / "b", shuffled, files=2)
    prepare_chat(b, ChatOptions(workers=workers))
    lines_a = a.chat_combined().read_bytes().splitlines()
    lines_b = b.chat_combined().read_bytes().splitlines()
    # the same conversations (which near-duplicate stays is the smallest digest, not the first seen)
    assert sorted(lines_a) == sorted(lines_b)
    # and a rerun on the same input gives the same bytes
    c = _write(tmp_path / "c", rows)
    prepare_chat(c, ChatOptions(workers=workers))
    assert c.chat_combined().read_bytes() == a.chat_combined().read_bytes()


def test_near_dup_off_keeps_them_and_the_cli_flags_reach_the_stage(tmp_path: Path):
    layout = _write(tmp_path / "r", _rows())
    main(["prepare", "text", "--root", str(layout.root), "--no-near-dup", "--pii", "drop",
          "--min-answer-chars", "3", "--prepare-workers", "0"])
    stats = orjson.loads(layout.chat_stats().read_bytes())
    assert stats["options"]["near_dup"] is False and stats["options"]["pii"] == "drop"
    assert stats["options"]["min_answer_chars"] == 3
    assert stats["rules"]["near_duplicates"] is None
    assert stats["rules"]["answers_dropped"] == {"referral_only": 1}  # «بله.» is long enough now
    assert sum("نسخه" in line for line in layout.chat_combined().read_text("utf-8").splitlines()) == 3
