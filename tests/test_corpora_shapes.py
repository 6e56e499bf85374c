"""The four shapes a corpus may be declared in, read by the real stages on data laid out in a root
(no hub): the variants test_declared_corpora does not take (object rows cut across pieces,
`messages` lines, a TSV with a header, a parquet split column with embedded audio), and the checks
a declaration meets when persian-data.toml is read."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from persian_data.catalog import CATALOG, root_sources, select
from persian_data.cli import main
from persian_data.corpora.declared import declare
from persian_data.errors import SourcesConfigError
from persian_data.gates import GateContext
from persian_data.layout import Layout
from persian_data.localhub import replica_kit as kit
from persian_data.prepare import chat_reading
from persian_data.prepare.chat import ChatOptions, prepare_chat
from persian_data.prepare.speech import SpeechOptions, prepare_speech, speech_gates

ANSWER = "طبق ماده ۱۰ قانون مدنی قرارداد شما معتبر است و می‌توانید از دادگاه الزام به انجام تعهد را بخواهید."
RULES_OFF = dict(pii="keep", answer_rules=False, script_check=False, near_dup=False, workers=0)


def source(key: str, **table):
    return declare("test.toml", key, dict(table), CATALOG)


def place(layout: Layout, src, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = layout.content_dir(src) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def conversations(layout: Layout, src) -> list[tuple[str, str, str]]:
    return [tuple(m["content"] for m in orjson.loads(line)["messages"])
            for line in layout.chat_combined(src).read_bytes().splitlines()]


def test_chat_json_object_rows_cut_across_pieces(tmp_path: Path, monkeypatch):
    src = source("obj_chat", shape="chat-json", repo="o/chat", question="q", answers="a", title="t")
    layout = Layout(tmp_path)
    rows = [{"t": f"عنوان {i}", "q": f"پرسش شماره {i} درباره اجاره؟", "a": [f"{ANSWER} {i}"], "meta": {"x": [i]}}
            for i in range(40)]
    rows[5] = {"t": "بدون پاسخ", "q": "پرسش؟"}  # no answers key
    rows[6]["a"] = f"{ANSWER} تنها"  # one answer as a string: as good as a list in object rows
    place(layout, src, {"rows.json": json.dumps(rows, ensure_ascii=False, indent=1).encode()})
    monkeypatch.setattr(chat_reading, "CHUNK_BYTES", 512)  # many pieces: cuts after "}, {" between rows
    st = prepare_chat(layout, ChatOptions(**RULES_OFF), source=src)
    assert st.rows_read == 40 and st.written == 39 and st.skipped == {"missing_field": 1}
    assert st.rows_accepted == {}
    got = conversations(layout, src)
    assert got[0][1] == "عنوان ۰\n\nپرسش شماره ۰ درباره اجاره؟" and got[5][2] == f"{ANSWER} تنها"
    assert layout.chat_combined(src) == tmp_path / "datasets/text/obj_chat/combined.jsonl"


def test_chat_jsonl_messages_lines(tmp_path: Path):
    src = source("msg_chat", shape="chat-jsonl", repo="o/msg", system_prompt="شما یک دستیار هستید.")
    layout = Layout(tmp_path)
    lines = [
        {"messages": [{"role": "user", "content": "سلام، قرارداد اجاره را چگونه فسخ کنم؟"},
                      {"role": "assistant", "content": ANSWER}]},
        {"messages": [{"role": "system", "content": "own prompt"}, {"role": "user", "content": "پرسش دوم؟"},
                      {"role": "assistant", "content": ANSWER + " دوم"}]},
        {"messages": [{"role": "user", "content": "یک"}, {"role": "assistant", "content": "دو"},
                      {"role": "user", "content": "سه"}, {"role": "assistant", "content": "چهار"}]},
        {"text": "no messages"},
    ]
    data = b"\xef\xbb\xbf" + b"".join(json.dumps(x, ensure_ascii=False).encode() + b"\n\n" for x in lines)
    place(layout, src, {"data/train.jsonl": data, "README.md": b"x"})
    st = prepare_chat(layout, ChatOptions(**RULES_OFF), source=src)
    assert st.written == 2 and st.skipped == {"not_single_turn": 1, "missing_field": 1}
    assert st.rows_accepted == {"system_turn_replaced": 1}
    assert [c[0] for c in conversations(layout, src)] == ["شما یک دستیار هستید."] * 2  # the corpus's prompt
    # a line that is not JSON damages its file, which is named and skipped whole
    (layout.content_dir(src) / "data/broken.jsonl").write_bytes(b'{"messages": []}\n{not json\n')
    st = prepare_chat(layout, ChatOptions(**RULES_OFF), source=src)
    assert st.files_rejected == ["data/broken.jsonl"] and st.written == 2


def _wav(n: int, *seed) -> bytes:
    return kit.encode(kit.synth_int16(n, *seed), 16000, "WAV")


def _tar(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def test_speech_tsv_tar_with_a_header(tmp_path: Path):
    src = source("tsv_speech", shape="speech-tsv-tar", repo="o/tsv", tsv="meta/{split}.tsv",
                 audio="wav/{split}.tar.gz", member="clips/{file}", file="wav_file", text="sentence",
                 speaker="reader", gender="gender", num_samples="frames", numeric=["frames", "take"])
    layout = Layout(tmp_path)
    files = {}
    for split in ("train", "dev"):
        header = "take\twav_file\tsentence\treader\tgender\tframes\n"
        rows, members = [], {}
        for i in range(3):
            name = f"{split}{i}.wav"
            members[f"clips/{name}"] = _wav(4000 + 400 * i, split, i)
            rows.append(f"{i}\t{name}\tجمله شماره {i}\tr{i % 2}\t{'female' if i else 'male'}\t{4000 + 400 * i}\n")
        members["clips/../escape.wav"] = _wav(100, "x")
        files[f"meta/{split}.tsv"] = (header + "".join(rows)).encode()
        files[f"wav/{split}.tar.gz"] = _tar(members)
    place(layout, src, files)
    stats = prepare_speech(layout, [src], SpeechOptions(workers=1))[src.key]
    assert set(stats.splits) == {"train", "validation"} and stats.to_json()["split_names"] == {"dev": "validation"}
    assert stats.total["clips"] == 6 and stats.total["speakers"] == 2 and stats.rejects_by_reason == {"unsafe_member": 2}
    line = orjson.loads(layout.manifest(src, "validation").read_bytes().splitlines()[1])
    assert (line["id"], line["text"], line["reader"], line["frames"], line["take"]) == ("dev1", "جمله شماره 1", "r1",
                                                                                          4400, 1)
    assert line["audio_path"] == "datasets/speech/tsv_speech/audio/validation/dev1.wav"
    assert speech_gates(GateContext(layout, [src], thorough=True)) == []  # counts, files and hashes hold


def test_speech_parquet_split_column_and_embedded_audio(tmp_path: Path):
    src = source("pq_speech", shape="speech-parquet", repo="o/pq", text="txt", audio="clip", id="key",
                 split="subset", files="shards/*.parquet", split_names={"eval": "test"})
    layout = Layout(tmp_path)
    cols: dict[str, list] = {"key": [], "txt": [], "clip": [], "subset": [], "id": []}
    for i in range(7):
        cols["key"].append(f"utt{i}" if i != 6 else None)  # the last row has no id: rejected
        cols["txt"].append(f"جمله {i}")
        cols["clip"].append({"bytes": _wav(3000 + 100 * i, "pq", i), "path": None})
        cols["subset"].append("train" if i < 4 else "eval")
        cols["id"].append(i)  # a source column named like the manifest's own key
    place(layout, src, {"shards/a.parquet": kit.parquet_bytes(pa.table(cols)), "README.md": b"x"})
    stats = prepare_speech(layout, [src], SpeechOptions(workers=1))[src.key]
    assert {k: v["clips"] for k, v in stats.splits.items()} == {"train": 4, "test": 2}
    assert stats.rejects_by_reason == {"no_id": 1}
    assert stats.total["speakers"] is None  # no speaker column: unknown, not zero
    line = orjson.loads(layout.manifest(src, "test").read_bytes().splitlines()[0])
    assert (line["id"], line["source_id"], line["subset"]) == ("utt4", 4, "eval")
    assert line["audio_path"].endswith("/audio/test/utt4.wav")  # named by its id, extension from the bytes
    assert speech_gates(GateContext(layout, [src], thorough=True)) == []


@pytest.mark.parametrize("table, field, problem", [
    ({"shape": "chat-jsonl", "repo": "o/n", "qeustion": "q"}, "qeustion", "unknown field for shape chat-jsonl"),
    ({"shape": "speech-parquet", "repo": "o/n"}, "text", "missing (required for this shape)"),
    ({"shape": "chat-json", "repo": "not a repo", "question": 1, "answers": 2}, "repo", "is not a Hub repo id"),
    ({"shape": "chat-json", "repo": "o/n", "question": "q", "answers": 2}, "question", "all be keys"),
    ({"shape": "speech-tsv-tar", "repo": "o/n", "tsv": "a.tsv", "audio": "{split}.tar.gz", "file": "f",
      "text": "t"}, "tsv", "has no {split}"),
    ({"shape": "speech-tsv-tar", "repo": "o/n", "tsv": "{split}.tsv", "audio": "{split}.tar.gz", "file": "f",
      "text": "t", "header": False, "columns": ["f", "x"]}, "text", "column 't' is not one of `columns`"),
    ({"shape": "chat-jsonl", "repo": "o/n", "folder": "datasets/speech/x"}, "folder", "a text corpus lives at"),
])
def test_a_declaration_is_checked_field_by_field(table, field, problem):
    with pytest.raises(SourcesConfigError) as exc:
        declare("persian-data.toml", "mine", table, CATALOG)
    assert str(exc.value).startswith(f"persian-data.toml: [corpora.mine] {field}: ") and problem in str(exc.value)


def test_the_root_file_and_the_groups(tmp_path: Path, capsys):
    (tmp_path / "persian-data.toml").write_text('[corpora.extra]\nshape = "chat-jsonl"\nrepo = "o/n"\n')
    sources = root_sources(tmp_path)
    assert [s.key for s in sources][-1] == "extra" and sources[:5] == CATALOG
    assert [s.key for s in select("chat", sources)] == ["text", "extra"]
    assert select("all", sources) == list(sources)
    (tmp_path / "persian-data.toml").write_text("[corpora.x\n")
    assert main(["status", "--root", str(tmp_path)]) == 2  # every command reads it, and says what is wrong
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path}/persian-data.toml: not valid TOML") and err.count("\n") == 1
    assert main(["verify", "--root", str(tmp_path), "--sources", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: no such file (--sources)" in capsys.readouterr().err
