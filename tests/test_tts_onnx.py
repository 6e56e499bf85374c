"""ONNX export of the voices and the torch-free path: front end, export record, gate, runtime.

The voices are the test hub's real tiny VITS models, fetched through the real `fetch`; the export
is the real `persian-data tts-export`. The heart of correctness is the front end: the torch-free
text -> ids must give exactly coqui's ids, checked here against coqui's own tokenizer.
"""

from __future__ import annotations

import io
import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("TTS", reason="the tts extra (torch, coqui-tts) is not installed")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from persian_data.catalog import BY_KEY  # noqa: E402
from persian_data.cli import main  # noqa: E402
from persian_data.errors import PersianDataError  # noqa: E402
from persian_data.layout import Layout  # noqa: E402
from persian_data.records import counts  # noqa: E402
from persian_data.tts import export as export_module  # noqa: E402
from persian_data.tts.frontend import PunctuationSplitter, TextFrontEnd, spec_from_coqui  # noqa: E402
from persian_data.tts.onnx_record import OnnxExportError, read_record, sha256_of  # noqa: E402
from persian_data.tts.onnx_voice import OnnxVoice  # noqa: E402
from persian_data.tts.runtime import load_voice  # noqa: E402

# Persian as users type it: punctuation of both scripts, digits of both, ZWNJ, quotes, Latin,
# a lone word, runs of marks, leading marks, only marks, extra whitespace.
SENTENCES = [
    *export_module.CHECK_SENTENCES,
    "یکی اسبی به عاریت خواست",
    "از مال خود پاره ای گوشت بستان و زیره بایی معطّر بساز!!",
    "آیا می‌آیی؟! نه... شاید؛ فردا.",
    "  «سلام»   گفت و  رفت  ",
    "...سلام",
    "؟",
    "!!!",
    "تلفن: ۰۲۱-۸۸۷۷۶۶۵۵، ساعت 10:30",
    "جمله‌ای با (پرانتز) و [کروشه] و — خط تیره",
    "Ready? بله! OK.",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, hub) -> Path:
    """A layout with both voices fetched from the test hub, then exported by the real command."""
    root = tmp_path_factory.mktemp("onnx_root")
    assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "tts"]) == 0
    assert main(["tts-export", "--root", str(root)]) == 0
    return root


@pytest.fixture
def copy(exported, tmp_path) -> Path:
    dst = tmp_path / "root"
    shutil.copytree(exported, dst, symlinks=True)
    return dst


def _onnx(root: Path, key: str = "tts-female") -> Path:
    return Layout(root).bucket_root(BY_KEY[key]) / "onnx"


# -- the front end ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coqui_tokenizer(exported):
    from TTS.utils.synthesizer import Synthesizer

    model = Layout(exported).content_dir(BY_KEY["tts-female"])
    synth = Synthesizer(tts_checkpoint=str(model / "best_model_30824.pth"),
                        tts_config_path=str(model / "config.json"), use_cuda=False)
    return synth.tts_model.tokenizer, synth.tts_config.text_cleaner


def test_front_end_gives_coquis_ids(coqui_tokenizer, exported):
    tokenizer, cleaner = coqui_tokenizer
    ours = TextFrontEnd(read_record(_onnx(exported))["front_end"])  # what the server uses: the record
    assert ours.vocab == list(tokenizer.characters.vocab)
    for sentence in SENTENCES:
        assert ours.ids(sentence) == list(tokenizer.text_to_ids(sentence)), sentence
    fresh = TextFrontEnd(spec_from_coqui(tokenizer, cleaner))
    assert fresh.ids(SENTENCES[2]) == ours.ids(SENTENCES[2])


def test_punctuation_split_and_join_match_coqui():
    from TTS.tts.utils.text.punctuation import Punctuation

    marks = Punctuation.default_puncs()
    theirs, ours = Punctuation(marks), PunctuationSplitter(marks)
    for text in ["a, b. c!", ",a b", "a b.", "...", "a", "a, a, a.", "!a? b; c: d", "«a» b", "a , , b", ", ,"]:
        parts, found = theirs.strip_to_restore(text)
        mine, my_marks = ours.split(text)
        assert mine == parts, text
        assert [(m.text, m.position) for m in my_marks] == [(p.punc, p.position.name.lower()) for p in found]
        phonemized = [p.upper() for p in parts]
        assert ours.join(phonemized, my_marks) == theirs.restore(phonemized, found)[0]


# -- the export and its record ----------------------------------------------------------------


def test_export_records_what_it_was_made_from(exported):
    layout = Layout(exported)
    lock = json.loads(layout.lock_file.read_text())["sources"]
    before = counts(layout)
    for key, voice in (("tts-female", "female"), ("tts-male", "male")):
        folder = _onnx(exported, key)
        assert sorted(p.name for p in folder.iterdir()) == ["export.json", "model.onnx"]
        record = read_record(folder)
        model = layout.content_dir(BY_KEY[key])
        ckpt = record["source"]["checkpoint"]
        assert record["voice"] == voice
        assert ckpt["sha256"] == sha256_of(model / ckpt["file"]) == lock[key]["files"][ckpt["file"]]["sha256"]
        assert record["source"]["config"]["sha256"] == sha256_of(model / "config.json")
        assert record["onnx"]["sha256"] == sha256_of(folder / "model.onnx")
        assert record["opset"] == 18 and record["exporter"]["mode"].startswith("TorchScript")
        assert record["check"]["same_length"] and record["check"]["max_lsb"] <= record["check"]["tolerance_lsb"]
    # The export is counted in the checksums, not in the spec's model/ counts.
    listed = layout.checksums_file.read_text()
    assert "datasets/tts/kamtera_vits_female/onnx/model.onnx" in listed
    assert "datasets/tts/kamtera_vits_male/onnx/export.json" in listed
    assert counts(layout) == before == json.loads(layout.sources_json.read_text())
    assert main(["verify", "--root", str(exported), "--only", "tts"]) == 0


