"""Planning a shard set in C gives what the Python form gives.

`_speedups.render` (the JSON writer) must give orjson's bytes for any value orjson.loads can give,
or None (then the Python form runs); and `read_samples` with `_speedups.shard_raw` (from a line's
bytes) and `_speedups.shard_sample` (from its dict) must give every sample the same fields,
members, documents and tar size as the Python form, or the same error, for any manifest prepare
could write and many it would not (odd floats, big ints, nested source columns, control
characters, surrogates, ids to escape or seen twice, missing clips), written by orjson as prepare
writes them or otherwise (escapes, white space, a duplicate key, bytes that are not UTF-8).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import orjson
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from persian_data.compiled import SPEEDUPS
from persian_data.shards.corpus import CorpusSplit
from persian_data.shards.documents import describer, line_planner
from persian_data.shards.samples import COMMON_KEYS, Sample


_TEXT = st.text(max_size=40)  # any code point, lone surrogates and controls included
_PLAIN_FLOATS = st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x == 0 or 1e-4 <= abs(x) < 1e16)
_SCALARS = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | _TEXT
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
                       max_leaves=12)
_ORDINARY = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | _PLAIN_FLOATS
                         | st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
                         lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), inner,
                                           max_size=4), max_leaves=12)


def test_the_extension_is_built():
    assert SPEEDUPS is not None and hasattr(SPEEDUPS, "render"), "the C extension was not built (see setup.py)"


def _orjson(value) -> bytes | None:
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: what the Python form would raise
        return None


@settings(max_examples=400, deadline=None)
@given(value=_VALUES)
def test_render_writes_orjsons_bytes_or_leaves_the_value_to_python(value):
    got = SPEEDUPS.render((b"[", b"]"), (value,), frozenset(), {})
    assert got is None or got == b"[" + _orjson(value) + b"]"


@settings(max_examples=300, deadline=None)
@given(value=_ORDINARY)
def test_render_takes_every_ordinary_value_itself(value):
    """Values prepare writes (64-bit ints, floats in plain notation, valid text): never left to Python."""
    assert SPEEDUPS.render((b"", b""), (value,), frozenset(), {}) == orjson.dumps(value)


def test_render_puts_bytes_as_they_are_and_a_dicts_items_minus_skip():
    got = SPEEDUPS.render((b"{", b"}"), (b'"a":1',), frozenset({"c"}), {"b": 2, "c": [3], "d": "\n"})
    assert got == b'{"a":1,"b":2,"d":"\\n"}'
    assert orjson.loads(got) == {"a": 1, "b": 2, "d": "\n"}
    assert SPEEDUPS.render((b"", b""), ({},), frozenset(), {}) == b"{}"  # a dict value is an object
    with pytest.raises(ValueError):
        SPEEDUPS.render((b"",), (1,), frozenset(), {})
    assert SPEEDUPS.render((b"", b""), (1e-5,), frozenset(), {}) is None  # orjson: 0.00001, repr: 1e-05


_KEYS = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda k: k not in COMMON_KEYS)
_VALID_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_SOMETIMES_ODD = st.one_of(_VALID_TEXT, _VALID_TEXT, _TEXT)  # mostly what prepare writes, sometimes not
_LINES = st.fixed_dictionaries({
    "id": st.one_of(st.from_regex(r"[a-z_]{1,12}[0-9]{1,6}", fullmatch=True), st.text(min_size=1, max_size=20)),
    "duration": st.one_of(_PLAIN_FLOATS.map(abs), st.integers(0, 100)), "frames": st.integers(0, 2**40),
    "sample_rate": st.sampled_from([8000, 16000, 48000]) | st.integers(1, 2**20),
    "channels": st.one_of(st.just(1), st.none() | st.integers(0, 3) | st.sampled_from([1.0, "2", 2**70])),
    "sha256": st.one_of(_VALID_TEXT, _VALID_TEXT, _TEXT).filter(bool), "text": _SOMETIMES_ODD,
    "text_normalized": _SOMETIMES_ODD,
}, optional={"speaker_id": _VALUES, "gender": _VALUES, "Gender": _SOMETIMES_ODD}).flatmap(
    lambda line: st.dictionaries(_KEYS, _VALUES, max_size=5).map(lambda extra: {**line, **extra}))
_CLIPS = st.sampled_from(["a.mp3", "b.MP3", "c.wav", "noext", "dir.d/e", "sub/f.flac", "g.mp3"])
_FIELDS = ("id", "path", "ext", "sha256", "duration", "line", "size", "stat", "trusted", "members", "extra",
           "tar_bytes")


@settings(max_examples=250, deadline=None)
@given(lines=st.lists(st.tuples(_LINES, _CLIPS, st.sampled_from(["known"] * 3 + ["other sha", "unknown", "missing"]),
                                st.integers(0, 5000), st.sampled_from([None, "absent", "absent", "absent", "x"])),
                      min_size=1,
                      max_size=5),
       fmt=st.sampled_from(["webdataset", "shar", "nemo"]),
       columns=st.sampled_from([(None, None), ("speaker_id", "gender"), ("client_id", "Gender")]),
       writer=st.sampled_from(["orjson"] * 4 + ["json ascii", "json spaced", "duplicate key", "odd numbers"]),
       odd=st.none() | st.tuples(st.integers(0, 4), st.sampled_from(["id", "duration", "frames", "sample_rate",
                                                                       "sha256", "text", "text_normalized"]),
                                 st.one_of(_VALUES, st.sampled_from(["", -1, -0.5, -0.0, 0, True, "48000", 2.0,
                                                                     2**70, 2**1100, 1e300]))))
def test_the_compiled_samples_are_the_python_forms(lines, fmt, columns, writer, odd):
    """read_samples with the C loop bodies (shard_raw, then shard_sample), with shard_sample alone,
    and in Python: the same samples (every field, every document byte), or the same error, for any
    manifest: odd values, ids to escape or seen twice, clips vouched for by the hash cache, hashed
    under another sha256, unknown or missing, names without an extension, --no-extract lines, and
    in about half the examples one value of one line of a type or range prepare never writes (named
    by the Python form, never a traceback). Most manifests are written by orjson, as prepare writes
    them; the others by the standard library's json (non-ASCII escaped, or with spaces; lone
    surrogates as bytes that are not UTF-8), with a duplicate key (orjson.loads keeps its last value),
    or with numbers not in orjson's form (2.50, -0)."""
    import shutil
    import tempfile

    from persian_data.integrity import Digests, HashCache
    from persian_data.layout import Layout
    from persian_data.shards.samples import read_samples

    root = Path(tempfile.mkdtemp())
    try:
        layout = Layout(root)
        cache = HashCache(layout.hash_cache, root)
        manifest = root / "m.jsonl"
        with open(manifest, "wb") as handle:
            for number, (line, clip, known, size, ref) in enumerate(lines):
                line = {**line, "audio_path": f"datasets/speech/x/{number % 3}/{clip}"}
                if odd is not None and odd[0] % len(lines) == number:
                    line[odd[1]] = odd[2]
                if ref != "absent":
                    line["audio_ref"] = ref
                path = root / line["audio_path"]
                if known != "missing":
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(b"\1" * size)
                    if known != "unknown":
                        cache.put(path, Digests(line["sha256"] if known == "known" else "0" * 64))
                handle.write(_written(line, writer) + b"\n")
        corpus = CorpusSplit("commonvoice", "train", None, manifest, *columns)

        taken = {"bytes": 0, "dict": 0}

        def counted(forms):
            return _counted_planner(fmt, corpus, cache, forms, taken)

        def planned(planner):
            try:
                samples = read_samples(layout, corpus, cache, describer(fmt, corpus), planner)
            except Exception as exc:  # noqa: BLE001  (the same error either way, whatever it is)
                return type(exc), str(exc)
            return [tuple(getattr(sample, name) for name in _FIELDS) for sample in samples]

        outcome = planned(counted(("bytes", "dict")))
        event(f"lines planned in C from bytes: {'some' if taken['bytes'] else 'none'}, from a dict: "
              f"{'some' if taken['dict'] else 'none'}; {writer}; "
              f"{'samples' if isinstance(outcome, list) else outcome[0].__name__}")
        assert outcome == planned(counted(("dict",))) == planned(None)
    finally:
        shutil.rmtree(root)


