"""The specification's chat corpus: Kamtera/Persian-conversational-dataset (key `text`).

Legal questions and answers from a Persian legal-advice site (dadrah.ir): four JSON files, each ONE
JSON array of rows `[title, question, answers, keywords]` (shape `chat-json`, fields by position;
`keywords` is not used). The loading script and the README come along; only `*.json` is read.
The catalog entry is `SOURCE`; `replica_files` builds the local hub's replica of the repo.

The replica mirrors the real repo (SOURCES.md A): the same file names, formats and Git LFS split
(`dadrah_dataset.json` is a plain git blob), with generated rows and the defects real rows have, each
listed in `TEXT_ADVERSARIAL` (the tests add damaged files of their own: tests/support).
"""

from __future__ import annotations

import json
import random
from typing import Any

from ..layout import SPEC_CHAT_FOLDER
from ..localhub import replica_kit as kit
from .chat_json import ChatJsonReader, RowFields
from ..source import CHAT_BUCKET, ChatPolicy, Source

SOURCE = Source(
    key="text",
    repo_id="Kamtera/Persian-conversational-dataset",
    repo_type="dataset",
    bucket=CHAT_BUCKET,
    folder=SPEC_CHAT_FOLDER,  # datasets/text/persian_conversation, as the specification names it
    content_dir="data",
    count_key="text_persian_conversation_files",
    license="apache-2.0 (see dataset card)",
    title="Kamtera/Persian-conversational-dataset (Hugging Face)",
    shape="chat-json",
    reader=ChatJsonReader(RowFields(title=0, question=1, answers=2, optional=(("keywords", 3),))),
    chat=ChatPolicy(),  # the legal-assistant system prompt, ChatOptions' default
    card_title=("Chat corpus", "پیکرهٔ گفتگوی حقوقی فارسی"),
)


# ---------------------------------------------------------------------------------------------
# The local hub's replica
# ---------------------------------------------------------------------------------------------
TEXT_FILES = (
    "dadrah_dataset.json",
    "dadrah_dataset1-1000_10000.json",
    "dadrah_dataset1-10000_100000.json",
    "dadrah_dataset1-100000_276342.json",
)
TEXT_LFS_FILES = TEXT_FILES[1:]  # dadrah_dataset.json is a plain git blob on the Hub
ZWNJ = "\u200c"

