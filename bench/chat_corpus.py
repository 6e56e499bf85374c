"""A chat corpus that looks like the real dadrah files: digit-rich legal Persian (issue 23 item 1).

Legal Q&A is full of numbers: dates (``1399/03/17``, ``۱۴۰۱/۱۱/۰۵``), article and note numbers
(``ماده ۱۰ قانون مدنی``, ``تبصره ۲``), case and verdict numbers (``کلاسه 9909982110200123``,
``دادنامه شماره ۱۴۰۱۶۸۳۹۰۰۰۱۲۳۴۵۶۷``), amounts with separators (``۵۰۰,۰۰۰,۰۰۰ ریال``,
``12.500.000 تومان``), tracking codes, account and ID-like numbers that are not personal data
(a 10-digit code whose check digit fails, a 16-digit number that fails Luhn), written with Latin,
Persian or Arabic-Indic digits and often mixed in one answer; Arabic ي/ك typed by some users;
Latin tokens (``www.adliran.ir``, ``PDF``, ``SMS``, ``sana``, ``Windows 10``). Personal data
comes at plausible rates (phones, national IDs, cards, Sheba, emails, handles), as do contact
lines, referral-only answers, reposts with a greeting added (near-duplicates) and Finglish
questions.

`generate(...)` writes the four dadrah files (real names and sizes times `scale`, ensure_ascii
like the real ones, or raw UTF-8) and returns their paths; `describe(paths)` measures what was
written (digits per 1,000 characters, Latin letters among letters, ...) so that every figure is
printed beside what it was measured on. Rows come from a pool of answers with their numbers drawn
again for every row, and every row asks its own question.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

REAL = (
    ("dadrah_dataset.json", 4.6),
    ("dadrah_dataset1-1000_10000.json", 29),
    ("dadrah_dataset1-10000_100000.json", 281),
    ("dadrah_dataset1-100000_276342.json", 530),
)
MB = 1_000_000
ZWNJ = "\u200c"
FA = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
AR = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
ARABIC_LETTERS = str.maketrans({"ی": "ي", "ک": "ك"})

WORDS = (
    "قانون ماده دادگاه حکم رأی دعوا دادخواست شکایت وکیل موکل قرارداد اجاره مالک مستأجر ودیعه مهریه "
    "طلاق نفقه حضانت ارث ترکه وارث سند ملک خودرو چک سفته ضامن وام بانک بیمه کارفرما کارگر حقوق "
    "دستمزد اخراج سابقه شورای حل اختلاف اجرای احکام ثبت اسناد دفترخانه اظهارنامه تأمین خواسته "
    "کارشناس دادسرا بازپرس جرم مجازات جزای نقدی حبس دیه تصادف راننده خسارت پرداخت مبلغ تومان ریال "
    "همسر پدر مادر برادر خواهر فرزند شوهر زن خانه آپارتمان زمین باغ مغازه شرکت سهام شریک و در به از "
    "که این را با است برای آیا من یک چه نیز تا اگر باید شما ایشان طبق مطابق بر اساس موضوع مورد"
).split()
ZW_WORDS = ("می" + ZWNJ + "توانید", "نمی" + ZWNJ + "شود", "می" + ZWNJ + "باشد", "پرونده" + ZWNJ + "ها",
            "شده" + ZWNJ + "است", "خانه" + ZWNJ + "ای", "دادگاه" + ZWNJ + "ها", "می" + ZWNJ + "گیرد")
LAWS = ("قانون مدنی", "قانون آیین دادرسی مدنی", "قانون مجازات اسلامی", "قانون کار", "قانون صدور چک",
        "قانون حمایت خانواده", "قانون ثبت", "قانون روابط موجر و مستأجر")
LATIN = ("www.adliran.ir", "PDF", "SMS", "sana", "Windows 10", "adliran.ir", "iPhone 13", "A4", "https://eadl.ir",
         "OK", "CEO", "WhatsApp")
SCRIPTS = (str.maketrans("", ""), FA, FA, AR)  # Latin once in four, Persian twice, Arabic-Indic once


def _digits(r: random.Random, n: int) -> str:
    return str(r.randint(1, 9)) + "".join(str(r.randint(0, 9)) for _ in range(n - 1))


def _luhn_fails(r: random.Random) -> str:
    while True:
        s = "6" + _digits(r, 15)
        total = sum(int(c) if i % 2 == 0 else (2 * int(c) - 9 if int(c) > 4 else 2 * int(c))
                    for i, c in enumerate(reversed(s)))
        if total % 10:
            return s


def _id_fails(r: random.Random) -> str:
    while True:
        s = _digits(r, 10)
        total = sum(int(s[i]) * (10 - i) for i in range(9)) % 11
        if int(s[9]) != (total if total < 2 else 11 - total):
            return s


def _number(r: random.Random) -> str:
    """One of the numbers legal text is full of (none of them personal data)."""
    x = r.random()
    if x < 0.22:
        y = r.choice((r.randint(1380, 1403), r.randint(1990, 2024)))
        return f"{y}/{r.randint(1, 12):02d}/{r.randint(1, 30):02d}" if r.random() < 0.8 else f"{y}.{r.randint(1, 12)}.{r.randint(1, 29)}"
    if x < 0.42:
        return f"ماده {r.randint(1, 1335)} {r.choice(LAWS)}" if r.random() < 0.7 else f"تبصره {r.randint(1, 5)} ماده {r.randint(1, 700)}"
    if x < 0.58:
        amount = r.choice((r.randint(1, 999) * 1_000_000, r.randint(1, 99) * 10_000_000, r.randint(5, 900) * 1000))
        sep = r.choice((",", "٬", "."))
        return f"{amount:,}".replace(",", sep) + " " + r.choice(("ریال", "تومان"))
    if x < 0.66:
        return f"{r.randint(1, 999)} میلیون تومان"
    if x < 0.76:
        return r.choice(("کلاسه پرونده ", "دادنامه شماره ", "شماره بایگانی ")) + _digits(r, r.choice((16, 18, 12)))
    if x < 0.82:
        return "کد رهگیری " + _id_fails(r)
    if x < 0.86:
        return "شماره " + _luhn_fails(r)
    if x < 0.90:
        return f"سال {r.randint(1370, 1403)}"
    if x < 0.94:
        return f"{r.randint(2, 60)} روز"
    return f"{r.randint(1, 12)} ماه"


def _pii(r: random.Random) -> str:
    """One piece of personal data, in some spelling and digit script."""
    x = r.random()
    script = r.choice(SCRIPTS)
    if x < 0.55:
        m = "09" + _digits(r, 9)
        return r.choice((m, f"{m[:4]} {m[4:7]} {m[7:]}", f"+98 {m[1:4]} {m[4:7]} {m[7:]}", f"{m[:4]}-{m[4:]}")).translate(script)
    if x < 0.65:
        body = _digits(r, 9)
        s = sum(int(body[i]) * (10 - i) for i in range(9)) % 11
        return "کد ملی " + (body + str(s if s < 2 else 11 - s)).translate(script)
    if x < 0.85:
        return r.choice(("ایمیل ", "")) + f"user{_digits(r, 3)}.law@example.com".translate(script if r.random() < 0.3 else SCRIPTS[0])
    return "@vakil_" + _digits(r, 4).translate(script)


def _sentence(r: random.Random, n: int) -> str:
    words: list[str] = []
    for _ in range(n):
        x = r.random()
        if x < 0.07:
            words.append(r.choice(ZW_WORDS))
        elif x < 0.102:  # the number density of legal text: ~40 digits per 1,000 characters
            words.append(_number(r).translate(r.choice(SCRIPTS)))
        elif x < 0.109:
            words.append(r.choice(LATIN))
        else:
            words.append(r.choice(WORDS))
    return " ".join(words) + r.choice((".", ".", "؟", "،", "!", "\n"))


def _text(r: random.Random, chars: int, sentence=None, longest: int = 22) -> str:
    """Sentences (`sentence(r, words)`, this corpus's by default) up to about `chars` characters."""
    sentence = sentence or _sentence
    out: list[str] = []
    n = 0
    while n < chars:
        s = sentence(r, r.randint(8, longest))
        out.append(s)
        n += len(s) + 1
    return " ".join(out)


CONTACTS = ("جهت مشاوره با شماره {} تماس بگیرید.", "شماره تماس دفتر: {}", "برای وقت مشاوره به {} پیام دهید.")
REFERRALS = ("لطفا با یک وکیل مشورت کنید.", "نیاز به بررسی مدارک دارد، به وکیل مراجعه کنید.", "مشاوره حضوری بگیرید.")


def _answers(r: random.Random, target_chars: int) -> list[str]:
    answers = [_text(r, int(target_chars * r.uniform(0.15, 0.45))) for _ in range(r.choice((1, 1, 2, 2, 3)))]
    x = r.random()
    if x < 0.08:
        answers[0] += " " + r.choice(CONTACTS).format(_pii(r))
    elif x < 0.10:
        answers[0] = r.choice(REFERRALS)
    elif x < 0.11:
        answers[0] = "بله."
    elif x < 0.13:
        answers[0] = "سلام. " + answers[0] + " موفق باشید."
    return answers


def _question(r: random.Random, n: int, target_chars: int, previous: str) -> str:
    """A fresh question: 3 % repost the previous one with a greeting added (near-duplicates), 0.5 %
    are Finglish, 6 % carry personal data."""
    x = r.random()
    if x < 0.03 and previous:
        return "با سلام و احترام " + previous
    if x < 0.035:
        return f"salam, man {n} ta soal daram dar mored ejare va vadie, lotfan rahnamayi konid chikar konam"
    q = "سلام. " + _text(r, int(target_chars * r.uniform(0.2, 0.5))) + " " + _digits(r, 6) + " لطفا راهنمایی کنید؟"
    if x < 0.095:
        q += " " + _pii(r)
    return q


def generate(data: Path, scale: float, utf8: bool = False, seed: int = 7) -> list[Path]:
    """The four raw files (real names, real sizes x `scale`) under `data`."""
    data.mkdir(parents=True, exist_ok=True)
    r = random.Random(seed)
    # ~2.5 kB per row like the real files (845 MB / 337,420 rows): ~420 characters when escaped
    # (\\uXXXX: ~6 bytes a Persian character), ~1,300 in raw UTF-8
    target_chars = 1300 if utf8 else 420
    pool = []
    for _ in range(3000):  # answers with their numbers fixed; titles and keywords per pool row
        title = " ".join(r.choice(WORDS) for _ in range(r.randint(2, 6)))
        row = [title, "@@Q@@", _answers(r, target_chars), [r.choice(WORDS) for _ in range(r.randint(1, 4))]]
        if r.random() < 0.15:  # typed with Arabic yeh/kaf
            row = [row[0].translate(ARABIC_LETTERS), "@@Q@@", [a.translate(ARABIC_LETTERS) for a in row[2]], row[3]]
        pool.append(json.dumps(row, ensure_ascii=not utf8))

    def question(n: int, previous: str) -> str:
        q = _question(r, n, target_chars, previous)
        return q.translate(ARABIC_LETTERS) if r.random() < 0.15 else q

    return write_files(data, scale, utf8, pool, question, spread=7919)


def write_files(data: Path, scale: float, utf8: bool, pool: list[str], question, spread: int = 1) -> list[Path]:
    """The four dadrah files of `scale` x the real sizes under `data`: row n is a pool row (JSON with
    the placeholder question ``"@@Q@@"``) with `question(n, previous_question)` put in; a repost
    (a question ending with the previous one) keeps the previous row's title and answers."""
    data.mkdir(parents=True, exist_ok=True)
    n = 0
    previous = ""
    paths = []
    for name, size_mb in REAL:
        want = int(size_mb * MB * scale)
        path = data / name
        with open(path, "wb") as fh:
            fh.write(b"[")
            written = 1
            first = True
            parts: list[str] = []
            while written < want:
                q = question(n, previous)
                k = n - 1 if previous and q.endswith(previous) else n
                previous = q
                row = pool[(k * spread) % len(pool)].replace('"@@Q@@"', json.dumps(q, ensure_ascii=not utf8))
                s = row if first else ", " + row
                first = False
                n += 1
                parts.append(s)
                written += len(s.encode("utf-8")) if utf8 else len(s)
                if len(parts) >= 2000:
                    fh.write("".join(parts).encode("utf-8"))
                    parts = []
            fh.write("".join(parts).encode("utf-8"))
            fh.write(b"]")
        paths.append(path)
    return paths


def _first_rows(path: Path, n: int) -> list:
    """The first `n` rows of a file, parsed from its beginning only (no whole-file load: the
    benchmark's own memory must stay small, its children inherit its high-water mark)."""
    decoder = json.JSONDecoder()
    with open(path, "rb") as fh:
        text = fh.read(16 << 20).decode("utf-8", "ignore")
    rows, at = [], text.index("[") + 1
    while len(rows) < n:
        while at < len(text) and text[at] in " ,\n":
            at += 1
        try:
            row, at = decoder.raw_decode(text, at)
        except ValueError:  # the end of the array, or of what was read
            break
        rows.append(row)
    return rows


def describe(paths: list[Path], sample_rows: int = 20_000) -> dict:
    """What the corpus holds, measured on the first `sample_rows` rows of each file (parsed)."""
    chars = Counter()
    rows = 0
    for path in paths:
        for row in _first_rows(path, sample_rows):
            rows += 1
            for text in [row[0], row[1], *row[2]]:
                chars["all"] += len(text)
                for ch in text:
                    if ch.isdecimal():
                        chars["digits"] += 1
                        chars["latin_digits"] += ch.isascii()
                    elif ch.isalpha():
                        chars["letters"] += 1
                        chars["latin_letters"] += ch.isascii()
                        chars["arabic_yeh_kaf"] += ch in "يك"
    total = sum(p.stat().st_size for p in paths)
    return {"bytes": total, "sampled_rows": rows, "chars_per_row": chars["all"] / max(rows, 1),
            "digits_per_1000_chars": 1000 * chars["digits"] / max(chars["all"], 1),
            "latin_digit_share": chars["latin_digits"] / max(chars["digits"], 1),
            "latin_letter_share": chars["latin_letters"] / max(chars["letters"], 1),
            "arabic_yeh_kaf_per_1000_letters": 1000 * chars["arabic_yeh_kaf"] / max(chars["letters"], 1)}


def describe_line(d: dict) -> str:
    return (f"corpus: {d['bytes'] / MB:.1f} MB, ~{d['chars_per_row']:.0f} characters a row; "
            f"{d['digits_per_1000_chars']:.1f} digits per 1,000 characters ({100 * d['latin_digit_share']:.0f} % "
            f"Latin digits), Latin letters {100 * d['latin_letter_share']:.2f} % of letters, Arabic ي/ك "
            f"{d['arabic_yeh_kaf_per_1000_letters']:.1f} per 1,000 letters (from {d['sampled_rows']} rows)")
