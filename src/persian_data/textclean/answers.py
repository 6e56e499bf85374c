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
from dataclasses import dataclass, field

_SENTENCE = re.compile(r"[^.!?؟\n]*(?:[.!?؟]+|\n+|$)")
_PLACEHOLDER = re.compile(r"\[(?:PHONE|EMAIL|URL|HANDLE)\]")


def _phrases(*items: str) -> re.Pattern:
    return re.compile("|".join(items))


_CONTACT = _phrases(
    r"تماس\s*(?:بگیرید|بگیرین|حاصل\s*(?:کنید|فرمایید|نمایید))", r"شماره\s*(?:تماس|تلفن|همراه|موبایل)",
    r"(?:جهت|برای)\s*(?:دریافت\s*)?(?:مشاوره|وقت\s*مشاوره|مشورت)", r"مشاوره\s*(?:تلفنی|تخصصی|رایگان)",
    r"وقت\s*مشاوره", r"واتس\s*اپ|واتساپ|تلگرام|اینستاگرام|ایتا|روبیکا", r"دفتر\s*وکالت", r"آدرس\s*دفتر",
    r"در\s*خدمت\s*(?:شما|شما\s*عزیزان)?\s*(?:هستم|هستیم)", r"با\s*(?:اینجانب|بنده|من|ما)\s*(?:در\s*)?تماس",
    r"(?:پیام|پیامک)\s*(?:دهید|بدهید|بدید|ارسال\s*کنید)", r"به\s*(?:سایت|وبسایت|پیج|صفحه)\s*(?:ما|اینجانب|بنده)",
)
_REFERRAL = _phrases(
    r"(?:با|به)\s*(?:یک\s*)?وکیل\s*(?:\S+\s*){0,2}?(?:مشورت|مشاوره|مراجعه)",
    r"(?:به|با)\s*(?:یک\s*)?(?:کارشناس|مشاور)\s*(?:حقوقی\s*)?(?:مراجعه|مشورت|مشاوره)",
    r"مشاوره\s*حضوری", r"(?:نیاز|احتیاج)\s*به\s*(?:بررسی|مطالعه|رویت)\s*(?:دقیق\s*)?(?:مدارک|پرونده|قرارداد)",
    r"(?:بررسی|مطالعه|رویت)\s*(?:دقیق\s*)?(?:مدارک|پرونده|قرارداد)\s*(?:لازم|ضروری)",
    r"بدون\s*(?:بررسی|مطالعه|رویت)\s*(?:مدارک|پرونده|قرارداد)",
)
_COURTESY = re.compile(
    r"^(?:با\s*)?(?:سلام|درود)(?:\s*و\s*(?:احترام|عرض\s*ادب|وقت\s*بخیر))?|^(?:موفق|پیروز)\s*باشید|"
    r"^(?:با\s*)?(?:تشکر|سپاس|احترام)|^(?:ان\s*شاء\s*الله|انشاالله|انشالله)|^وقت\s*بخیر")
_STRIP = " \t\r\n.!?؟،,:;؛-–—()«»\"'"
# Every phrase above holds one of these words: a substring test in C before the alternations
# (which the regex engine tries at every position).
_KEYWORDS = ("تماس", "شماره", "مشاور", "مشورت", "واتس", "تلگرام", "اینستاگرام", "ایتا", "روبیکا", "دفتر",
             "خدمت", "پیام", "سایت", "پیج", "صفحه", "وکیل", "کارشناس", "مدارک", "پرونده", "قرارداد")


@dataclass(frozen=True)
class AnswerVerdict:
    text: str | None  # the answer to keep (contact sentences removed), or None: drop it
    reason: str | None  # why it is dropped: contact_only, referral_only, no_content, too_short
    removed: list[str] = field(default_factory=list)  # the contact sentences taken out


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
    if _COURTESY.match(loose) and len(loose) < 40:
        return "courtesy"
    return "content"


def clean_answer(text: str, min_chars: int = 15) -> AnswerVerdict:
    kinds: list[tuple[str, str]] = [(s, sentence_kind(s)) for s in _SENTENCE.findall(text) if s]
    removed = [s.strip() for s, kind in kinds if kind == "contact"]
    kept = "".join(s for s, kind in kinds if kind != "contact").strip()
    if not any(kind == "content" for _, kind in kinds):
        reason = ("contact_only" if removed else
                  "referral_only" if any(kind == "referral" for _, kind in kinds) else "no_content")
        return AnswerVerdict(None, reason, removed)
    if len(kept) < min_chars:
        return AnswerVerdict(None, "too_short", removed)
    return AnswerVerdict(kept, None, removed)