# kind -> where it is and what it is. Counts do not depend on the scale. "well_formed" means the
# strict schema holds: a 4-item list [str, str, list[str], list[str]] (content may still be odd).
TEXT_ADVERSARIAL: dict[str, dict[str, Any]] = {
    "arabic_letters": {"file": TEXT_FILES[0], "count": 1, "well_formed": True,
                       "what": "Arabic ي ى ك ة and ۀ instead of Persian ی ک ه"},
    "zwnj": {"file": TEXT_FILES[0], "count": 1, "well_formed": True,
             "what": "ZWNJ at start/end of strings, doubled, beside spaces, inside words (می‌خواهم), alone"},
    "diacritics": {"file": TEXT_FILES[0], "count": 1, "well_formed": True,
                   "what": "Arabic harakat: fatha, kasra, damma, shadda, sukun, tanwin, superscript alef"},
    "tatweel": {"file": TEXT_FILES[0], "count": 1, "well_formed": True, "what": "kashida U+0640, single and runs"},
    "digits": {"file": TEXT_FILES[0], "count": 1, "well_formed": True,
               "what": "Arabic-Indic ٠-٩, Persian ۰-۹ and ASCII digits mixed"},
    "odd_spaces": {"file": TEXT_FILES[0], "count": 1, "well_formed": True,
                   "what": "NBSP, U+200F RLM, U+200E LRM, U+2009, U+202F, U+3000, BOM U+FEFF, tab, CR/LF, U+2028"},
    "control_chars": {"file": TEXT_FILES[0], "count": 1, "well_formed": True,
                      "what": "U+0000, U+0001, U+0007, U+0008, U+001B, U+007F, U+0085"},
    "multi_answers": {"file": TEXT_FILES[0], "count": 1, "well_formed": True, "what": "4 answers"},
    "empty_answers": {"file": TEXT_FILES[1], "count": 1, "well_formed": True, "what": "answers == []"},
    "empty_question": {"file": TEXT_FILES[1], "count": 1, "well_formed": True, "what": 'question == ""'},
    "three_items": {"file": TEXT_FILES[1], "count": 1, "well_formed": False,
                    "what": "[title, question, answers] (no keywords)"},
    "five_items": {"file": TEXT_FILES[1], "count": 1, "well_formed": False,
                   "what": "[title, question, answers, keywords, extra string]"},
    "answers_null": {"file": TEXT_FILES[1], "count": 1, "well_formed": False, "what": "answers is null"},
    "answers_string": {"file": TEXT_FILES[1], "count": 1, "well_formed": False,
                       "what": "answers is one string, not a list"},
    "title_number": {"file": TEXT_FILES[1], "count": 1, "well_formed": False,
                     "what": "title is the JSON number 12345; the rest is valid"},
    "duplicate_across_files": {"file": TEXT_FILES[1], "count": 1, "well_formed": True,
                               "what": "exact copy of the first normal row of dadrah_dataset.json"},
    "duplicate_in_file": {"file": TEXT_FILES[2], "count": 1, "well_formed": True,
                          "what": "exact copy of the first normal row of the same file"},
}
_TOPICS = (
    "مهریه", "طلاق توافقی", "اجاره‌نامه", "چک برگشتی", "تقسیم ارث", "حضانت فرزند",
    "قرارداد کار", "سند رسمی ملک", "دیه تصادف", "نفقه", "ضمانت وام", "شکایت کیفری",
    "وصیت‌نامه", "بیمه تأمین اجتماعی", "اخراج از کار", "قولنامه خودرو", "ملک مشاع",
    "کلاهبرداری", "خلع ید", "تخلیه ملک", "سفته", "جهیزیه", "اعسار", "ودیعه مسکن",
)
_TITLE_FORMS = ("{t}", "سوال در مورد {t}", "مشکل {t}", "{t} و {u}", "راهنمایی درباره {t}")
_CONTEXTS = (
    "من {n} سال پیش ازدواج کردم و اکنون همسرم {x}.",
    "حدود {n} ماه پیش یک واحد آپارتمان با {m} میلیون تومان ودیعه اجاره کردم و مالک {y}.",
    "چکی به مبلغ {m} میلیون تومان از یکی از آشنایان گرفتم که برگشت خورده است.",
    "پدرم {n} ماه پیش فوت کرده و {k} وارث دارد.",
    "در یک شرکت خصوصی {n} سال سابقه کار دارم و کارفرما {z}.",
    "خودرویی را با قولنامه به مبلغ {m} میلیون تومان خریدم اما فروشنده {w}.",
    "برادرم {m} میلیون تومان از من قرض گرفته و بعد از {n} ماه هنوز پس نداده است.",
)
_FILL = {
    "x": ("خانه را ترک کرده است", "نفقه پرداخت نمی‌کند", "درخواست طلاق دارد"),
    "y": ("ودیعه را پس نمی‌دهد", "می‌خواهد پیش از پایان قرارداد مرا بیرون کند"),
    "z": ("بدون اطلاع قبلی مرا اخراج کرده است", "حق بیمه مرا پرداخت نکرده است"),
    "w": ("سند را منتقل نمی‌کند", "از تحویل خودرو خودداری می‌کند"),
}
_ASKS = (
    "آیا می‌توانم شکایت کنم؟", "تکلیف من چیست؟", "لطفا راهنمایی کنید.", "چه مدارکی لازم است؟",
    "هزینه دادرسی چقدر است؟", "آیا نیاز به وکیل دارم؟", "رسیدگی چه مدت طول می‌کشد؟",
)
_OPENERS = ("با سلام.", "سلام علیکم.", "با سلام و احترام.")
_CODES = (
    "مدنی", "کار", "مجازات اسلامی", "صدور چک", "حمایت خانواده", "آیین دادرسی مدنی",
    "روابط موجر و مستأجر", "ثبت اسناد و املاک",
)
_ADVICE = (
    "شما می‌توانید با مراجعه به دفاتر خدمات الکترونیک قضایی دادخواست خود را ثبت کنید.",
    "بهتر است ابتدا یک اظهارنامه رسمی برای طرف مقابل ارسال کنید.",
    "حتما مدارک و رسیدهای پرداخت را نزد خود نگه دارید.",
    "مهلت اعتراض به رأی {d} روز از تاریخ ابلاغ است.",
    "در این خصوص پیشنهاد می‌شود با یک وکیل پایه یک دادگستری مشورت کنید.",
    "رسیدگی به این دعوا در صلاحیت شورای حل اختلاف است.",
    "امکان درخواست تأمین خواسته نیز وجود دارد.",
    "هزینه دادرسی بر اساس مبلغ خواسته محاسبه می‌شود.",
)


