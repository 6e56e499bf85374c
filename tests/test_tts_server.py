"""The /api/tts server under real HTTP: uvicorn on a free port, real tiny VITS voices."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest

pytest.importorskip("TTS", reason="the tts extra (torch, coqui-tts) is not installed")

from persian_data.catalog import BY_KEY  # noqa: E402
from persian_data.layout import Layout  # noqa: E402
from persian_data.tts.server import create_app, serve_in_thread  # noqa: E402
from persian_data.tts.synth import Voice  # noqa: E402

from support.voices import write_vits  # noqa: E402

SENTENCE = "سلام دنیا."
MAX_CHARS = 200
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def voice_dirs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("tts_server_voices")
    return {
        "female": write_vits(base / "female" / "model", checkpoint_name="best_model_30824.pth", seed=0),
        "male": write_vits(base / "male" / "model", checkpoint_name="best_model_91323.pth", seed=2),
    }


class _Tracked:
    """Counts how many threads are inside the model at once (it must never exceed 1)."""

    everywhere = {"active": 0, "peak": 0}  # across both voices (the server runs one at a time)
    _guard = threading.Lock()  # one guard for all trackers

    def __init__(self, voice: Voice):
        self.inner = voice._synth.tts
        self.active = 0
        self.peak = 0
        self.calls = 0
        self.fail_next = False

    def __call__(self, *args, **kwargs):
        with self._guard:
            self.active += 1
            self.calls += 1
            self.peak = max(self.peak, self.active)
            _Tracked.everywhere["active"] += 1
            _Tracked.everywhere["peak"] = max(_Tracked.everywhere["peak"], _Tracked.everywhere["active"])
            fail, self.fail_next = self.fail_next, False
        try:
            time.sleep(0.01)  # widen the window a race would need
            if fail:
                raise RuntimeError("injected failure inside synthesis")
            return self.inner(*args, **kwargs)
        finally:
            with self._guard:
                self.active -= 1
                _Tracked.everywhere["active"] -= 1


@pytest.fixture(scope="module")
def voices(voice_dirs) -> dict[str, Voice]:
    return {name: Voice.load(path, name=name) for name, path in voice_dirs.items()}


@pytest.fixture(scope="module")
def trackers(voices) -> dict[str, _Tracked]:
    out = {}
    for name, voice in voices.items():
        out[name] = _Tracked(voice)
        voice._synth.tts = out[name]
    return out


@pytest.fixture(scope="module")
def url(voices, trackers):
    lock_info = {
        "female": {"repo": "Kamtera/persian-tts-female-vits", "revision": SHA},
        "male": {"repo": "Kamtera/persian-tts-male-vits", "revision": None},
    }
    app = create_app(voices, max_chars=MAX_CHARS, lock_info=lock_info)
    with serve_in_thread(app) as base:
        yield base


def _wav(response: httpx.Response) -> tuple[tuple[int, int, int], np.ndarray]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as wav:
        params = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    return params, pcm


def _assert_speech(response: httpx.Response) -> None:
    params, pcm = _wav(response)
    assert params == (1, 2, 24000)
    assert pcm.size > 0.2 * 24000
    assert float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > 300


def _error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code and body["detail"]
    return body


def test_get_and_post_in_every_shape(url):
    _assert_speech(httpx.get(f"{url}/api/tts", params={"text": SENTENCE, "voice": "female"}, timeout=60))
    _assert_speech(httpx.post(f"{url}/api/tts", json={"text": SENTENCE, "voice": "male"}, timeout=60))
    _assert_speech(httpx.post(f"{url}/api/tts", data={"text": SENTENCE, "voice": "male"}, timeout=60))
    _assert_speech(httpx.post(f"{url}/api/tts", params={"text": SENTENCE}, timeout=60))


def test_speaker_id_is_an_alias_of_voice(url):
    response = httpx.get(f"{url}/api/tts", params={"text": SENTENCE, "speaker_id": "male"}, timeout=60)
    _assert_speech(response)
    assert response.headers["x-voice"] == "male"
    response = httpx.post(f"{url}/api/tts", json={"text": SENTENCE, "speaker_id": "female"}, timeout=60)
    assert response.headers["x-voice"] == "female"
    no_voice = httpx.get(f"{url}/api/tts", params={"text": SENTENCE}, timeout=60)
    assert no_voice.headers["x-voice"] == "female"  # the default


def test_long_text_is_split_and_joined(url, trackers):
    before = trackers["male"].calls
    text = "جملهٔ اول. جملهٔ دوم؟ جملهٔ سوم! جملهٔ چهارم؛ و پایان."
    response = httpx.get(f"{url}/api/tts", params={"text": text, "voice": "male"}, timeout=60)
    _assert_speech(response)
    assert trackers["male"].calls - before == 4  # four sentences (the ؛ clause stays with its sentence)


def test_bad_inputs_are_json_4xx(url):
    _error(httpx.get(f"{url}/api/tts", params={"text": ""}), 400, "empty_text")
    _error(httpx.get(f"{url}/api/tts"), 400, "empty_text")
    _error(httpx.post(f"{url}/api/tts", json={"text": "   ", "voice": "female"}), 400, "empty_text")
    _error(httpx.get(f"{url}/api/tts", params={"text": "...!?"}), 400, "empty_text")
    body = _error(httpx.get(f"{url}/api/tts", params={"text": SENTENCE, "voice": "robot"}), 404, "unknown_voice")
    assert body["voices"] == ["female", "male"]
    _error(httpx.get(f"{url}/api/tts", params={"text": SENTENCE, "speaker_id": "robot"}), 404, "unknown_voice")
    _error(
        httpx.get(f"{url}/api/tts", params={"text": SENTENCE, "voice": "female", "speaker_id": "male"}),
        400,
        "conflicting_voice",
    )
    _error(httpx.post(f"{url}/api/tts", json={"text": 5}), 400, "bad_text")
    _error(
        httpx.post(f"{url}/api/tts", content=b"{oops", headers={"content-type": "application/json"}),
        400,
        "bad_json",
    )
    _error(
        httpx.post(f"{url}/api/tts", content=b"text", headers={"content-type": "text/plain"}),
        415,
        "unsupported_body",
    )


def test_text_over_the_limit_is_413(url):
    body = _error(httpx.get(f"{url}/api/tts", params={"text": "ب" * (MAX_CHARS + 1)}), 413, "text_too_long")
    assert body["max_chars"] == MAX_CHARS
    _error(httpx.post(f"{url}/api/tts", json={"text": "ب" * (MAX_CHARS + 1)}), 413, "text_too_long")
    # exactly at the limit is fine
    at_limit = ("سلام " * 100)[: MAX_CHARS - 1] + "."
    assert httpx.get(f"{url}/api/tts", params={"text": at_limit}, timeout=120).status_code == 200


def test_parallel_requests_are_serialised_per_voice(url, trackers):
    for tracker in trackers.values():
        tracker.peak = 0
    _Tracked.everywhere["peak"] = 0

    def one(i: int) -> httpx.Response:
        voice = "female" if i % 2 else "male"
        return httpx.post(f"{url}/api/tts", json={"text": f"{SENTENCE} شماره {i}.", "voice": voice}, timeout=120)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(one, range(8)))
    for response in responses:
        _assert_speech(response)
    assert [r.headers["x-voice"] for r in responses] == ["male", "female"] * 4
    assert trackers["female"].peak == 1 and trackers["male"].peak == 1
    assert _Tracked.everywhere["peak"] == 1  # and one synthesis at a time across voices
    assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_synthesis_error_is_500_and_the_server_lives_on(url, trackers):
    errors_before = httpx.get(f"{url}/health").json()["errors"]
    trackers["female"].fail_next = True
    body = _error(httpx.get(f"{url}/api/tts", params={"text": SENTENCE, "voice": "female"}), 500, "synthesis_failed")
    assert "injected failure" in body["detail"]
    # same voice, next request: the lock was released, the model still works
    _assert_speech(httpx.get(f"{url}/api/tts", params={"text": SENTENCE, "voice": "female"}, timeout=60))
    assert httpx.get(f"{url}/health").json()["errors"] == errors_before + 1


def test_voices_and_health(url):
    voices = {v["name"]: v for v in httpx.get(f"{url}/api/voices").json()}
    assert set(voices) == {"female", "male"}
    assert voices["female"]["sample_rate"] == 24000 and voices["female"]["revision"] == SHA
    assert voices["female"]["repo"] == "Kamtera/persian-tts-female-vits"
    assert voices["male"]["revision"] is None and voices["male"]["checkpoint"] == "best_model_91323.pth"
    assert voices["female"]["default"] and not voices["male"]["default"]
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and health["voices"] == ["female", "male"]


def test_openapi_documents_the_api(url):
    spec = httpx.get(f"{url}/openapi.json").json()
    tts = spec["paths"]["/api/tts"]
    assert tts["get"]["summary"] and tts["post"]["summary"]
    assert {p["name"] for p in tts["get"]["parameters"]} >= {"text", "voice", "speaker_id"}
    assert "audio/wav" in tts["get"]["responses"]["200"]["content"]
    assert {"400", "404", "413", "500"} <= set(tts["post"]["responses"])
    assert "application/json" in tts["post"]["requestBody"]["content"]
    assert spec["paths"]["/api/voices"]["get"]["summary"] and spec["paths"]["/health"]["get"]["summary"]
    assert httpx.get(f"{url}/docs").status_code == 200


# -- OpenAI's speech API, speed and formats ------------------------------------------------------------

LONGER = "سلام دنیا. امروز هوا بسیار خوب است و ما به پارک می‌رویم."


def _decoded(fmt: str, body: bytes) -> tuple[np.ndarray, int]:
    import soundfile as sf

    if fmt == "pcm":
        return np.frombuffer(body, "<i2"), 24000
    data, rate = sf.read(io.BytesIO(body), dtype="int16")
    return data.reshape(len(data), -1)[:, 0], rate


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus", "flac", "pcm"])
def test_the_openai_client_gets_audio_in_every_format(url, fmt):
    """The official client, pointed at the server: each format decodes back at the voice's rate, with the
    length the server synthesized (X-Audio-Seconds) within 5 %."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=60)
    raw = client.audio.speech.with_raw_response.create(model="tts-1", voice="male", input=LONGER,
                                                       response_format=fmt)
    assert raw.http_response.status_code == 200 and raw.headers["x-voice"] == "male"
    assert raw.headers["content-type"] == {"wav": "audio/wav", "mp3": "audio/mpeg", "opus": "audio/ogg",
                                           "flac": "audio/flac", "pcm": "audio/pcm"}[fmt]
    samples, rate = _decoded(fmt, raw.content)
    assert rate == 24000 == int(raw.headers["x-sample-rate"])
    expected = float(raw.headers["x-audio-seconds"]) * 24000
    assert expected > 0.5 * 24000 and abs(len(samples) - expected) <= 0.05 * expected, (len(samples), expected)
    assert np.abs(samples.astype(np.int32)).max() > 1000  # speech, not silence