def _written(line: dict, writer: str) -> bytes:
    if writer == "json ascii":
        return json.dumps(line).encode()
    if writer == "json spaced":
        return json.dumps(line, ensure_ascii=False, separators=(" , ", " : ")).encode("utf-8", "surrogatepass")
    try:
        data = orjson.dumps(line)
    except TypeError:  # a value orjson cannot write (a lone surrogate): not a manifest line
        return b"{}"
    if writer == "duplicate key":
        return data[:-1] + b',"id":"again"}'
    if writer == "odd numbers":  # 2.5 as 2.50, 0 as -0 (and the same inside strings: the line is what it is)
        return re.sub(rb":0([,}])", rb":-0\1", re.sub(rb"([0-9]\.[0-9]+)", rb"\g<1>0", data))
    return data


def _counted_planner(fmt, corpus, cache, forms, taken: dict):
    """read_samples' planner with only the C forms in `forms` ("bytes", "dict"), counting in `taken`
    the lines each one planned itself."""
    def counting(body, form):
        def count(line, number):
            sample = body(line, number)
            taken[form] += sample is not None
            return sample
        return count

    def planner(root_, seen):
        bodies = line_planner(fmt, corpus, root_, cache, seen)
        return tuple(counting(body, form) if form in forms else None for body, form in zip(bodies, ("bytes", "dict")))
    return planner


