"""Issue 14: several endpoints at once, fastest first, per-file fallback, one source of truth.

The endpoints are local hubs serving the same replicas and olah (a mirror we did not write) behind
a slow link: one is down (connection refused), one is stale (another, older commit), one corrupts
one file's bytes (same length), and olah is healthy but throttled. The run must complete with every
file matching the source of truth's hashes, name the stale and the corrupting endpoint in the log,
and a rerun must make no GET. The local hubs serve the same commits as olah (olah exports the
replicas as git repos, whose commit shas differ from the store's): `alias_heads` gives a store's
head commit the git sha.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from persian_data.catalog import BY_KEY
from persian_data.cli import main
from persian_data.integrity import read_lock
from persian_data.layout import Layout
from persian_data.localhub.store import HubStore

from support.replicas import REPLICA_REPOS, TINY, build_replicas
from support.hub import ScriptedHub

from hub.olah import OlahUnavailable, ensure_olah_venv, export_git_repo, mirror_dir, olah_server
from hub.proxy import ThrottledProxy

KEYS = ("text", "commonvoice", "fleurs")  # the voices would add a torch load per run
ONLY = ",".join(KEYS)
CORRUPTED = "data/train-00000-of-00002.parquet"  # commonvoice, an LFS file
CORRUPTED_GLOB = f"/datasets/hezarai/common-voice-13-fa/resolve/*/{CORRUPTED}"
OLAH_RATE = 1_000_000  # bytes/s through the slow link in front of olah


def closed_port_url() -> str:
    """A URL nothing listens on: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def alias_heads(store: HubStore, commits: dict[str, str]) -> None:
    """Make each repo's head commit known under the given sha (same files), and point main at it."""
    for key, sha in commits.items():
        repo_dir = store.repo_dir(*REPLICA_REPOS[key])
        refs = json.loads((repo_dir / "refs.json").read_text())
        shutil.copyfile(repo_dir / "commits" / f"{refs['main']}.json", repo_dir / "commits" / f"{sha}.json")
        refs["main"] = sha
        (repo_dir / "refs.json").write_text(json.dumps(refs))


def expected_files(store: HubStore, root: Path) -> dict[Path, str]:
    layout = Layout(root)
    out = {}
    for key in KEYS:
        source = BY_KEY[key]
        patterns = source.patterns(False)
        for stored in store.files(*REPLICA_REPOS[key], "main"):
            if patterns is None or any(fnmatch.fnmatch(stored.path, p) for p in patterns):
                out[layout.content_dir(source) / stored.path] = stored.object
    return out


def resolve_gets(hub: ScriptedHub) -> list[str]:
    return [r.path for r in hub.requests.entries(method="GET") if "/resolve/" in r.path]


def olah_gets(server) -> list[str]:
    return [line for line in server.access_lines("/resolve/") if '"GET ' in line]


@pytest.fixture(scope="module")
def base_store(tmp_path_factory) -> HubStore:
    store = HubStore(tmp_path_factory.mktemp("mirrors-hub"))
    build_replicas(store, TINY, only=KEYS)
    return store


@pytest.fixture(scope="module")
def olah_install():
    try:
        return ensure_olah_venv()
    except OlahUnavailable as exc:
        problem = str(exc)
    pytest.fail(f"olah is needed for this test and could not be installed: {problem}", pytrace=False)


@pytest.fixture(scope="module")
def olah(olah_install, base_store, tmp_path_factory):
    """olah serving the replicas, behind a link throttled to OLAH_RATE; yields (olah, proxy, commits)."""
    mirrors = tmp_path_factory.mktemp("mirrors-olah")
    commits = {key: export_git_repo(base_store, *REPLICA_REPOS[key], mirror_dir(mirrors, *REPLICA_REPOS[key]))
               for key in KEYS}
    with olah_server(olah_install, mirrors, tmp_path_factory.mktemp("mirrors-olah-run")) as server:
        port = int(server.endpoint.rsplit(":", 1)[1])
        with ThrottledProxy("127.0.0.1", port, OLAH_RATE) as proxy:
            yield server, proxy, commits


