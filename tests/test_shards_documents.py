"""The per-sample documents of the shard formats: the C templates write what the Python form writes.

`_speedups.render` must give orjson's bytes for any value orjson.loads can give, or None (then
the Python form runs); and a split's compiled describer must give every sample the same members,
sidecar line and tar size as the Python form, for any manifest line prepare could write (and
lines it would not: odd floats, big ints, nested source columns, control characters, surrogates).
"""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persian_data.compiled import SPEEDUPS
from persian_data.shards.corpus import CorpusSplit
from persian_data.shards.documents import describer
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
_LINES = st.fixed_dictionaries({
    "id": st.text(min_size=1, max_size=20), "duration": _VALUES, "frames": st.integers(1, 2**40),
    "sample_rate": st.sampled_from([8000, 16000, 48000]) | st.integers(1, 2**20),
    "channels": st.none() | st.integers(0, 3) | st.sampled_from([1.0, "2"]),
    "sha256": _TEXT, "text": _TEXT, "text_normalized": _TEXT,
}, optional={"speaker_id": _VALUES, "gender": _VALUES, "Gender": _TEXT}).flatmap(
    lambda line: st.dictionaries(_KEYS, _VALUES, max_size=5).map(lambda extra: {**line, **extra}))


@settings(max_examples=300, deadline=None)
@given(line=_LINES, fmt=st.sampled_from(["webdataset", "shar", "nemo"]),
       columns=st.sampled_from([(None, None), ("speaker_id", "gender"), ("client_id", "Gender")]),
       ext=st.sampled_from(["mp3", "wav"]))
def test_the_compiled_documents_are_the_python_forms_bytes(line, fmt, columns, ext):
    corpus = CorpusSplit("commonvoice", "train", None, Path("m.jsonl"), *columns)

    def described(compiled: bool):
        sample = Sample(line["id"], "/r/a." + ext, ext, "", 1.0, 1, 12345, (12345, 0, 0), True)
        try:
            describer(fmt, corpus, compiled=compiled)(sample, line)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:  # orjson's refusal, int("x")
            return type(exc)
        return sample.members, sample.extra, sample.tar_bytes

    python = described(False)
    assert described(True) == python
    if not isinstance(python, type):  # what the shard holds is orjson's text of the Python form's dicts
        for name, data in python[0]:
            if data is not None:
                assert orjson.loads(data)["id"] == line["id"]


def test_a_common_voice_line_is_written_by_the_templates(monkeypatch):
    """The real shape of a prepared Common Voice line takes the compiled path (not the fallback)."""
    from persian_data.shards import documents

    line = {"id": "common_voice_fa_1", "split": "train", "audio_path": "datasets/speech/x/a.mp3", "duration": 2.575,
            "frames": 123600, "sample_rate": 48000, "channels": 1, "sha256": "ab" * 32, "text": "سلام\u200cدنیا.",
            "text_normalized": "سلام\u200cدنیا.", "client_id": "7a9b", "path": "a.mp3", "up_votes": 9,
            "down_votes": 0, "age": "thirties", "gender": "male", "accent": "", "locale": "fa", "segment": "",
            "variant": ""}
    corpus = CorpusSplit("commonvoice", "train", None, Path("m.jsonl"), "client_id", "gender")
    results = []
    monkeypatch.setattr(documents, "SPEEDUPS", _Counting(SPEEDUPS.render, results))
    for fmt in ("webdataset", "shar", "nemo"):
        sample = Sample(line["id"], "/r/a.mp3", "mp3", "", 1.0, 1, 100, (100, 0, 0), True)
        describer(fmt, corpus)(sample, line)
        assert results and None not in results
        results.clear()
        doc = orjson.loads(sample.members[0][1] if fmt == "webdataset" else
                           sample.extra + b"}" if fmt == "nemo" else sample.extra)
        assert doc["id"] == line["id"] and math.isclose(doc["duration"], 2.575)
        assert (doc["speaker"], doc["gender"]) == ("7a9b", "male") if fmt != "shar" else \
            (doc["supervisions"][0]["speaker"], doc["supervisions"][0]["gender"]) == ("7a9b", "male")


class _Counting:
    """The extension, with every `render` result kept."""

    def __init__(self, render, results: list) -> None:
        self._render, self._results = render, results

    def render(self, *args):
        result = self._render(*args)
        self._results.append(result)
        return result
