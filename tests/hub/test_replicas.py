"""The replica builder: deterministic, faithful to SOURCES.md, adversarial exactly as declared."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import re
import tarfile
import unicodedata
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persian_data.catalog import CATALOG
from persian_data.corpora import commonvoice as CVM
from persian_data.corpora import coqui_vits_run
from persian_data.corpora import fleurs as FLM
from persian_data.corpora import kamtera_vits as TTSM
from persian_data.corpora import persian_conversation as TXT
from persian_data.localhub import replica_kit as KIT
from persian_data.localhub.store import HubStore
from support import replicas as R

ZWNJ = "\u200c"


@pytest.fixture(scope="module")
def replicas_hub(tmp_path_factory):
    store = HubStore(tmp_path_factory.mktemp("hub"))
    shas = R.build_replicas(store, R.TINY, hostile=True)
    return store, shas


@pytest.fixture(scope="module")
def text_files():
    return R.text_repo(R.TINY, hostile=True)


@pytest.fixture(scope="module")
def cv_files():
    return CVM.commonvoice_repo(R.TINY)


@pytest.fixture(scope="module")
def fleurs_files():
    return R.fleurs_repo(R.TINY)


def lfs_map(store, key):
    repo_type, repo_id = R.REPLICA_REPOS[key]
    return {f.path: f.lfs is not None for f in store.files(repo_type, repo_id, "main")}


# -- determinism and wiring ------------------------------------------------------------------
def test_repos_agree_with_catalog():
    assert R.REPLICA_REPOS == {s.key: (s.repo_type, s.repo_id) for s in CATALOG}
    assert set(R.REPLICA_REPOS) == {"text", "commonvoice", "fleurs", "tts-female", "tts-male"}


def test_build_is_deterministic(tmp_path, replicas_hub):
    _, first = replicas_hub
    second = R.build_replicas(HubStore(tmp_path / "a"), R.TINY, hostile=True)
    assert second == first
    assert set(first) == set(R.REPLICA_REPOS) and all(re.fullmatch(r"[0-9a-f]{40}", s) for s in first.values())


def test_rebuild_into_same_store_makes_no_new_commit(tmp_path):
    store = HubStore(tmp_path)
    one = R.build_replicas(store, R.TINY, only=("text", "tts-male"))
    assert R.build_replicas(store, R.TINY, only=("text", "tts-male")) == one
    changed = R.build_replicas(store, R.TINY, hostile=True, only=("text",))
    assert changed["text"] != one["text"]  # content changed -> new commit


def test_arguments_change_content():
    assert TXT.text_repo(R.TINY) != R.text_repo(R.TINY, hostile=True)
    assert TXT.text_repo(R.TINY) != TXT.text_repo(R.scaled(R.TINY, 2))
    assert TTSM.tts_repo("male", R.TINY) != TTSM.tts_repo("male", R.TINY, voice_assets=(b"{}", b"weights"))


# -- A. text -----------------------------------------------------------------------------------
def test_text_files_and_lfs(replicas_hub):
    store, _ = replicas_hub
    lfs = lfs_map(store, "text")
    assert set(lfs) == {".gitattributes", "Persian-conversational-dataset.py", "README.md",
                        *TXT.TEXT_FILES, *R.TEXT_HOSTILE_FILES}
    assert {p for p, is_lfs in lfs.items() if is_lfs} == {
        "dadrah_dataset1-1000_10000.json",
        "dadrah_dataset1-10000_100000.json",
        "dadrah_dataset1-100000_276342.json",
        "dadrah_dataset_extra_truncated.json",
    }
    assert lfs["dadrah_dataset.json"] is False


def test_text_without_hostile_has_only_the_real_names():
    assert set(TXT.text_repo(R.TINY)) == {".gitattributes", "Persian-conversational-dataset.py", "README.md",
                                        *TXT.TEXT_FILES}


def test_text_readme_and_format(text_files):
    readme = text_files["README.md"].decode()
    assert len(text_files["README.md"]) == 147
    assert readme.startswith("---\nlicense: apache-2.0\n") and "- fa\n" in readme
    assert "pretty_name: persianConversation\n---" in readme
    for name in TXT.TEXT_FILES:
        data = text_files[name]
        data.decode("ascii")  # json.dump default: ensure_ascii=True
        assert b"\n" not in data and data.startswith(b"[[") and data.endswith(b"]]")


def _kind_of(row):
    """Classify a parsed row the way a defensive reader would, independent of the builder."""
    if not isinstance(row, list):
        return "not_list"
    if len(row) != 4:
        return f"{len(row)}_items"
    title, question, answers, keywords = row
    if not isinstance(title, str):
        return "title_not_str"
    if answers is None:
        return "answers_null"
    if isinstance(answers, str):
        return "answers_string"
    return "ok"


def test_text_rows_match_manifest(text_files):
    manifest = R.text_manifest(R.TINY)
    parsed = {name: json.loads(text_files[name]) for name in TXT.TEXT_FILES}
    kinds = {}
    for name, rows in parsed.items():
        info = manifest[name]
        assert len(rows) == info["elements"] == R.TINY.text_rows + sum(info["adversarial"].values())
        for row in rows:
            kinds[_kind_of(row)] = kinds.get(_kind_of(row), 0) + 1
        ok = [r for r in rows if _kind_of(r) == "ok"]
        assert len(ok) == info["well_formed"]
        assert sum(len(r[2]) for r in ok) == info["answers"]
    assert kinds == {"ok": sum(m["well_formed"] for m in manifest.values()), "3_items": 1, "5_items": 1,
                     "title_not_str": 1, "answers_null": 1, "answers_string": 1}
    all_rows = [r for rows in parsed.values() for r in rows]
    assert sum(1 for r in all_rows if _kind_of(r) == "ok" and r[1] == "") == 1
    assert sum(1 for r in all_rows if _kind_of(r) == "ok" and r[2] == []) == 1
    assert max(len(r[2]) for r in all_rows if _kind_of(r) == "ok") == 4
    # Exact duplicates: one inside dadrah_dataset1-10000_100000.json, one across files.
    mid = [json.dumps(r) for r in parsed["dadrah_dataset1-10000_100000.json"]]
    assert len(mid) - len(set(mid)) == 1
    every = [json.dumps(r) for r in all_rows]
    assert len(every) - len(set(every)) == 2
    first = json.dumps(parsed["dadrah_dataset.json"][0])
    assert first in {json.dumps(r) for r in parsed["dadrah_dataset1-1000_10000.json"]}


ODD = {
    "arabic_letters": "يىكة\u06c0",
    "diacritics": "".join(chr(c) for c in range(0x064B, 0x0653)) + "\u0670",
    "tatweel": "\u0640",
    "digits": "٠١٢٣٤٥٦٧٨٩",
    "odd_spaces": "\u00a0\u200f\u200e\u2009\u202f\u3000\ufeff\t\r\u2028",
    "control_chars": "\x00\x01\x07\x08\x1b\x7f\x85",
}


def _strings(row):
    for item in row:
        if isinstance(item, str):
            yield item
        elif isinstance(item, list):
            yield from (x for x in item if isinstance(x, str))


def test_text_odd_characters_only_where_declared(text_files):
    fixed = {kind: row for kind, _, row in TXT.text_adversarial_rows()}
    for kind, chars in ODD.items():
        text = "".join(_strings(fixed[kind]))
        present = {c for c in chars if c in text}
        assert present, kind
        if kind in ("arabic_letters", "digits", "control_chars", "tatweel"):
            assert present == set(chars), (kind, set(chars) - present)
    odd = set("".join(ODD.values()))
    seen = {}
    for name in TXT.TEXT_FILES:
        for row in json.loads(text_files[name]):
            for s in _strings(row):
                for c in set(s) & odd:
                    seen.setdefault(c, set()).add(json.dumps(row))
    adversarial = {json.dumps(row) for row in fixed.values()}
    assert seen and all(rows <= adversarial for rows in seen.values())


def test_text_zwnj_positions():
    row = next(row for kind, _, row in TXT.text_adversarial_rows() if kind == "zwnj")
    strings = list(_strings(row))
    assert any(s.startswith(ZWNJ) for s in strings) and any(s.endswith(ZWNJ) for s in strings)
    assert any(ZWNJ * 2 in s for s in strings) and ZWNJ in strings  # doubled; a string that is only ZWNJ
    assert any(f" {ZWNJ}" in s for s in strings) and any(f"{ZWNJ} " in s for s in strings)
    assert any(f"می{ZWNJ}خواهم" in s for s in strings)


def test_text_normal_rows_are_clean_persian(text_files):
    fixed = {json.dumps(row) for _, _, row in TXT.text_adversarial_rows()}
    normal = [r for n in TXT.TEXT_FILES for r in json.loads(text_files[n]) if json.dumps(r) not in fixed]
    assert len(normal) >= 4 * R.TINY.text_rows
    for row in normal:
        assert _kind_of(row) == "ok" and row[1].startswith("سلام.") and row[2] and row[3]
        for s in _strings(row):
            assert s == s.strip() and "  " not in s
            assert all(unicodedata.category(c)[0] in "LMNPZ" or c == ZWNJ for c in s), s


def test_text_hostile_files_fail_as_declared(text_files):
    bad = text_files["dadrah_dataset_extra_invalid_utf8.json"]
    with pytest.raises(UnicodeDecodeError):
        bad.decode("utf-8")
    with pytest.raises(UnicodeDecodeError):
        json.loads(bad)
    rows = json.loads(bad.decode("utf-8", "replace"))
    info = R.TEXT_HOSTILE["dadrah_dataset_extra_invalid_utf8.json"]
    assert len(rows) == info["rows"]
    assert sum("\ufffd" in row[1] for row in rows) == info["invalid_rows"]

    cut = text_files["dadrah_dataset_extra_truncated.json"].decode("ascii")
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut)
    decoder, pos, complete = json.JSONDecoder(), 1, 0
    while True:
        try:
            row, end = decoder.raw_decode(cut, pos)
        except json.JSONDecodeError:
            break
        assert _kind_of(row) == "ok"
        complete, pos = complete + 1, end + 2
    assert complete == R.TEXT_HOSTILE["dadrah_dataset_extra_truncated.json"]["complete_rows"]
    assert not cut.rstrip().endswith("]")


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(min_value=2, max_value=40))
def test_text_manifest_holds_at_any_scale(rows):
    scale = dataclasses.replace(R.TINY, text_rows=rows)
    files, manifest = TXT.text_repo(scale), R.text_manifest(scale)
    for name in TXT.TEXT_FILES:
        parsed = json.loads(files[name])
        assert len(parsed) == manifest[name]["elements"]
        assert sum(_kind_of(r) == "ok" for r in parsed) == manifest[name]["well_formed"]
        assert len({json.dumps(r) for r in parsed}) == manifest[name]["distinct"]
    assert {k: sum(m["adversarial"].get(k, 0) for m in manifest.values()) for k in TXT.TEXT_ADVERSARIAL} == \
        R.TEXT_ADVERSARIAL_COUNTS


# -- B. Common Voice -----------------------------------------------------------------------------
def test_cv_files_and_lfs(replicas_hub):
    store, _ = replicas_hub
    lfs = lfs_map(store, "commonvoice")
    parquets = {p for paths in CVM.CV_FILES.values() for p in paths}
    assert parquets == {"data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet",
                        "data/validation-00000-of-00001.parquet", "data/test-00000-of-00001.parquet"}
    assert set(lfs) == {".gitattributes", "README.md", "dataset_config.yaml", *parquets}
    assert {p for p, is_lfs in lfs.items() if is_lfs} == parquets


def test_cv_schema_exact(cv_files):
    expected = pa.schema([
        ("client_id", pa.string()), ("path", pa.string()),
        ("audio", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("sentence", pa.string()), ("up_votes", pa.int64()), ("down_votes", pa.int64()),
        ("age", pa.string()), ("gender", pa.string()), ("accent", pa.string()),
        ("locale", pa.string()), ("segment", pa.string()), ("variant", pa.string()),
    ])
    for paths in CVM.CV_FILES.values():
        for path in paths:
            schema = pq.read_schema(io.BytesIO(cv_files[path]))
            assert schema.remove_metadata().equals(expected), path
            features = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
            assert features["audio"] == {"sampling_rate": 48000, "_type": "Audio"}
            assert list(features) == expected.names
            assert features["up_votes"] == {"dtype": "int64", "_type": "Value"}
            assert features["sentence"] == {"dtype": "string", "_type": "Value"}


def test_cv_audio_is_48k_mp3_except_the_corrupt_clip(cv_files):
    corrupt_seen = 0
    for split, paths in CVM.CV_FILES.items():
        rows = [r for p in paths for r in pq.read_table(io.BytesIO(cv_files[p])).to_pylist()]
        assert len(rows) == CVM.cv_manifest(R.TINY)[split]["rows"]
        for i, row in enumerate(rows):
            assert re.fullmatch(r"common_voice_fa_\d+\.mp3", row["path"]) and row["audio"]["path"] == row["path"]
            assert row["locale"] == "fa" and row["sentence"] and len(row["client_id"]) == 128
            if split == CVM.CV_CORRUPT["split"] and i == CVM.CV_CORRUPT["row"]:
                corrupt_seen += 1
                assert row["path"] == CVM.CV_CORRUPT["path"] and row["audio"]["bytes"] == CVM.CV_CORRUPT["bytes"]
                with pytest.raises(sf.LibsndfileError):
                    sf.info(io.BytesIO(row["audio"]["bytes"]))
                continue
            info = sf.info(io.BytesIO(row["audio"]["bytes"]))
            assert (info.format, info.samplerate, info.channels) == ("MP3", 48000, 1)
            assert 0.5 <= info.frames / 48000 <= 1.0 + 0.05
    assert corrupt_seen == 1


def test_cv_readme_and_config(cv_files):
    readme = cv_files["README.md"].decode()
    front = readme.split("---\n")[1]
    for split, info in CVM.cv_manifest(R.TINY).items():
        assert f"  - name: {split}\n    num_bytes: " in front
        assert re.search(rf"- name: {split}\n    num_bytes: \d+\n    num_examples: {info['rows']}\n", front)
        assert f"  - split: {split}\n    path: data/{split}-*\n" in front
    assert "        sampling_rate: 48000\n" in front
    cfg = cv_files["dataset_config.yaml"].decode()
    for line in ("task: speech_recognition", "sampling_rate: 16000", "audio_column: audio",
                 "transcript_column: sentence"):
        assert line + "\n" in cfg


# -- C. FLEURS ---------------------------------------------------------------------------------
def test_fleurs_files_and_lfs(replicas_hub):
    store, _ = replicas_hub
    lfs = lfs_map(store, "fleurs")
    per_lang = {f"{s}.tsv" for s in FLM.FLEURS_SPLITS} | {f"audio/{s}.tar.gz" for s in FLM.FLEURS_SPLITS}
    expected = {".gitattributes", "README.md", "fleurs.py"}
    for lang in ("fa_ir", "en_us", "ar_eg"):
        expected |= {f"data/{lang}/{p}" for p in per_lang}
    assert set(lfs) == expected
    assert {p for p, is_lfs in lfs.items() if is_lfs} == {p for p in expected if p.endswith(".tar.gz")}


def _tsv(data):
    return [line.split("\t") for line in data.decode("utf-8").splitlines()]


def _members(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]


@pytest.mark.parametrize("lang", ["fa_ir", "en_us", "ar_eg"])
def test_fleurs_tsv_and_tar(fleurs_files, lang):
    manifest = R.fleurs_manifest(R.TINY, lang)
    hostile = set(R.FLEURS_HOSTILE_MEMBERS)
    for split in FLM.FLEURS_SPLITS:
        rows = _tsv(fleurs_files[f"data/{lang}/{split}.tsv"])
        assert rows and all(len(r) == 7 for r in rows)
        assert rows[0][0].isdigit() and rows[0][5].isdigit()  # no header line
        assert all(r[6] in ("MALE", "FEMALE", "OTHER") for r in rows)
        assert all(r[4].endswith(" |") and r[4].replace(" ", "").replace("|", "") == r[3].replace(" ", "")
                   for r in rows)
        assert len(rows) == manifest[split]["tsv_rows"]
        ids = [r[0] for r in rows]
        repeated = {i for i in ids if ids.count(i) > 1}
        assert len(repeated) >= 2
        for i in repeated:  # the same sentence, by different recordings
            names = [r[1] for r in rows if r[0] == i]
            assert len(set(names)) == len(names)
        frames = {}
        gz = fleurs_files[f"data/{lang}/audio/{split}.tar.gz"]
        assert gz[:2] == b"\x1f\x8b" and gzip.GzipFile(fileobj=io.BytesIO(gz)).read(1)
        assert int.from_bytes(gz[4:8], "little") == 0  # gzip mtime 0
        for member, data in _members(gz):
            assert member.mtime == FLM.FLEURS_MTIME and member.uid == member.gid == 0
            if member.isdir():
                assert member.name == split
                continue
            if member.name in hostile:
                assert lang == "fa_ir"
                continue
            assert member.isfile() and re.fullmatch(rf"{split}/\d{{19,20}}\.wav", member.name), member.name
            info = sf.info(io.BytesIO(data))
            assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 16000, 1)
            frames[member.name.split("/")[1]] = info.frames
        assert len(frames) == manifest[split]["wav_members"]
        good = [r for r in rows if r[1] in frames and int(r[5]) == frames[r[1]]]
        assert len(good) == manifest[split]["good_rows"]


def test_fleurs_fa_ir_adversarial(fleurs_files):
    adv = FLM.FLEURS_ADVERSARIAL
    train = _tsv(fleurs_files["data/fa_ir/train.tsv"])
    train_tar = {m.name: (m, d) for m, d in _members(fleurs_files["data/fa_ir/audio/train.tar.gz"])}
    names = {r[1]: r for r in train}
    assert adv["missing_wav"]["wav"] in names and f"train/{adv['missing_wav']['wav']}" not in train_tar
    orphan = adv["orphan_wav"]["member"]
    assert orphan in train_tar and orphan.split("/")[1] not in names
    bad = names[adv["wrong_num_samples"]["wav"]]
    frames = sf.info(io.BytesIO(train_tar[f"train/{bad[1]}"][1])).frames
    assert int(bad[5]) == frames + adv["wrong_num_samples"]["tsv_extra"]
    assert any(r[6] == "OTHER" for split in FLM.FLEURS_SPLITS for r in _tsv(fleurs_files[f"data/fa_ir/{split}.tsv"]))

    dev = {m.name: m for m, _ in _members(fleurs_files["data/fa_ir/audio/dev.tar.gz"])}
    assert dev["../evil.wav"].isfile() and dev["/tmp/persian_data_evil.wav"].isfile()
    link = dev["dev/evil_link.wav"]
    assert link.issym() and link.linkname == R.FLEURS_HOSTILE["symlink"]["target"]
    dev_names = {r[1] for r in _tsv(fleurs_files["data/fa_ir/dev.tsv"])}
    assert "evil_link.wav" not in dev_names
    for lang in ("en_us", "ar_eg"):  # decoys are clean
        for split in FLM.FLEURS_SPLITS:
            for m, _ in _members(fleurs_files[f"data/{lang}/audio/{split}.tar.gz"]):
                assert m.isdir() or (m.isfile() and m.name.startswith(f"{split}/"))


def test_the_demos_replicas_carry_no_hostile_files():
    from persian_data.corpora.replicas import replica_files as demo_replica_files

    text, fleurs = demo_replica_files("text", R.TINY), demo_replica_files("fleurs", R.TINY)
    assert not set(R.TEXT_HOSTILE_FILES) & set(text)
    dev = [m for m, _ in _members(fleurs["data/fa_ir/audio/dev.tar.gz"])]
    assert dev and all(m.name == "dev" or (m.isfile() and m.name.startswith("dev/")) for m in dev)
    assert {m.name for m, _ in _members(R.fleurs_repo(R.TINY)["data/fa_ir/audio/dev.tar.gz"])} - {m.name for m in dev} \
        == set(R.FLEURS_HOSTILE_MEMBERS)


def test_fleurs_decoys_are_configurable():
    files = R.fleurs_repo(R.TINY, decoys=("de_de",))
    langs = {p.split("/")[1] for p in files if p.startswith("data/")}
    assert langs == {"fa_ir", "de_de"}
    assert "'de_de', 'fa_ir'" in files["fleurs.py"].decode()


# -- D. TTS ------------------------------------------------------------------------------------
@pytest.mark.parametrize("voice", ["female", "male"])
def test_tts_files_and_lfs(replicas_hub, voice):
    store, _ = replicas_hub
    lfs = lfs_map(store, f"tts-{voice}")
    assert set(lfs) == set(TTSM.TTS_FILES[voice])
    expected_lfs = {p for p in lfs if p.endswith((".pth", ".zip")) or ".tfevents." in p}
    assert {p for p, is_lfs in lfs.items() if is_lfs} == expected_lfs
    assert len([p for p in expected_lfs if p.endswith(".pth")]) == (7 if voice == "female" else 5)
    assert not lfs["config.json"] and not lfs["README.md"] and not lfs["train_vits.py"]


def test_tts_file_lists_match_sources():
    female, male = set(TTSM.TTS_FILES["female"]), set(TTSM.TTS_FILES["male"])
    assert {"config.json", "config-0.json", "config-1.json", "config-2.json", "best_model_1725.pth",
            "best_model_3796.pth", "best_model_23604.pth", "best_model_30824.pth", "checkpoint_5000.pth",
            "checkpoint_26000.pth", "checkpoint_48000.pth", "phoneme_cache.zip"} <= female
    assert {"config.json", "config-0.json", "best_model_65633.pth", "best_model_91323.pth",
            "checkpoint_49000.pth", "checkpoint_77000.pth", "checkpoint_105000.pth", "phoneme_cache.zip"} <= male
    for names in (female, male):
        assert sum(n.startswith("events.out.tfevents.") for n in names) == 1
        assert {"train_vits.py", "README.md", ".gitattributes"} <= names
    assert TTSM.TTS_INFERENCE == {"female": ("config.json", "best_model_30824.pth"),
                               "male": ("config.json", "best_model_91323.pth")}
    for s in CATALOG:  # the catalog's default selection exists in the replica
        if s.key.startswith("tts-"):
            assert set(s.allow_patterns) <= set(TTSM.TTS_FILES[s.key[4:]])


@pytest.mark.parametrize("voice", ["female", "male"])
def test_tts_config_and_readme(voice):
    files = TTSM.tts_repo(voice, R.TINY)
    cfg = json.loads(files["config.json"])  # Python's json accepts the Infinity coqpit writes
    assert b"Infinity" in files["config.json"]
    assert cfg["model"] == "vits" and cfg["audio"]["sample_rate"] == 24000
    assert cfg["use_phonemes"] is True and cfg["phoneme_language"] == "fa" and cfg["phonemizer"] == "espeak"
    assert cfg["text_cleaner"] == "basic_cleaners"
    chars = cfg["characters"]
    assert chars["characters_class"] == "TTS.tts.utils.text.characters.IPAPhonemes"
    vocab = [chars["pad"], chars["eos"], chars["bos"], chars["blank"], *chars["phonemes"], *chars["punctuations"]]
    assert len(vocab) == len(set(vocab)) == cfg["model_args"]["num_chars"]  # no duplicate characters
    assert cfg["output_path"].startswith("/kaggle/working") and cfg["phoneme_cache_path"].startswith("/kaggle/working")
    readme = files["README.md"].decode()
    front = readme.split("---\n")[1]
    assert "library_name: TTS\n" in front and "license: openrail\n" in front
    assert TTSM.TTS_INFERENCE[voice][1] in readme
    for p in files:
        if p.startswith("config-"):
            assert json.loads(files[p])["model"] == "vits"


def test_tts_placeholders_and_voice_assets():
    scale = dataclasses.replace(R.TINY, checkpoint_bytes=1000)
    plain = TTSM.tts_repo("female", scale)
    pths = {p: d for p, d in plain.items() if p.endswith(".pth")}
    assert all(len(d) == 1000 for d in pths.values()) and len(set(pths.values())) == len(pths)
    assert all(d.startswith(b"persian-data replica placeholder") for d in pths.values())
    assets = TTSM.tts_repo("female", scale, voice_assets=(b'{"model": "vits"}', b"REAL-WEIGHTS"))
    assert assets["config.json"] == b'{"model": "vits"}' and assets["best_model_30824.pth"] == b"REAL-WEIGHTS"
    assert {p: d for p, d in assets.items() if p not in ("config.json", "best_model_30824.pth")} == \
        {p: d for p, d in plain.items() if p not in ("config.json", "best_model_30824.pth")}
    with pytest.raises(ValueError):
        TTSM.tts_repo("child", scale)


def test_build_replicas_passes_voice_assets(tmp_path):
    store = HubStore(tmp_path)
    R.build_replicas(store, R.TINY, only=("tts-male",), voice_assets={"male": (b"{}", b"W" * 10)})
    repo_type, repo_id = R.REPLICA_REPOS["tts-male"]
    entry = {f.path: f for f in store.files(repo_type, repo_id, "main")}["best_model_91323.pth"]
    assert entry.size == 10 and store.object_path(entry.object).read_bytes() == b"W" * 10


def test_tts_aux_files_are_real_formats():
    files = TTSM.tts_repo("male", R.TINY)
    with zipfile.ZipFile(io.BytesIO(files["phoneme_cache.zip"])) as zf:
        assert zf.testzip() is None
        assert all(re.fullmatch(r"phoneme_cache/\d+_phoneme\.npy", n) for n in zf.namelist())
    assert coqui_vits_run._crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    events = files["events.out.tfevents.1674024033.2ba09f99fefc"]
    pos, count = 0, 0
    while pos < len(events):
        length = int.from_bytes(events[pos : pos + 8], "little")
        assert int.from_bytes(events[pos + 8 : pos + 12], "little") == coqui_vits_run._masked_crc(events[pos : pos + 8])
        body = events[pos + 12 : pos + 12 + length]
        assert int.from_bytes(events[pos + 12 + length : pos + 16 + length], "little") == coqui_vits_run._masked_crc(body)
        pos, count = pos + 16 + length, count + 1
    assert pos == len(events) and count > 1 and b"brain.Event:2" in events
    compile(files["train_vits.py"], "train_vits.py", "exec")


# -- scales --------------------------------------------------------------------------------------
def test_scales():
    assert R.TINY.text_rows < R.DEMO.text_rows
    big = R.scaled(R.TINY, 3)
    assert (big.text_rows, big.cv_clips_per_shard, big.fleurs_clips_per_split, big.checkpoint_bytes) == \
        (3 * R.TINY.text_rows, 3 * R.TINY.cv_clips_per_shard, 3 * R.TINY.fleurs_clips_per_split,
         3 * R.TINY.checkpoint_bytes)
    with pytest.raises(ValueError):
        R.ReplicaScale("bad", text_rows=1, cv_clips_per_shard=2, fleurs_clips_per_split=2, checkpoint_bytes=64)
    with pytest.raises(ValueError):
        dataclasses.replace(R.TINY, audio="mp3")
    quick = dataclasses.replace(R.TINY, cv_clips_per_shard=5, fleurs_clips_per_split=4, clip_ms=(100, 100))
    cv = CVM.commonvoice_repo(quick)
    assert pq.read_metadata(io.BytesIO(cv["data/test-00000-of-00001.parquet"])).num_rows == 5
    assert sum(pq.read_metadata(io.BytesIO(cv[p])).num_rows for p in CVM.CV_FILES["train"]) == 10
    fl = R.fleurs_repo(quick, decoys=())
    assert len(_tsv(fl["data/fa_ir/test.tsv"])) == 4 + 2  # + two ids recorded twice
    assert R.fleurs_manifest(quick)["train"]["tsv_rows"] == 4 + 2 + 2  # + missing wav, wrong num_samples


def test_synth_audio_is_bit_exact_integer_math():
    a = KIT.synth_int16(8000, "x")
    assert a.dtype.name == "int16" and a.size == 8000 and a.any()
    assert (a == KIT.synth_int16(8000, "x")).all() and not (a == KIT.synth_int16(8000, "y")).all()


@pytest.mark.skipif(not KIT.espeak_available(), reason="espeak-ng not installed")
def test_espeak_audio_is_deterministic():
    scale = dataclasses.replace(R.TINY, name="espeak", audio="espeak")
    text = "سلام، حال شما چطور است؟"
    spoken = KIT.clip(scale, 16000, text, "t")
    assert (spoken == KIT.clip(scale, 16000, text, "t")).all()
    assert spoken.size != KIT.clip(R.TINY, 16000, text, "t").size or (spoken != KIT.clip(R.TINY, 16000, text, "t")).any()
    assert 0.5 * 16000 <= spoken.size <= 10 * 16000
    mp3 = KIT.encode(KIT.clip(scale, 48000, text, "t"), 48000, "MP3")
    assert sf.info(io.BytesIO(mp3)).samplerate == 48000