_SHA = "ab" * 32
_ENTRY_NUMBER = st.one_of(st.integers(0, 2**63 - 1).map(str), st.integers(-2**63, 2**64).map(str),
                          st.sampled_from(["", "-0", "+5", "007", "1_0", "\u0665", "-", "0x1", "1" * 19,
                                           "0" * 19 + "7"]))
_ENTRY_PARTS = st.tuples(st.sampled_from([_SHA, _SHA, "cd" * 32, _SHA[:63], _SHA + "0"]),
                         st.lists(_ENTRY_NUMBER, min_size=3, max_size=3) | st.lists(_ENTRY_NUMBER, max_size=5),
                         st.sampled_from(["", "", " " + "12" * 20, " ", "  ", " a b"]))
_ENTRY_EDITS = st.just([]) | st.lists(st.tuples(st.sampled_from(["insert", "delete"]), st.integers(0, 200),
                                                st.sampled_from([" ", "-", "+", "_", "0", "9", "a", "\u0665", "\n"])),
                                      max_size=3)


def _entry(parts, edits):
    sha, numbers, tail = parts
    text = sha + (" " + " ".join(numbers) if numbers else "") + tail
    for kind, at, char in edits:
        at %= len(text) + 1
        text = text[:at] + char + text[at:] if kind == "insert" else text[:at] + text[at + 1:]
    return text


@settings(max_examples=300, deadline=None)
@given(entries=st.lists(st.one_of(st.tuples(_ENTRY_PARTS, _ENTRY_EDITS).map(lambda t: _entry(*t)),
                                  st.sampled_from([None, 7, [], {"stat": [1, 2, 3], "sha256": _SHA}])),
                        min_size=1, max_size=3),
       fmt=st.sampled_from(["webdataset", "shar", "nemo"]))
def test_a_hash_cache_entry_is_read_in_c_as_the_python_form_reads_it(entries, fmt):
    """The cache file as a user's disk may hold it (integrity.CACHE_VERSION's entries, well formed or
    edited: signs, leading zeros, 19 digits, non-ASCII digits, spaces, another sha256, not a string):
    the C planner trusts a clip, stats it, or leaves its line to the Python form, exactly as
    HashCache.recorded and the Python form read that entry."""
    import shutil
    import tempfile

    from persian_data.integrity import HashCache
    from persian_data.layout import Layout
    from persian_data.shards.samples import read_samples

    root = Path(tempfile.mkdtemp())
    try:
        layout = Layout(root)
        corpus = CorpusSplit("commonvoice", "train", None, root / "m.jsonl", None, None)
        lines, cached = [], {}
        for number, entry in enumerate(entries):
            audio = f"datasets/speech/x/{number}.mp3"
            (root / audio).parent.mkdir(parents=True, exist_ok=True)
            (root / audio).write_bytes(b"\1" * (number + 1))
            lines.append(orjson.dumps({"id": f"cv_{number}", "split": "train", "audio_path": audio, "duration": 1.5,
                                       "frames": 24000, "sample_rate": 16000, "channels": 1, "sha256": _SHA,
                                       "text": "سلام", "text_normalized": "سلام"}))
            cached[audio] = entry
        corpus.manifest.write_bytes(b"\n".join(lines) + b"\n")
        layout.hash_cache.parent.mkdir(parents=True, exist_ok=True)
        layout.hash_cache.write_bytes(orjson.dumps({"version": 2, "entries": cached, "memo": {}}))
        cache = HashCache(layout.hash_cache, root)
        taken = {"bytes": 0, "dict": 0}

        def planned(forms):
            planner = _counted_planner(fmt, corpus, cache, forms, taken) if forms else None
            samples = read_samples(layout, corpus, cache, describer(fmt, corpus), planner)
            return [tuple(getattr(sample, name) for name in _FIELDS) for sample in samples]

        compiled = planned(("bytes", "dict"))
        event(f"lines planned in C: {taken['bytes']} of {len(entries)}")
        assert compiled == planned(("dict",)) == planned(())
        for sample, entry in zip(compiled, entries):
            known = cache.recorded(sample[1])
            assert sample[8] is (known is not None and known[0] == _SHA)  # trusted
            if isinstance(entry, str) and entry == f"{_SHA} 1 2 3":
                assert sample[7] == (1, 2, 3) and taken["bytes"]
    finally:
        shutil.rmtree(root)


