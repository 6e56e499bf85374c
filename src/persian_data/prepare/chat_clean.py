"""The cleaning rules of the chat stage, applied to each conversation in the worker processes.

The rules themselves are `persian_data.textclean` (pure functions); this module decides their
order and what is counted and shown:

1. **PII** (`pii="mask"`, default): the user turn and every answer are masked (typed
   placeholders); `"drop"` skips a row holding any, `"keep"` leaves the text alone.
2. **Answers** (`answer_rules`): contact lines are cut out of an answer, answers that are only a
   referral, a contact line or greetings, or shorter than `min_answer_chars` once masked, are
   dropped (counted by reason); a row left with no answer is skipped as ``non_answer``.
3. **Script** (`script_check`): a row whose user turn is not mostly Persian script is skipped
   as ``not_persian``; an answer whose first `ANSWER_SCRIPT_SAMPLE` characters are not is dropped
   (``answers_dropped["not_persian"]``).
4. **Near-duplicates** (`near_dup`): the MinHash signature of each row's user turn is computed
   here, in the workers; the parent collapses them (`chat_near_dup`).

Speed: the converter runs `textclean.batch.analyze` once over every user turn and answer of a
batch and hands each text's facts to `apply`: the masker then looks only at digit runs and Latin
tokens, the script check uses the counted letters, and the answer rules (told the text is
normalized) skip the sentence pass of an answer where no phrase can match. Each gives what its
plain form gives (tests/test_chat_fast_path.py: per text, and the whole stage against a plain
composition of the rules, sha256 of combined.jsonl).

Examples for the review sample are taken here, masked: no text leaving a worker ever holds the
personal data the masker found (the rejects file too gets masked rows, `mask_raw`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from ..textclean.script import DEFAULT_THRESHOLD as PERSIAN_THRESHOLD

EXAMPLES_PER_PIECE = 2  # per rule, per piece: the parent keeps the first few of the whole run
EXAMPLE_CHARS = 400
# The script of an answer is judged on its beginning: a reply in another script shows in its first
# sentence, and `persian_ratio` walks the text a character at a time (the costliest rule per byte).
ANSWER_SCRIPT_SAMPLE = 300


def _short(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + " …"


def _mark(text: str) -> str:
    """Masked text with each placeholder emphasised: where the personal data was."""
    from ..textclean.pii import PLACEHOLDERS

    for placeholder in set(PLACEHOLDERS.values()):
        text = text.replace(placeholder, f"**{placeholder}**")
    return text


def mask_raw(value: Any) -> Any:
    """A raw row (as parsed) with every string masked: what the rejects file may hold."""
    return mask_raw_many([value])[0]


def mask_raw_many(values: list[Any]) -> list[Any]:
    """`[mask_raw(v) for v in values]`, with one batch pass (`textclean.batch.analyze`) over all
    their strings so the masker looks only where a pattern can match (same spans)."""
    from ..textclean.batch import analyze
    from ..textclean.pii import find_pii, mask_spans

    strings: list[str] = []

    def collect(v: Any) -> None:
        if isinstance(v, str):
            strings.append(v)
        elif isinstance(v, list):
            for x in v:
                collect(x)
        elif isinstance(v, dict):
            for x in v.values():
                collect(x)

    for v in values:
        collect(v)
    plain = [i for i, t in enumerate(strings) if "\x00" in t]  # the batch pass joins texts with NUL
    facts: list[Any] = [None] * len(strings)
    if len(plain) < len(strings):
        batch = [i for i, t in enumerate(strings) if "\x00" not in t]
        for i, f in zip(batch, analyze([strings[i] for i in batch], ANSWER_SCRIPT_SAMPLE)):
            facts[i] = f
    masked = iter([mask_spans(t, spans) if (spans := find_pii(t, f)) else t for t, f in zip(strings, facts)])

    def rebuild(v: Any) -> Any:
        if isinstance(v, str):
            return next(masked)
        if isinstance(v, list):
            return [rebuild(x) for x in v]
        if isinstance(v, dict):
            return {k: rebuild(x) for k, x in v.items()}
        return v

    return [rebuild(v) for v in values]


def _count_types(spans) -> dict[str, int]:
    """How many spans of each type (a plain dict: a Counter costs more to make than this counts)."""
    found: dict[str, int] = {}
    for m in spans:
        found[m.type] = found.get(m.type, 0) + 1
    return found


def _add_counts(into: Counter, found: dict[str, int]) -> None:
    for k, n in found.items():
        into[k] += n


def _counted_persian(arabic: int, other: int) -> bool:
    """`script.is_mostly_persian` on a text (no placeholder in it) whose letters a batch pass
    counted (`textclean.batch.TextFacts`)."""
    if not other:
        return (1.0 if arabic else 0.0) >= PERSIAN_THRESHOLD
    return arabic / (arabic + other) >= PERSIAN_THRESHOLD


class PieceTally:
    """What the rules did to one piece's rows: counts, and a few masked examples per rule."""

    def __init__(self) -> None:
        self.pii_found: Counter = Counter()
        self.pii_masked: Counter = Counter()
        self.answers_dropped: Counter = Counter()
        self.contact_lines_removed = 0
        self.answers_trimmed = 0
        self.examples: dict[str, list[dict[str, str]]] = {}
        self.users: list[str] = []  # user turns of the converted rows (for near-dup signatures)

    def wants(self, rule: str) -> bool:
        """Is an example of `rule` still wanted from this piece? (asked before building one)"""
        return len(self.examples.get(rule, ())) < EXAMPLES_PER_PIECE

    def example(self, rule: str, before: str, after: str) -> None:
        got = self.examples.setdefault(rule, [])
        if len(got) < EXAMPLES_PER_PIECE:
            # masked again (idempotent): with --pii keep the text was not, and an example must
            # never show personal data
            from ..textclean.pii import mask_pii

            got.append({"before": _short(mask_pii(before)[0]), "after": _short(mask_pii(after)[0])})

    def as_tuple(self) -> tuple:
        return (dict(self.pii_found), dict(self.pii_masked), dict(self.answers_dropped),
                self.contact_lines_removed, self.answers_trimmed, self.examples)


