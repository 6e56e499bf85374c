"""Row conversion: one record -> chat conversations (runs in worker processes).

A piece of a raw file is parsed and its rows turned into neutral records `(title, question,
answers)` by the corpus's reader (`persian_data.corpora`: the row shapes and their validation live
there). The converter normalizes a record's text, applies the title and answers rules and
serializes each conversation line; every line is built from the three validated turns, so the
schema holds by construction, and each one is checked with `check_conversation` (the gate's schema)
as it is made.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import pickle
import uuid
from dataclasses import asdict, dataclass
from hashlib import blake2b
from typing import Any, Iterator, Literal

import orjson

from ..compiled import SPEEDUPS
from ..normalize import DEFAULT, NormalizerConfig, ZWNJ, _compiled
from ..workers import exit_with
from .chat_clean import ANSWER_SCRIPT_SAMPLE, ConversationRules, PieceTally, mask_raw_many
from ..corpora.chat_pieces import _Piece

DEFAULT_SYSTEM_PROMPT = (
    "شما یک دستیار حقوقی فارسی‌زبان هستید. به پرسش‌های حقوقی کاربران، دقیق، روشن و محترمانه "
    "به زبان فارسی پاسخ دهید."
)
ROLES = ("system", "user", "assistant")


@dataclass
class ChatOptions:
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    answers: Literal["first", "all"] = "first"
    normalize: bool = True
    normalizer: NormalizerConfig = DEFAULT
    valid_fraction: float | None = None
    # Worker processes for the per-row work; None: 2 (or the CPU count if lower) for inputs of
    # 48 MiB and more, none for smaller ones; 0: everything in this process.
    workers: int | None = None
    # the cleaning rules (chat_clean, textclean): personal data, non-answers, script, near-dups
    pii: Literal["mask", "drop", "keep"] = "mask"
    answer_rules: bool = True
    min_answer_chars: int = 20
    script_check: bool = True
    near_dup: bool = True

    def __post_init__(self) -> None:
        if self.answers not in ("first", "all"):
            raise ValueError(f"answers must be 'first' or 'all', not {self.answers!r}")
        if self.valid_fraction is not None and not 0.0 < float(self.valid_fraction) < 1.0:
            raise ValueError(f"valid_fraction must be between 0 and 1 (exclusive), not {self.valid_fraction}")
        if not isinstance(self.system_prompt, str):
            raise ValueError("system_prompt must be a string")
        if self.pii not in ("mask", "drop", "keep"):
            raise ValueError(f"pii must be 'mask', 'drop' or 'keep', not {self.pii!r}")
        if not isinstance(self.min_answer_chars, int) or self.min_answer_chars < 0:
            raise ValueError(f"min_answer_chars must be a whole number >= 0, not {self.min_answer_chars!r}")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("workers")  # does not change the output
        return d



_TITLE_STRIP = " \n.,،؛;:!?؟«»\"'()[]-–—"


def _key(s: str) -> str:
    """Loose comparison form: no spaces, newlines or ZWNJ."""
    return s.replace(" ", "").replace("\n", "").replace(ZWNJ, "")


def user_turn(title: str, question: str) -> str:
    """The title rule (see the module docstring). Both arguments already normalized."""
    t = title.strip()
    if not t or t in question:  # the common cases, without building the loose forms
        return question
    kt = _key(t.strip(_TITLE_STRIP))
    kq = _key(question)
    if not kt or kt in kq:
        return question
    if kq and kq in _key(t):
        return t
    return t + "\n\n" + question


def _keys(texts: list[str]) -> list[str]:
    """`[_key(t) for t in texts]`, three replaces over the joined batch (no NUL in the texts)."""
    joined = "\x00".join(texts)
    return joined.replace(" ", "").replace("\n", "").replace(ZWNJ, "").split("\x00")


def user_turns(titles: list[str], questions: list[str]) -> list[str]:
    """`[user_turn(t, q) for t, q in zip(titles, questions)]` (the question must be non-empty; both
    normalized): in C where the extension is built (`user_turns_python` is the reference,
    tests/test_speedups.py)."""
    if _compiled_user_turns is not None:
        return _compiled_user_turns(titles, questions, _TITLE_STRIP)
    return user_turns_python(titles, questions)


def user_turns_python(titles: list[str], questions: list[str]) -> list[str]:
    """`user_turns` in Python: the loose forms of a whole batch at once."""
    out: list[str] = []
    hard: list[int] = []  # rows whose title is not plainly in the question
    for k, (title, question) in enumerate(zip(titles, questions)):
        t = title.strip()
        if not t or t in question:
            out.append(question)
        else:
            out.append("")
            hard.append(k)
    if not hard:
        return out
    ts = [titles[k].strip() for k in hard]
    qs = [questions[k] for k in hard]
    if any("\x00" in x for x in ts) or any("\x00" in x for x in qs):
        for k, t, q in zip(hard, ts, qs):
            out[k] = user_turn(t, q)
        return out
    for k, t, q, kt, kq in zip(hard, ts, qs, _keys([t.strip(_TITLE_STRIP) for t in ts]), _keys(qs)):
        if not kt or kt in kq:
            out[k] = q
        elif kq and kq in _key(t):
            out[k] = t
        else:
            out[k] = t + "\n\n" + q
    return out


_compiled_user_turns = SPEEDUPS.user_turns if SPEEDUPS is not None else None


def _plain(s: str) -> str:
    """normalize=False: text as is, trimmed; lone surrogates (not UTF-8) dropped."""
    s = s.strip()
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-8", "ignore").decode("utf-8")
    return s


class _Converter:
    """Per-row work: validate, normalize, apply the title and answers rules, serialize, hash."""

    def __init__(self, options: ChatOptions) -> None:
        self.first = options.answers == "first"
        if options.normalize:
            c = _compiled(options.normalizer)
            self.norm_many = c.many
            self.norm_one = c
        else:
            self.norm_many = lambda xs: [_plain(x) for x in xs]
            self.norm_one = _plain
        self.system = self.norm_one(options.system_prompt)
        if not self.system:
            raise ValueError("the system prompt is empty (after normalization)")
        self.head = orjson.dumps({"role": "system", "content": self.system})
        self.line_head = b'{"messages":[' + self.head + b","
        self.rules = ConversationRules(options)
        self.fused = bool(options.normalize)  # the one-pass prefilters of the rules (textclean.batch)
        self.near_dup = options.near_dup
        self.split = options.valid_fraction is not None

    def convert(self, records: list[Any], tally: PieceTally | None = None) -> list[tuple]:
        """One result per record: ("skip", reason, answers_skipped) or
        ("ok", [(line, dedup_digest, split_digest, n_user, n_assistant)], answers_skipped) (split_digest
        None when there is no split).
        A record is `(title, question, answers)` (two strings and a non-empty list, whose items may
        still be anything) or, for a row the reader could not read, the reason as a string.
        What the cleaning rules did goes to `tally`."""
        tally = tally if tally is not None else PieceTally()
        dumps, head = orjson.dumps, self.line_head
        results: list[tuple | None] = [None] * len(records)
        fields: list[str] = []
        plan: list[tuple[int, int, int]] = []  # (record index, first field index, number of answers)
        for i, record in enumerate(records):
            if isinstance(record, str):
                results[i] = ("skip", record, None)
                continue
            title, question, answers = record
            take = answers[:1] if self.first else answers
            plan.append((i, len(fields), len(take)))
            fields.append(title)
            fields.append(question)
            fields.extend(a if isinstance(a, str) else "" for a in take)
        normed = self.norm_many(fields) if fields else []
        users: list[str | None] = [None] * len(plan)
        asked = [k for k, (_, at, _) in enumerate(plan) if normed[at + 1]]
        for k, user in zip(asked, user_turns([normed[plan[k][1]] for k in asked], [normed[plan[k][1] + 1] for k in asked])):
            users[k] = user
        facts = self._facts(plan, users, normed)
        for k, (i, at, n) in enumerate(plan):
            user = users[k]
            if user is None:
                results[i] = ("skip", "empty_question", None)
                continue
            skipped: dict[str, int] = {}
            usable = self._usable(records[i][2], normed, at, skipped, facts)
            if self.rules.active:
                # the rules look at the answers in order; answers="first" keeps the first they keep
                outcome = self.rules.apply(user, usable, tally, self.first, facts.get(-1 - k) if facts else None)
                if outcome[0] == "skip":
                    reason = outcome[1] or ("empty_answer" if skipped.get("empty_answer") else "non_string_field")
                    results[i] = ("skip", reason, skipped or None)
                    continue
                _, user, usable = outcome
            else:
                usable = [a for a, _ in itertools.islice(usable, 1 if self.first else None)]
            if not usable:
                reason = "empty_answer" if skipped.get("empty_answer") else "non_string_field"
                results[i] = ("skip", reason, skipped or None)
                continue
            # the turns are non-empty stripped strings (normalized or trimmed, masked, cleaned) and
            # the line is built from them with fixed roles: the chat schema holds by construction
            # (`check_conversation`, the gate's, is what verify runs on the written file)
            if not user or user.isspace():
                raise ValueError("a conversation was built with an empty user turn")
            user_json = b'{"role":"user","content":' + dumps(user) + b"}"
            # both digests hash the JSON of the turns (an unambiguous encoding of the text); the
            # split's only when there is a split
            split_digest = blake2b(user_json, digest_size=8).digest() if self.split else None
            convs = []
            for a in usable:
                if not a or a.isspace():
                    raise ValueError("a conversation was built with an empty assistant turn")
                asst_json = b'{"role":"assistant","content":' + dumps(a) + b"}"
                h = blake2b(user_json, digest_size=16)
                h.update(asst_json)
                convs.append((b"".join((head, user_json, b",", asst_json, b"]}\n")), h.digest(), split_digest,
                              len(user), len(a)))
            results[i] = ("ok", convs, skipped or None)
            if self.near_dup:
                tally.users.append(user)
        return results  # type: ignore[return-value]

    def _facts(self, plan: list[tuple[int, int, int]], users: list[str | None], normed: list[str]) -> dict:
        """One pass over every text the rules will look at in this batch (`textclean.batch`): the
        facts of each user turn (key -1 - k for the k-th planned row) and of each normalized answer
        (key: its index in `normed`). Empty when the rules need none (normalization off: the
        passes assume the normalizer's output, with no NUL)."""
        if not (self.rules.active and self.fused):
            return {}
        from ..textclean.batch import analyze

        keys: list[int] = []
        texts: list[str] = []
        for k, (i, at, n) in enumerate(plan):
            if users[k] is None:
                continue
            keys.append(-1 - k)
            texts.append(users[k])
            for j in range(at + 2, at + 2 + n):
                if normed[j]:
                    keys.append(j)
                    texts.append(normed[j])
        return dict(zip(keys, analyze(texts, ANSWER_SCRIPT_SAMPLE)))

    def _usable(self, answers_in: list, normed: list[str], at: int, skipped: dict[str, int],
                facts: dict) -> Iterator[tuple[str, Any]]:
        """The row's non-empty normalized answers, in order, normalized as they are asked for
        (answers="first" normalized only the first in the batch; later ones are rarely needed),
        each with its facts (None for one normalized here). Unusable ones are counted in `skipped`
        as they are passed."""
        for j, a in enumerate(answers_in):
            if not isinstance(a, str):
                skipped["non_string_answer"] = skipped.get("non_string_answer", 0) + 1
                continue
            in_batch = j == 0 or not self.first
            na = normed[at + 2 + j] if in_batch else self.norm_one(a)
            if na:
                yield na, (facts.get(at + 2 + j) if in_batch else None)
            else:
                skipped["empty_answer"] = skipped.get("empty_answer", 0) + 1


def _raw_json(row: Any) -> bytes:
    try:
        return orjson.dumps(row)
    except (TypeError, orjson.JSONEncodeError):  # lone surrogates, huge ints: escape everything
        return json.dumps(row, ensure_ascii=True).encode("ascii")


def _work_piece(conv: _Converter, reader, piece: _Piece) -> tuple:
    """Parse one piece with the corpus's `reader`, turn its rows into records, convert them.
    Returns ("ok", n_rows, results, rejects, rule tally, near-dup signatures, rows accepted in a
    tolerated form by form), ("bad_cut",) or ("damage", n_rows_before, reason, byte_offset,
    detail, context)."""
    parsed = reader.parse(piece)
    if parsed.status == "bad_cut":
        return ("bad_cut",)
    if parsed.status == "damage":
        return ("damage", len(parsed.rows), parsed.reason, parsed.byte_offset, parsed.detail,
                parsed.context)
    rows = parsed.rows
    records, accepted = reader.records(rows)
    tally = PieceTally()
    results = conv.convert(records, tally)
    # the rejects file keeps the row as parsed, masked: it must not carry personal data either
    skipped = [(i, res[1]) for i, res in enumerate(results) if res[0] == "skip"]
    masked = mask_raw_many([rows[i] for i, _ in skipped]) if skipped else []
    rejects = [(i, reason, _raw_json(row)) for (i, reason), row in zip(skipped, masked)]
    sigs = None
    if conv.near_dup:  # MinHash of each converted row's user turn, here in the worker
        from ..textclean.near_dup import signatures

        sigs = signatures(tally.users)
    tally.users = []
    return ("ok", len(rows), results, rejects, tally.as_tuple(), sigs, dict(accepted))


_WORKER: _Converter | None = None
_READER = None  # the corpus's reader (parses pieces, turns rows into records)
# Where a worker leaves its pieces' results, on an engine whose nodes share the root (Ray): a
# piece's result (~1.6 MB a 4 MiB piece) goes back through a file there, not the engine's object
# store (serialized into a node's store, then pulled and deserialized: ~15 ms a result of CPU on
# nodes the pieces already keep busy). None: returned as they are (local workers, a pipe).
_SET_ASIDE: str | None = None


def _worker_init(options: ChatOptions, reader, run_pid: int | None = None, set_aside: str | None = None) -> None:
    global _WORKER, _READER, _SET_ASIDE
    if run_pid is not None:  # the engine's workers see to this themselves (persian_data.engine)
        exit_with(run_pid)  # a killed run leaves no worker behind
    _WORKER = _Converter(options)
    _READER = reader
    _SET_ASIDE = set_aside
    # A worker makes no reference cycles (rows, strings, tuples; freed by reference counting),
    # and the cyclic collector walking every parsed row costs ~15 % of its time.
    gc.freeze()
    gc.disable()


def _worker_piece(piece: _Piece) -> tuple:
    assert _WORKER is not None
    result = _work_piece(_WORKER, _READER, piece)
    if _SET_ASIDE is None or result[0] != "ok":
        return result
    path = os.path.join(_SET_ASIDE, uuid.uuid4().hex)
    with open(path, "wb") as handle:  # not fsynced: read back and removed before anything is placed
        pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return ("aside", path)


def taken_back(result: tuple) -> tuple:
    """A piece's result, read back (and its file removed) when the worker set it aside. A retried
    piece (its node died) may have left a file of its first run: the run's folder goes at the end."""
    if result[0] != "aside":
        return result
    with open(result[1], "rb") as handle:
        out = pickle.load(handle)
    os.unlink(result[1])
    return out


class _Local:
    """A piece to work on in this process, when its turn comes (workers=0)."""

    def __init__(self, conv: _Converter, reader, piece: _Piece) -> None:
        self.conv, self.reader, self.piece = conv, reader, piece

    def result(self) -> tuple:
        return _work_piece(self.conv, self.reader, self.piece)



def check_conversation(obj: Any) -> str | None:
    """None when `obj` has exactly the chat schema, else what is wrong."""
    if not isinstance(obj, dict) or list(obj) != ["messages"]:
        return "not an object with exactly one key, 'messages'"
    msgs = obj["messages"]
    if not isinstance(msgs, list) or len(msgs) != 3:
        return "'messages' is not a list of 3 messages"
    for m, role in zip(msgs, ROLES):
        if not isinstance(m, dict) or list(m) != ["role", "content"]:
            return "a message is not exactly {'role', 'content'}"
        if m["role"] != role:
            return f"roles are not system, user, assistant (found {m['role']!r} for {role})"
        if not isinstance(m["content"], str) or not m["content"].strip():
            return f"the {role} content is empty or not a string"
    return None

