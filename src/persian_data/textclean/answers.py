"""Answers that say nothing, and lawyers' advertising inside answers.

An answer is cut into sentences (after ``.``, ``!``, ``?``, ``؟`` and newlines; the separators are
kept, so what stays is the original text) and each sentence is one of:

- *contact*: a way to reach someone or an offer of paid advice — a PII placeholder (the masker
  runs first), or a phrase such as «تماس بگیرید», «جهت مشاوره», «شماره تماس», «واتساپ»,
  «دفتر وکالت», «در خدمت شما هستیم»;
- *referral*: only sends the asker elsewhere — «با یک وکیل مشورت کنید», «به وکیل مراجعه کنید»,
  «نیاز به بررسی مدارک دارد», «مشاوره حضوری»;
- *courtesy*: «سلام», «با سلام و احترام», «موفق باشید», «با تشکر»;
- *content*: anything else (the advice).

Verdict (`clean_answer`): contact sentences are removed from every answer (counted in
``removed``); an answer left with no content sentence is dropped, as ``contact_only`` when it had a
contact sentence, else ``referral_only``, else ``no_content`` (greetings only); one whose remaining
text is shorter than `min_chars` is dropped as ``too_short``. Matching ignores ZWNJ and repeated
spaces, and works on normalized (ی/ک) text.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..compiled import SPEEDUPS

_SENTENCE = re.compile(r"[^.!?؟\n]*(?:[.!?؟]+|\n+|$)")
_PLACEHOLDER = re.compile(r"\[(?:PHONE|EMAIL|URL|HANDLE)\]")


# Each phrase with the words every match of it holds (groups: one word of each group must be
# there). The alternation of the phrases is the rule; the fast path (`_kind_normalized`) tries
# only the phrases whose words a sentence holds, which finds a match exactly when the alternation
# does (most sentences of legal advice hold «وکیل» or «قرارداد», few hold a whole phrase).
_CONTACT_PHRASES = (
    (r"تماس\s*(?:بگیرید|بگیرین|حاصل\s*(?:کنید|فرمایید|نمایید))", ("تماس",)),
    (r"شماره\s*(?:تماس|تلفن|همراه|موبایل)", ("شماره",), ("تماس", "تلفن", "همراه", "موبایل")),
    (r"(?:جهت|برای)\s*(?:دریافت\s*)?(?:مشاوره|وقت\s*مشاوره|مشورت)", ("جهت", "برای"), ("مشاوره", "مشورت")),
    (r"مشاوره\s*(?:تلفنی|تخصصی|رایگان)", ("مشاوره",)),
    (r"وقت\s*مشاوره", ("مشاوره",), ("وقت",)),
    (r"واتس\s*اپ", ("واتس",)), (r"واتساپ", ("واتساپ",)), (r"تلگرام", ("تلگرام",)), (r"اینستاگرام", ("اینستاگرام",)),
    (r"ایتا", ("ایتا",)), (r"روبیکا", ("روبیکا",)),
    (r"دفتر\s*وکالت", ("دفتر",), ("وکالت",)), (r"آدرس\s*دفتر", ("دفتر",), ("آدرس",)),
    (r"در\s*خدمت\s*(?:شما|شما\s*عزیزان)?\s*(?:هستم|هستیم)", ("خدمت",), ("هست",)),
    (r"با\s*(?:اینجانب|بنده|من|ما)\s*(?:در\s*)?تماس", ("تماس",)),
    (r"(?:پیام|پیامک)\s*(?:دهید|بدهید|بدید|ارسال\s*کنید)", ("پیام",)),
    (r"به\s*(?:سایت|وبسایت|پیج|صفحه)\s*(?:ما|اینجانب|بنده)", ("سایت", "پیج", "صفحه")),
)
_REFERRAL_PHRASES = (
    (r"(?:با|به)\s*(?:یک\s*)?وکیل\s*(?:\S+\s*){0,2}?(?:مشورت|مشاوره|مراجعه)", ("وکیل",), ("مشورت", "مشاوره", "مراجعه")),
    (r"(?:به|با)\s*(?:یک\s*)?(?:کارشناس|مشاور)\s*(?:حقوقی\s*)?(?:مراجعه|مشورت|مشاوره)", ("کارشناس", "مشاور"),
     ("مراجعه", "مشورت", "مشاوره")),
    (r"مشاوره\s*حضوری", ("مشاوره",), ("حضوری",)),
    (r"(?:نیاز|احتیاج)\s*به\s*(?:بررسی|مطالعه|رویت)\s*(?:دقیق\s*)?(?:مدارک|پرونده|قرارداد)",
     ("مدارک", "پرونده", "قرارداد"), ("بررسی", "مطالعه", "رویت")),
    (r"(?:بررسی|مطالعه|رویت)\s*(?:دقیق\s*)?(?:مدارک|پرونده|قرارداد)\s*(?:لازم|ضروری)",
     ("مدارک", "پرونده", "قرارداد"), ("بررسی", "مطالعه", "رویت"), ("لازم", "ضروری")),
    (r"بدون\s*(?:بررسی|مطالعه|رویت)\s*(?:مدارک|پرونده|قرارداد)", ("مدارک", "پرونده", "قرارداد"), ("بدون",)),
)


def _phrases(phrases: tuple) -> re.Pattern:
    return re.compile("|".join(p[0] for p in phrases))


_CONTACT, _REFERRAL = _phrases(_CONTACT_PHRASES), _phrases(_REFERRAL_PHRASES)


def _by_keyword(phrases: tuple) -> dict[str, tuple]:
    """Keyword -> the phrases a sentence holding it may match: each phrase under the keywords of
    its first group whose every word holds one (a match holds one of that group's words, so one of
    those keywords)."""
    index: dict[str, list] = {}
    for n, (pattern, *needs) in enumerate(phrases):
        group = next(g for g in needs if all(any(k in w for k in _KEYWORDS) for w in g))
        for k in {k for w in group for k in _KEYWORDS if k in w}:
            index.setdefault(k, []).append((n, re.compile(pattern), tuple(needs)))
    return {k: tuple(v) for k, v in index.items()}


def _any_phrase(index: dict[str, tuple], keywords: list[str], loose: str) -> bool:
    """The alternation's `search(loose) is not None`, trying only the phrases that the keywords
    `loose` holds lead to, and of those only the ones whose every word group is there."""
    tried: set[int] = set()
    for k in keywords:
        for n, pattern, needs in index.get(k, ()):
            if n in tried:
                continue
            tried.add(n)
            for group in needs:
                for w in group:
                    if w in loose:
                        break
                else:
                    break
            else:
                if pattern.search(loose):
                    return True
    return False


_COURTESY = re.compile(
    r"^(?:با\s*)?(?:سلام|درود)(?:\s*و\s*(?:احترام|عرض\s*ادب|وقت\s*بخیر))?|^(?:موفق|پیروز)\s*باشید|"
    r"^(?:با\s*)?(?:تشکر|سپاس|احترام)|^(?:ان\s*شاء\s*الله|انشاالله|انشالله)|^وقت\s*بخیر")
_STRIP = " \t\r\n.!?؟،,:;؛-–—()«»\"'"
# Every phrase above holds one of these words: a substring test in C before the alternations
# (which the regex engine tries at every position).
_KEYWORDS = ("تماس", "شماره", "مشاور", "مشورت", "واتس", "تلگرام", "اینستاگرام", "ایتا", "روبیکا", "دفتر",
             "خدمت", "پیام", "سایت", "پیج", "صفحه", "وکیل", "کارشناس", "مدارک", "پرونده", "قرارداد")

_CONTACT_BY_KEYWORD, _REFERRAL_BY_KEYWORD = _by_keyword(_CONTACT_PHRASES), _by_keyword(_REFERRAL_PHRASES)


class AnswerVerdict(NamedTuple):
    text: str | None  # the answer to keep (contact sentences removed), or None: drop it
    reason: str | None  # why it is dropped: contact_only, referral_only, no_content, too_short
    removed: list[str]  # the contact sentences taken out


_SPACES = re.compile(r"\s+")


def _loose(sentence: str) -> str:
    return _SPACES.sub(" ", sentence.replace("\u200c", " ")).strip(_STRIP)


def sentence_kind(sentence: str) -> str:
    """contact, referral, courtesy, content or empty."""
    loose = _loose(sentence)
    if not loose:
        return "empty"
    if _PLACEHOLDER.search(sentence):
        return "contact"
    if not any(k in loose for k in _KEYWORDS):  # most sentences: no phrase can match
        return _plain_kind(loose)
    if _CONTACT.search(loose):
        return "contact"
    if _REFERRAL.search(loose):
        # a referral inside a long sentence of advice is advice with a recommendation
        return "referral" if len(loose) < 120 else "content"
    return _plain_kind(loose)


def _plain_kind(loose: str) -> str:
    """courtesy, content or empty: a sentence known to hold no contact or referral phrase."""
    if not loose:
        return "empty"
    if len(loose) < 40 and _COURTESY.match(loose):
        return "courtesy"
    return "content"


def clean_answer(text: str, min_chars: int = 15, normalized: bool = False) -> AnswerVerdict:
    """The verdict on one answer (see the module docstring). `normalized`: the text comes from
    `persian_data.normalize` (then masked or not), whose whitespace is single spaces and newlines
    and whose ZWNJs stand only inside words; the same verdict is then reached with less work (an
    answer holding no keyword of any phrase and no placeholder can only hold courtesy and content
    sentences: it is kept whole as soon as one content sentence is seen)."""
    if not normalized:
        kinds = [(s, sentence_kind(s)) for s in _SENTENCE.findall(text) if s]
        return _verdict(text, kinds, min_chars)
    if _compiled_verdict is not None:  # in C (the same verdict: tests/test_speedups.py)
        return AnswerVerdict(*_compiled_verdict(text, min_chars))
    return clean_normalized(text, min_chars)


def clean_normalized(text: str, min_chars: int) -> AnswerVerdict:
    """`clean_answer(text, min_chars, normalized=True)` in Python."""
    present = [k for k in _KEYWORDS if k in text]
    if "[" not in text and not _phrase_possible(present, text):
        for m in _SENTENCE.finditer(text):
            if m.end() > m.start() and _plain_kind(_loose_normalized(m.group())) == "content":
                kept = text.strip()  # the sentences are the whole text, none of them is removed
                if len(kept) < min_chars:
                    return AnswerVerdict(None, "too_short", [])
                return AnswerVerdict(kept, None, [])
        return AnswerVerdict(None, "no_content", [])
    kinds = [(s, _kind_normalized(s, present)) for s in _SENTENCE.findall(text) if s]
    return _verdict(text, kinds, min_chars)


def _phrase_possible(present: list[str], text: str) -> bool:
    """May some sentence of `text` match a contact or referral phrase? Only if, for one of the
    phrases its keywords lead to, every word group has a word in the text (a word in a sentence
    is in its text)."""
    for index in (_CONTACT_BY_KEYWORD, _REFERRAL_BY_KEYWORD):
        for k in present:
            for _, _, needs in index.get(k, ()):
                for group in needs:
                    for w in group:
                        if w in text:
                            break
                    else:
                        break
                else:
                    return True
    return False


def _verdict(text: str, kinds: list[tuple[str, str]], min_chars: int) -> AnswerVerdict:
    removed = [s.strip() for s, kind in kinds if kind == "contact"]
    kept = "".join(s for s, kind in kinds if kind != "contact").strip()
    if not any(kind == "content" for _, kind in kinds):
        reason = ("contact_only" if removed else
                  "referral_only" if any(kind == "referral" for _, kind in kinds) else "no_content")
        return AnswerVerdict(None, reason, removed)
    if len(kept) < min_chars:
        return AnswerVerdict(None, "too_short", removed)
    return AnswerVerdict(kept, None, removed)


def _loose_normalized(sentence: str) -> str:
    """`_loose` of a sentence of normalized text: its only whitespace is single spaces (and the
    newlines that end it, which the strip takes), and a ZWNJ never stands beside a space."""
    return sentence.replace("\u200c", " ").strip(_STRIP)


def _kind_normalized(sentence: str, present: list[str]) -> str:
    """`sentence_kind` of a sentence of normalized text; `present`: the keywords its answer holds
    (a keyword in a sentence is in its answer)."""
    loose = _loose_normalized(sentence)
    if not loose:
        return "empty"
    if "[" in sentence and _PLACEHOLDER.search(sentence):
        return "contact"
    here = [k for k in present if k in loose]
    if not here:
        return _plain_kind(loose)
    if _any_phrase(_CONTACT_BY_KEYWORD, here, loose):
        return "contact"
    if _any_phrase(_REFERRAL_BY_KEYWORD, here, loose):
        return "referral" if len(loose) < 120 else "content"
    return _plain_kind(loose)


def _install_compiled_verdict():
    """`_speedups.answer_verdict` told these rules (None without the C extension)."""
    if SPEEDUPS is None:
        return None
    phrases = tuple(tuple((index is _CONTACT_BY_KEYWORD, pattern.search, needs)
                          for index in (_CONTACT_BY_KEYWORD, _REFERRAL_BY_KEYWORD) for _, pattern, needs in index.get(k, ()))
                    for k in _KEYWORDS)
    SPEEDUPS.set_answer_rules(_KEYWORDS, phrases, _STRIP, _COURTESY.match, _PLACEHOLDER.search)
    return SPEEDUPS.answer_verdict


_compiled_verdict = _install_compiled_verdict()
