"""Issue 21 item 5: personal data is masked whatever the normalizer did to the text.

The normalizer leaves Latin tokens alone (emails, URLs, @handles, IBANs, file names, `Windows 10`,
`A4-17` keep their characters), and every masking pattern takes a digit of any script, so a planted
item of every kind, in Latin, Persian or Arabic-Indic digits, in the title, the question or an
answer, beside Persian punctuation, ZWNJ, bidi marks or brackets, with the normalizer on or off,
never reaches the chat outputs unmasked. Tested through the stage's own per-row path (`_Converter`:
normalize, then the rules, then the line written to combined.jsonl) with hypothesis, and through
a whole `prepare_chat` run over the full grid. Look-alikes (years, article numbers, amounts, dates,
numbers failing their check digit, version numbers in Latin tokens) are kept.
"""

from __future__ import annotations

import itertools
import json
import re
from hashlib import blake2b
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persian_data.catalog import BY_KEY, CHAT_SOURCE
from persian_data.layout import Layout
from persian_data.normalize import NormalizerConfig, normalize, normalize_many
from persian_data.prepare.chat import ChatOptions, prepare_chat
from persian_data.prepare.chat_clean import mask_raw
from persian_data.prepare.chat_convert import _Converter
from persian_data.textclean.pii import luhn_valid, national_id_valid

