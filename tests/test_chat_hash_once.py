"""Chat, issue 10: every output is hashed once, while it is written, and each line is validated as
it is produced; the gate then costs a stat() per output. A file changed behind the tool's back is
still caught, and `verify` (thorough) re-reads and re-parses every line."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from persian_data import gates, integrity
from persian_data.gates import GateContext
from persian_data.integrity import HashCache
from persian_data.layout import Layout
from persian_data.prepare import chat_gates as chat_gates_module
from persian_data.prepare.chat import ChatOptions, chat_gates, prepare_chat

from test_chat import build_raw


def _tamper(path: Path) -> None:
    """Same size, different bytes (still valid JSON with the exact schema), same inode, mtime moved."""
    st = path.stat()
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    obj = orjson.loads(lines[0])
    content = obj["messages"][2]["content"]
    obj["messages"][2]["content"] = content[:-1] + ("x" if content[-1] != "x" else "y")
    new = orjson.dumps(obj) + b"\n"
    assert len(new) == len(lines[0]) and new != lines[0]
    with open(path, "r+b") as handle:
        handle.write(new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert path.stat().st_size == st.st_size and path.stat().st_ino == st.st_ino


def _prepared(tmp_path: Path):
    layout = build_raw(tmp_path / "root")  # holds damaged files: their rows are rolled back out
    cache = HashCache(layout.hash_cache, layout.root)
    return layout, cache


def test_every_output_is_handed_to_the_cache_with_the_digest_of_its_bytes(tmp_path, monkeypatch):
    layout, cache = _prepared(tmp_path)
    hashed: list[str] = []
    real = integrity.hash_file
    monkeypatch.setattr(integrity, "hash_file", lambda p, *a, **k: hashed.append(str(p)) or real(p, *a, **k))
    st = prepare_chat(layout, ChatOptions(valid_fraction=0.3), cache=cache)
    # no output read back to be hashed (the raw inputs, never hashed before in this hand-built root,
    # are hashed once for the stats' provenance record; after a fetch the hash cache knows them)
    assert [p for p in hashed if "/data/" not in p] == []
    outputs = [layout.chat_combined(), layout.chat_split("train"), layout.chat_split("valid"),
               layout.chat_rejects(), layout.chat_stats()]
    for path in outputs:
        assert cache.lookup(path).sha256 == real(path).sha256, path
    recorded = orjson.loads(layout.chat_stats().read_bytes())["outputs"]
    assert set(recorded) == {"combined.jsonl", "train.jsonl", "valid.jsonl"}
    for name, path in (("combined.jsonl", outputs[0]), ("train.jsonl", outputs[1]), ("valid.jsonl", outputs[2])):
        assert recorded[name]["sha256"] == real(path).sha256
        assert recorded[name]["lines"] == path.read_bytes().count(b"\n")
    assert st.files_rejected  # the rollback of a damaged file kept the digest right (checked above)


def test_gate_after_the_stage_reads_nothing_and_catches_a_changed_file(tmp_path, monkeypatch):
    layout, cache = _prepared(tmp_path)
    prepare_chat(layout, ChatOptions(), cache=cache)
    hashed: list[str] = []
    parsed: list[object] = []
    real_hash, real_check = gates.hash_file, chat_gates_module.check_conversation
    monkeypatch.setattr(gates, "hash_file", lambda p, *a, **k: hashed.append(str(p)) or real_hash(p, *a, **k))
    monkeypatch.setattr(chat_gates_module, "check_conversation", lambda o: parsed.append(o) or real_check(o))
    assert chat_gates(GateContext(layout, cache=cache)) == []
    assert hashed == [] and parsed == []  # a stat per output: no read, no JSON parse

    _tamper(layout.chat_combined())
    fails = chat_gates(GateContext(layout, cache=cache))
    assert [f.path for f in fails] == ["datasets/text/persian_conversation/combined.jsonl"]
    assert "sha256 is" in fails[0].reason and "changed since" in fails[0].reason
    assert hashed == [str(layout.chat_combined())]  # the stat differed: hashed for real


def test_a_change_keeping_size_and_mtime_is_caught_by_verify(tmp_path, monkeypatch):
    layout, cache = _prepared(tmp_path)
    prepare_chat(layout, ChatOptions(valid_fraction=0.3), cache=cache)
    parsed: list[object] = []
    real_check = chat_gates_module.check_conversation
    monkeypatch.setattr(chat_gates_module, "check_conversation", lambda o: parsed.append(o) or real_check(o))
    # verify re-hashes and re-parses every line of every output, whatever the cache says
    assert chat_gates(GateContext(layout, cache=cache, thorough=True)) == []
    total = sum(p.read_bytes().count(b"\n") for p in
                (layout.chat_combined(), layout.chat_split("train"), layout.chat_split("valid")))
    assert len(parsed) == total

    combined = layout.chat_combined()
    st = combined.stat()
    data = bytearray(combined.read_bytes())
    data[-3:-2] = b"X" if data[-3:-2] != b"X" else b"Y"
    combined.write_bytes(bytes(data))
    os.utime(combined, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back as it was
    fails = chat_gates(GateContext(layout, cache=cache, thorough=True))
    assert any("sha256 is" in f.reason for f in fails)


def test_stats_from_an_older_version_still_count_lines(tmp_path):
    layout, cache = _prepared(tmp_path)
    prepare_chat(layout, ChatOptions(), cache=cache)
    stats = orjson.loads(layout.chat_stats().read_bytes())
    del stats["outputs"]
    stats["written"] += 1
    layout.chat_stats().write_bytes(orjson.dumps(stats))
    fails = chat_gates(GateContext(layout, cache=cache))
    assert any("lines, but the stats say" in f.reason for f in fails)