@pytest.fixture(scope="module")
def corrupting(base_store, olah, tmp_path_factory):
    """A local hub with olah's commits whose answers for one file have 4 bytes flipped, every time."""
    _, _, commits = olah
    root = tmp_path_factory.mktemp("mirrors-corrupt") / "hub"
    shutil.copytree(base_store.root, root)
    store = HubStore(root)
    alias_heads(store, commits)
    with ScriptedHub(store) as hub:
        hub.faults.corrupt(CORRUPTED_GLOB, offset=100, length=4)
        yield hub


@pytest.fixture(scope="module")
def stale(base_store, tmp_path_factory):
    """A local hub whose main is an older commit of each repo (the README differs); it lacks olah's."""
    store = HubStore(tmp_path_factory.mktemp("mirrors-stale"))
    for key in KEYS:
        repo_type, repo_id = REPLICA_REPOS[key]
        files = {f.path: base_store.object_path(f.object).read_bytes()
                 for f in base_store.files(repo_type, repo_id, "main")}
        files["README.md"] = files["README.md"] + b"\n(an older revision)\n"
        store.publish(repo_type, repo_id, files)
    with ScriptedHub(store) as hub:
        yield hub


@pytest.fixture(scope="module")
def endpoints(olah, corrupting, stale) -> dict[str, str]:
    _, proxy, _ = olah
    return {"down": closed_port_url(), "corrupting": corrupting.endpoint, "stale": stale.endpoint,
            "olah": proxy.endpoint}


def endpoint_args(urls) -> list[str]:
    return [arg for url in urls for arg in ("--endpoint", url)]


@pytest.fixture(scope="module")
def fetched(endpoints, olah, corrupting, stale, tmp_path_factory):
    root = tmp_path_factory.mktemp("mirrors-root")
    server, _, _ = olah
    before = len(olah_gets(server))
    code = main(["fetch", "--root", str(root), "--only", ONLY, "--retries", "2", *endpoint_args(endpoints.values())])
    log = Layout(root).download_log.read_text("utf-8")
    assert code == 0, log[-4000:]
    return root, log, olah_gets(server)[before:]


def test_four_endpoints_one_down_one_stale_one_corrupting_one_slow(fetched, endpoints, base_store, olah, corrupting,
                                                                   stale):
    root, log, olah_got = fetched
    layout = Layout(root)
    _, _, commits = olah
    want = expected_files(base_store, root)
    on_disk = {p for key in KEYS for p in layout.content_dir(BY_KEY[key]).rglob("*") if p.is_file()}
    assert on_disk == set(want)
    for path, sha256 in want.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256, path
    # the corrupting endpoint served the bad bytes once, was named and demoted; olah served that file
    assert corrupting.faults.rules[0].fired >= 1
    assert re.search(rf"endpoint {re.escape(endpoints['corrupting'])} demoted for the rest of this run: it served "
                     rf"hezarai/common-voice-13-fa:{re.escape(CORRUPTED)} with sha256", log), log[-4000:]
    assert any(CORRUPTED in line for line in olah_got), olah_got
    # the stale endpoint is named for every source, and never asked for a file
    for key in KEYS:
        assert re.search(rf"{key}: endpoint {re.escape(endpoints['stale'])} supplies no bytes for this source: it "
                         rf"resolves 'main' to commit [0-9a-f]{{40}}, the source of truth", log), key
    assert resolve_gets(stale) == []
    assert re.search(rf"endpoint {re.escape(endpoints['down'])} supplies no bytes .*ConnectError", log)
    # who served what: in the log and in the summary block; the files add up to one GET per content
    summary = log.split("===== persian-data summary")[-1]
    assert "endpoints:" in summary
    served = {url: int(m.group(1)) for url in endpoints.values()
              for m in [re.search(rf"^  {re.escape(url)}: (\d+) file\(s\)", summary, re.M)] if m}
    assert set(served) == set(endpoints.values()), summary
    assert served[endpoints["down"]] == served[endpoints["stale"]] == 0 and served[endpoints["olah"]] >= 1
    assert sum(served.values()) == len(set(want.values()))
    assert "demoted" in summary.split(endpoints["corrupting"])[1].splitlines()[0]
    # the lock records the commit (the source of truth's), never a mirror; README keeps the canonical URL
    lock_text = layout.lock_file.read_text("utf-8")
    assert "127.0.0.1" not in lock_text
    lock = read_lock(layout.lock_file)
    for key in KEYS:
        assert lock[key].revision == commits[key]
        assert f"URL: {BY_KEY[key].url}\n" in layout.source_readme(BY_KEY[key]).read_text("utf-8")


