"""The opt-in int8 voice: `tts-export --int8`, `synth`/`serve-tts --precision int8`.

On the test hub's real tiny VITS voices, fetched by the real `fetch` and exported by the real
`tts-export --int8` (onnxruntime's quantization of the decoder's Conv nodes, checked against torch).
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

import httpx  # noqa: E402

from persian_data.catalog import BY_KEY  # noqa: E402
from persian_data.cli import main  # noqa: E402
from persian_data.errors import PersianDataError  # noqa: E402
from persian_data.layout import Layout  # noqa: E402
from persian_data.tts import quantize  # noqa: E402
from persian_data.tts.export import CHECK_SENTENCES  # noqa: E402
from persian_data.tts.onnx_record import OnnxExportError, read_record, sha256_of  # noqa: E402
from persian_data.tts.onnx_voice import OnnxVoice  # noqa: E402
from persian_data.tts.runtime import load_voice, load_voices  # noqa: E402

TEXT = "امروز هوا خوب است. فردا باران می‌بارد؟"  # not one of the check (calibration) sentences


@pytest.fixture(scope="module")
def exported(tmp_path_factory, hub) -> Path:
    root = tmp_path_factory.mktemp("int8_root")
    assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "tts"]) == 0
    assert main(["tts-export", "--root", str(root), "--int8"]) == 0
    return root


@pytest.fixture
def copy(exported, tmp_path) -> Path:
    dst = tmp_path / "root"
    shutil.copytree(exported, dst, symlinks=True)
    return dst


def _onnx(root: Path, key: str = "tts-female") -> Path:
    return Layout(root).bucket_root(BY_KEY[key]) / "onnx"


def test_export_int8_records_what_and_how(exported):
    import onnx
    import onnxruntime

    layout = Layout(exported)
    for key in ("tts-female", "tts-male"):
        folder = _onnx(exported, key)
        assert sorted(p.name for p in folder.iterdir()) == ["export.json", "model.int8.onnx", "model.onnx"]
        record = read_record(folder)
        int8 = record["int8"]
        assert int8["file"] == "model.int8.onnx" and int8["sha256"] == sha256_of(folder / "model.int8.onnx")
        assert int8["bytes"] == (folder / "model.int8.onnx").stat().st_size
        graph = onnx.load_model(str(folder / "model.int8.onnx")).graph
        qconv = [n for n in graph.node if n.op_type == "QLinearConv"]
        assert int8["quantized"]["nodes"] == len(qconv) > 0
        assert all(n.name.startswith("/waveform_decoder/") for n in qconv)  # the decoder only
        assert not any(n.op_type == "QLinearConv" for n in onnx.load_model(str(folder / "model.onnx")).graph.node)
        assert int8["quantized"]["op_types"] == ["Conv"] and int8["quantized"]["scope"] == "waveform decoder"
        method = int8["method"]
        assert (method["static"], method["format"], method["per_channel"], method["calibration"]) == (
            True, "QOperator", True, "MinMax")
        assert method["calibration_sentences"] == len(CHECK_SENTENCES)
        assert method["calibration_scales"] == pytest.approx(record["scales"])  # the voice's own, noise on
        assert int8["onnxruntime"] == onnxruntime.__version__
        check = int8["check"]
        assert check["same_length"] and check["noise"] == 0.0 and check["threshold_db"] == quantize.MIN_SNR_DB
        assert len(check["snr_db"]) == len(CHECK_SENTENCES) and check["min_snr_db"] == min(check["snr_db"])
        assert check["min_snr_db"] >= quantize.MIN_SNR_DB
    listed = layout.checksums_file.read_text()
    assert "datasets/tts/kamtera_vits_male/onnx/model.int8.onnx" in listed
    assert main(["verify", "--root", str(exported), "--only", "tts"]) == 0


def test_int8_voice_has_torch_length_and_is_close(exported):
    layout = Layout(exported)
    torch_voice = load_voice(layout, "female", "torch")
    model = torch_voice._synth.tts_model
    model.inference_noise_scale = model.inference_noise_scale_dp = 0.0
    record = read_record(_onnx(exported))
    zero = [0.0, record["scales"][1], 0.0]
    int8 = OnnxVoice.load(_onnx(exported), precision="int8", scales=zero)
    fp32 = OnnxVoice.load(_onnx(exported), scales=zero)
    expected, got, exact = torch_voice.synthesize(TEXT), int8.synthesize(TEXT), fp32.synthesize(TEXT)
    assert got.shape == expected.shape and got.size > 24000 * 0.3
    assert quantize.snr_db(expected, got) >= quantize.MIN_SNR_DB
    assert quantize.snr_db(expected, got) < quantize.snr_db(expected, exact) - 20  # really the int8 graph
    assert (int8.precision, fp32.precision, int8.info()["precision"]) == ("int8", "fp32", "int8")
    # auto + int8 is the ONNX runtime
    assert load_voice(layout, "female", "auto", precision="int8").precision == "int8"
    assert load_voice(layout, "female").precision == "fp32"  # the default stays the exact voice


def test_tampered_int8_is_refused(copy):
    layout = Layout(copy)
    path = _onnx(copy) / "model.int8.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    for runtime in ("auto", "onnx"):
        with pytest.raises(OnnxExportError, match=r"model\.int8\.onnx.*does not match its record"):
            load_voice(layout, "female", runtime, precision="int8")
    assert load_voice(layout, "female", "onnx").precision == "fp32"  # the fp32 file is intact and runs
    assert main(["verify", "--root", str(copy), "--only", "tts"]) == 1
    log = layout.download_log.read_text()
    assert "FAIL [tts] datasets/tts/kamtera_vits_female/onnx/model.int8.onnx: does not match its record" in log


def test_precision_int8_errors(copy, tmp_path, capsys):
    layout = Layout(copy)
    # re-exporting without --int8 replaces the folder: the old int8 file goes with the old graph
    assert main(["tts-export", "--root", str(copy), "--voice", "male"]) == 0
    assert sorted(p.name for p in _onnx(copy, "tts-male").iterdir()) == ["export.json", "model.onnx"]
    assert "int8" not in read_record(_onnx(copy, "tts-male"))
    capsys.readouterr()
    out = tmp_path / "x.wav"
    assert main(["synth", "--root", str(copy), "--voice", "male", "--precision", "int8", "--text", "سلام",
                 "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert "no int8 model" in err and "tts-export --voice male --int8" in err and not out.exists()
    assert main(["synth", "--root", str(copy), "--runtime", "torch", "--precision", "int8", "--text", "سلام",
                 "--out", str(out)]) != 0
    assert "--runtime torch" in capsys.readouterr().err and not out.exists()
    shutil.rmtree(_onnx(copy, "tts-male"))
    with pytest.raises(OnnxExportError, match="no ONNX export.*--int8"):
        load_voice(layout, "male", precision="int8")
    assert list(load_voices(layout, runtime="auto", precision="int8")) == ["female"]  # the voice with int8
    shutil.rmtree(_onnx(copy))
    with pytest.raises(PersianDataError, match="int8 ONNX export.*tts-export.*--int8"):
        load_voices(layout, precision="int8")


def test_failed_int8_check_publishes_fp32_only(copy, monkeypatch, capsys):
    layout = Layout(copy)
    monkeypatch.setattr(quantize, "MIN_SNR_DB", 1000.0)  # no quantization is this close
    assert main(["tts-export", "--root", str(copy), "--voice", "male", "--int8"]) == 1
    err = capsys.readouterr().err
    assert "below the 1000 dB" in err and "no int8 model published" in err and "fp32 export passed" in err
    folder = _onnx(copy, "tts-male")
    assert sorted(p.name for p in folder.iterdir()) == ["export.json", "model.onnx"]
    record = read_record(folder)
    assert "int8" not in record and record["onnx"]["sha256"] == sha256_of(folder / "model.onnx")
    assert not any(layout.tmp_dir.glob("*int8*")) and not any(layout.tmp_dir.glob("onnx-*"))
    monkeypatch.undo()
    assert main(["verify", "--root", str(copy), "--only", "tts", "--quick"]) == 0


def test_serve_int8_answers(exported):
    from persian_data.tts.server import create_app, serve_in_thread

    voices = load_voices(Layout(exported), runtime="auto", precision="int8")
    app = create_app(voices, workers=2)
    with serve_in_thread(app) as base:
        answer = httpx.post(f"{base}/api/tts", json={"text": TEXT, "voice": "male"}, timeout=60)
        assert answer.status_code == 200 and answer.headers["x-precision"] == "int8"
        with wave.open(io.BytesIO(answer.content)) as wav:
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
        assert wav.getframerate() == 24000 and pcm.size > 24000 * 0.3 and np.abs(pcm).max() > 1000
        health = httpx.get(f"{base}/health").json()
        assert health["precision"] == "int8" and health["precisions"] == {"female": "int8", "male": "int8"}
        voices_info = httpx.get(f"{base}/api/voices").json()
        assert {v["name"]: v["precision"] for v in voices_info} == {"female": "int8", "male": "int8"}
        assert json.loads(httpx.get(f"{base}/openapi.json").text)["components"]["schemas"]["Health"]


def test_check_int8_catches_a_length_change_and_measures_snr():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal(4800).astype(np.float32)
    noise = rng.standard_normal(4800).astype(np.float32)
    noise *= np.sqrt(np.sum(reference ** 2) / np.sum(noise ** 2) / 10 ** (32 / 10))  # exactly 32 dB below
    assert quantize.snr_db(reference, reference + noise) == pytest.approx(32.0, abs=1e-3)

    class Fake:
        def __init__(self, audio):
            self.audio = audio

        def synthesize_piece(self, sentence):
            return self.audio

    check = quantize.check_int8(Fake(reference + noise), ["a"], [reference], voice="v")
    assert check["min_snr_db"] == pytest.approx(32.0, abs=0.01) and check["same_length"]
    with pytest.raises(quantize.Int8CheckError, match="4799 vs 4800 samples"):
        quantize.check_int8(Fake(reference[:-1]), ["a"], [reference], voice="v")
    with pytest.raises(quantize.Int8CheckError, match="below the 35 dB"):
        quantize.check_int8(Fake(reference + noise), ["a"], [reference], voice="v", min_snr_db=35.0)