def text_row(r: random.Random) -> list:
    t, u = r.sample(_TOPICS, 2)
    title = r.choice(_TITLE_FORMS).format(t=t, u=u)
    ctx = r.choice(_CONTEXTS).format(
        n=kit.fa_digits(r.randint(1, 12)), m=kit.fa_digits(r.randint(5, 900)), k=kit.fa_digits(r.randint(2, 7)),
        **{key: r.choice(vals) for key, vals in _FILL.items()},
    )
    question = " ".join(["سلام.", ctx, *r.sample(_ASKS, r.randint(1, 2))])
    answers = []
    for _ in range(r.choice((1, 1, 1, 2, 2, 3))):
        law = f"{r.choice(('طبق', 'بر اساس'))} ماده {kit.fa_digits(r.randint(1, 1300))} قانون {r.choice(_CODES)}،"
        advice = [a.format(d=kit.fa_digits(r.choice((10, 20, 30)))) for a in r.sample(_ADVICE, 2)]
        answers.append(" ".join([r.choice(_OPENERS), law, *advice]))
    keywords = [t, *(r.sample(_TOPICS, r.randint(0, 2)))]
    return [title, question, answers, list(dict.fromkeys(keywords))]


def text_adversarial_rows() -> list[tuple[str, str, Any]]:
    """(kind, file, row) for every adversarial row whose content is fixed (not the duplicates)."""
    q = "سلام. همسرم مهریه‌اش را به اجرا گذاشته است. آیا می‌توانم تقسیط بخواهم؟"
    a = "با سلام. طبق ماده ۱۰۸۲ قانون مدنی، می‌توانید دادخواست اعسار و تقسیط بدهید."
    kw = ["مهریه", "اعسار"]
    z = ZWNJ
    rows = [
        ("arabic_letters", [
            "سوال درباره چك و مهريه",
            "سلام. آيا مي\u200cتوانم براي چك برگشتي شكايت كنم؟ نامه از طرف شركة بيمه رسيد. خانۀ ما در رهن است. مبلغ ديه چقدر است؟ مصطفى گفت فتوى دارد.",
            ["با سلام. بله، مي\u200cتوانيد شكايت كيفري مطرح كنيد. ماده ۲ قانون صدور چك را ببينيد؛ نامۀ شركة معتبر است."],
            ["چك", "مهريه", "شكايت"],
        ]),
        ("zwnj", [
            z + "سوال درباره ارث" + z,
            "سلام." + z + " من می" + z + "خواهم " + z + "خانه" + z + z + "ای را بفروشم " + z + " که ارث پدرم است" + z + z
            + " و برادرم نمی" + z + "گذارد. کتاب" + z + "ها و " + z,
            [z + "با سلام. شما می" + z + "توانید دعوای تقسیم ترکه را مطرح کنید." + z, z],
            ["ارث" + z, z + "تقسیم" + z + z + "ترکه"],
        ]),
        ("diacritics", [
            "حَقِّ حَضانَت",
            "سَلامٌ. آیا مادَر پَس اَز طَلاق حَقِّ حَضانَتِ فَرزَندِ هَفت ساله را دارَد؟ مُتَشَکِّرَم، اِنْشاءَاللّٰه جَوابْ بِدَهید.",
            ["با سَلام. طِبقِ ماده ۱۱۶۹ قانونِ مَدَنی، حَضانَت تا هَفت سالِگی با مادَر اَست. ضَمناً اَوَّلاً و ثانیاً مَدارِک لازِم اَست."],
            ["حَضانَت", "طَلاق"],
        ]),
        ("tatweel", [
            "ســــوال درباره اجـاره",
            "سلــام. مالک ودیعـــه را پس نمی\u200cدهـد. چـــه کنم؟",
            ["بـا سلام. دادخواسـت استرداد ودیعـه را ثبت کنیـد."],
            ["اجـاره", "ودیعـــه"],
        ]),
        ("digits", [
            "چک ۱۲ میلیونی",
            "سلام. چکی به مبلغ ١٢٠،٠٠٠،٠٠٠ ریال (120000000) در تاریخ ۱۴۰۲/۰۵/۱۷ برگشت خورد. شماره پرونده ٩٣٤٥٦78۹ است.",
            ["با سلام. طبق ماده ٧ قانون صدور چک و ماده 13، ظرف ۶ ماه شکایت کنید. تلفن: ۰۲۱-٨٨٧٧٦٦٥٥"],
            ["چک", "١٤٠٢"],
        ]),
        ("odd_spaces", [
            "سوال\u00a0درباره\u200fنفقه",
            "\ufeffسلام.\u00a0همسرم\u2009نفقه\u202fنمی\u200cدهد.\u200f\u200e آیا\u3000می\u200cتوانم\tشکایت کنم؟\r\nممنون\u2028از شما  ",
            ["\u00a0با سلام.\u00a0بله، می\u200cتوانید.\u200f "],
            ["نفقه\u00a0", "\u200fشکایت"],
        ]),
        ("control_chars", [
            "سوال\x00درباره\x01سفته",
            "سلام.\x07 سفته\x08ای که امضا کرده\x1bام گم شده\x7f است.\x85 چه کنم؟",
            ["با سلام.\x00 اعلام مفقودی کنید.\x1b"],
            ["سفته\x00", "مفقودی"],
        ]),
        ("multi_answers", [
            "تقسیم ترکه", q, [a, "سلام. بله امکان\u200cپذیر است.", "با سلام و احترام. به وکیل مراجعه کنید.", "سلام. دادگاه تصمیم می\u200cگیرد."], kw,
        ]),
        ("empty_answers", ["اعسار از پرداخت مهریه", q, [], kw]),
        ("empty_question", ["مهریه", "", [a], kw]),
        ("three_items", ["مهریه و اعسار", q, [a]]),
        ("five_items", ["مهریه و اعسار", q, [a], kw, "extra"]),
        ("answers_null", ["مهریه و اعسار", q, None, kw]),
        ("answers_string", ["مهریه و اعسار", q, a, kw]),
        ("title_number", [12345, q, [a], kw]),
    ]
    return [(kind, TEXT_ADVERSARIAL[kind]["file"], row) for kind, row in rows]


