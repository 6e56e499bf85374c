"""Issue 7, hostile input: the readers of raw JSON, FLEURS TSVs and our own manifests are fuzzed;
a damaged parquet or a non-audio column is refused with a clear message, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persian_data.catalog import BY_KEY
from persian_data.errors import PersianDataError
from persian_data.gates import GateContext, run_gates
from persian_data.layout import Layout
from persian_data.corpora.commonvoice import commonvoice_repo
from persian_data.corpora.persian_conversation import text_repo
from persian_data.corpora.speech_tsv_tar import read_tsv
from persian_data.prepare.chat import ChatOptions, RawFileError, iter_raw_rows, prepare_chat
from persian_data.prepare.speech import SpeechOptions, prepare_speech

from support.replicas import TINY, fleurs_repo

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def place(root: Path, key: str, files: dict[str, bytes]) -> None:
    content = Layout(root).content_dir(BY_KEY[key])
    for rel, data in files.items():
        path = content / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8)
json_arrays = st.lists(json_values, max_size=6).map(lambda rows: json.dumps(rows, ensure_ascii=False).encode())
json_like = st.one_of(
    st.binary(max_size=300),
    st.text(alphabet='[]",\\ 0123456789abcnulltrefsآبپ\u200c\n{}:', max_size=300).map(str.encode),
    json_arrays,  # valid arrays: read back exactly
    st.tuples(json_arrays, st.integers(0, 300)).map(lambda cut: cut[0][:cut[1]]),  # cut anywhere
)


def json_array(data: bytes):
    """What Python's own json makes of `data` (a leading BOM allowed, control characters inside
    strings tolerated, as the reader does); None when it is not UTF-8 JSON."""
    try:
        text = data.decode("utf-8").lstrip(" \t\n\r")
        return json.JSONDecoder(strict=False).decode(text.removeprefix("\ufeff"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError both
        return None


@FUZZ
@given(data=json_like)
def test_raw_json_reader_never_fails_other_than_clearly(tmp_path_factory, data):
    """Read in 64-byte pieces, the reader returns exactly the rows json.loads finds in a JSON
    array, and refuses everything else with one of its three reasons."""
    path = tmp_path_factory.mktemp("j") / "x.json"
    path.write_bytes(data)
    expected = json_array(data)
    try:
        rows = list(iter_raw_rows(path, chunk_bytes=64))
    except RawFileError as exc:
        assert exc.reason in ("invalid_utf8", "invalid_json", "truncated")
        assert str(exc)
        assert not isinstance(expected, list), (data, exc)  # a valid array is never refused
    else:
        assert isinstance(expected, list), data  # only a JSON array is read
        assert repr(rows) == repr(expected)  # repr: NaN equals itself


@FUZZ
@given(data=st.binary(max_size=400) | st.text(alphabet="\t\n\r ab۱2-_.wavMALE", max_size=400).map(str.encode))
def test_fleurs_tsv_reader_never_fails_other_than_clearly(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("t") / "train.tsv"
    path.write_bytes(data)
    try:
        _, rows = read_tsv(path)
    except PersianDataError as exc:
        assert "not UTF-8" in str(exc) and str(path) in str(exc)
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
    else:
        # every non-blank line, once, in order, its fields joined back giving the line
        lines = data.decode("utf-8").split("\n")
        assert [n for n, _ in rows] == [n for n, line in enumerate(lines, 1) if line.strip()]
        for number, fields in rows:
            assert "\t".join(fields) == lines[number - 1].removesuffix("\r")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prepared")
    place(root, "text", text_repo(TINY))
    place(root, "commonvoice", commonvoice_repo(TINY))
    place(root, "fleurs", fleurs_repo(TINY))
    prepare_chat(Layout(root), ChatOptions(workers=0))
    prepare_speech(Layout(root), [BY_KEY["commonvoice"], BY_KEY["fleurs"]], SpeechOptions(workers=1))
    return root


lines = st.lists(st.one_of(st.binary(max_size=120), st.just(b'{"messages": []}'), st.just(b"{}"), st.just(b"null"),
                           st.just(b'{"audio_path": "../../../etc/passwd", "sha256": "00"}')), max_size=6)


@FUZZ
@given(garbage=lines)
def test_gates_on_fuzzed_manifests_and_jsonl_report_never_crash(prepared, garbage):
    layout = Layout(prepared)
    targets = [layout.chat_combined(), layout.manifest(BY_KEY["commonvoice"], "train"),
               layout.manifest(BY_KEY["fleurs"], "validation")]
    saved = {p: p.read_bytes() for p in targets}
    try:
        for path in targets:
            path.write_bytes(b"\n".join(garbage) + b"\n")
        failures, _, _ = run_gates(GateContext(layout, [BY_KEY["text"], BY_KEY["commonvoice"], BY_KEY["fleurs"]],
                                               thorough=True, required_stages=frozenset({"text", "speech"})))
        assert not [f for f in failures if "gate crashed" in f.reason], failures
        assert [f for f in failures if f.gate in ("chat", "speech")]
    finally:
        for path, data in saved.items():
            path.write_bytes(data)


def test_truncated_parquet_is_refused_clearly(tmp_path):
    files = commonvoice_repo(TINY)
    shard = "data/test-00000-of-00001.parquet"
    files[shard] = files[shard][: len(files[shard]) // 2]
    place(tmp_path, "commonvoice", files)
    with pytest.raises(PersianDataError) as info:
        prepare_speech(Layout(tmp_path), [BY_KEY["commonvoice"]], SpeechOptions(workers=1))
    assert "test-00000-of-00001.parquet" in str(info.value)
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_audio_column_that_is_not_audio_is_refused_clearly(tmp_path):
    files = commonvoice_repo(TINY)
    shard = "data/validation-00000-of-00001.parquet"
    table = pq.read_table(pa.BufferReader(files[shard]))
    table = table.set_column(table.schema.get_field_index("audio"), "audio",
                             pa.array(["not audio"] * table.num_rows))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    files[shard] = sink.getvalue().to_pybytes()
    place(tmp_path, "commonvoice", files)
    try:
        prepare_speech(Layout(tmp_path), [BY_KEY["commonvoice"]], SpeechOptions(workers=1))
    except PersianDataError as exc:
        assert "validation-00000-of-00001.parquet" in str(exc) and "audio" in str(exc)
    else:  # or every row of that shard is rejected with a reason, and nothing is written for it
        layout = Layout(tmp_path)
        rejects = [json.loads(line) for line in
                   layout.speech_rejects(BY_KEY["commonvoice"]).read_text("utf-8").splitlines()]
        refused = [r for r in rejects if r["split"] == "validation"]
        assert len(refused) == table.num_rows
        assert all(r["reason"] and r["source"].endswith(shard) for r in refused), refused
        assert not list(layout.audio_dir(BY_KEY["commonvoice"], "validation").glob("*"))
    # nothing beside the layout, nothing temporary left
    assert sorted(p.name for p in tmp_path.iterdir()) == [".persian-data", "datasets"]
    assert not [p for p in Layout(tmp_path).tmp_dir.rglob("*") if p.is_file()]