def test_rerun_makes_no_get(fetched, endpoints, olah, corrupting, stale):
    root, _, _ = fetched
    server, _, _ = olah
    before_olah, before_corrupt = len(olah_gets(server)), len(resolve_gets(corrupting))
    assert main(["fetch", "--root", str(root), "--only", ONLY, *endpoint_args(endpoints.values())]) == 0
    assert olah_gets(server)[before_olah:] == []
    assert resolve_gets(corrupting)[before_corrupt:] == []
    assert resolve_gets(stale) == []


def test_dry_run_and_status_show_each_endpoint(fetched, endpoints, olah, capfd):
    root, _, _ = fetched
    _, _, commits = olah
    capfd.readouterr()
    assert main(["fetch", "--root", str(root), "--only", ONLY, "--dry-run", *endpoint_args(endpoints.values())]) == 0
    err = capfd.readouterr().err
    assert re.search(rf"endpoint {re.escape(endpoints['down'])}: unreachable \(ConnectError", err), err
    for name in ("corrupting", "stale", "olah"):
        assert f"endpoint {endpoints[name]}: reachable" in err, err
    assert f"text {commits['text'][:12]} (source of truth)" in err
    assert main(["status", "--root", str(root), "--only", ONLY, "--remote", "--json",
                 *endpoint_args(endpoints.values())]) == 0
    rows = json.loads(capfd.readouterr().out)
    for row in rows:
        answers = row["endpoints"]
        assert answers[endpoints["down"]].startswith("unreachable (ConnectError")
        assert answers[endpoints["corrupting"]] == answers[endpoints["olah"]] == commits[row["source"]]
        assert re.fullmatch("[0-9a-f]{40}", answers[endpoints["stale"]])
        assert answers[endpoints["stale"]] != commits[row["source"]]
        assert row["state"] == "present" and row["hub_revision"] == commits[row["source"]]


def test_locked_skips_an_endpoint_without_the_commit(fetched, endpoints, tmp_path, capfd):
    root, _, _ = fetched
    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    victim = Layout(copy).content_dir(BY_KEY["text"]) / "dadrah_dataset.json"
    victim.unlink()
    code = main(["fetch", "--root", str(copy), "--only", "text", "--locked",
                 *endpoint_args([endpoints["stale"], endpoints["olah"]])])
    log = Layout(copy).download_log.read_text("utf-8")
    assert code == 0, log[-3000:]
    assert re.search(rf"text: endpoint {re.escape(endpoints['stale'])} supplies no bytes for this source: it does "
                     rf"not have commit [0-9a-f]{{40}}", log), log[-3000:]
    assert victim.exists()
    # no endpoint has it: the run fails, naming the commit
    capfd.readouterr()
    code = main(["fetch", "--root", str(copy), "--only", "text", "--locked", "--retries", "1",
                 *endpoint_args([endpoints["stale"]])])
    err = capfd.readouterr().err
    assert code != 0
    assert f"cannot reproduce text at commit {read_lock(Layout(copy).lock_file)['text'].revision}" in err, err