def text_rows(scale: kit.ReplicaScale) -> dict[str, list[tuple[str, Any]]]:
    """file -> [(kind, row)], kind "normal" or an adversarial kind; in file order."""
    seen: set[str] = set()
    normal: dict[str, list] = {}
    for name in TEXT_FILES:
        r = kit.rng("text", name)
        rows = []
        while len(rows) < scale.text_rows:
            row = text_row(r)
            key = json.dumps(row)
            if key not in seen:  # normal rows are all distinct, across files too
                seen.add(key)
                rows.append(row)
        normal[name] = rows
    extra: dict[str, list[tuple[str, Any]]] = {name: [] for name in TEXT_FILES}
    for kind, name, row in text_adversarial_rows():
        extra[name].append((kind, row))
    extra[TEXT_FILES[1]].append(("duplicate_across_files", list(normal[TEXT_FILES[0]][0])))
    out: dict[str, list[tuple[str, Any]]] = {}
    for name in TEXT_FILES:
        if name == TEXT_FILES[2]:
            extra[name].append(("duplicate_in_file", list(normal[name][0])))
        # Spread the adversarial rows through the file, never before the first normal row.
        adds, n = extra[name], len(normal[name])
        slots = [1 + (j + 1) * (n - 1) // (len(adds) + 1) for j in range(len(adds))]
        rows: list[tuple[str, Any]] = []
        for i, row in enumerate(normal[name]):
            rows.extend(item for item, slot in zip(adds, slots) if slot == i)
            rows.append(("normal", row))
        rows.extend(item for item, slot in zip(adds, slots) if slot >= n)
        out[name] = rows
    return out


def dump_rows(rows: list) -> bytes:
    # Like the real files: json.dump defaults, so one line, ensure_ascii=True (\uXXXX escapes).
    return json.dumps(rows).encode("ascii")


_LOADING_SCRIPT = '''\
# dadrah_dataset.json
# persian-conversational-dataset
"""Persian conversational dataset: legal questions and answers from dadrah."""

import json

import datasets

_DESCRIPTION = """\\
persian-conversational-dataset
"""

_URL = "https://huggingface.co/datasets/Kamtera/Persian-conversational-dataset/resolve/main/"
_URLS = {
    "train": [
        _URL + "dadrah_dataset1-1000_10000.json",
        _URL + "dadrah_dataset1-10000_100000.json",
        _URL + "dadrah_dataset1-100000_276342.json",
    ],
    "test": [_URL + "dadrah_dataset.json"],
}


class persianConversation(datasets.GeneratorBasedBuilder):
    VERSION = datasets.Version("0.1.0")

    def _info(self):
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=datasets.Features(
                {
                    "title": datasets.Value("string"),
                    "question": datasets.Value("string"),
                    "answers": datasets.Sequence(datasets.Value("string")),
                    "keywords": datasets.Sequence(datasets.Value("string")),
                }
            ),
            supervised_keys=None,
            homepage="https://huggingface.co/datasets/Kamtera/Persian-conversational-dataset",
        )

    def _split_generators(self, dl_manager):
        files = dl_manager.download(_URLS)
        return [
            datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={"files": files["train"]}),
            datasets.SplitGenerator(name=datasets.Split.TEST, gen_kwargs={"files": files["test"]}),
        ]

    def _generate_examples(self, files):
        key = 0
        for path in files:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            for row in data:
                title, question, answers, keywords = row
                yield key, {
                    "title": title,
                    "question": question,
                    "answers": answers,
                    "keywords": keywords,
                }
                key += 1
'''

# The real README.md: front matter plus the one word body, 147 bytes, no final newline.
_TEXT_README = (
    "---\nlicense: apache-2.0\ntask_categories:\n- conversational\n- text-generation\n"
    "language:\n- fa\npretty_name: persianConversation\n---\npersianConversation"
)


def text_repo(scale: kit.ReplicaScale = kit.TINY) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name, rows in text_rows(scale).items():
        files[name] = dump_rows([row for _, row in rows])
    files[".gitattributes"] = (kit.GITATTRIBUTES_DATASET + "".join(kit.lfs_line(p) for p in TEXT_LFS_FILES)).encode()
    files["Persian-conversational-dataset.py"] = _LOADING_SCRIPT.encode()
    files["README.md"] = _TEXT_README.encode()
    return files


def replica_files(scale: kit.ReplicaScale = kit.TINY, **_: Any) -> dict[str, bytes]:
    return text_repo(scale)
