"""The local Hub server: huggingface_hub and `hf download` work against it, errors map to the right
huggingface_hub exceptions, ranges work, and every fault mode is observable by an httpx client."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder

from persian_data.localhub.app import create_app
from persian_data.localhub.store import HubStore, git_blob_sha1, lfs_pointer

from support import hub_process
from support.hub import ScriptedHub
from support.hub_faults import FaultPlan, FaultRule
from support.hub_log import RequestLog

GITATTRIBUTES = b"*.tar.gz filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
BIG = bytes(range(256)) * 1200  # 307_200 bytes, LFS (*.bin)
TSV = "1\tx.wav\tسلام دنیا\tسلام دنیا\tس|ل|ا|م\t16000\tFEMALE\n".encode() * 50

FLEURS = {
    ".gitattributes": GITATTRIBUTES,
    "README.md": b"---\nlicense: cc-by-4.0\n---\n",
    "data/fa_ir/train.tsv": TSV,
    "data/fa_ir/audio/train.tar.gz": os.urandom(40_000),
    "data/fa_ir/audio/dev.tar.gz": os.urandom(20_000),
    "data/en_us/train.tsv": b"en\n" * 30,
    "data/en_us/audio/train.tar.gz": os.urandom(30_000),
}
MODEL = {
    ".gitattributes": GITATTRIBUTES,
    "config.json": b'{"sample_rate": 24000}',
    "best_model.bin": BIG,
}


_TLS = ssl.create_default_context()  # unused on http://, but httpx builds one per client otherwise (slow)


def _client(hub: ScriptedHub, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=hub.endpoint, verify=_TLS, **kwargs)


@pytest.fixture(scope="module")
def _module_hub(tmp_path_factory):
    store = HubStore(tmp_path_factory.mktemp("mini_hub"))
    store.publish("dataset", "google/fleurs", FLEURS)
    store.publish("model", "Kamtera/voice", MODEL)
    with ScriptedHub(store) as running:
        yield running


@pytest.fixture
def mini_hub(_module_hub):
    """A small hub of this module's own (conftest's `hub` serves the replicas), shared by the module's
    tests, with no faults and an empty request log at the start of each test. Tests that change repos
    publish to repos of their own."""
    _module_hub.faults.clear()
    _module_hub.requests.clear()
    yield _module_hub
    _module_hub.faults.clear()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_until_error(client: httpx.Client, url: str, **kwargs) -> tuple[bytes, BaseException | None, int | None]:
    got = bytearray()
    status = None
    try:
        with client.stream("GET", url, **kwargs) as r:
            status = r.status_code
            for chunk in r.iter_bytes():
                got += chunk
    except httpx.HTTPError as e:
        return bytes(got), e, status
    return bytes(got), None, status


# --------------------------------------------------------------------------------------------
# huggingface_hub against the server
# --------------------------------------------------------------------------------------------
def test_repo_info_by_branch_sha_and_encoded_branch(mini_hub):
    api = HfApi(endpoint=mini_hub.endpoint)
    sha = mini_hub.store.resolve("dataset", "google/fleurs", "main")
    info = api.repo_info("google/fleurs", repo_type="dataset")
    assert info.id == "google/fleurs" and info.sha == sha
    assert sorted(s.rfilename for s in info.siblings) == sorted(FLEURS)
    assert info.private is False and info.gated is False and info.last_modified is not None

    assert api.dataset_info("google/fleurs", revision=sha).sha == sha

    detailed = api.model_info("Kamtera/voice", files_metadata=True)
    by_name = {s.rfilename: s for s in detailed.siblings}
    assert by_name["best_model.bin"].lfs.sha256 == _sha256(BIG)
    assert by_name["best_model.bin"].size == len(BIG)
    assert by_name["config.json"].lfs is None and by_name["config.json"].blob_id == git_blob_sha1(MODEL["config.json"])

    # A branch with slashes, as the Hub's refs/convert/parquet: huggingface_hub percent-encodes it.
    other = mini_hub.store.publish("dataset", "google/fleurs", {"x.parquet": b"PAR1"}, branch="refs/convert/parquet")
    assert api.dataset_info("google/fleurs", revision="refs/convert/parquet").sha == other
    assert mini_hub.requests.paths(method="GET", prefix="/api/datasets/google/fleurs/revision/refs/convert/parquet")
    with _client(mini_hub) as c:  # unencoded also works
        r = c.get("/datasets/google/fleurs/resolve/refs/convert/parquet/x.parquet")
        assert r.status_code == 200 and r.content == b"PAR1" and r.headers["X-Repo-Commit"] == other


def test_list_repo_tree_paginates_and_reports_lfs(tmp_path):
    store = HubStore(tmp_path / "hub")
    store.publish("dataset", "google/fleurs", FLEURS)
    with ScriptedHub(store, tree_page_size=3) as own:
        api = HfApi(endpoint=own.endpoint)
        entries = list(api.list_repo_tree("google/fleurs", repo_type="dataset", recursive=True))
        tree_gets = own.requests.entries(method="GET", prefix="/api/datasets/google/fleurs/tree/")
        shallow = list(api.list_repo_tree("google/fleurs", "data/fa_ir", repo_type="dataset"))

    files = {e.path: e for e in entries if isinstance(e, RepoFile)}
    folders = {e.path for e in entries if isinstance(e, RepoFolder)}
    assert set(files) == set(FLEURS)
    assert folders == {"data", "data/fa_ir", "data/fa_ir/audio", "data/en_us", "data/en_us/audio"}
    assert len(entries) == len(FLEURS) + len(folders)  # no duplicates across pages
    assert len(tree_gets) == -(-len(entries) // 3)  # ceil: one request per page of 3
    assert "cursor=" in tree_gets[1].query

    for path, data in FLEURS.items():
        f = files[path]
        assert f.size == len(data)
        if path.endswith(".tar.gz"):
            assert f.lfs is not None and f.lfs.sha256 == _sha256(data) and f.lfs.size == len(data)
            assert f.blob_id == git_blob_sha1(lfs_pointer(_sha256(data), len(data)))
        else:
            assert f.lfs is None and f.blob_id == git_blob_sha1(data)

    assert {e.path for e in shallow} == {"data/fa_ir/train.tsv", "data/fa_ir/audio"}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_directory_oids_are_git_tree_ids(mini_hub, tmp_path):
    work = tmp_path / "git"
    work.mkdir()
    for path, data in FLEURS.items():
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(lfs_pointer(_sha256(data), len(data)) if path.endswith(".tar.gz") else data)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q"], cwd=work, check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=work, check=True, env=env)
    tree = subprocess.run(["git", "write-tree"], cwd=work, check=True, env=env, capture_output=True, text=True)
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "-t", tree.stdout.strip()],
        cwd=work, check=True, env=env, capture_output=True, text=True,
    ).stdout
    git_oids = {line.split("\t")[1]: line.split()[2] for line in listing.splitlines()}
    entries = HfApi(endpoint=mini_hub.endpoint).list_repo_tree("google/fleurs", repo_type="dataset", recursive=True)
    ours = {e.path: (e.tree_id if isinstance(e, RepoFolder) else e.blob_id) for e in entries}
    assert ours == git_oids


def test_hf_hub_download_lfs_and_regular(mini_hub, tmp_path):
    cache = tmp_path / "cache"
    path = hf_hub_download("Kamtera/voice", "best_model.bin", cache_dir=cache, endpoint=mini_hub.endpoint)
    assert Path(path).read_bytes() == BIG
    path = hf_hub_download(
        "google/fleurs", "data/fa_ir/train.tsv", repo_type="dataset", cache_dir=cache, endpoint=mini_hub.endpoint
    )
    assert Path(path).read_bytes() == TSV
    assert mini_hub.requests.paths(method="HEAD") == [
        "/Kamtera/voice/resolve/main/best_model.bin",
        "/datasets/google/fleurs/resolve/main/data/fa_ir/train.tsv",
    ]
    gets = mini_hub.requests.entries(method="GET", prefix="/Kamtera/voice/resolve/")
    assert [(g.status, g.bytes_sent) for g in gets] == [(200, len(BIG))]


def test_snapshot_download_with_allow_patterns(mini_hub, tmp_path):
    out = tmp_path / "fleurs"
    snapshot_download(
        "google/fleurs",
        repo_type="dataset",
        local_dir=out,
        endpoint=mini_hub.endpoint,
        allow_patterns=["data/fa_ir/*"],
        cache_dir=tmp_path / "cache",
    )
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    got = {k: v for k, v in got.items() if not k.startswith(".cache/")}
    assert got == {k: v for k, v in FLEURS.items() if k.startswith("data/fa_ir/")}
    assert not [p for p in mini_hub.requests.paths(method="GET", prefix="/datasets/") if "en_us" in p]


def test_hf_cli_download(mini_hub, tmp_path):
    hf = Path(sys.executable).with_name("hf")
    if not hf.exists():
        pytest.skip("no hf console script beside the interpreter")
    env = {
        **os.environ,
        "HF_ENDPOINT": mini_hub.endpoint,
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "NO_COLOR": "1",
    }
    env.pop("HF_HUB_OFFLINE", None)
    out = tmp_path / "cli"
    proc = subprocess.run(
        [str(hf), "download", "google/fleurs", "--repo-type", "dataset", "--include", "data/fa_ir/*",
         "--local-dir", str(out)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "data/fa_ir/audio/train.tar.gz").read_bytes() == FLEURS["data/fa_ir/audio/train.tar.gz"]
    assert (out / "data/fa_ir/train.tsv").read_bytes() == TSV
    assert not (out / "data/en_us").exists()
    assert mini_hub.requests.paths(method="GET", prefix="/api/datasets/google/fleurs/")


def test_missing_repo_revision_and_file_raise_hub_errors(mini_hub, tmp_path):
    api = HfApi(endpoint=mini_hub.endpoint)
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info("google/nope", repo_type="dataset")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("google/nope", "a.txt", repo_type="dataset", cache_dir=tmp_path, endpoint=mini_hub.endpoint)
    with pytest.raises(RevisionNotFoundError):
        api.repo_info("google/fleurs", repo_type="dataset", revision="v9")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("google/fleurs", "README.md", repo_type="dataset", revision="v9", cache_dir=tmp_path,
                        endpoint=mini_hub.endpoint)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(
            "google/fleurs", "nope.txt", repo_type="dataset", cache_dir=tmp_path, endpoint=mini_hub.endpoint
        )
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree("google/fleurs", "data/xx_yy", repo_type="dataset"))
    # A dataset is not a model.
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("google/fleurs")

    with _client(mini_hub) as c:
        r = c.get("/datasets/google/fleurs/resolve/main/nope.txt")
        assert r.status_code == 404 and r.headers["X-Error-Code"] == "EntryNotFound"
        assert "error" in r.json()
        assert r.headers["X-Repo-Commit"] == mini_hub.store.resolve("dataset", "google/fleurs", "main")
        assert c.get("/datasets/google/..%2F..%2Fetc/resolve/main/x").headers["X-Error-Code"] == "RepoNotFound"
        assert c.get("/datasets/google/fleurs/resolve/..%2F..%2Frefs/x").headers["X-Error-Code"] == "RevisionNotFound"


def test_resolve_headers_and_ranges(mini_hub):
    sha = mini_hub.store.resolve("model", "Kamtera/voice", "main")
    url = "/Kamtera/voice/resolve/main/best_model.bin"
    with _client(mini_hub) as c:
        h = c.head(url)
        assert h.status_code == 200 and h.content == b""
        assert h.headers["X-Repo-Commit"] == sha
        assert h.headers["ETag"] == f'"{_sha256(BIG)}"'
        assert h.headers["Content-Length"] == str(len(BIG)) == h.headers["X-Linked-Size"]
        assert h.headers["Accept-Ranges"] == "bytes"
        assert not [k for k in h.headers if "xet" in k.lower()]
        small = c.head("/Kamtera/voice/resolve/main/config.json")
        assert small.headers["ETag"] == f'"{git_blob_sha1(MODEL["config.json"])}"'
        assert "X-Linked-Size" not in small.headers

        r = c.get(url, headers={"Range": "bytes=1000-"})
        assert r.status_code == 206 and r.content == BIG[1000:]
        assert r.headers["Content-Range"] == f"bytes 1000-{len(BIG) - 1}/{len(BIG)}"
        r = c.get(url, headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == BIG[10:20] and r.headers["Content-Length"] == "10"
        r = c.get(url, headers={"Range": f"bytes=5-{len(BIG) + 100}"})
        assert r.status_code == 206 and r.content == BIG[5:]
        r = c.get(url, headers={"Range": "bytes=-7"})
        assert r.status_code == 206 and r.content == BIG[-7:]
        r = c.get(url, headers={"Range": f"bytes={len(BIG)}-"})
        assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(BIG)}"
        r = c.get(url, headers={"Range": "bytes=10-19", "If-Range": '"not-the-etag"'})
        assert r.status_code == 200 and r.content == BIG  # stale validator: whole file
        big_chunked = c.get(url, headers={"Range": "bytes=0-0,5-6"})
        assert big_chunked.status_code == 200 and big_chunked.content == BIG

        # By commit sha, URL-encoded or not.
        assert c.get(f"/Kamtera/voice/resolve/{sha}/config.json").content == MODEL["config.json"]

    ranged = mini_hub.requests.entries(method="GET", prefix=url)
    assert [(e.status, e.range, e.bytes_sent) for e in ranged[:2]] == [
        (206, "bytes=1000-", len(BIG) - 1000),
        (206, "bytes=10-19", 10),
    ]


def test_republished_repo_changes_commit_between_calls(mini_hub):
    first = mini_hub.store.publish("model", "Kamtera/republished", MODEL)
    url = "/Kamtera/republished/resolve/main/config.json"
    with _client(mini_hub) as c:
        assert c.get(url).headers["X-Repo-Commit"] == first
        second = mini_hub.store.publish("model", "Kamtera/republished", {**MODEL, "config.json": b'{"sample_rate": 1}'})
        assert second != first
        r = c.get(url)
        assert r.headers["X-Repo-Commit"] == second and r.content == b'{"sample_rate": 1}'
        assert c.get(f"/Kamtera/republished/resolve/{first}/config.json").content == MODEL["config.json"]
    assert HfApi(endpoint=mini_hub.endpoint).model_info("Kamtera/republished").sha == second


# --------------------------------------------------------------------------------------------
# Faults, as an httpx client sees them
# --------------------------------------------------------------------------------------------
BIG_URL = "/Kamtera/voice/resolve/main/best_model.bin"


def test_fault_reset_sends_part_then_rst(mini_hub):
    rule = mini_hub.faults.reset("*/best_model.bin", after_bytes=100_000)
    with _client(mini_hub) as c:
        got, err, status = _read_until_error(c, BIG_URL)
        assert status == 200
        assert isinstance(err, httpx.ReadError) and "reset" in str(err).lower()
        assert got == BIG[:100_000]
        _, again, _ = _read_until_error(c, BIG_URL)  # no nth/times: every matching request
        assert isinstance(again, httpx.ReadError)
        assert c.get("/Kamtera/voice/resolve/main/config.json").status_code == 200  # other paths untouched
    assert (rule.seen, rule.fired) == (2, 2)
    log = mini_hub.requests.entries(method="GET", prefix=BIG_URL)
    assert (log[0].status, log[0].fault, log[0].bytes_sent) == (200, "reset", 100_000)


def test_fault_reset_fires_only_first_n(mini_hub):
    rule = mini_hub.faults.reset("*/best_model.bin", after_bytes=10, times=1)
    with _client(mini_hub) as c:
        _, err, _ = _read_until_error(c, BIG_URL)
        assert isinstance(err, httpx.ReadError)
        assert c.get(BIG_URL).content == BIG
    assert (rule.seen, rule.fired) == (2, 1)


def test_fault_truncate_declares_full_length_sends_less(mini_hub):
    mini_hub.faults.truncate("*/best_model.bin", after_bytes=12_345)
    with _client(mini_hub) as c:
        got, err, status = _read_until_error(c, BIG_URL)
    assert status == 200
    assert isinstance(err, httpx.RemoteProtocolError)
    assert f"received 12345 bytes, expected {len(BIG)}" in str(err)
    assert got == BIG[:12_345]


def test_fault_truncate_default_is_half_and_applies_to_ranges(mini_hub):
    mini_hub.faults.truncate("*/best_model.bin")
    with _client(mini_hub) as c:
        got, err, status = _read_until_error(c, BIG_URL, headers={"Range": "bytes=1000-"})
    assert status == 206 and isinstance(err, httpx.RemoteProtocolError)
    assert got == BIG[1000 : 1000 + (len(BIG) - 1000) // 2]


@pytest.mark.parametrize("code", [500, 502, 503])
def test_fault_status_on_nth_request_only(mini_hub, code):
    rule = mini_hub.faults.status("/api/models/*", code, nth=2)
    with _client(mini_hub) as c:
        first, second, third = (c.get("/api/models/Kamtera/voice") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (200, code, 200)
    assert second.json() == {"error": f"Injected fault: HTTP {code}"}
    assert (rule.seen, rule.fired) == (3, 1)
    assert [e.status for e in mini_hub.requests.entries(prefix="/api/models/")] == [200, code, 200]


def test_fault_429_with_retry_after(mini_hub):
    mini_hub.faults.add(FaultRule("429", path="*/config.json", method=("GET", "HEAD"), retry_after=7, times=2))
    with _client(mini_hub) as c:
        url = "/Kamtera/voice/resolve/main/config.json"
        a, b, ok = c.head(url), c.get(url), c.get(url)
    assert (a.status_code, b.status_code, ok.status_code) == (429, 429, 200)
    assert a.headers["Retry-After"] == b.headers["Retry-After"] == "7"
    assert "error" in b.json() and ok.content == MODEL["config.json"]


def test_fault_stall_times_out_client_and_does_not_block_shutdown(tmp_path):
    store = HubStore(tmp_path / "hub")
    store.publish("model", "Kamtera/voice", MODEL)
    own = ScriptedHub(store).start()
    holder: dict = {}

    def stalled_get() -> None:
        try:
            httpx.get(own.endpoint + BIG_URL, timeout=60, verify=_TLS)
        except httpx.HTTPError as e:
            holder["err"] = e

    thread = threading.Thread(target=stalled_get)
    try:
        own.faults.stall("*/best_model.bin", seconds=30, after_bytes=1000)
        with _client(own, timeout=httpx.Timeout(5, read=0.3)) as c:
            t0 = time.monotonic()
            got, err, status = _read_until_error(c, BIG_URL)
            assert time.monotonic() - t0 < 3
        assert status == 200 and isinstance(err, httpx.ReadTimeout) and got == BIG[:1000]

        # A response stalled in progress must not hold up stop() for the stall's 30 s.
        thread.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            gets = own.requests.entries(method="GET")
            if len(gets) == 2 and gets[1].bytes_sent == 1000:
                break
            time.sleep(0.01)
        else:
            pytest.fail("second request did not reach the stall")
    finally:
        t0 = time.monotonic()
        own.stop()
        stop_took = time.monotonic() - t0
    thread.join(10)
    assert stop_took < 3
    assert isinstance(holder.get("err"), httpx.RemoteProtocolError)
    assert "received 1000 bytes" in str(holder["err"])


def test_fault_stall_then_completes_for_patient_client(mini_hub):
    mini_hub.faults.stall("*/config.json", seconds=0.3)
    with _client(mini_hub, timeout=5) as c:
        t0 = time.monotonic()
        r = c.get("/Kamtera/voice/resolve/main/config.json")
        took = time.monotonic() - t0
    assert r.status_code == 200 and r.content == MODEL["config.json"] and took >= 0.3


def test_fault_corrupt_keeps_length_changes_bytes(mini_hub):
    mini_hub.faults.corrupt("*/best_model.bin", offset=5000, length=3)
    with _client(mini_hub) as c:
        r = c.get(BIG_URL)
    assert r.status_code == 200 and len(r.content) == len(BIG)
    assert _sha256(r.content) != r.headers["ETag"].strip('"') == _sha256(BIG)
    body = r.content
    assert body[:5000] == BIG[:5000] and body[5003:] == BIG[5003:]
    assert [body[i] ^ BIG[i] for i in (5000, 5001, 5002)] == [0xFF, 0xFF, 0xFF]


def test_fault_drop_closes_without_response(mini_hub):
    mini_hub.faults.drop(re.compile(r"/resolve/main/config\.json$"), method="*")
    with _client(mini_hub) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            c.head("/Kamtera/voice/resolve/main/config.json")
        assert c.get(BIG_URL).status_code == 200  # other paths untouched
    entry = mini_hub.requests.entries(method="HEAD")[0]
    assert (entry.status, entry.fault) == (None, "drop")


def test_faults_can_be_cleared_while_running(mini_hub):
    rule = mini_hub.faults.status("*", 503)
    with _client(mini_hub) as c:
        assert c.get("/api/models/Kamtera/voice").status_code == 503
        mini_hub.faults.clear()
        assert c.get("/api/models/Kamtera/voice").status_code == 200
    assert rule.fired == 1 and mini_hub.faults.rules == []


def test_hf_hub_download_recovers_from_truncation_resuming_with_a_range(mini_hub, tmp_path, monkeypatch):
    # huggingface_hub reads the body in 10 MiB pieces and resumes from the last whole piece it got:
    # a cut after 11 MiB of a 12 MiB file makes it ask for `bytes=10485760-` (a cut inside the first
    # 10 MiB restarts from zero).
    data = os.urandom(12 << 20)
    # http_get waits 1 s before it retries; time.sleep is its only use of `time`. Skip the wait.
    monkeypatch.setattr("huggingface_hub.file_download.time", types.SimpleNamespace(sleep=lambda _: None))
    mini_hub.store.publish("model", "Kamtera/big", {"big.bin": data}, lfs_paths={"big.bin"})
    mini_hub.faults.truncate("*/big.bin", after_bytes=11 << 20, times=1)
    path = hf_hub_download("Kamtera/big", "big.bin", cache_dir=tmp_path, endpoint=mini_hub.endpoint)
    assert Path(path).read_bytes() == data
    gets = mini_hub.requests.entries(method="GET", prefix="/Kamtera/big/resolve/main/big.bin")
    assert [(g.status, g.range, g.fault, g.bytes_sent) for g in gets] == [
        (200, None, "truncate", 11 << 20),
        (206, "bytes=10485760-", None, (12 << 20) - (10 << 20)),
    ]


# --------------------------------------------------------------------------------------------
# Request log, app factory, CLI
# --------------------------------------------------------------------------------------------
def test_request_log_filters_and_clears(mini_hub):
    with _client(mini_hub) as c:
        c.get("/api/datasets/google/fleurs")
        c.head("/datasets/google/fleurs/resolve/main/README.md")
        c.get("/datasets/google/fleurs/resolve/main/README.md", headers={"Range": "bytes=3-"})
    log = mini_hub.requests
    assert log.paths(method="GET", prefix="/datasets/google/fleurs/resolve") == [
        "/datasets/google/fleurs/resolve/main/README.md"
    ]
    assert log.count() == 3 and log.count(method="HEAD") == 1
    last = log.entries()[-1]
    readme = len(FLEURS["README.md"])
    assert (last.status, last.range, last.bytes_sent, last.done) == (206, "bytes=3-", readme - 3, True)
    log.clear()
    assert len(log) == 0 and log.entries() == []


def test_create_app_serves_without_faults_or_log(tmp_path):
    from starlette.testclient import TestClient

    store = HubStore(tmp_path / "hub")
    sha = store.publish("dataset", "a/b", {"x.txt": b"x"})
    with TestClient(create_app(store)) as client:
        assert client.get("/api/datasets/a/b").json()["sha"] == sha
        assert client.get("/datasets/a/b/resolve/main/x.txt").content == b"x"
    with pytest.raises(ValueError):
        create_app(store, tree_page_size=0)
    with pytest.raises(ValueError):
        FaultRule("explode")
    assert isinstance(FaultPlan().add(kind="429"), FaultRule) and isinstance(RequestLog(), RequestLog)


def test_hub_process_writes_port_file(tmp_path):
    store = HubStore(tmp_path / "hub")
    sha = store.publish("model", "Kamtera/voice", {"config.json": b"{}"})
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, str(Path(hub_process.__file__)), "--hub", str(tmp_path / "hub"), "--port", "0",
         "--port-file", str(port_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        endpoint = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", endpoint), proc.stderr.read() if proc.poll() else endpoint
        assert endpoint.endswith(":" + port_file.read_text().strip())
        assert httpx.get(f"{endpoint}/api/models/Kamtera/voice", timeout=5, verify=_TLS).json()["sha"] == sha
        r = httpx.get(f"{endpoint}/Kamtera/voice/resolve/{quote(sha)}/config.json", timeout=5, verify=_TLS)
        assert r.content == b"{}"
    finally:
        proc.terminate()
        proc.wait(10)