SCRIPTS = {"latin": str.maketrans("", ""), "persian": str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"),
           "arabic": str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")}
TO_LATIN = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
ZWNJ, RLM, LRM = "\u200c", "\u200f", "\u200e"
# what may stand right before and right after the item
CONTEXTS = [("", ""), (" ", " "), ("، ", "،"), ("«", "»"), ("؛", "؟"), (ZWNJ, ZWNJ), (RLM, RLM), (LRM, LRM),
            (RLM + " ", " " + LRM), ("(", ")"), ("[", "]"), (": ", "."), ("\u00a0", "\u00a0")]
KINDS = ("PHONE", "NATIONAL_ID", "CARD", "IBAN", "EMAIL", "URL", "HANDLE")
FIELDS = ("title", "question", "answer")
FILLER = "سلام وقت بخیر در مورد قرارداد اجاره و ودیعه سوال دارم"
ANSWER = "طبق قانون مدنی قرارداد شما معتبر است و می‌توانید از طریق دادگاه اقدام کنید"
LETTERS = "ابپتثجچحخدذرزسشصضطظعغفقکگلمنوهی"
_PLACEHOLDER = re.compile(r"\[(?:PHONE|NATIONAL_ID|CARD|IBAN|EMAIL|URL|HANDLE)\]")


def national_id(body9: str) -> str:
    s = sum(int(body9[i]) * (10 - i) for i in range(9)) % 11
    return body9 + str(s if s < 2 else 11 - s)


def card(body15: str) -> str:
    return next(body15 + d for d in "0123456789" if luhn_valid(body15 + d))


def iban(bban22: str) -> str:
    return f"IR{98 - int(bban22 + '182700') % 97:02d}{bban22}"


def _groups(s: str, size: int, sep: str) -> str:
    return sep.join(s[i:i + size] for i in range(0, len(s), size))


def item(kind: str, digits: str, form: int, script: str) -> str:
    """One personal-data item of `kind` built from random `digits` (Latin, ≥ 22 of them), written
    in `form` (a spelling of that kind) with its digits in `script`."""
    d = digits
    if kind == "PHONE":
        mobile = "09" + d[:9]
        text = [mobile, _groups(mobile[:4], 4, "") + " " + mobile[4:7] + " " + mobile[7:],
                "+98 " + mobile[1:4] + " " + mobile[4:7] + " " + mobile[7:], "(" + mobile[:4] + ") " + mobile[4:7]
                + "-" + mobile[7:], "021" + d[:8]][form % 5]
    elif kind == "NATIONAL_ID":
        body = d[:9] if len(set(d[:9])) > 1 else "123456789"
        text = [national_id(body), national_id(body)[:3] + "-" + national_id(body)[3:9] + "-" + national_id(body)[9]][form % 2]
    elif kind == "CARD":
        c = card("6037" + d[:11])
        text = [c, _groups(c, 4, " "), _groups(c, 4, "-")][form % 3]
    elif kind == "IBAN":
        i = iban(d[:22])
        return i[:2] + [i[2:], " " + _groups(i[2:], 4, " "), _groups(i, 4, " ")[2:]][form % 3].translate(SCRIPTS[script])
    elif kind == "EMAIL":
        text = ["user" + d[:3] + ".law@example.com", "v.ahmadi@mail" + d[:2] + ".ir", "a_" + d[:4] + "@gmail.com"][form % 3]
    elif kind == "URL":
        text = ["https://example.ir/page/" + d[:4], "www.vakil" + d[:2] + ".com", "site" + d[:3] + ".ir/q?id=" + d[3:6],
                "http://dadrah.ir/" + d[:5]][form % 4]
    else:
        text = ["@vakil_" + d[:4], "@law" + d[:3] + "x", "@a.b" + d[:3]][form % 3]
    return text.translate(SCRIPTS[script])


def leftovers(text: str) -> str:
    """What of `text` could be personal data once the placeholders are taken out: Latin letters
    and digits of any script (the filler holds neither)."""
    rest = _PLACEHOLDER.sub(" ", text)
    return "".join(ch for ch in rest if ch.isascii() and ch.isalpha() or ch.isdecimal())


def row_with(kind: str, field: str, planted: str) -> list:
    title, question, answer = "پرسش درباره اجاره", FILLER + " لطفا راهنمایی کنید", ANSWER
    if field == "title":
        title = "تماس " + planted
    elif field == "question":
        question = FILLER + planted + " لطفا راهنمایی کنید"
    else:
        answer = ANSWER + planted + " موفق باشید"
    return [title, question, [answer], []]


def _turns(line: bytes) -> tuple[str, str]:
    msgs = orjson.loads(line)["messages"]
    return msgs[1]["content"], msgs[2]["content"]


_CONVERTERS: dict = {}


def converter(normalize_on: bool, rules: bool) -> _Converter:
    key = (normalize_on, rules)
    if key not in _CONVERTERS:
        extra = {} if rules else {"answer_rules": False, "script_check": False}
        _CONVERTERS[key] = _Converter(ChatOptions(normalize=normalize_on, near_dup=False, workers=0, **extra))
    return _CONVERTERS[key]


# ---------------------------------------------------------------------------------------------
# the normalizer leaves Latin tokens alone
# ---------------------------------------------------------------------------------------------

LATIN_TOKENS = ["user4.law@example.com", "https://example.com/page/12?id=345", "www.site24.ir", "@vakil_1370",
                "IR820540102680020817909002", "report_2023.pdf", "A4-17", "mp3", "x86_64", "user۴@example.com"]


@pytest.mark.parametrize("token", LATIN_TOKENS)
@pytest.mark.parametrize("digits", ["persian", "latin", "keep"])
def test_latin_tokens_keep_their_characters(token, digits):
    cfg = NormalizerConfig(digits=digits)
    text = f"سلام، لطفا {token} را ببینید. ماده 10 و سال ۱۳۹۹"
    out = normalize(text, cfg)
    assert token in out.split(), (token, out)
    persian = {"persian": "ماده ۱۰ و سال ۱۳۹۹", "latin": "ماده 10 و سال 1399", "keep": "ماده 10 و سال ۱۳۹۹"}[digits]
    assert out.endswith(persian)  # numbers among Persian words still follow the policy
    assert normalize_many(["ماده 5", text], cfg)[1] == out


@pytest.mark.parametrize("text, want", [
    ("نصب Windows 10 روی لپ‌تاپ", "نصب Windows 10 روی لپ‌تاپ"),  # a number continuing a Latin name
    ("شبا IR82 0540 1026 8002 0817 9090 02 است", "شبا IR82 0540 1026 8002 0817 9090 02 است"),
    ("کاغذ A4-17 و 12 برگ", "کاغذ A4-17 و ۱۲ برگ"),
    ("حجم 10 GB", "حجم ۱۰ GB"),  # a number before a Latin word follows the policy
    ("Windows\n10", "Windows\n۱۰"),  # not across a line
    ("Office ، 2019 نصب", "Office، 2019 نصب"),  # punctuation between: still the same name
])
def test_numbers_beside_latin_words(text, want):
    assert normalize(text) == want
    assert normalize(want) == want


_latin_token = st.builds(lambda a, b, c: a + b + c, st.sampled_from(["user", "A", "mp", "file_", "x", "IR", "@ab"]),
                         st.text("0123456789۰۱۲۳٠١٢", min_size=1, max_size=6),
                         st.sampled_from(["", ".pdf", "@example.com", "-17", "_v2", ".ir"]))
_persian_word = st.sampled_from(["سلام", "ماده", "قانون", "۱۲", "12", "٣٤", "می‌خواهم", "،", "؟", "«", "»", "(", ")"])


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.one_of(_latin_token, _persian_word), min_size=1, max_size=12),
       st.sampled_from([" ", "  ", "\u00a0", " \u200c"]))
def test_every_latin_token_survives_normalization(words, space):
    text = space.join(words)
    out = normalize(text)
    assert normalize(out) == out
    tokens = out.split()
    for w in words:
        if re.search("[A-Za-z]", w):
            assert any(w in t for t in tokens), (text, out)


def as_records(rows: list) -> list:
    """Raw dadrah rows as the stage hands them to the converter: through the corpus's reader."""
    return CHAT_SOURCE.reader.records(rows)[0]


# ---------------------------------------------------------------------------------------------
# planted personal data never reaches a line of combined.jsonl unmasked
# ---------------------------------------------------------------------------------------------

@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(KINDS), script=st.sampled_from(list(SCRIPTS)), field=st.sampled_from(FIELDS),
       normalize_on=st.booleans(), rules=st.booleans(), context=st.sampled_from(CONTEXTS),
       form=st.integers(0, 11), digits=st.text("0123456789", min_size=24, max_size=24))
