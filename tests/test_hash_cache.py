"""The hash cache: what it remembers survives a save, a changed file is never trusted, the previous
version's file is read and rewritten, and no entry a disk can hold makes it raise or vouch for a
file it did not hash with that stat."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from persian_data.integrity import CACHE_VERSION, Digests, HashCache

SHA = "ab" * 32
BLOB = "cd" * 20


def _clip(root: Path, name: str, data: bytes = b"\1" * 100) -> Path:
    path = root / "datasets" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _answers(cache: HashCache, path: Path):
    st_ = os.stat(path)
    return cache.lookup(path, st_), cache.known_sha256([(str(path), st_)])[0], cache.recorded(str(path))


def test_entries_survive_a_save_and_a_changed_file_is_not_trusted(tmp_path):
    plain, hub = _clip(tmp_path, "a.mp3"), _clip(tmp_path, "b.json", b"{}")
    cache = HashCache(tmp_path / "cache", tmp_path)
    cache.put(plain, Digests(SHA))
    cache.put(hub, Digests(SHA, BLOB))
    (tmp_path / "tmp").mkdir()
    cache.save(tmp_path / "tmp")
    saved = orjson.loads((tmp_path / "cache").read_bytes())
    assert saved["version"] == CACHE_VERSION == 2
    assert all(isinstance(value, str) for value in saved["entries"].values())

    again = HashCache(tmp_path / "cache", tmp_path)
    st_ = os.stat(plain)
    assert _answers(again, plain) == (Digests(SHA), SHA, (SHA, [st_.st_size, st_.st_mtime_ns, st_.st_ino]))
    assert again.lookup(hub) == Digests(SHA, BLOB)

    os.utime(plain, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1))
    lookup, known, recorded = _answers(again, plain)
    assert lookup is None and known is None
    assert recorded == (SHA, [st_.st_size, st_.st_mtime_ns, st_.st_ino])  # its caller compares the stat itself
    assert again.digests(plain).sha256 != SHA  # hashed again, and remembered with the new stat
    assert again.lookup(plain) == again.digests(plain)


def test_the_previous_versions_file_is_read_and_rewritten(tmp_path):
    """A root prepared by the last release keeps every digest (49k clips are not hashed again)."""
    plain, hub, damaged = _clip(tmp_path, "a.mp3"), _clip(tmp_path, "b.json", b"{}"), _clip(tmp_path, "c.mp3")

    def stat_of(path):
        st_ = os.stat(path)
        return [st_.st_size, st_.st_mtime_ns, st_.st_ino]

    (tmp_path / "cache").write_bytes(orjson.dumps({"version": 1, "entries": {
        "datasets/a.mp3": {"stat": stat_of(plain), "sha256": SHA},
        "datasets/b.json": {"stat": stat_of(hub), "sha256": SHA, "blob_sha1": BLOB},
        "datasets/c.mp3": {"sha256": SHA},  # damaged: hashed again, not a crash
        "datasets/d.mp3": "not an entry",
    }, "memo": {"check": "ok"}}))
    cache = HashCache(tmp_path / "cache", tmp_path)
    assert cache.lookup(plain) == Digests(SHA) and cache.lookup(hub) == Digests(SHA, BLOB)
    assert cache.lookup(damaged) is None and cache.memo_get("check") == "ok"

    (tmp_path / "tmp").mkdir()
    cache.save(tmp_path / "tmp")  # converted: saved even though nothing was added
    saved = orjson.loads((tmp_path / "cache").read_bytes())
    assert saved["version"] == 2 and set(saved["entries"]) == {"datasets/a.mp3", "datasets/b.json"}
    again = HashCache(tmp_path / "cache", tmp_path)
    assert again.lookup(plain) == Digests(SHA) and again.lookup(hub) == Digests(SHA, BLOB)


_NUMBERS = st.one_of(st.integers(-2**64, 2**64).map(str), st.sampled_from(["", "-0", "+5", "007", "1_0", "\u0665"]))
_ENTRIES = st.one_of(
    st.tuples(st.sampled_from([SHA, "", "x y"]), st.lists(_NUMBERS, max_size=5), st.sampled_from(["", " " + BLOB, " "]))
    .map(lambda t: " ".join([t[0], *t[1]]) + t[2]),
    st.text(max_size=90), st.none(), st.integers(-2**63, 2**63 - 1), st.lists(st.integers(0, 2**63), max_size=3),
    st.fixed_dictionaries({"stat": st.lists(st.integers(0, 2**63), max_size=3), "sha256": st.just(SHA)}))


@settings(max_examples=300, deadline=None)
@given(entry=_ENTRIES, exact=st.booleans())
def test_no_entry_makes_the_cache_raise_or_vouch_for_another_stat(tmp_path_factory, entry, exact):
    """Any value under a file's key: lookup, known_sha256 and recorded answer without raising;
    known_sha256 never vouches where lookup would not; and an entry with the file's own stat, as put
    writes it, is trusted by both."""
    root = tmp_path_factory.mktemp("cache")
    path = _clip(root, "a.mp3")
    st_ = os.stat(path)
    if exact:
        entry = f"{SHA} {st_.st_size} {st_.st_mtime_ns} {st_.st_ino}"
    (root / "cache").write_bytes(orjson.dumps({"version": 2, "entries": {"datasets/a.mp3": entry}}))
    cache = HashCache(root / "cache", root)
    lookup, known, recorded = _answers(cache, path)
    assert known is None or (lookup is not None and known == lookup.sha256)
    if exact:
        assert lookup == Digests(SHA) and known == SHA and recorded == (SHA, [st_.st_size, st_.st_mtime_ns,
                                                                             st_.st_ino])
    if lookup is not None:
        assert recorded is not None and recorded[1] == [st_.st_size, st_.st_mtime_ns, st_.st_ino]
