"""The chat corpus step: conversion, policies, bad rows, damaged files, split, gates, API."""

from __future__ import annotations

import hashlib
import json
from hashlib import blake2b
from pathlib import Path

import orjson
import pytest

from persian_data.catalog import BY_KEY
from persian_data.layout import Layout
from persian_data.normalize import ZWNJ, normalize
from persian_data.prepare import chat, chat_reading
from persian_data.prepare.chat import (
    DEFAULT_SYSTEM_PROMPT,
    ChatOptions,
    ChatSourceMissingError,
    RawFileError,
    chat_gates,
    check_conversation,
    iter_conversations,
    iter_raw_rows,
    prepare_chat,
    raw_files,
    user_turn,
)

Z = ZWNJ
# These tests pin the conversion itself (title/answers rules, normalization, split, damage): the
# cleaning rules (PII, non-answers, script, near-dups) are off here and tested in test_chat_clean.py.
RULES_OFF = dict(pii="keep", answer_rules=False, script_check=False, near_dup=False)


def _opts(**kw) -> ChatOptions:
    return ChatOptions(**{**RULES_OFF, **kw})


RAW = _opts()
SYS = DEFAULT_SYSTEM_PROMPT
NAMES = (
    "dadrah_dataset.json",
    "dadrah_dataset1-1000_10000.json",
    "dadrah_dataset1-10000_100000.json",
    "dadrah_dataset1-100000_276342.json",
)
BAD_UTF8 = "dadrah_dataset_extra_bad_utf8.json"
TRUNCATED = "dadrah_dataset_extra_truncated.json"

# ---- file 0: hand-checked rows and every kind of bad row ------------------------------------
FILE0 = [
    # 0: the title is in the question -> the question alone; Latin digits -> Persian
    ["طلاق توافقی", "سلام. شرایط طلاق توافقی چیست؟",
     ["با سلام. طبق ماده 1133 قانون مدنی ، مرد می‌تواند طلاق دهد ."], ["طلاق"]],
    # 1: Arabic ي ك ى, ZWNJ inside words
    ["مهريه", "آيا مي‌توانم مهريه را به اجرا بگذارم؟", ["بله، مي‌توانيد. مصطفى هم موافق است."], ["مهريه"]],
    # 2: the title adds something -> title, blank line, question; two answers, the first is used
    ["چک برگشتی", "سلام. طلبکار شکایت کرده است. چه کنم؟", ["پاسخ اول", "پاسخ دوم"], []],
    # 3: ZWNJ everywhere, diacritics, Arabic-Indic digits, spaces before punctuation, tatweel
    [f"{Z}حَضانت{Z}", f"{Z}سلام{Z}{Z}. حَضانَتِ فرزند ٧ ساله با کیســت ؟",
     [f"{Z}{Z}طبق ماده ۱۱۶۹ ، با مادر است ."], []],
    # 4: empty title; the first two answers are empty after normalization
    ["", "سؤال درباره ارث", ["   ", Z, "ارث طبق قانون تقسیم می‌شود."], []],
    # 5: row 1 again, typed with Persian letters: a duplicate once normalized
    ["مهریه", "آیا می‌توانم مهریه را به اجرا بگذارم؟", ["بله، می‌توانید. مصطفی هم موافق است."], ["x"]],
    ["پنج", "پنج مورد", ["پاسخ"], [], "اضافه"],  # 6: wrong_item_count
    ["عنوان", "پرسش", None, []],  # 7: answers_not_list
    [12, "پرسش با عنوان عددی", ["پاسخ"], []],  # 8: non_string_field (title)
    ["عنوان", f"\u0640{Z} ", ["پاسخ"], []],  # 9: empty_question after normalization
    ["عنوان", "پرسش بی‌پاسخ", [], []],  # 10: no_answers
    ["عنوان", "پرسش با پاسخ غیر متنی", [None, 5], []],  # 11: non_string_field (no string answer)
    "not a row",  # 12: not_a_list
    ["عنوان", "پرسش با پاسخ خالی", ["", " "], []],  # 13: empty_answer
]
EXPECTED0 = [  # (user, assistant) of the 5 conversations file 0 writes, checked by hand
    ("سلام. شرایط طلاق توافقی چیست؟",
     f"با سلام. طبق ماده ۱۱۳۳ قانون مدنی، مرد می{Z}تواند طلاق دهد."),
    (f"آیا می{Z}توانم مهریه را به اجرا بگذارم؟", f"بله، می{Z}توانید. مصطفی هم موافق است."),
    ("چک برگشتی\n\nسلام. طلبکار شکایت کرده است. چه کنم؟", "پاسخ اول"),
    ("سلام. حضانت فرزند ۷ ساله با کیست؟", "طبق ماده ۱۱۶۹، با مادر است."),
    ("سؤال درباره ارث", f"ارث طبق قانون تقسیم می{Z}شود."),
]
SKIPPED0 = {"wrong_item_count": 1, "answers_not_list": 1, "non_string_field": 2, "empty_question": 1,
            "no_answers": 1, "not_a_list": 1, "empty_answer": 1}


