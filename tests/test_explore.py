"""`persian-data explore`: every section in headless Chromium (Playwright driving Debian's chromium)
against the command itself on the local hub's prepared replicas; safe file serving; pages for
missing and empty inputs; the index following the files; Persian-normalized search.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from persian_data.cli import main
from persian_data.explore.app import create_app
from persian_data.explore.index import Index
from persian_data.explore.search import index_form, parse_query
from persian_data.normalize import ZWNJ, normalize

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARABIC = str.maketrans({"ی": "ي", "ک": "ك"})
CV = "commonvoice"  # the corpus key explore names it by
CV_FOLDER = "commonvoice_fa"
SUBSTITUTE = "کتاب"


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def explore_root(tmp_path_factory, hub) -> Path:
    """A root after `persian-data run` on the local hub, with two eval runs of the test split:
    `sub` (one word substituted, one dropped) and `exact` (the references themselves)."""
    root = tmp_path_factory.mktemp("explore-root")
    assert main(["run", "--root", str(root), "--endpoint", hub.endpoint]) == 0
    refs = _lines(root / "datasets/speech" / CV_FOLDER / "manifests/test.jsonl")
    hyps = {"sub": [], "exact": []}
    for i, ref in enumerate(refs):
        words = ref["text_normalized"].split()
        if i == 0:
            words[1] = SUBSTITUTE if words[1] != SUBSTITUTE else "خانه"
        elif i == 1:
            words = words[:-1]
        hyps["sub"].append({"id": ref["id"], "text": " ".join(words)})
        hyps["exact"].append({"id": ref["id"], "text": ref["text"]})
    for name, rows in hyps.items():
        path = root.parent / f"{root.name}-{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        assert main(["eval-stt", "--root", str(root), "--corpus", "commonvoice", "--split", "test",
                     "--hypotheses", str(path), "--name", name, "--bootstrap", "50"]) == 0
    return root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _explore_command(root: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "persian_data.cli", "explore", "--root", str(root), "--port", str(port)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH"))
                                                        if p)}


@pytest.fixture(scope="module")
def server(explore_root, tmp_path_factory):
    """`persian-data explore --root R --port P`, the command a user runs, in its own process."""
    port = _free_port()
    log = tmp_path_factory.mktemp("explore-log") / "explore.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(_explore_command(explore_root, port), stdout=out, stderr=subprocess.STDOUT, env=_env())
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(base + "/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "explore did not come up: " + log.read_text()
            time.sleep(0.1)
        yield base, port, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is missing (.ci/run installs Debian's chromium)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required"])
        yield chromium
        chromium.close()


def _word_with_yeh_or_kaf(root: Path) -> tuple[dict, str]:
    """A train clip and a word of its normalized text holding ی or ک (to be typed with Arabic ي/ك)."""
    for clip in _lines(root / "datasets/speech" / CV_FOLDER / "manifests/train.jsonl"):
        for word in clip["text_normalized"].split():
            word = word.strip(".،؟!")
            if ("ی" in word or "ک" in word) and ZWNJ not in word and len(word) > 3:
                return clip, word
    raise AssertionError("no train clip with ی or ک: the replica changed")


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[^\W_]+", normalize(text).replace(ZWNJ, " ")))


def test_every_section_in_chromium(server, browser, explore_root, tmp_path_factory):
    base, _, _ = server
    shots = tmp_path_factory.mktemp("explore-screenshots")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    # overview: every section is linked and counted
    page.goto(base + "/")
    assert page.locator("header nav a").all_inner_texts() == ["خانه", "کلیپ‌ها", "گفتگوها", "ارزیابی‌ها", "صداها"]
    assert page.locator("html").get_attribute("dir") == "rtl"
    assert "commonvoice-test-sub" in page.content()
    assert page.locator("a[href='/conversations?corpus=text']").count() == 1  # the chat corpus, by its key
    page.screenshot(path=shots / "overview.png", full_page=True)

    # clips: a word typed with Arabic ي/ك finds the clip whose manifest spells it with ی/ک
    clip, word = _word_with_yeh_or_kaf(explore_root)
    typed = word.translate(ARABIC)
    assert typed != word
    page.goto(f"{base}/clips?corpus={CV}&split=train")
    page.fill("#clip-q", typed)
    page.click("#clip-filters button[type=submit]")
    page.wait_for_url(re.compile(r"[?&]q="))
    shown = page.locator("table.clips tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    expected = [c["id"] for c in _lines(explore_root / "datasets/speech" / CV_FOLDER / "manifests/train.jsonl")
                if word in _tokens(c["text_normalized"])]
    assert clip["id"] in shown and shown == expected
    assert word in page.locator("table.clips mark.hit").all_inner_texts()
    page.screenshot(path=shots / "clips.png", full_page=True)

    # play it: the audio element's request is answered with MP3 bytes (200, or 206 for a range)
    audio = page.locator(f'tr[data-id="{clip["id"]}"] audio')
    with page.expect_response(lambda r: "/media/" in r.url) as answered:
        audio.evaluate("a => a.play()")
    response = answered.value
    assert response.status in (200, 206) and response.headers["content-type"] == "audio/mpeg"
    size = (explore_root / clip["audio_path"]).stat().st_size
    assert int(response.headers.get("content-length", "0")) > 0 and response.headers.get("accept-ranges") == "bytes"
    page.wait_for_function("a => a.currentTime > 0 || a.ended", arg=audio.element_handle(), timeout=20_000)
    assert size > 1000

    # conversations: search with Arabic letters, hits marked; the review and near-duplicate tabs
    conversations = _lines(explore_root / "datasets/text/persian_conversation/combined.jsonl")
    term = next(w for w in sorted(_tokens(conversations[0]["messages"][1]["content"]), key=len, reverse=True)
                if "ی" in w or "ک" in w)
    want = sum(term in _tokens(c["messages"][1]["content"] + "\n" + c["messages"][2]["content"])
               for c in conversations)
    page.goto(base + "/conversations")
    page.fill("#chat-q", term.translate(ARABIC))
    page.click("#chat-filters button[type=submit]")
    page.wait_for_url(re.compile(r"[?&]q="))
    assert page.locator("article.conversation").count() == min(want, 20) and want >= 1
    assert page.locator("#chat-total .total").inner_text().split()[0] == str(want)
    assert term in page.locator("article.conversation mark.hit").all_inner_texts()
    page.screenshot(path=shots / "conversations.png", full_page=True)
    page.click("nav.tabs.sub >> text=نمونه‌های هر قاعده")
    assert page.locator("table.rules tbody tr").count() >= 5
    page.click("nav.tabs.sub >> text=تقریباً تکراری‌ها")
    assert page.locator("h1").inner_text() == "پرسش‌های تقریباً تکراری"

    # evals: open the run, see the substitution highlighted word by word
    page.goto(base + "/evals")
    page.click("text=commonvoice-test-sub")
    page.wait_for_url(re.compile(r"/evals/run/commonvoice-test-sub"))
    subs = page.locator("table.align td.sub")
    assert subs.count() == 2 and SUBSTITUTE in subs.all_inner_texts() + [""] or "خانه" in subs.all_inner_texts()
    colour = subs.first.evaluate("td => getComputedStyle(td).backgroundColor")
    assert colour not in ("rgba(0, 0, 0, 0)", "transparent", "rgb(255, 255, 255)")
    assert page.locator("table.align td.del").count() == 2  # the dropped word, in both rows
    page.screenshot(path=shots / "evals.png", full_page=True)
    page.click("text=مقایسه با")
    assert page.locator("article.utterance.compare").count() == 3

    # voices: type, pick a speed, hear it
    page.goto(base + "/voices")
    page.fill("#tts-text", "سلام. این یک آزمایش است.")
    page.select_option("#tts-format", "mp3")
    page.locator("#tts-speed").fill("1.5")
    with page.expect_response(lambda r: r.url.endswith("/tts/v1/audio/speech"), timeout=180_000) as answered:
        page.click("#tts-speak")
    assert answered.value.status == 200 and answered.value.headers["content-type"] == "audio/mpeg"
    assert answered.value.headers["x-speed"] == "1.5"
    page.wait_for_selector('#tts-status[data-ok="1"]', timeout=30_000)
    assert page.locator("#tts-audio").evaluate("a => a.src").startswith("blob:")
    page.screenshot(path=shots / "voices.png", full_page=True)

    assert problems == []
    assert sorted(p.name for p in shots.iterdir()) == ["clips.png", "conversations.png", "evals.png", "overview.png",
                                                       "voices.png"]
    print(f"screenshots: {shots}")


def _raw_get(port: int, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """A GET with the path sent byte for byte (no client-side `..` normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    out = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    conn.close()
    return out


def test_audio_is_served_with_ranges_and_its_content_type(server, explore_root):
    _, port, _ = server
    clip = _lines(explore_root / "datasets/speech" / CV_FOLDER / "manifests/test.jsonl")[0]
    data = (explore_root / clip["audio_path"]).read_bytes()
    status, headers, body = _raw_get(port, "/media/" + quote(clip["audio_path"]), {"Range": "bytes=0-99"})
    assert status == 206 and body == data[:100] and headers["content-range"] == f"bytes 0-99/{len(data)}"
    assert headers["content-type"] == "audio/mpeg"
    wav = _lines(explore_root / "datasets/speech/fleurs_fa/manifests/test.jsonl")[0]
    status, headers, body = _raw_get(port, "/media/" + quote(wav["audio_path"]))
    assert status == 200 and headers["content-type"] == "audio/wav" and body[:4] == b"RIFF"


def test_nothing_outside_the_served_folders_is_served(server, explore_root, tmp_path):
    _, port, _ = server
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web")
    audio = explore_root / "datasets/speech" / CV_FOLDER / "audio/train"
    (audio / "outside.mp3").symlink_to(secret)
    (explore_root / "evals/outside").symlink_to(tmp_path, target_is_directory=True)
    (explore_root / "datasets/logs").symlink_to(explore_root / "logs", target_is_directory=True)
    refused = {
        "/media/../../../etc/passwd": 404, "/media/datasets/../../../etc/passwd": 404,
        "/media/datasets/%2e%2e/%2e%2e/etc/passwd": 404, "/media/datasets/..%2f..%2fetc%2fpasswd": 404,
        "/media//etc/passwd": 404, "/media/logs/dataset_download.log": 404, "/media/checksums/persian-data.lock.json": 404,
        "/media/datasets/speech": 404, "/media/datasets/x%00.mp3": 404, "/media/datasets\\..\\logs": 404,
        f"/media/datasets/speech/{CV_FOLDER}/audio/train/outside.mp3": 403, "/media/evals/outside/secret.txt": 403,
        "/media/datasets/logs/dataset_download.log": 403,
    }
    for path, status in refused.items():
        got, _, body = _raw_get(port, path)
        assert got == status, (path, got)
        assert b"not for the web" not in body and b"root:" not in body
    assert _raw_get(port, "/media/card/card.html")[1]["content-type"].startswith("text/html")  # the card is served


def test_a_busy_port_is_one_line_and_query_text_stays_out_of_the_log(server, explore_root):
    base, port, log = server
    busy = subprocess.run(_explore_command(explore_root, port), capture_output=True, text=True, env=_env(),
                          timeout=120)
    lines = [line for line in (busy.stdout + busy.stderr).splitlines() if line.strip()]
    assert busy.returncode != 0 and lines == [lines[0]] and lines[0].startswith(f"error: port {port} on 127.0.0.1 "
                                                                                 "is already in use"), lines
    word = "محرمانه‌ترین"
    assert httpx.get(f"{base}/clips", params={"q": word, "split": "test"}).status_code == 200
    text = log.read_text(encoding="utf-8")
    assert f"/clips?q=<{len(word)} chars>&split=test HTTP/1.1\" 200" in text, text[-2000:]
    assert word not in text and quote(word) not in text
    assert re.search(r"explore: http://127\.0\.0\.1:\d+/ \(index .*index\.sqlite", text)


# -- in-process: missing, empty and changing inputs ----------------------------------------------------

def _manifest_line(i: int, split: str, text: str) -> bytes:
    """A line as `prepare speech` writes it for the declared corpus `toy` (source columns spk, sex, age_group)."""
    return orjson.dumps({"id": f"clip_{split}_{i}", "split": split, "audio_path": f"datasets/speech/toy/audio/{i}.wav",
                         "duration": 1.0 + i / 10, "sample_rate": 16000, "channels": 1, "sha256": "0" * 64,
                         "text": text, "text_normalized": normalize(text), "spk": f"spk{i % 2}",
                         "sex": "female" if i % 2 else "male", "age_group": "twenties",
                         "client_id": "not the speaker column"}) + b"\n"


# The corpora of these roots: `toy` (speech, columns of its own), `other` and `plain` (speech, no speaker,
# gender or age column), `empty_chat` (chat).
DECLARED = """
[corpora.toy]
shape = "speech-parquet"
repo = "someone/toy"
text = "sentence"
speaker = "spk"
gender = "sex"
age = "age_group"

[corpora.other]
shape = "speech-parquet"
repo = "someone/other"
text = "sentence"

[corpora.plain]
shape = "speech-parquet"
repo = "someone/plain"
text = "sentence"

[corpora.empty_chat]
shape = "chat-jsonl"
repo = "someone/empty-chat"
"""


def _declare(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "persian-data.toml").write_text(DECLARED, encoding="utf-8")


def test_missing_and_empty_inputs_get_a_page_that_says_so(tmp_path):
    root = tmp_path / "root"
    _declare(root)
    client = TestClient(create_app(root))
    for url, says in (("/clips", "No speech corpus has manifests"), ("/conversations", "No chat corpus"),
                      ("/evals", "No eval run"), ("/voices", "no TTS voice"), ("/", "prepare speech")):
        response = client.get(url)
        assert response.status_code == 200 and says in response.text, url
    manifests = root / "datasets/speech/toy/manifests"
    manifests.mkdir(parents=True)
    (manifests / "train.jsonl").write_bytes(b"")
    (manifests / "test.jsonl").write_bytes(_manifest_line(0, "test", "سلام") + b"{broken\n" + b"[1, 2]\n")
    (root / "datasets/speech/plain/manifests").mkdir(parents=True)
    (root / "datasets/speech/plain/manifests/test.jsonl").write_bytes(_manifest_line(0, "test", "سلام"))
    (root / "datasets/speech/other/data").mkdir(parents=True)  # fetched, not prepared
    (root / "datasets/speech/undeclared/manifests").mkdir(parents=True)  # no corpus of this root: not shown
    (root / "datasets/text/persian_conversation").mkdir(parents=True)
    (root / "datasets/text/empty_chat").mkdir(parents=True)
    (root / "datasets/text/empty_chat/combined.jsonl").write_bytes(b"")
    client = TestClient(create_app(root))
    empty = client.get("/clips?corpus=toy&split=train")
    assert empty.status_code == 200 and "این بخش کلیپی ندارد" in empty.text
    test = client.get("/clips?corpus=toy&split=test")
    assert test.status_code == 200 and 'data-id="clip_test_0"' in test.text
    # the declared corpus's own columns: its speaker (spk, not client_id), its gender (sex), its age
    assert 'title="spk0"' in test.text and "not the speaker column" not in test.text
    assert '<option value="male"' in test.text and 'placeholder="spk"' in test.text and "twenties" in test.text
    plain = client.get("/clips?corpus=plain&split=test")  # no speaker column: no speaker filter, nothing guessed
    assert plain.status_code == 200 and 'name="speaker"' not in plain.text and "spk0" not in plain.text
    overview = client.get("/")
    assert overview.status_code == 200
    assert '<span dir="ltr">other</span>' in overview.text and '<span dir="ltr">text</span>' in overview.text
    assert re.search(r"<td>clips:toy:test</td><td class=\"num\">1</td><td class=\"num\">2</td>", overview.text)
    chat = client.get("/conversations?corpus=empty_chat")
    assert chat.status_code == 200 and "خالی است" in chat.text
    assert client.get("/conversations/review?corpus=empty_chat").status_code == 200
    assert client.get("/conversations/near-duplicates?corpus=empty_chat").status_code == 200
    assert "undeclared" not in overview.text
    for url in ("/clips?corpus=nope", "/clips?corpus=undeclared", "/conversations?corpus=nope", "/evals/run/nope", "/evals/compare?a=x&b=y",
                "/no/such/page"):
        response = client.get(url)
        assert response.status_code == 404 and "<html" in response.text, url


def test_the_index_follows_the_files(tmp_path):
    root = tmp_path / "root"
    _declare(root)
    manifest = root / "datasets/speech/toy/manifests/train.jsonl"
    manifest.parent.mkdir(parents=True)
    manifest.write_bytes(b"".join(_manifest_line(i, "train", f"جمله {i} باران") for i in range(3)))
    index = Index(root)
    assert index.refresh() == ["clips:toy:train"]
    assert index.path == root / ".persian-data/explore/index.sqlite"
    built = index.source_rows()["clips:toy:train"]["built_at"]
    os.utime(manifest, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched, same bytes: hashed, not rebuilt
    assert index.refresh() == [] and index.source_rows()["clips:toy:train"]["built_at"] == built
    with open(manifest, "ab") as f:
        f.write(_manifest_line(3, "train", "ابرهای سیاه"))
    assert index.refresh() == ["clips:toy:train"]
    client = TestClient(create_app(root, index=index))
    assert 'data-id="clip_train_3"' in client.get("/clips?q=سياه").text  # the new line, found with Arabic ي
    manifest.unlink()
    assert index.refresh() == ["clips:toy:train"]
    assert index.reader().execute("SELECT count(*) FROM clips").fetchone()[0] == 0


def test_a_root_without_room_for_the_index_uses_the_cache(tmp_path, monkeypatch):
    root = tmp_path / "root"
    _declare(root)
    manifest = root / "datasets/speech/toy/manifests/train.jsonl"
    manifest.parent.mkdir(parents=True)
    manifest.write_bytes(_manifest_line(0, "train", "سلام"))
    (root / ".persian-data").write_text("not a folder")  # the tool's state folder cannot be made here
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    index = Index(root)
    assert index.path.is_relative_to(tmp_path / "cache/persian-data/explore")
    assert index.refresh() == ["clips:toy:train"]
    assert (root / ".persian-data").read_text() == "not a folder"
    assert sorted(p.name for p in root.iterdir()) == [".persian-data", "datasets", "persian-data.toml"]


# -- search ---------------------------------------------------------------------------------------------

WORDS = ["کتاب", "کتابخانه", "یکی", "می" + ZWNJ + "خواهم", "نمی" + ZWNJ + "دانم", "خانه" + ZWNJ + "ها", "باران",
         "۱۲۳", "۲۰۲۴", "ایران", "کودک", "پیک"]
VARIANTS = {"arabic": lambda w: w.translate(ARABIC), "space": lambda w: w.replace(ZWNJ, " "),
            "glued": lambda w: w.replace(ZWNJ, ""), "latin digits": lambda w: w.translate(str.maketrans("۰۱۲۳۴", "01234")),
            "arabic-indic digits": lambda w: w.translate(str.maketrans("۰۱۲۳۴", "٠١٢٣٤")), "as is": lambda w: w}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=6), st.data())
def test_search_finds_every_spelling(words, data):
    import sqlite3

    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(search, content='', tokenize='unicode61 remove_diacritics 0')")
    db.execute("INSERT INTO t(rowid, search) VALUES(1, ?)", (index_form(normalize(" ".join(words))),))
    db.execute("INSERT INTO t(rowid, search) VALUES(2, ?)", (index_form(normalize("متن دیگری بدون آن واژه")),))
    word = data.draw(st.sampled_from(words))
    variant = data.draw(st.sampled_from(sorted(VARIANTS)))
    match, _ = parse_query(VARIANTS[variant](word))
    assert match is not None
    assert [r[0] for r in db.execute("SELECT rowid FROM t WHERE t MATCH ?", (match,))] == [1], (word, variant, match)


def test_queries_are_data_never_syntax():
    for query in ['"', "NEAR(a b)", "a OR b", "*", "title:x", "-x", "(", "؟!", "'; DROP TABLE clips; --"]:
        match, _ = parse_query(query)
        if match is not None:
            import sqlite3

            db = sqlite3.connect(":memory:")
            db.execute("CREATE VIRTUAL TABLE t USING fts5(search)")
            db.execute("SELECT rowid FROM t WHERE t MATCH ?", (match,)).fetchall()  # no syntax error
