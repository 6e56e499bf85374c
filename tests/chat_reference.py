"""The chat stage's text path written the straightforward way, for tests only: each field
normalized alone, then every rule in its plain form (`textclean`'s functions, each scanning the
whole text), one row after the other, near-duplicates collapsed in memory. What `prepare_chat`
writes with its one-pass fast path must be byte for byte what this writes.

Only for corpora of well-formed rows (`[title, question, [answers...], keywords]`): the row
checks are the stage's business, not the rules'.
"""

from __future__ import annotations

import json
from hashlib import blake2b
from pathlib import Path

import orjson

from persian_data.normalize import normalize
from persian_data.prepare.chat_clean import ANSWER_SCRIPT_SAMPLE
from persian_data.prepare.chat_convert import ChatOptions, user_turn
from persian_data.textclean.answers import clean_answer
from persian_data.textclean.near_dup import collapse, signatures
from persian_data.textclean.pii import mask_pii
from persian_data.textclean.script import is_mostly_persian


def _first_answer(answers: list, options: ChatOptions) -> str | None:
    for a in answers:
        if not isinstance(a, str):
            continue
        a = normalize(a, options.normalizer)
        if not a:
            continue
        a = mask_pii(a)[0]
        if options.answer_rules:
            a = clean_answer(a, options.min_answer_chars).text
            if a is None:
                continue
        if options.script_check and not is_mostly_persian(a[:ANSWER_SCRIPT_SAMPLE]):
            continue
        return a
    return None


def reference_combined(paths: list[Path], options: ChatOptions) -> bytes:
    """combined.jsonl for these raw files, answers="first", --pii mask."""
    assert options.answers == "first" and options.pii == "mask" and options.normalize
    system = normalize(options.system_prompt, options.normalizer)
    head = orjson.dumps({"role": "system", "content": system})
    seen: set[bytes] = set()
    lines: list[tuple[bytes, int]] = []  # (line, candidate row)
    users: list[str] = []
    keys: list[bytes] = []
    for path in paths:
        for title, question, answers, _keywords in json.loads(path.read_bytes()):
            question = normalize(question, options.normalizer)
            if not question:
                continue
            user = mask_pii(user_turn(normalize(title, options.normalizer), question))[0]
            if options.script_check and not is_mostly_persian(user):
                continue
            answer = _first_answer(answers, options)
            if answer is None:
                continue
            user_json = orjson.dumps({"role": "user", "content": user})
            asst_json = orjson.dumps({"role": "assistant", "content": answer})
            digest = blake2b(user_json + asst_json, digest_size=16).digest()
            if digest in seen:
                continue
            seen.add(digest)
            lines.append((b"".join((b'{"messages":[', head, b",", user_json, b",", asst_json, b"]}\n")), len(users)))
            users.append(user)
            keys.append(digest)
    drop = collapse(signatures(users), keys).drop if options.near_dup and users else set()
    return b"".join(line for line, row in lines if row not in drop)