def test_all_endpoints_down_is_one_clear_error(tmp_path, capfd):
    urls = [closed_port_url(), closed_port_url()]
    code = main(["fetch", "--root", str(tmp_path), "--only", ONLY, "--retries", "1", *endpoint_args(urls)])
    err = capfd.readouterr().err
    assert code != 0
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith("error: no endpoint could be reached: ")
    for url in urls:
        assert re.search(rf"{re.escape(url)} \(ConnectError: [^)]*refused", line), line
    assert not (tmp_path / "datasets").exists() or not any((tmp_path / "datasets").rglob("*.*"))


@pytest.fixture
def two_hubs(base_store):
    """The same store served twice; the second through a throttle (a slow mirror)."""
    with ScriptedHub(base_store) as fast, ScriptedHub(base_store, throttle=50_000) as slow:
        yield fast, slow


def test_a_slow_endpoint_listed_first_serves_nothing_big(two_hubs, tmp_path):
    fast, slow = two_hubs
    code = main(["fetch", "--root", str(tmp_path), "--only", ONLY, *endpoint_args([slow.endpoint, fast.endpoint])])
    assert code == 0
    got_fast = sum(r.bytes_sent for r in fast.requests.entries(method="GET") if "/resolve/" in r.path)
    got_slow = sum(r.bytes_sent for r in slow.requests.entries(method="GET") if "/resolve/" in r.path)
    log = Layout(tmp_path).download_log.read_text("utf-8")
    assert "throughput probe:" in log
    assert got_fast >= 0.9 * (got_fast + got_slow), (got_fast, got_slow)


def test_a_failing_file_moves_to_the_next_endpoint_with_a_range_request(two_hubs, tmp_path):
    fast, slow = two_hubs
    failing = "data/validation-00000-of-00001.parquet"  # not the largest file, which the throughput probe reads
    # every time: 4096 bytes, then a clean close (a reset could make the kernel drop bytes already received)
    fast.faults.truncate(f"/datasets/hezarai/common-voice-13-fa/resolve/*/{failing}", after_bytes=4096)
    code = main(["fetch", "--root", str(tmp_path), "--only", "commonvoice",
                 *endpoint_args([fast.endpoint, slow.endpoint])])
    log = Layout(tmp_path).download_log.read_text("utf-8")
    assert code == 0, log[-3000:]
    ranges = [r.range for r in slow.requests.entries(method="GET") if r.path.endswith(failing)]
    assert ranges == ["bytes=4096-"], ranges
    assert f"from {fast.endpoint}; continuing from {slow.endpoint} (Range resume)" in log
    repo_type, repo_id = REPLICA_REPOS["commonvoice"]
    [stored] = [f for f in fast.store.files(repo_type, repo_id, "main") if f.path == failing]
    placed = Layout(tmp_path).content_dir(BY_KEY["commonvoice"]) / failing
    assert hashlib.sha256(placed.read_bytes()).hexdigest() == stored.object


def test_tokens_go_only_where_they_were_given(two_hubs, tmp_path, monkeypatch):
    fast, slow = two_hubs
    monkeypatch.delenv("HF_TOKEN", raising=False)
    shared, own = "hf_shared_secret_1234", "hf_own_secret_5678"
    code = main(["fetch", "--root", str(tmp_path / "a"), "--only", "text", "--token", shared,
                 "--endpoint-token", f"{slow.endpoint}={own}", *endpoint_args([fast.endpoint, slow.endpoint])])
    assert code == 0
    assert {r.authorization for r in fast.requests.entries()} == {f"Bearer {shared}"}
    assert {r.authorization for r in slow.requests.entries()} == {f"Bearer {own}"}
    fast.requests.clear()
    slow.requests.clear()
    code = main(["fetch", "--root", str(tmp_path / "b"), "--only", "text", "--token", shared,
                 "--endpoint-token", f"{slow.endpoint}=", *endpoint_args([fast.endpoint, slow.endpoint])])
    assert code == 0
    assert {r.authorization for r in fast.requests.entries()} == {f"Bearer {shared}"}
    assert {r.authorization for r in slow.requests.entries()} == {None}
    for root in ("a", "b"):
        for path in (tmp_path / root).rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert shared.encode() not in data and own.encode() not in data, path


