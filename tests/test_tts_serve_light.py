"""`serve-tts --runtime onnx` in a venv WITHOUT torch: the light `serve` extra is enough to serve.

The venv is `<repo>/.venv-serve` (or `$PERSIAN_DATA_SERVE_VENV`), found or created here with
`python -m venv` and `pip install '<repo>[serve]'` (PyPI or the local wheel cache; once, ~20 s,
again only when the base or `serve` dependencies change). The server runs this checkout's code
(PYTHONPATH=src in front of the installed copy) through the `persian-data` command the extra
installed. The voices are tiny real VITS models exported by the real `tts-export` in the test
venv (exporting needs torch once; serving does not).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import struct
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("TTS", reason="exporting the test voices needs the tts extra")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from persian_data.catalog import BY_KEY  # noqa: E402
from persian_data.layout import Layout  # noqa: E402
from persian_data.tts.export import export_voice  # noqa: E402
from persian_data.tts.pieces import split_sentences  # noqa: E402

from support.voices import write_vits  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VENV = REPO / ".venv-serve"
SENTENCE = "سلام دنیا."
LONG = " ".join(f"جمله شماره {i} را می‌خوانم." for i in range(60))


def _wanted_dependencies() -> str:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return hashlib.sha256(repr((project["dependencies"], project["optional-dependencies"]["serve"])).encode()).hexdigest()


def ensure_serve_venv(timeout: float = 900.0) -> Path:
    """The light venv's python, created (or updated) when its dependencies are not the wanted ones."""
    venv = Path(os.environ.get("PERSIAN_DATA_SERVE_VENV") or DEFAULT_VENV)
    python = venv / "bin" / "python"
    stamp = venv / "persian-data-serve.stamp"
    wanted = _wanted_dependencies()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    steps = [] if python.exists() else [[sys.executable, "-m", "venv", str(venv)]]
    steps.append([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q",
                  f"{REPO}[serve]"])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
            pytest.fail(f"could not build the light venv at {venv} (`{' '.join(step)}` exited "
                        f"{done.returncode}); it needs PyPI or a wheel cache once:\n{tail}")
    stamp.write_text(wanted)
    return python


@pytest.fixture(scope="module")
def light_python() -> Path:
    python = ensure_serve_venv()
    probe = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr, "the serve extra pulled in torch"
    return python


@pytest.fixture(scope="module")
def exported_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("light_root")
    layout = Layout(root)
    write_vits(layout.content_dir(BY_KEY["tts-female"]), checkpoint_name="best_model_30824.pth", seed=0)
    write_vits(layout.content_dir(BY_KEY["tts-male"]), checkpoint_name="best_model_91323.pth", seed=2)
    tmp = root / "tmp"
    tmp.mkdir()
    for voice in ("female", "male"):  # the command's worker (the command's gates want a fetched layout)
        export_voice(layout, voice, tmp_dir=tmp, int8=True)
    return root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(light_python, exported_root, tmp_path_factory):
    with _serve(light_python, exported_root, tmp_path_factory, "--runtime", "onnx", "--workers", "1",
                "--max-queue", "1", "--max-chars", "5000") as running:
        yield running