def _normal_rows(n: int, seed: int) -> list:
    topics = ["اجاره", "ارث", "چک", "مهریه", "سفته", "بیمه", "دیه", "نفقه", "ملک", "کار"]
    rows = []
    for i in range(n):
        t = topics[(i * 7 + seed) % len(topics)]
        rows.append([f"{t} شماره {seed}-{i}", f"سلام. درباره {t} پرونده {seed}{i} سوال دارم؟",
                     [f"با سلام. پاسخ {i} درباره {t}.", f"پاسخ دوم {i}."][: 1 + i % 2], [t]])
    return rows


FILE1 = _normal_rows(5, 1) + [FILE0[0]] + [  # FILE0[0] again: a duplicate across files
    ["چند پاسخ", "سلام. چند پاسخ دارم؟", ["پاسخ یک", "", "پاسخ سه", 7], ["چند"]],
]
FILE2 = _normal_rows(40, 2)
FILE3 = _normal_rows(3, 3)


def build_raw(root: Path) -> Layout:
    layout = Layout(root)
    d = layout.content_dir(BY_KEY["text"])
    d.mkdir(parents=True)
    (d / NAMES[0]).write_bytes(json.dumps(FILE0).encode("ascii"))  # like the real files: \uXXXX
    (d / NAMES[1]).write_bytes(json.dumps(FILE1, ensure_ascii=False, indent=2).encode())  # raw UTF-8
    (d / NAMES[2]).write_bytes(("\ufeff" + json.dumps(FILE2, ensure_ascii=False)).encode())  # BOM
    (d / NAMES[3]).write_bytes(json.dumps(FILE3, separators=(",", ":")).encode())
    good = json.dumps(_normal_rows(4, 4), ensure_ascii=False).encode()
    at = good.index("پرونده 42".encode())  # inside row 2: rows 0 and 1 come before the damage
    (d / BAD_UTF8).write_bytes(good[:at] + b"\xff\xfe" + good[at:])
    whole = json.dumps(_normal_rows(4, 5), ensure_ascii=False).encode()
    (d / TRUNCATED).write_bytes(whole[: len(whole) - 40])  # cut inside the last row
    (d / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    (d / "Persian-conversational-dataset.py").write_text("# loading script\n")
    (d / ".cache").mkdir()
    (d / ".cache" / "ignored.json").write_text("[]")
    return layout


@pytest.fixture()
def layout(tmp_path: Path) -> Layout:
    return build_raw(tmp_path / "root")


def _pairs(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_bytes().splitlines():
        m = orjson.loads(line)["messages"]
        assert m[0] == {"role": "system", "content": SYS}
        out.append((m[1]["content"], m[2]["content"]))
    return out


def _tree_digest(d: Path) -> dict[str, str]:
    return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------


def test_end_to_end(layout: Layout, caplog):
    raw_before = _tree_digest(layout.content_dir(BY_KEY["text"]))
    with caplog.at_level("INFO", logger="persian_data.prepare.chat"):
        st = prepare_chat(layout, RAW)
    combined = layout.chat_combined()
    lines = combined.read_bytes().splitlines()
    pairs = _pairs(combined)

    # hand-checked rows, in input order, first
    assert pairs[:5] == EXPECTED0
    # exact bytes of one line: compact JSON, UTF-8, no \u escapes
    assert lines[1] == orjson.dumps({"messages": [
        {"role": "system", "content": SYS},
        {"role": "user", "content": EXPECTED0[1][0]},
        {"role": "assistant", "content": EXPECTED0[1][1]}]})
    raw = combined.read_bytes()
    assert b"\\u" not in raw
    raw.decode("utf-8")
    assert "مي" not in raw.decode() and "ك" not in raw.decode()

    # file order: natural order of the four real names, damaged extras last; hidden folders,
    # the loading script and the README are not inputs
    assert [p.name for p in raw_files(layout)] == [*NAMES, BAD_UTF8, TRUNCATED]
    assert [f.file for f in st.files] == [*NAMES, BAD_UTF8, TRUNCATED]
    assert set(SKIPPED0) == set(chat.SKIP_REASONS)  # every row-level reason is exercised
    f0, f1, f2, f3, fbad, ftrunc = st.files
    assert (f0.rows_read, f0.conversations_written, f0.duplicates) == (14, 5, 1)
    assert f0.skipped == SKIPPED0
    assert f0.answers_skipped == {"empty_answer": 4, "non_string_answer": 2}
    assert (f1.rows_read, f1.conversations_written, f1.duplicates) == (7, 6, 1)
    assert (f2.rows_read, f2.conversations_written) == (40, 40)
    assert (f3.rows_read, f3.conversations_written) == (3, 3)
    assert fbad.status == "rejected" and fbad.error["reason"] == "invalid_utf8"
    assert fbad.rows_read == 2 and fbad.skipped == {"file_invalid_utf8": 2}
    assert fbad.error["byte_offset"] == (layout.content_dir(BY_KEY["text"]) / BAD_UTF8).read_bytes().index(b"\xff")
    assert ftrunc.status == "rejected" and ftrunc.error["reason"] == "truncated"
    assert ftrunc.rows_read == 3 and ftrunc.conversations_written == 0
    assert st.files_rejected == [BAD_UTF8, TRUNCATED]
    assert st.written == len(lines) == 5 + 6 + 40 + 3
    assert st.duplicates == 2
    assert st.rows_read == 14 + 7 + 40 + 3 + 2 + 3

    # the stats file
    js = orjson.loads(layout.chat_stats().read_bytes())
    assert js["written"] == st.written and js["duplicates"] == 2
    assert js["skipped"] == {**SKIPPED0, "file_invalid_utf8": 2, "file_truncated": 3}
    assert [f["rows_read"] for f in js["files"]] == [14, 7, 40, 3, 2, 3]
    assert js["options"]["answers"] == "first" and js["options"]["normalizer"]["digits"] == "persian"
    chars = js["characters"]
    assert chars["user"] == sum(len(u) for u, _ in pairs)
    assert chars["assistant"] == sum(len(a) for _, a in pairs)
    assert chars["system"] == len(SYS) * len(pairs)
    assert chars["total"] == chars["user"] + chars["assistant"] + chars["system"]
    assert js["splits"] is None

    # the rejects file: every skipped row with its reason and the raw row, and the two files
    rej = [orjson.loads(x) for x in layout.chat_rejects().read_bytes().splitlines()]
    by_index = {(r["file"], r["index"]): r for r in rej}
    assert by_index[(NAMES[0], 6)]["reason"] == "wrong_item_count"
    assert by_index[(NAMES[0], 6)]["row"] == FILE0[6]
    assert by_index[(NAMES[0], 8)]["row"] == FILE0[8]
    assert by_index[(NAMES[0], 12)] == {"file": NAMES[0], "index": 12, "reason": "not_a_list", "row": "not a row"}
    assert sorted(r["reason"] for r in rej if r["file"] == NAMES[0]) == sorted(
        k for k, n in SKIPPED0.items() for _ in range(n))
    assert by_index[(BAD_UTF8, None)]["reason"] == "file_invalid_utf8"
    assert by_index[(TRUNCATED, None)]["rows_before_damage"] == 3

    # the log names the damaged files; one line per file; the raw files are untouched
    text = caplog.text
    assert f"{BAD_UTF8} is not valid UTF-8" in text
    assert f"{TRUNCATED} is truncated" in text
    for name in NAMES:
        assert f"{name}: " in text
    assert _tree_digest(layout.content_dir(BY_KEY["text"])) == raw_before
    assert not any(layout.tmp_dir.iterdir())  # no temp files left behind
    assert chat_gates(layout) == []


def test_answers_all(layout: Layout):
    st = prepare_chat(layout, _opts(answers="all"))
    pairs = _pairs(layout.chat_combined())
    # row 2 of file 0 gives one conversation per answer, with the same user turn
    assert pairs[2:4] == [(EXPECTED0[2][0], "پاسخ اول"), (EXPECTED0[2][0], "پاسخ دوم")]
    multi = [a for u, a in pairs if u == "سلام. چند پاسخ دارم؟"]  # the title is in the question
    assert multi == ["پاسخ یک", "پاسخ سه"]  # the empty and the non-string answers are skipped
    f1 = st.files[1]
    assert f1.answers_skipped == {"empty_answer": 1, "non_string_answer": 1}
    assert st.written == len(pairs)


def test_tolerated_row_forms_are_kept_and_counted(tmp_path: Path):
    """Issue 21 item 7: `[title, question, "answer", keywords]` (a bare-string answer) and
    `[title, question, answers]` (no keywords) make conversations, counted by form; a row with an
    extra item, or answers that are neither a list nor a string, are still rejected."""
    layout = Layout(tmp_path / "r")
    d = layout.content_dir(BY_KEY["text"])
    d.mkdir(parents=True)
    rows = [["عنوان یک", "پرسش یک درباره اجاره؟", "پاسخ یک به صورت متن ساده", ["اجاره"]],
            ["عنوان دو", "پرسش دو درباره ارث؟", ["پاسخ دو"]],
            ["عنوان سه", "پرسش سه درباره چک؟", "پاسخ سه"],  # both forms in one row
            ["عنوان", "پرسش", ["پاسخ"], [], "اضافه"],  # 5 items
            ["عنوان", "پرسش", 7, []]]  # a number is no answer
    (d / NAMES[0]).write_bytes(json.dumps(rows, ensure_ascii=False).encode())
    st = prepare_chat(layout, RAW)
    assert [a for _, a in _pairs(layout.chat_combined())] == ["پاسخ یک به صورت متن ساده", "پاسخ دو", "پاسخ سه"]
    assert st.rows_accepted == {"answer_not_list": 2, "missing_keywords": 2}
    assert st.skipped == {"wrong_item_count": 1, "answers_not_list": 1}
    js = orjson.loads(layout.chat_stats().read_bytes())
    assert js["rows_accepted"] == st.rows_accepted and js["files"][0]["rows_accepted"] == st.rows_accepted


def test_title_rule():
    assert user_turn("", "پرسش") == "پرسش"
    assert user_turn("طلاق توافقی", "سلام. طلاق توافقی چیست؟") == "سلام. طلاق توافقی چیست؟"
    assert user_turn(f"طلاق{Z}توافقی؟", "درباره طلاق توافقی") == "درباره طلاق توافقی"  # spaces/ZWNJ ignored
    assert user_turn("مهریه", "چه کنم؟") == "مهریه\n\nچه کنم؟"
    assert user_turn("شرایط طلاق توافقی چیست", "طلاق توافقی") == "شرایط طلاق توافقی چیست"
    assert user_turn("؟", "پرسش") == "پرسش"  # a title of punctuation only adds nothing


def test_no_normalization(layout: Layout):
    prepare_chat(layout, _opts(normalize=False))
    pairs = _pairs(layout.chat_combined())
    assert pairs[1] == ("آيا مي‌توانم مهريه را به اجرا بگذارم؟", "بله، مي‌توانيد. مصطفى هم موافق است.")
    assert pairs[0][1] == FILE0[0][2][0]


def test_system_prompt_is_normalized_and_configurable(layout: Layout):
    assert normalize(DEFAULT_SYSTEM_PROMPT) == DEFAULT_SYSTEM_PROMPT
    prepare_chat(layout, _opts(system_prompt="  شما دستيار هستيد  "))
    first = orjson.loads(layout.chat_combined().read_bytes().splitlines()[0])
    assert first["messages"][0]["content"] == "شما دستیار هستید"
    with pytest.raises(ValueError):
        prepare_chat(layout, _opts(system_prompt="\u200c "))


def test_rerun_is_byte_identical(layout: Layout):
    prepare_chat(layout, _opts(valid_fraction=0.25))
    outs = [layout.chat_combined(), layout.chat_split("train"), layout.chat_split("valid"),
            layout.chat_stats(), layout.chat_rejects()]
    first = [p.read_bytes() for p in outs]
    prepare_chat(layout, _opts(valid_fraction=0.25))
    assert [p.read_bytes() for p in outs] == first


def test_split_is_stable_and_follows_the_documented_hash(layout: Layout):
    st = prepare_chat(layout, _opts(valid_fraction=0.3))
    combined = layout.chat_combined().read_bytes().splitlines()
    train = layout.chat_split("train").read_bytes().splitlines()
    valid = layout.chat_split("valid").read_bytes().splitlines()
    assert sorted(train + valid) == sorted(combined)
    assert st.splits == {"train": len(train), "valid": len(valid)}
    assert 0 < len(valid) < len(combined)
    limit = int(0.3 * 2**64)
    for line in combined:
        user = orjson.loads(line)["messages"][1]
        h = int.from_bytes(blake2b(orjson.dumps(user), digest_size=8).digest(), "big")
        assert (line in valid) == (h < limit)
    # the split depends on the user turn only: another system prompt, the same assignment
    valid_users = {orjson.loads(x)["messages"][1]["content"] for x in valid}
    prepare_chat(layout, _opts(valid_fraction=0.3, system_prompt="دستیار"))
    valid2 = {orjson.loads(x)["messages"][1]["content"]
              for x in layout.chat_split("valid").read_bytes().splitlines()}
    assert valid2 == valid_users
    # without a fraction, stale train/valid files are removed
    prepare_chat(layout, RAW)
    assert not layout.chat_split("train").exists() and not layout.chat_split("valid").exists()
    assert chat_gates(layout) == []


def test_workers_give_the_same_bytes(layout: Layout, monkeypatch):
    monkeypatch.setattr(chat_reading, "CHUNK_BYTES", 200)  # many pieces in flight
    prepare_chat(layout, _opts(valid_fraction=0.5, workers=0))
    ref = [p.read_bytes() for p in (layout.chat_combined(), layout.chat_split("valid"),
                                    layout.chat_stats(), layout.chat_rejects())]
    prepare_chat(layout, _opts(valid_fraction=0.5, workers=2))
    got = [p.read_bytes() for p in (layout.chat_combined(), layout.chat_split("valid"),
                                    layout.chat_stats(), layout.chat_rejects())]
    assert got == ref


def test_datasets_load_dataset(layout: Layout, tmp_path: Path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    # offline for this test only: both libraries read these flags once, at import, so setting the
    # environment here would leave every later Hub test of the session offline
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    prepare_chat(layout, RAW)
    ds = datasets.load_dataset("json", data_files=str(layout.chat_combined()), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert ds.num_rows == orjson.loads(layout.chat_stats().read_bytes())["written"]
    assert ds.column_names == ["messages"]
    assert ds[1]["messages"] == [{"role": "system", "content": SYS},
                                 {"role": "user", "content": EXPECTED0[1][0]},
                                 {"role": "assistant", "content": EXPECTED0[1][1]}]


def test_iter_conversations(layout: Layout):
    prepare_chat(layout, _opts(valid_fraction=0.5))
    convs = list(iter_conversations(layout.root))
    assert [(c["messages"][1]["content"], c["messages"][2]["content"]) for c in convs[:5]] == EXPECTED0
    assert all(check_conversation(c) is None for c in convs)
    n = len(list(iter_conversations(str(layout.root), "train"))) + len(list(iter_conversations(layout.root, "valid")))
    assert n == len(convs)
    with pytest.raises(ValueError):
        list(iter_conversations(layout.root, "test"))


def test_missing_or_empty_raw_folder(tmp_path: Path):
    layout = Layout(tmp_path / "r")
    with pytest.raises(ChatSourceMissingError):
        prepare_chat(layout, RAW)
    layout.content_dir(BY_KEY["text"]).mkdir(parents=True)
    (layout.content_dir(BY_KEY["text"]) / "README.md").write_text("x")
    with pytest.raises(ChatSourceMissingError):
        prepare_chat(layout, RAW)
    with pytest.raises(ChatSourceMissingError):
        list(iter_conversations(layout.root))
    assert chat_gates(layout) == []  # no text bucket: nothing to check


def test_all_files_damaged_writes_nothing(tmp_path: Path):
    layout = Layout(tmp_path / "r")
    d = layout.content_dir(BY_KEY["text"])
    d.mkdir(parents=True)
    (d / NAMES[0]).write_bytes(b'[["a", "b", ["c"], []], ["d"')
    with pytest.raises(chat.ChatError):
        prepare_chat(layout, RAW)
    assert not layout.chat_combined().exists() and not layout.chat_stats().exists()


def test_a_failed_run_leaves_the_previous_outputs(layout: Layout, monkeypatch):
    prepare_chat(layout, RAW)
    before = {p: p.read_bytes() for p in (layout.chat_combined(), layout.chat_stats(), layout.chat_rejects())}
    calls = {"n": 0}
    real = chat._Converter.convert

    def boom(self, rows, *rest):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return real(self, rows, *rest)

    monkeypatch.setattr(chat._Converter, "convert", boom)
    monkeypatch.setattr(chat_reading, "CHUNK_BYTES", 300)
    with pytest.raises(RuntimeError):
        prepare_chat(layout, _opts(workers=0))
    assert {p: p.read_bytes() for p in before} == before
    assert not any(layout.tmp_dir.iterdir())


def test_a_dead_worker_fails_the_run_cleanly(layout: Layout, monkeypatch):
    import os

    from persian_data.prepare import chat_convert

    parent = os.getpid()
    real = chat_convert._work_piece

    def dying(conv, reader, piece):
        if os.getpid() != parent:
            os._exit(3)  # a worker killed (by the OOM killer, say)
        return real(conv, reader, piece)

    monkeypatch.setattr(chat_convert, "_work_piece", dying)  # what the workers run
    with pytest.raises(chat.ChatError, match="worker process died"):
        prepare_chat(layout, _opts(workers=2))
    assert not layout.chat_combined().exists()
    assert not any(layout.tmp_dir.iterdir())


# ---------------------------------------------------------------------------------------------
# gates
# ---------------------------------------------------------------------------------------------


def test_gates_catch_corruption(layout: Layout):
    prepare_chat(layout, _opts(valid_fraction=0.5))
    combined = layout.chat_combined()
    good = combined.read_bytes()
    assert chat_gates(layout) == []

    lines = good.splitlines(keepends=True)
    combined.write_bytes(b"".join(lines[:-1]))  # one line lost
    fails = chat_gates(layout)
    assert any("lines, but the stats say" in f.reason for f in fails)

    bad = lines[:]
    bad[2] = b'{"messages": [\n'  # not JSON
    combined.write_bytes(b"".join(bad))
    assert any("line 3: not valid JSON" in f.reason for f in chat_gates(layout))

    obj = orjson.loads(lines[0])
    obj["messages"][1]["role"] = "assistant"
    bad = lines[:]
    bad[0] = orjson.dumps(obj) + b"\n"
    combined.write_bytes(b"".join(bad))
    assert any("line 1: roles" in f.reason for f in chat_gates(layout))

    obj = orjson.loads(lines[0])
    obj["extra"] = 1
    bad[0] = orjson.dumps(obj) + b"\n"
    combined.write_bytes(b"".join(bad))
    assert any("line 1: not an object with exactly one key" in f.reason for f in chat_gates(layout))

    combined.write_bytes(b"")
    assert [f.reason for f in chat_gates(layout)] == ["empty"]
    combined.unlink()
    assert "missing" in chat_gates(layout)[0].reason

    combined.write_bytes(good)
    layout.chat_split("valid").unlink()
    assert any(f.path.endswith("valid.jsonl") for f in chat_gates(layout))


def test_check_conversation():
    ok = {"messages": [{"role": r, "content": "x"} for r in ("system", "user", "assistant")]}
    assert check_conversation(ok) is None
    # each fault named for what it is (not just "something is wrong")
    assert "3 messages" in check_conversation({"messages": ok["messages"][:2]})
    assert "system content is empty" in check_conversation(
        {"messages": [{"role": "system", "content": ""}] + ok["messages"][1:]})
    assert "not exactly {'role', 'content'}" in check_conversation(
        {"messages": [{"content": "x", "role": "system"}] + ok["messages"][1:]})
    assert "roles are not system, user, assistant" in check_conversation({"messages": ok["messages"][::-1]})
    assert "exactly one key" in check_conversation([])


# ---------------------------------------------------------------------------------------------
# the streaming reader
# ---------------------------------------------------------------------------------------------

READER_ROWS = [["عنوان ۱", "پرسش \"نقل\" \\ و \n خط", ["پاسخ 😀", ""], []], [None, 1.5, -2, True],
               [], {"k": "v"}, "رشته", 12345678901234567890, ["ي" * 50]]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64, 1 << 20])
@pytest.mark.parametrize("dump", [
    lambda r: json.dumps(r).encode(),
    lambda r: json.dumps(r, ensure_ascii=False, indent=1).encode(),
    lambda r: ("\ufeff \n" + json.dumps(r, ensure_ascii=False) + " \n").encode(),
])
def test_reader_matches_json_loads_at_any_chunk_size(tmp_path: Path, chunk, dump):
    p = tmp_path / "x.json"
    p.write_bytes(dump(READER_ROWS))
    seen = []
    assert list(iter_raw_rows(p, on_bytes=seen.append, chunk_bytes=chunk)) == READER_ROWS
    assert sum(seen) == p.stat().st_size


@pytest.mark.parametrize("data, reason, rows_before", [
    (b"", "invalid_json", 0),
    (b"{}", "invalid_json", 0),
    (b"[1, 2] x", "invalid_json", 2),
    (b"[1 2]", "invalid_json", 1),
    (b"[1, 2,", "truncated", 2),
    (b'[[1], ["abc', "truncated", 1),
    (b'[[1], ["ab\\u06', "truncated", 1),
    (b"[[1], [2]", "truncated", 2),
    (b'[[1], [2], ["\xd9\xff"]]', "invalid_utf8", 2),
    (b'[[1], [2], ["a"]]\xff', "invalid_utf8", 3),
])
@pytest.mark.parametrize("chunk", [2, 1 << 20])
def test_reader_damage(tmp_path: Path, data, reason, rows_before, chunk):
    p = tmp_path / "x.json"
    p.write_bytes(data)
    got = []
    with pytest.raises(RawFileError) as e:
        for row in iter_raw_rows(p, chunk_bytes=chunk):
            got.append(row)
    assert e.value.reason == reason
    assert e.value.rows_before == rows_before == len(got)
    if reason == "invalid_utf8":
        assert e.value.byte_offset == data.index(b"\xff") - (1 if b"\xd9\xff" in data else 0)


# rows whose bytes look like a row separator ("]], [") where there is none
TRICKY_ROWS = [["a]], [b", "x]],[\"y", [], []], [["t"], "q", [["nested"]], ["k"]],
               ["t", "q", ["a"], [["z"]]], ["t2", "q2", ["a2"], []]]


@pytest.mark.parametrize("chunk", [1, 4, 9, 16, 33, 1 << 20])
@pytest.mark.parametrize("ascii", [True, False])
def test_reader_survives_false_separators(tmp_path: Path, chunk, ascii):
    p = tmp_path / "x.json"
    p.write_bytes(json.dumps(TRICKY_ROWS * 3, ensure_ascii=ascii).encode())
    assert list(iter_raw_rows(p, chunk_bytes=chunk)) == TRICKY_ROWS * 3


@pytest.mark.parametrize("workers", [0, 2])
def test_false_separators_in_the_pipeline(tmp_path: Path, monkeypatch, workers):
    layout = Layout(tmp_path / "r")
    d = layout.content_dir(BY_KEY["text"])
    d.mkdir(parents=True)
    rows = [["عنوان", f"پرسش {i} با ]], [ در متن", [f"پاسخ {i}]], [\"x"], []] for i in range(30)]
    rows[7] = ["t", "q", [["nested"]], ["k"]]  # a malformed row: answers hold a list
    (d / NAMES[0]).write_bytes(json.dumps(rows).encode())
    monkeypatch.setattr(chat_reading, "CHUNK_BYTES", 64)
    st = prepare_chat(layout, _opts(workers=workers))
    assert st.rows_read == 30 and st.written == 29 and st.skipped == {"non_string_field": 1}
    # (the punctuation rule also removes the spaces inside " ]" and "[ ")
    assert _pairs(layout.chat_combined())[0] == ("عنوان\n\nپرسش ۰ با]], [در متن", 'پاسخ ۰]], ["x')


@pytest.mark.parametrize("workers", [0, 2])
def test_no_row_boundaries_is_damage_not_a_memory_blowup(tmp_path: Path, monkeypatch, workers):
    layout = Layout(tmp_path / "r")
    d = layout.content_dir(BY_KEY["text"])
    d.mkdir(parents=True)
    (d / NAMES[0]).write_bytes(json.dumps([{"q": "پرسش", "a": ["پاسخ"]}] * 300).encode())  # objects
    (d / NAMES[1]).write_bytes(json.dumps(FILE3).encode())
    from persian_data.corpora import chat_pieces

    monkeypatch.setattr(chat_reading, "CHUNK_BYTES", 256)
    monkeypatch.setattr(chat_reading, "MAX_PIECE_BYTES", 2048)
    monkeypatch.setattr(chat_pieces, "MAX_PIECE_BYTES", 2048)  # the reader's own limit
    st = prepare_chat(layout, _opts(workers=workers))
    assert st.files_rejected == [NAMES[0]] and st.files[0].error["reason"] == "invalid_json"
    assert "no row boundary" in st.files[0].error["detail"]
    assert st.written == len(FILE3)
    with pytest.raises(RawFileError, match="no row boundary"):
        list(iter_raw_rows(d / NAMES[0], chunk_bytes=256))


def test_empty_array_is_fine(tmp_path: Path):
    p = tmp_path / "x.json"
    p.write_bytes(b" [ ] ")
    assert list(iter_raw_rows(p)) == []


# ---------------------------------------------------------------------------------------------
# the replica of the real repo (the local hub's builder)
# ---------------------------------------------------------------------------------------------


def test_on_the_replica(tmp_path: Path):
    from persian_data.corpora import persian_conversation as text_corpus
    from support import replicas
    from support.replicas import TINY

    layout = Layout(tmp_path / "rep")
    d = layout.content_dir(BY_KEY["text"])
    d.mkdir(parents=True)
    for name, data in replicas.text_repo(TINY, hostile=True).items():
        (d / name).write_bytes(data)
    manifest = replicas.text_manifest(TINY, hostile=True)
    st = prepare_chat(layout, RAW)
    by_file = {f.file: f for f in st.files}
    for name in text_corpus.TEXT_FILES:
        assert by_file[name].rows_read == manifest[name]["elements"]
    assert sorted(st.files_rejected) == sorted(replicas.TEXT_HOSTILE_FILES)
    counts = replicas.TEXT_ADVERSARIAL_COUNTS
    # the two tolerated rows (issue 21 item 7) are kept and counted; they hold the same
    # conversation, so the second is a duplicate
    assert st.rows_accepted == {"missing_keywords": counts["three_items"], "answer_not_list": counts["answers_string"]}
    assert st.duplicates == counts["duplicate_across_files"] + counts["duplicate_in_file"] + 1
    assert st.skipped["wrong_item_count"] == counts["five_items"]
    assert st.skipped["answers_not_list"] == counts["answers_null"]
    assert st.skipped["non_string_field"] == counts["title_number"]
    assert st.skipped["no_answers"] == counts["empty_answers"]
    assert st.skipped["empty_question"] == counts["empty_question"]
    text = layout.chat_combined().read_text("utf-8")
    for bad in ("ي", "ك", "\u0640", "\u064e", "\x00", "\u200f", "\ufeff", "٠", "١"):
        assert bad not in text
    assert f"می{Z}خواهم" in text
    assert chat_gates(layout) == []