def test_endpoint_settings_and_their_tokens():
    from persian_data.endpoints import DEFAULT_ENDPOINT, Endpoint, endpoint_list
    from persian_data.errors import PlanError

    [hub] = endpoint_list(environ={})
    assert (hub.url, hub.token) == (DEFAULT_ENDPOINT, None)  # None: huggingface_hub's stored login, Hub only
    assert [(e.url, e.token) for e in endpoint_list(environ={"HF_ENDPOINT": "http://m1/"})] == [("http://m1", False)]
    listed = endpoint_list(environ={"PERSIAN_DATA_ENDPOINTS": "http://a, http://b  http://a/", "HF_ENDPOINT": "http://c"})
    assert [e.url for e in listed] == ["http://a", "http://b"]
    both = endpoint_list(["http://a", DEFAULT_ENDPOINT, "http://b"], endpoint_tokens=[("http://a/", ""), ("http://b", "own")],
                         environ={"HF_TOKEN": "hf_shared"})
    assert [e.token for e in both] == [False, "hf_shared", "own"]
    with pytest.raises(PlanError, match="not an http"):
        endpoint_list(["ftp://x"], environ={})
    with pytest.raises(PlanError, match="not one of the endpoints"):
        endpoint_list(["http://a"], endpoint_tokens=[("http://b", "t")], environ={})
    secret = Endpoint("http://user:pw-secret@mirror:8080/hub", None)
    assert secret.label == "http://mirror:8080/hub" and "pw-secret" in secret.secrets()


def test_a_download_moves_when_its_endpoint_gets_much_slower(tmp_path):
    """An endpoint that was fastest at the start and slows down mid-file: the download moves to the
    other endpoint (measured 3x faster over the last seconds) and resumes there by Range."""
    store = HubStore(tmp_path / "hub")
    build_replicas(store, TINY, only=("text",))
    repo_type, repo_id = REPLICA_REPOS["text"]
    big = "dadrah_dataset1-100000_276342.json"  # an LFS file
    files = {f.path: store.object_path(f.object).read_bytes() for f in store.files(repo_type, repo_id, "main")}
    files[big] = hashlib.sha256(b"seed").digest() * (3_000_000 // 32)
    store.publish(repo_type, repo_id, files)
    with ScriptedHub(store, throttle=3_000_000) as first, ScriptedHub(store, throttle=1_000_000) as second:
        slowed = threading.Event()

        def slow_down_when_the_big_file_starts():
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not slowed.is_set():
                if any(r.path.endswith(big) and r.range is None for r in first.requests.entries(method="GET")):
                    first.throttle.rate = 60_000
                    slowed.set()
                time.sleep(0.005)

        watcher = threading.Thread(target=slow_down_when_the_big_file_starts, daemon=True)
        watcher.start()
        code = main(["fetch", "--root", str(tmp_path / "root"), "--only", "text",
                     *endpoint_args([first.endpoint, second.endpoint])])
        watcher.join(5)
        log = Layout(tmp_path / "root").download_log.read_text("utf-8")
        assert code == 0, log[-3000:]
        assert slowed.is_set()
        resumed = [r.range for r in second.requests.entries(method="GET") if r.path.endswith(big) and
                   r.range and not r.range.startswith("bytes=0-")]
        assert len(resumed) == 1 and re.fullmatch(r"bytes=[1-9]\d*-", resumed[0]), resumed
        assert re.search(rf"{re.escape(big)}: {re.escape(first.endpoint)} is slow .* from {re.escape(first.endpoint)}; "
                         rf"continuing from {re.escape(second.endpoint)} \(Range resume\)", log), log[-3000:]
        placed = Layout(tmp_path / "root").content_dir(BY_KEY["text"]) / big
        assert placed.read_bytes() == files[big]