def test_openai_preset_voices_speak_with_the_default_and_errors_come_in_openais_shape(url):
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=60)
    raw = client.audio.speech.with_raw_response.create(model="tts-1", voice="alloy", input=SENTENCE)
    assert raw.headers["x-voice"] == "female" and raw.headers["content-type"] == "audio/mpeg"  # OpenAI's default
    with pytest.raises(openai.BadRequestError) as bad:
        client.audio.speech.create(model="tts-1", voice="male", input=SENTENCE, speed=9.0)
    assert bad.value.body["code"] == "bad_speed" and bad.value.body["param"] == "speed"
    with pytest.raises(openai.NotFoundError):
        client.audio.speech.create(model="tts-1", voice="robot", input=SENTENCE)
    with pytest.raises(openai.BadRequestError):
        client.audio.speech.create(model="tts-1", voice="male", input="  ")


def test_speed_two_gives_half_the_samples(url, voices):
    """speed divides the voice's length scale. The test voice is made deterministic (noise 0) and slow
    (length scale 4, so a speed of 2 is not lost in the rounding of the tiny model's short durations)."""
    model = voices["male"]._synth.tts_model
    saved = model.length_scale, model.inference_noise_scale, model.inference_noise_scale_dp
    model.length_scale, model.inference_noise_scale, model.inference_noise_scale_dp = 4.0, 0.0, 0.0
    try:
        def samples(response: httpx.Response) -> int:
            assert response.status_code == 200, response.text
            return len(_decoded("wav", response.content)[0])

        one = samples(httpx.get(f"{url}/api/tts", params={"text": SENTENCE, "voice": "male"}, timeout=60))
        two = httpx.get(f"{url}/api/tts", params={"text": SENTENCE, "voice": "male", "speed": "2"}, timeout=60)
        assert two.headers["x-speed"] == "2" and 0.45 <= samples(two) / one <= 0.55, (samples(two), one)
        openai_two = httpx.post(f"{url}/v1/audio/speech", json={"input": SENTENCE, "voice": "male", "speed": 2.0,
                                                               "response_format": "wav"}, timeout=60)
        assert samples(openai_two) == samples(two)  # deterministic voice: both APIs say the same
        assert model.length_scale == 4.0  # restored after each call
    finally:
        model.length_scale, model.inference_noise_scale, model.inference_noise_scale_dp = saved