def test_onnx_voice_speaks_like_torch_without_noise(exported):
    from persian_data.tts.synth import Voice

    layout = Layout(exported)
    torch_voice = load_voice(layout, "male", "torch")
    assert isinstance(torch_voice, Voice)
    record = read_record(_onnx(exported, "tts-male"))
    onnx_voice = OnnxVoice.load(_onnx(exported, "tts-male"), scales=[0.0, record["scales"][1], 0.0])
    model = torch_voice._synth.tts_model
    model.inference_noise_scale = model.inference_noise_scale_dp = 0.0
    text = "سلام. حال شما چطور است؟ امروز هوا خوب است."
    expected, got = torch_voice.synthesize(text), onnx_voice.synthesize(text)
    assert got.shape == expected.shape and got.size > 24000 * 0.3
    assert float(np.max(np.abs(got - expected))) < 1e-4
    assert load_voice(layout, "male").runtime == "onnx"  # auto takes the export
    blank = onnx_voice.front_end.blank_id
    onnx_voice.front_end.ids = lambda text: [blank]  # every character outside the vocabulary
    assert onnx_voice.synthesize_piece("x").size == 0  # silence, not a crash in the graph


def test_tampered_onnx_is_refused_everywhere(copy):
    layout = Layout(copy)
    path = _onnx(copy) / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(OnnxExportError, match="does not match its record"):
        OnnxVoice.load(path.parent)
    for runtime in ("auto", "onnx"):
        with pytest.raises(OnnxExportError, match="model.onnx"):
            load_voice(layout, "female", runtime)
    assert load_voice(layout, "female", "torch").runtime == "torch"  # torch ignores the export
    assert main(["verify", "--root", str(copy), "--only", "tts"]) == 1
    log = layout.download_log.read_text()
    assert "FAIL [tts] datasets/tts/kamtera_vits_female/onnx/model.onnx: does not match its record" in log


def test_stale_export_and_stray_file_fail_the_gate(copy, capsys):
    layout = Layout(copy)
    folder = _onnx(copy, "tts-male")
    record = json.loads((folder / "export.json").read_text())
    record["source"]["checkpoint"]["sha256"] = "0" * 64  # as if exported from another checkpoint
    (folder / "export.json").write_text(json.dumps(record))
    (folder / "notes.txt").write_text("x")
    assert main(["verify", "--root", str(copy), "--only", "tts", "--quick"]) == 1
    err = capsys.readouterr().err
    assert "stale export" in err and "notes.txt: not part of the export" in err
    with pytest.raises(OnnxExportError, match="stale export"):
        load_voice(layout, "male")


def test_export_that_disagrees_is_not_published(copy, monkeypatch, capsys):
    layout = Layout(copy)
    shutil.rmtree(_onnx(copy, "tts-male"))
    before = _onnx(copy).joinpath("model.onnx").read_bytes()
    monkeypatch.setattr(export_module, "TOLERANCE_LSB", -1.0)  # nothing can agree this closely
    assert main(["tts-export", "--root", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "ONNX and torch disagree" in err and "not exported" in err
    assert not _onnx(copy, "tts-male").exists()  # nothing partial
    assert _onnx(copy).joinpath("model.onnx").read_bytes() == before  # the old export stays
    assert not list(layout.root.rglob("onnx-*"))  # its staging folder is gone, wherever it was


def test_export_refuses_a_mismatched_pair(copy, capsys):
    """A config/checkpoint mismatch fails the model check, so there is nothing to export."""
    layout = Layout(copy)
    model = layout.content_dir(BY_KEY["tts-male"])
    config = json.loads((model / "config.json").read_text())
    config["characters"]["phonemes"] = config["characters"]["phonemes"][:-3]
    (model / "config.json").write_text(json.dumps(config))
    shutil.rmtree(_onnx(copy, "tts-male"))
    assert main(["tts-export", "--root", str(copy), "--voice", "male"]) != 0
    assert "do not belong together" in capsys.readouterr().err
    assert not _onnx(copy, "tts-male").exists()


def test_synth_runtime_flag(copy, tmp_path, capsys):
    out = tmp_path / "onnx.wav"
    assert main(["synth", "--root", str(copy), "--runtime", "onnx", "--text", "سلام دنیا.", "--out", str(out)]) == 0
    with wave.open(io.BytesIO(out.read_bytes())) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (1, 24000) and wav.getnframes() > 2400
    shutil.rmtree(_onnx(copy, "tts-male"))
    assert main(["synth", "--root", str(copy), "--voice", "male", "--runtime", "onnx", "--text", "سلام"]) != 0
    err = capsys.readouterr().err
    assert "no ONNX export" in err and "persian-data tts-export" in err
    with pytest.raises(PersianDataError, match="unknown runtime"):
        load_voice(Layout(copy), "male", "tensorflow")
