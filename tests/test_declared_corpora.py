"""Issue 22: corpora a user declares (persian-data.toml / --sources) get what the five get.

The two example declarations (examples/sources/) are served by the local hub from repos built
here with column names unlike ours: a parquet speech corpus whose `audio` is a path to a wav file
of the repo (`transcript`, `speaker_id`, `sex`, `utt_id`), and a JSONL chat corpus with
`topic`/`question`/`answer` fields. fetch, prepare, eval-stt, card, verify and status run on them
through the CLI; each bad declaration fails before anything is downloaded, with one line, exit 2.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from persian_data.cli import main
from persian_data.integrity import read_lock
from persian_data.localhub import replica_kit as kit
from persian_data.localhub.store import HubStore

from support.hub import ScriptedHub

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "sources"
SPEECH, CHAT = "read_speech", "qa_chat"
SPEECH_REPO, CHAT_REPO = "example-org/persian-read-speech", "example-org/persian-qa-chat"
SENTENCES = ("امروز هوا بسیار خوب است.", "کتاب را روی میز گذاشتم.", "فردا به کتابخانه می‌روم.",
             "این شهر تاریخ طولانی دارد.", "لطفا در را ببندید.")
PHONE = "09121234567"
ANSWER = "طبق ماده ۱۰ قانون مدنی قرارداد شما معتبر است و می‌توانید از دادگاه الزام به انجام تعهد را بخواهید."


def speech_repo() -> dict[str, bytes]:
    """data/{train,test}-00000-of-00001.parquet + clips/<utt_id>.wav; speakers shared by both splits."""
    files = {".gitattributes": kit.GITATTRIBUTES_DATASET.encode(), "README.md": b"---\nlicense: cc-by-4.0\n---\n"}
    for split, n in (("train", 5), ("test", 4)):
        cols: dict[str, list] = {"utt_id": [], "transcript": [], "speaker_id": [], "sex": [], "audio": []}
        for i in range(n):
            utt = f"{split}_{i:03d}"
            cols["utt_id"].append(utt)
            cols["transcript"].append(SENTENCES[(i + (split == "test")) % len(SENTENCES)])
            cols["speaker_id"].append(f"spk{i % 3}")
            cols["sex"].append(("female", "male")[i % 2])
            cols["audio"].append(f"clips/{utt}.wav")
            files[f"clips/{utt}.wav"] = kit.encode(kit.synth_int16(8000 + 800 * i, SPEECH, utt), 16000, "WAV")
        files[f"data/{split}-00000-of-00001.parquet"] = kit.parquet_bytes(pa.table(cols))
    return files


def chat_repo() -> dict[str, bytes]:
    rows = [{"topic": f"موضوع {i}", "question": f"سلام. درباره قرارداد اجاره شماره {i} چه باید بکنم؟",
             "answer": f"{ANSWER} مورد {i}."} for i in range(6)]
    rows.append({"topic": "تماس", "question": f"سلام. شماره من {PHONE} است. چک برگشتی را چگونه پیگیری کنم؟",
                 "answer": f"{ANSWER} چک برگشتی."})
    rows.append({"topic": "english", "question": "Hello, how do I get my deposit back from the landlord?",
                 "answer": "You can file a claim at the local court with your lease and receipts."})
    lines = [json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows]
    return {".gitattributes": kit.GITATTRIBUTES_DATASET.encode(), "README.md": b"---\nlicense: apache-2.0\n---\n",
            "data/part-1.jsonl": b"".join(lines[:4]), "data/part-2.jsonl": b"".join(lines[4:])}


@pytest.fixture(scope="module")
def declared_hub(tmp_path_factory):
    store = HubStore(tmp_path_factory.mktemp("declared-hub"))
    store.publish("dataset", SPEECH_REPO, speech_repo())
    store.publish("dataset", CHAT_REPO, chat_repo())
    with ScriptedHub(store) as hub:
        yield hub


def declare(root: Path, text: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    sources = root / "persian-data.toml"
    sources.write_text(text if text is not None else "\n".join(
        (EXAMPLES / name).read_text("utf-8") for name in ("speech-parquet.toml", "chat-jsonl.toml")), "utf-8")
    return sources


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, declared_hub):
    """A root whose persian-data.toml holds the two examples: fetched and prepared."""
    root = tmp_path_factory.mktemp("declared") / "root"
    declare(root)
    assert main(["fetch", "--root", str(root), "--endpoint", declared_hub.endpoint, "--only", f"{SPEECH},{CHAT}"]) == 0
    assert main(["prepare", "all", "--root", str(root), "--only", f"{SPEECH},{CHAT}", "--prepare-workers", "1"]) == 0
    return root


def test_fetch_records_the_declared_corpora_like_the_five(prepared):
    root = prepared
    speech_files = {p for p in speech_repo() if p.startswith(("data/", "clips/")) or p == "README.md"}
    on_disk = {p.relative_to(root / "datasets/speech/read_speech/data").as_posix()
               for p in (root / "datasets/speech/read_speech/data").rglob("*") if p.is_file()}
    assert on_disk == speech_files  # the patterns' selection: .gitattributes is not taken
    assert (root / "datasets/text/qa_chat/data/data/part-2.jsonl").is_file()
    counts = json.loads((root / "logs/dataset_sources.json").read_text())
    assert list(counts) == ["text_persian_conversation_files", "speech_commonvoice_fa_files", "speech_fleurs_fa_files",
                            "tts_female_files", "tts_male_files", "speech_read_speech_files", "text_qa_chat_files"]
    assert counts["speech_read_speech_files"] == len(speech_files) and counts["text_qa_chat_files"] == 3
    for folder, repo in (("speech/read_speech", SPEECH_REPO), ("text/qa_chat", CHAT_REPO)):
        readme = (root / "datasets" / folder / "README.source.md").read_text("utf-8").splitlines()
        assert f"URL: https://huggingface.co/datasets/{repo}" in readme
        assert readme[0].startswith(f"Source: {repo}: ")  # the declaration's description
    lock = read_lock(root / "checksums/persian-data.lock.json")
    assert set(lock) == {SPEECH, CHAT} and len(lock[SPEECH].files) == len(speech_files)
    listed = (root / "checksums/datasets.sha256.txt").read_text().splitlines()
    assert any(line.endswith("datasets/speech/read_speech/data/clips/test_000.wav") for line in listed)
    assert any(line.endswith("datasets/text/qa_chat/combined.jsonl") for line in listed)


def test_prepare_reads_their_own_columns(prepared):
    root = prepared
    speech = root / "datasets/speech/read_speech"
    test = [orjson.loads(line) for line in (speech / "manifests/test.jsonl").read_bytes().splitlines()]
    assert [line["id"] for line in test] == [f"test_{i:03d}" for i in range(4)]
    assert test[0]["audio_path"] == "datasets/speech/read_speech/audio/test/test_000.wav"
    assert test[0]["text"] == SENTENCES[1] and test[0]["speaker_id"] == "spk0" and test[0]["sex"] == "female"
    assert test[0]["audio"] == "clips/test_000.wav"  # the source column is kept
    assert (root / test[0]["audio_path"]).read_bytes() == speech_repo()["clips/test_000.wav"]  # byte for byte
    stats = json.loads((speech / "manifests/stats.json").read_text())
    assert stats["source"] == SPEECH and stats["total"]["clips"] == 9 and stats["total"]["speakers"] == 3
    assert stats["total"]["gender"] == {"female": 5, "male": 4}
    sup = (speech / "exports/lhotse/read_speech_supervisions_test.jsonl.gz")
    import gzip

    first = json.loads(gzip.decompress(sup.read_bytes()).splitlines()[0])
    assert (first["speaker"], first["gender"]) == ("spk0", "female")

    chat = root / "datasets/text/qa_chat"
    lines = [orjson.loads(line)["messages"] for line in (chat / "combined.jsonl").read_bytes().splitlines()]
    assert len(lines) == 7  # the English row is dropped by the script rule
    assert lines[0][0]["content"].startswith("شما یک دستیار فارسی‌زبان هستید")  # the declared system prompt
    assert lines[0][1]["content"] == "موضوع ۰\n\nسلام. درباره قرارداد اجاره شماره ۰ چه باید بکنم؟"
    text = (chat / "combined.jsonl").read_text("utf-8")
    assert PHONE not in text and "۰۹۱۲۱۲۳۴۵۶۷" not in text and "[PHONE]" in text  # the privacy rules hold
    chat_stats = json.loads((chat / "combined.stats.json").read_text())
    assert chat_stats["skipped"] == {"not_persian": 1} and chat_stats["rules"]["pii"]["masked"].get("PHONE")


def test_eval_stt_scores_a_declared_corpus(prepared, tmp_path, capsys):
    root = prepared
    oracle = tmp_path / "oracle.jsonl"
    manifest = root / "datasets/speech/read_speech/manifests/test.jsonl"
    oracle.write_bytes(b"".join(orjson.dumps({"id": r["id"], "text": r["text"]}) + b"\n"
                                for r in map(orjson.loads, manifest.read_bytes().splitlines())))
    assert main(["eval-stt", "--root", str(root), "--corpus", SPEECH, "--split", "test", "--hypotheses", str(oracle),
                 "--bootstrap", "10"]) == 0
    results = json.loads((root / "evals/read_speech-test-oracle/results.json").read_text())
    assert results["wer"] == 0.0 and results["cer"] == 0.0 and results["utterances"]["scored"] == 4
    assert set(results["breakdowns"]) == {"sex", "duration"}  # the declared gender column
    assert results["leakage"]["utterances_by_train_speakers"] == 4  # spk0..2 speak in train too
    capsys.readouterr()
    assert main(["eval-stt", "--root", str(root), "--corpus", "nope", "--hypotheses", str(oracle)]) == 2
    assert "commonvoice, fleurs, read_speech" in capsys.readouterr().err


def test_card_verify_and_status_know_them(prepared, capsys):
    root = prepared
    assert main(["card", "--root", str(root), "--no-synth"]) == 0
    card = (root / "card/CARD.md").read_text("utf-8")
    assert "## Speech: read Persian (example) (`read_speech`)" in card and "گفتار: نمونهٔ خوانش فارسی" in card
    assert "## Chat: Persian questions and answers (example) (`qa_chat`)" in card
    assert (root / "card/speech-read_speech-splits.png").is_file() and (root / "card/qa_chat-outcomes.png").is_file()
    assert main(["verify", "--root", str(root), "--only", f"{SPEECH},{CHAT}"]) == 0
    capsys.readouterr()
    assert main(["status", "--root", str(root), "--only", f"{SPEECH},{CHAT}", "--json"]) == 0
    rows = {r["source"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[SPEECH]["state"] == rows[CHAT]["state"] == "present"


def test_verify_names_a_corrupted_file_of_a_declared_corpus(prepared, tmp_path, capsys):
    root = tmp_path / "copy"
    shutil.copytree(prepared, root, symlinks=True)
    wav = root / "datasets/speech/read_speech/data/clips/train_001.wav"
    wav.write_bytes(wav.read_bytes()[:-100] + bytes(100))
    jsonl = root / "datasets/text/qa_chat/data/data/part-1.jsonl"
    jsonl.write_bytes(jsonl.read_bytes().replace("اجاره".encode(), "اجاره".encode()[::-1], 1))
    capsys.readouterr()
    assert main(["verify", "--root", str(root), "--only", f"{SPEECH},{CHAT}"]) == 1
    err = capsys.readouterr().err
    assert "datasets/speech/read_speech/data/clips/train_001.wav" in err
    assert "datasets/text/qa_chat/data/data/part-1.jsonl" in err


BAD = {  # what is wrong -> (persian-data.toml, the one line's start)
    "unknown shape": ('[corpora.x]\nshape = "speech-csv"\nrepo = "o/n"\n',
                      "[corpora.x] shape: unknown shape 'speech-csv'; known: speech-parquet, speech-tsv-tar, "),
    "a key of the five": ('[corpora.fleurs]\nshape = "chat-jsonl"\nrepo = "o/n"\n',
                          "[corpora.fleurs] key: 'fleurs' is already a source or group"),
    "two corpora, one folder": ('[corpora.a]\nshape = "chat-jsonl"\nrepo = "o/n"\nfolder = "datasets/text/same"\n'
                                '[corpora.b]\nshape = "chat-json"\nrepo = "o/m"\nquestion = 1\nanswers = 2\n'
                                'folder = "datasets/text/same"\n',
                                "[corpora.b] folder: datasets/text/same is already a's folder"),
    "a folder outside datasets/": ('[corpora.x]\nshape = "chat-jsonl"\nrepo = "o/n"\nfolder = "../elsewhere/x"\n',
                                   "[corpora.x] folder: '../elsewhere/x' is outside datasets/"),
    "a column the data lacks": (None, "[corpora.read_speech] speaker: column 'speaker' is not in "
                                      "data/test-00000-of-00001.parquet (its columns: utt_id, transcript, "),
    "a key the rows lack": (None, "[corpora.qa_chat] answers: key 'reply' is not in the first row of "
                                  "data/part-1.jsonl"),
    "a pattern that matches nothing": (None, "[corpora.read_speech] patterns: ['audio/*.flac'] match no file of "
                                             "example-org/persian-read-speech@"),
}


def _bad_text(case: str) -> str:
    speech = (EXAMPLES / "speech-parquet.toml").read_text("utf-8")
    chat = (EXAMPLES / "chat-jsonl.toml").read_text("utf-8")
    if case == "a column the data lacks":
        return speech.replace('speaker = "speaker_id"', 'speaker = "speaker"')
    if case == "a key the rows lack":
        return chat.replace('answers = "answer"', 'answers = "reply"')
    return speech.replace('patterns = ["data/*.parquet", "clips/*.wav", "README.md"]', 'patterns = ["audio/*.flac"]')


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_declaration_fails_before_any_download(case, declared_hub, tmp_path, capsys):
    text, expected = BAD[case]
    root = tmp_path / "root"
    sources = declare(tmp_path / "conf", text if text is not None else _bad_text(case))
    declared_hub.requests.clear()
    capsys.readouterr()
    assert main(["fetch", "--root", str(root), "--endpoint", declared_hub.endpoint, "--sources", str(sources)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {sources}: {expected}"), err
    assert not root.exists()  # nothing written, nothing downloaded
    gets = declared_hub.requests.entries(method="GET")
    assert all(r.range for r in gets if "/resolve/" in r.path)  # only ranged reads of the first bytes