@contextmanager
def _serve(light_python, exported_root, tmp_path_factory, *args):
    port = _free_port()
    log = tmp_path_factory.mktemp("light_log") / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [str(light_python.parent / "persian-data"), "serve-tts", "--root", str(exported_root),
               "--port", str(port), *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up: " + log.read_text()
            time.sleep(0.1)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _pcm_of_wav(data: bytes) -> np.ndarray:
    import io
    import wave

    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2")


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # the client sorts labels
    pattern = rf"^{re.escape(name)}{{{re.escape(wanted)}}} (\S+)$" if labels else rf"^{re.escape(name)} (\S+)$"
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


def test_no_torch_in_the_server_process(server):
    base, proc = server
    maps = Path(f"/proc/{proc.pid}/maps").read_text()
    assert "onnxruntime" in maps  # the runtime really is loaded in that process ...
    assert "libtorch" not in maps and "/torch/" not in maps  # ... and torch is not
    health = httpx.get(f"{base}/health").json()
    assert health["runtime"] == "onnx" and health["runtimes"] == {"female": "onnx", "male": "onnx"}
    assert health["queue_length"] == 0 and health["workers"] == 1 and health["max_queue"] == 1


def test_answers_get_post_voices_and_metrics(server):
    base, _ = server
    get = httpx.get(f"{base}/api/tts", params={"text": SENTENCE, "voice": "female"}, timeout=60)
    assert get.status_code == 200 and get.headers["x-runtime"] == "onnx"
    assert _pcm_of_wav(get.content).size > 2400
    post = httpx.post(f"{base}/api/tts", json={"text": SENTENCE, "voice": "male"}, timeout=60)
    assert post.status_code == 200 and _pcm_of_wav(post.content).size > 2400
    voices = {v["name"]: v for v in httpx.get(f"{base}/api/voices").json()}
    assert voices["female"]["runtime"] == "onnx" and voices["male"]["checkpoint"] == "best_model_91323.pth"
    metrics = httpx.get(f"{base}/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    body = metrics.text
    assert _metric(body, "tts_requests_total", voice="female", status="200") >= 1
    assert _metric(body, "tts_request_duration_seconds_count", voice="male") >= 1
    assert _metric(body, "tts_real_time_factor_count", voice="female") >= 1
    assert "tts_queue_length 0.0" in body
    assert 'tts_voice_info{runtime="onnx",voice="female"} 1.0' in body


def test_openai_endpoint_speed_and_formats_without_torch(server):
    """The ONNX runtime takes the speed as its length scale: 0.25 speaks about four times longer (the tiny
    model's durations are rounded up to whole frames, so not exactly); Opus and MP3 come from libsndfile."""
    import soundfile as sf

    base, _ = server

    def speech(**body) -> httpx.Response:
        answer = httpx.post(f"{base}/v1/audio/speech", json={"input": SENTENCE, "voice": "female", **body}, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer

    # the voice's stochastic duration predictor draws new noise per request, and the tiny voice's
    # short durations round up to whole frames: one pair came out at 2.4x, so five of each, summed,
    # against 2x (speed 1.0 would give 1x)
    normal = [speech(response_format="pcm") for _ in range(5)]
    slow = [speech(response_format="pcm", speed=0.25) for _ in range(5)]
    assert all(answer.headers["x-speed"] == "0.25" for answer in slow)
    assert sum(len(a.content) for a in slow) > 2.0 * sum(len(a.content) for a in normal)
    for fmt, mime in (("opus", "audio/ogg"), ("mp3", "audio/mpeg")):
        answer = speech(response_format=fmt)
        data, rate = sf.read(io.BytesIO(answer.content))
        expected = float(answer.headers["x-audio-seconds"]) * 24000
        assert answer.headers["content-type"] == mime and rate == 24000
        assert abs(len(data) - expected) <= 0.05 * expected
    assert "tts-form" in httpx.get(base).text  # the voices page


def test_a_burst_beyond_the_queue_gets_503_with_retry_after(server):
    base, _ = server
    text = " ".join(f"این جمله {i} است." for i in range(25))

    def call(_):
        return httpx.get(f"{base}/api/tts", params={"text": text}, timeout=120)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(call, range(6)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) >= 2 and 503 in statuses and set(statuses) <= {200, 503}, statuses
    for busy in (a for a in answers if a.status_code == 503):
        assert busy.headers["retry-after"].isdigit() and int(busy.headers["retry-after"]) >= 1
        assert busy.json()["error"] == "busy"
    assert _metric(httpx.get(f"{base}/metrics").text, "tts_requests_total", voice="female", status="503") >= 1


def test_stream_sends_the_first_sentence_before_the_rest_is_synthesized(server):
    base, _ = server
    pieces = len(split_sentences(LONG))
    before = _metric(httpx.get(f"{base}/metrics").text, "tts_pieces_synthesized_total", voice="male")
    received = b""
    with httpx.stream("GET", f"{base}/api/tts", params={"text": LONG, "voice": "male", "stream": "true"},
                      timeout=120) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
        chunks = response.iter_raw()
        while len(received) <= 44:
            received += next(chunks)
        done_at_first_audio = _metric(httpx.get(f"{base}/metrics").text, "tts_pieces_synthesized_total",
                                      voice="male") - before
        for chunk in chunks:
            received += chunk
    done_at_end = _metric(httpx.get(f"{base}/metrics").text, "tts_pieces_synthesized_total", voice="male") - before
    assert done_at_end == pieces == 60
    assert 1 <= done_at_first_audio < pieces / 2, (done_at_first_audio, pieces)
    riff, riff_size, wave_, fmt = struct.unpack("<4sI4s4s", received[:16])
    channels, rate, bits = struct.unpack("<xxxxxxHIxxxxxxH", received[16:36])
    assert (riff, wave_, fmt, riff_size) == (b"RIFF", b"WAVE", b"fmt ", 0xFFFFFFFF)
    assert (channels, rate, bits) == (1, 24000, 16) and received[36:44] == b"data\xff\xff\xff\xff"
    pcm = np.frombuffer(received[44:], "<i2")
    assert pcm.size > pieces * 0.15 * 24000  # speech plus the pauses between sentences
    assert np.abs(pcm.astype(np.int32)).max() > 0


def test_int8_voices_serve_in_the_light_venv(light_python, exported_root, tmp_path_factory):
    """--precision int8 (auto runtime): QLinearConv runs on plain onnxruntime; no `onnx`, no torch."""
    probe = subprocess.run([str(light_python), "-c", "import onnx"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'onnx'" in probe.stderr  # not needed to serve
    with _serve(light_python, exported_root, tmp_path_factory, "--precision", "int8") as (base, proc):
        health = httpx.get(f"{base}/health").json()
        assert health["runtime"] == "onnx" and health["precision"] == "int8"
        assert health["precisions"] == {"female": "int8", "male": "int8"}
        answer = httpx.get(f"{base}/api/tts", params={"text": SENTENCE, "voice": "male"}, timeout=60)
        assert answer.status_code == 200 and answer.headers["x-precision"] == "int8"
        assert _pcm_of_wav(answer.content).size > 2400
        assert {v["precision"] for v in httpx.get(f"{base}/api/voices").json()} == {"int8"}
        assert "libtorch" not in Path(f"/proc/{proc.pid}/maps").read_text()


def test_timeout_answers_504_and_frees_its_place(exported_root):
    """In-process (same code): a deadline shorter than the text's synthesis."""
    from persian_data.tts.runtime import load_voices
    from persian_data.tts.server import create_app, serve_in_thread

    voices = load_voices(Layout(exported_root), ["female"], runtime="onnx")
    app = create_app(voices, max_chars=5000, workers=1, max_queue=0, timeout=0.2)
    with serve_in_thread(app) as base:
        slow = httpx.get(f"{base}/api/tts", params={"text": LONG}, timeout=60)
        assert slow.status_code == 504 and slow.json()["error"] == "timeout"
        time.sleep(0.3)  # the running synthesis stops before its next sentence
        assert httpx.get(f"{base}/api/tts", params={"text": SENTENCE}, timeout=60).status_code == 200
        assert httpx.get(f"{base}/health").json()["queue_length"] == 0