def test_planted_item_is_masked_on_the_stage_path(kind, script, field, normalize_on, rules, context, form, digits):
    planted = context[0] + item(kind, digits, form, script) + context[1]
    row = row_with(kind, field, planted)
    (status, convs, _), = converter(normalize_on, rules).convert(as_records([row]))
    # a skipped row goes to the rejects file, masked as parsed (`mask_raw`)
    assert all(leftovers(x) == "" for x in (mask_raw(row)[:2] + mask_raw(row)[2])), (planted, mask_raw(row))
    if status == "skip":  # the answer rules cut the contact line out, and no advice was left
        assert rules and field == "answer" and convs == "non_answer"
        return
    user, assistant = _turns(convs[0][0])
    turn = assistant if field == "answer" else user
    assert leftovers(user) == "" and leftovers(assistant) == "", (planted, user, assistant)
    if not (rules and field == "answer"):  # with the answer rules a contact line is cut out whole
        assert f"[{kind}]" in turn or (kind == "URL" and "[EMAIL]" in turn), (planted, turn)


LOOK_ALIKES = [
    "سال 1399", "در سال 2021", "تاریخ 1399/03/17", "ماده 1234 قانون", "پرونده شماره 9909982110200123",
    "مبلغ 12,500,000 تومان", "مبلغ 12500000000 ریال", "کلاسه 1234567890", "شماره 6037991234567890",
    "نسخه Windows 10", "کاغذ A4-17", "ساعت 10:30", "کد 98-1234",
]


@pytest.mark.parametrize("script", list(SCRIPTS))
@pytest.mark.parametrize("normalize_on", [True, False])
def test_look_alikes_are_kept(script, normalize_on):
    assert not national_id_valid("1234567890") and not luhn_valid("6037991234567890")
    assert not luhn_valid("9909982110200123")
    rows = [[f"پرسش {chr(0x0627 + i)}", FILLER + " " + t.translate(SCRIPTS[script]), [ANSWER], []]
            for i, t in enumerate(LOOK_ALIKES)]
    conv = converter(normalize_on, False)
    for t, res in zip(LOOK_ALIKES, conv.convert(as_records(rows))):
        user, _ = _turns(res[1][0][0])
        assert not _PLACEHOLDER.search(user), user
        digits = "".join(ch for ch in t if ch.isdecimal())
        assert digits in "".join(ch for ch in user if ch.isdecimal()).translate(TO_LATIN), (t, user)
        if "Windows" in t or "A4" in t:  # Latin tokens keep their characters (and digits)
            assert t.split()[-1].translate(SCRIPTS[script]) in user, (t, user)


def _grid_rows() -> tuple[list, dict[str, int]]:
    rows, planted = [], dict.fromkeys(KINDS, 0)
    combos = list(itertools.product(KINDS, SCRIPTS, FIELDS))
    for n, (kind, script, field) in enumerate(combos):
        context = CONTEXTS[n % len(CONTEXTS)]
        digits = str(int.from_bytes(blake2b(str(n).encode(), digest_size=16).digest(), "big")).zfill(39)[-24:]
        row = row_with(kind, field, context[0] + item(kind, digits, n, script) + context[1])
        row[0] += " " + LETTERS[n % len(LETTERS)] * (1 + n // len(LETTERS))  # every row its own
        rows.append(row)
        planted[kind] += 1
    return rows, planted


@pytest.mark.parametrize("normalize_on", [True, False])
def test_whole_stage_masks_the_grid(tmp_path: Path, normalize_on: bool):
    """Every kind x script x field, beside each context in turn, through `prepare_chat`: the
    outputs (combined.jsonl, the rejects, the review) hold no personal data, every item is masked."""
    rows, planted = _grid_rows()
    layout = Layout(tmp_path)
    data = layout.content_dir(BY_KEY["text"])
    data.mkdir(parents=True)
    (data / "dadrah_dataset.json").write_text(json.dumps(rows, ensure_ascii=False), "utf-8")
    stats = prepare_chat(layout, ChatOptions(workers=0, normalize=normalize_on, answer_rules=False,
                                             script_check=False, near_dup=False))
    assert stats.written == len(rows)
    assert stats.pii_masked == planted
    combined = layout.chat_combined().read_bytes()
    for line in combined.splitlines():
        user, assistant = _turns(line)
        assert leftovers(user) == "" and leftovers(assistant) == "", (user, assistant)
    for kind, n in planted.items():
        assert combined.decode().count(f"[{kind}]") == n
    for path in layout.chat_combined().parent.glob("combined*"):
        if path != layout.chat_combined() and path.suffix in (".jsonl", ".md"):
            text = path.read_text("utf-8")
            for row in rows:
                for field in (row[0], row[1], row[2][0]):
                    for piece in re.findall(r"[A-Za-z0-9۰-۹٠-٩@._+-]{6,}", field):
                        assert piece not in text, (path.name, piece)