def test_a_prepared_common_voice_line_takes_the_c_path(tmp_path):
    """The real shape of a prepared Common Voice line is planned in C from its bytes (not left to
    the dict form or the Python form), vouched for by the hash cache or stat'ed, with the Python
    form's sample."""
    from persian_data.integrity import Digests, HashCache

    line = {"id": "common_voice_fa_1", "split": "train", "audio_path": "datasets/speech/x/a.mp3", "duration": 2.575,
            "frames": 123600, "sample_rate": 48000, "channels": 1, "sha256": "ab" * 32, "text": "سلام\u200cدنیا.",
            "text_normalized": "سلام\u200cدنیا.", "client_id": "7a9b", "path": "a.mp3", "up_votes": 9,
            "down_votes": 0, "age": "thirties", "gender": " Male", "accent": "", "locale": "fa", "segment": "",
            "variant": ""}
    clip = tmp_path / line["audio_path"]
    clip.parent.mkdir(parents=True)
    clip.write_bytes(b"\1" * 1000)
    corpus = CorpusSplit("commonvoice", "train", None, tmp_path / "m.jsonl", "client_id", "gender")
    for vouched in (False, True):
        cache = HashCache(tmp_path / "cache", tmp_path)
        if vouched:
            cache.put(clip, Digests(line["sha256"]))
        for fmt in ("webdataset", "shar", "nemo"):
            from_bytes, from_line = line_planner(fmt, corpus, f"{tmp_path}/", cache, set())
            sample = from_bytes(orjson.dumps(line) + b"\n", 1)
            assert sample is not None and sample.trusted is vouched and sample.size == 1000
            from_dict = line_planner(fmt, corpus, f"{tmp_path}/", cache, set())[1](line, 1)
            assert [getattr(from_dict, name) for name in _FIELDS] == [getattr(sample, name) for name in _FIELDS]
            reference = Sample(line["id"], str(clip), "mp3", line["sha256"], 2.575, 1, 1000, sample.stat, vouched)
            describer(fmt, corpus)(reference, line)
            assert [getattr(sample, name) for name in _FIELDS] == [getattr(reference, name) for name in _FIELDS]
            doc = orjson.loads(sample.members[0][1] if fmt == "webdataset" else
                               sample.extra + b"}" if fmt == "nemo" else sample.extra)
            assert doc["id"] == line["id"] and math.isclose(doc["duration"], 2.575)
            assert ((doc["speaker"], doc["gender"]) if fmt != "shar" else
                    (doc["supervisions"][0]["speaker"], doc["supervisions"][0]["gender"])) == ("7a9b", "male")


_PLAIN = (b'{"id":"cv_1","split":"train","audio_path":"datasets/speech/x/a.mp3","duration":2.5,"frames":120000,'
          b'"sample_rate":48000,"channels":1,"sha256":"' + b"ab" * 32 + b'","text":"\xd8\xb3\xd9\x84\xd8\xa7\xd9\x85",'
          b'"text_normalized":"\xd8\xb3\xd9\x84\xd8\xa7\xd9\x85","client_id":"7a9b","up_votes":9,"gender":"male"}')