class ConversationRules:
    """One row's user turn and usable answers -> ("skip", reason) or ("ok", user, answers)."""

    def __init__(self, options) -> None:
        self.pii = options.pii
        self.answer_rules = options.answer_rules
        self.min_chars = options.min_answer_chars
        self.script_check = options.script_check
        # the texts come from the normalizer: its whitespace guarantees let the answer rules skip work
        self.normalized = bool(options.normalize)
        if self.pii != "keep" or self.answer_rules or self.script_check:
            from ..textclean.answers import clean_answer
            from ..textclean.pii import find_pii, mask_spans
            from ..textclean.script import is_mostly_persian

            self._find, self._mask_spans = find_pii, mask_spans
            self._clean, self._persian = clean_answer, is_mostly_persian

    @property
    def active(self) -> bool:
        return self.pii != "keep" or self.answer_rules or self.script_check

    def _mask(self, text: str, facts: Any, tally: PieceTally, what: str) -> str | None:
        """`text` with its personal data masked and counted (the same object when it holds none),
        or None when `--pii drop` drops the `what` ("conversation" or "answer") that holds it."""
        spans = self._find(text, facts)
        if not spans:
            return text
        found = _count_types(spans)
        masked = self._mask_spans(text, spans)
        _add_counts(tally.pii_found, found)
        if self.pii == "drop":
            tally.example("pii_drop", _mark(masked), f"({what} dropped: it holds personal data)")
            return None
        _add_counts(tally.pii_masked, found)
        # shown: the text with each span replaced and marked (never the data itself)
        if tally.wants("pii_mask"):
            tally.example("pii_mask", _mark(masked), masked)
        return masked

    def apply(self, user: str, answers: Iterable[tuple[str, Any]], tally: PieceTally, first: bool,
              user_facts: Any = None) -> tuple:
        """("ok", user, kept answers) or ("skip", reason); reason None: no usable answer at all
        (the caller names it as before the rules). `answers`: (text, facts) pairs, facts the
        text's `textclean.batch.TextFacts` or None (as `user_facts`: what one pass over the whole
        batch found, so each rule looks only where it can match; the outcome is the same without).
        Answers are looked at in order; with `first` the first one kept ends the row (the rest are
        never masked or judged)."""
        masking = self.pii != "keep"
        # (the masker has nothing to look at when the batch pass found no digit run, no Latin
        # token and the text holds no "@"; `find_pii` says the same, this only saves the call)
        if masking and (user_facts is None or user_facts.runs or user_facts.latin or "@" in user):
            masked_user = self._mask(user, user_facts, tally, "conversation")
            if masked_user is None:
                return ("skip", "pii")
            if masked_user is not user:
                user_facts = None  # the counts were of the text before masking
                user = masked_user
        if self.script_check and not (_counted_persian(user_facts.arabic, user_facts.other)
                                      if user_facts is not None and "[" not in user else self._persian(user)):
            tally.example("not_persian", user, "(conversation dropped: not mostly Persian script)")
            return ("skip", "not_persian")
        kept: list[str] = []
        seen_any = False
        dropped: dict[str, int] = {}
        for a, facts in answers:
            seen_any = True
            if masking and (facts is None or facts.runs or facts.latin or "@" in a):
                masked = self._mask(a, facts, tally, "answer")
                if masked is None:
                    dropped["pii"] = dropped.get("pii", 0) + 1
                    continue
                if masked is not a:
                    facts = None
                    a = masked
            if self.answer_rules:
                verdict = self._clean(a, self.min_chars, self.normalized)
                if verdict.text is None:
                    dropped[verdict.reason] = dropped.get(verdict.reason, 0) + 1
                    tally.example(f"answer_{verdict.reason}", a, f"(answer dropped: {verdict.reason})")
                    continue
                if verdict.removed:
                    tally.contact_lines_removed += len(verdict.removed)
                    tally.answers_trimmed += 1
                    tally.example("answer_contact_removed", a, verdict.text)
                    facts = None
                elif verdict.text != a:
                    facts = None
                a = verdict.text
            if self.script_check and not (
                    _counted_persian(facts.arabic_head, facts.other_head)
                    if facts is not None and a.find("[", 0, ANSWER_SCRIPT_SAMPLE) < 0
                    else self._persian(a[:ANSWER_SCRIPT_SAMPLE])):
                dropped["not_persian"] = dropped.get("not_persian", 0) + 1
                tally.example("answer_not_persian", a, "(answer dropped: not mostly Persian script)")
                continue
            kept.append(a)
            if first:
                break
        if dropped:
            tally.answers_dropped.update(dropped)
        if not kept:
            if not seen_any:
                return ("skip", None)
            return ("skip", "pii" if dropped.get("pii") else "non_answer")
        return ("ok", user, kept)