def test_speed_and_format_on_api_tts_are_checked(url):
    _error(httpx.get(f"{url}/api/tts", params={"text": SENTENCE, "speed": "0.1"}), 400, "bad_speed")
    _error(httpx.get(f"{url}/api/tts", params={"text": SENTENCE, "speed": "fast"}), 400, "bad_speed")
    _error(httpx.get(f"{url}/api/tts", params={"text": SENTENCE, "format": "ogg"}), 400, "bad_format")
    _error(httpx.get(f"{url}/api/tts", params={"text": SENTENCE, "format": "mp3", "stream": "true"}), 400,
           "bad_format")
    flac = httpx.post(f"{url}/api/tts", json={"text": SENTENCE, "format": "flac", "speed": 1.5}, timeout=60)
    assert flac.status_code == 200 and flac.headers["content-type"] == "audio/flac" and flac.content[:4] == b"fLaC"


def test_the_voices_page_is_at_the_root(url):
    page = httpx.get(url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'id="tts-form"' in page.text and '<option value="male"' in page.text and 'data-api-base="/"' in page.text
    script = httpx.get(f"{url}/assets/tts/voices.js")
    assert script.status_code == 200 and "v1/audio/speech" in script.text


def test_synth_shows_progress_per_sentence(voice_dirs, tmp_path, caplog):
    """Not on a terminal: a line at every tenth of the text (on one, tqdm's bar); the file in the
    format of its extension, at the asked speed."""
    import logging
    import shutil

    import soundfile as sf

    from persian_data.cli import main

    layout = Layout(tmp_path / "root")
    shutil.copytree(voice_dirs["female"], layout.content_dir(BY_KEY["tts-female"]))
    text = " ".join(f"بند {i}." for i in range(1, 11))  # ten sentences, spoken fast: a cheap long text
    caplog.set_level(logging.INFO, logger="persian_data")
    out = tmp_path / "long.mp3"
    assert main(["synth", "--root", str(layout.root), "--voice", "female", "--text", text, "--out", str(out),
                 "--speed", "4"]) == 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("synth female:")]
    assert lines == [f"synth female: {n}/10 sentences ({n * 10} %)" for n in range(1, 11)], lines
    data, rate = sf.read(out)
    assert rate == 24000 and len(data) > 0.1 * 24000
    assert main(["synth", "--root", str(layout.root), "--text", text, "--out", str(out), "--speed", "9"]) == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_loads_the_layout_and_reads_the_lock(voice_dirs, tmp_path):
    """`serve()` itself, in its own process: loads both voices from a layout once, then serves."""
    import shutil

    layout = Layout(tmp_path / "root")
    for name, key in (("female", "tts-female"), ("male", "tts-male")):
        shutil.copytree(voice_dirs[name], layout.content_dir(BY_KEY[key]))
    layout.lock_file.parent.mkdir(parents=True)
    layout.lock_file.write_text(json.dumps({"version": 1, "sources": {
        "tts-male": {"repo_id": "Kamtera/persian-tts-male-vits", "repo_type": "model", "revision": SHA, "files": {}},
    }}))
    port = _free_port()
    code = (
        "from persian_data.layout import Layout; from persian_data.tts.server import serve; "
        f"serve(Layout({str(layout.root)!r}), port={port}, max_chars=50)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        voices = {v["name"]: v for v in httpx.get(f"{base}/api/voices").json()}
        assert voices["male"]["revision"] == SHA and voices["female"]["revision"] is None
        assert voices["female"]["checkpoint"] == "best_model_30824.pth"
        _assert_speech(httpx.get(f"{base}/api/tts", params={"text": SENTENCE, "speaker_id": "male"}, timeout=60))
        _error(httpx.get(f"{base}/api/tts", params={"text": "ب" * 51}), 413, "text_too_long")
        # a second server on the same port: one line, non-zero exit, and never "serving on"
        busy = subprocess.run([sys.executable, "-m", "persian_data.cli", "serve-tts", "--root", str(layout.root),
                               "--port", str(port)], capture_output=True, text=True, timeout=120)
        lines = [line for line in (busy.stdout + busy.stderr).splitlines() if line.strip()]
        assert busy.returncode != 0 and "serving on" not in busy.stderr, busy.stderr
        assert len(lines) == 1 and lines[0].startswith(f"error: port {port} on 127.0.0.1 is already in use"), lines
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log = proc.stdout.read()
    # the access log names the request and its status, with the text's length instead of the text
    assert f'"GET /api/tts?text=<{len(SENTENCE)} chars>&speaker_id=male HTTP/1.1" 200' in log, log
    assert SENTENCE not in log and quote(SENTENCE) not in log and "ب" * 51 not in log