@pytest.mark.parametrize("raw, taken", [
    (_PLAIN, True),
    (b"  " + _PLAIN.replace(b",", b" ,\t").replace(b":", b" : ") + b" \r\n", True),  # white space anywhere
    (_PLAIN.replace(b'"duration":2.5', b'"duration":2.50'), True),  # read to the same double: written by render
    (_PLAIN.replace(b'"up_votes":9', b'"up_votes":9.50'), False),  # a source column as written: orjson's form only
    (_PLAIN.replace(b'"up_votes":9', b'"up_votes":-0'), False),
    (_PLAIN.replace(b'"duration":2.5', b'"duration":2.5e0'), False),  # exponents: repr's and orjson's differ
    (_PLAIN.replace(b'"up_votes":9', b'"up_votes":12345678901234567890'), False),
    (_PLAIN.replace(b'"up_votes":9', b'"up_votes":[9]'), False),
    (_PLAIN.replace(b'"client_id":"7a9b"', b'"client_id":"7a\\u0039b"'), False),  # an escape
    (_PLAIN.replace(b'"7a9b"', b'"7a9b","client_id":"again"'), False),  # a duplicate key (orjson keeps the last)
    (_PLAIN.replace(b"7a9b", b"7a\xed\xa0\x80"), False),  # a surrogate, as bytes: not UTF-8
    (_PLAIN.replace(b"7a9b", b"7a\xc0\x80"), False),  # an overlong encoding
    (_PLAIN.replace(b"7a9b", b"7a\x01"), False),  # a raw control character
    (_PLAIN + b"{}", False),  # more after the object
    (_PLAIN[:-1], False),  # cut short
    (b"", False),
])
def test_a_line_is_planned_from_its_bytes_only_as_orjson_would_read_and_write_it(tmp_path, raw, taken):
    """shard_raw takes a line written as orjson writes it (white space aside), and gives None for any
    line whose values it could not put as written (the dict way then plans it, or names it): its
    sample is always the dict form's and the Python form's."""
    from persian_data.integrity import HashCache

    clip = tmp_path / "datasets/speech/x/a.mp3"
    clip.parent.mkdir(parents=True)
    clip.write_bytes(b"\1" * 1000)
    corpus = CorpusSplit("commonvoice", "train", None, tmp_path / "m.jsonl", "client_id", "gender")
    cache = HashCache(tmp_path / "cache", tmp_path)
    for fmt in ("webdataset", "shar", "nemo"):
        sample = line_planner(fmt, corpus, f"{tmp_path}/", cache, set())[0](raw, 7)
        assert (sample is not None) is taken
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            assert not taken
            continue
        from_line = line_planner(fmt, corpus, f"{tmp_path}/", cache, set())[1](line, 7)
        if sample is not None:
            assert [getattr(sample, name) for name in _FIELDS] == [getattr(from_line, name) for name in _FIELDS]


_JSONISH = st.sampled_from([b"a", b"7", b"0", b" ", b"\t", b"\\", b'"', b",", b":", b".", b"-", b"e", b"{", b"}",
                            b"[", b"\xd8", b"\xd8\xb3", b"\x80", b"\xed\xa0\x80", b"\x00", b"\n", b"null"])


@settings(max_examples=300, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, len(_PLAIN)), st.sampled_from(["flip", "insert", "delete"]),
                                st.one_of(_JSONISH, _JSONISH, st.binary(min_size=1, max_size=3))), min_size=1, max_size=2),
       fmt=st.sampled_from(["webdataset", "shar", "nemo"]))
def test_a_damaged_line_gets_the_dict_forms_outcome(tmp_path_factory, edits, fmt):
    """Any bytes: a prepared line with a few bytes changed, added or removed is planned from its
    bytes exactly as from its dict (and as in Python), or left to them; never a crash."""
    from persian_data.integrity import HashCache
    from persian_data.layout import Layout
    from persian_data.shards.samples import read_samples

    raw = bytearray(_PLAIN)
    for at, how, data in edits:
        at = min(at, len(raw))
        if how == "flip" and at < len(raw):
            raw[at] = data[0]
        elif how == "insert":
            raw[at:at] = data
        else:
            del raw[at:at + len(data)]
    root = tmp_path_factory.mktemp("damaged")
    (root / "datasets/speech/x").mkdir(parents=True)
    (root / "datasets/speech/x/a.mp3").write_bytes(b"\1" * 1000)
    (root / "m.jsonl").write_bytes(bytes(raw) + b"\n")
    corpus = CorpusSplit("commonvoice", "train", None, root / "m.jsonl", "client_id", "gender")
    cache = HashCache(root / "cache", root)

    def planned(forms):
        planner = _counted_planner(fmt, corpus, cache, forms, {"bytes": 0, "dict": 0}) if forms else None
        try:
            samples = read_samples(Layout(root), corpus, cache, describer(fmt, corpus), planner)
        except Exception as exc:  # noqa: BLE001  (the same error either way, whatever it is)
            return type(exc), str(exc)
        return [tuple(getattr(sample, name) for name in _FIELDS) for sample in samples]

    outcome = planned(("bytes", "dict"))
    event("samples" if isinstance(outcome, list) else outcome[0].__name__)
    assert outcome == planned(("dict",)) == planned(())
