"""The one-load path of a chat-json piece (`_parse_whole`) gives what the row-by-row path gives.

Pieces are cut from real-shaped files (`[title, question, answers, keywords]` rows, written by
`json.dump` with and without `ensure_ascii`), at the places `_pieces` cuts and at arbitrary bytes
(a cut inside a row or a string), and from files damaged in the ways raw files are: whatever the
one-load path accepts, the exact path must read as "ok" with equal rows.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persian_data.corpora.chat_pieces import _parse_rows, _parse_whole, _Piece

_TEXT = st.text(alphabet=st.sampled_from(list("سلام ماده ۱۲۳ 0912 \u200c\"\\/\n\t]],[{}") + ["\ud800", "\x01", "é"]),
                max_size=12)
_SCALAR = st.one_of(_TEXT, st.integers(-(2 ** 70), 2 ** 70), st.floats(allow_nan=True), st.booleans(), st.none())
_ROW = st.one_of(
    st.tuples(_TEXT, _TEXT, st.lists(st.one_of(_TEXT, _SCALAR), max_size=3), st.lists(_TEXT, max_size=2)).map(list),
    st.lists(_SCALAR, max_size=4),
    st.dictionaries(_TEXT, _SCALAR, max_size=3),
    _SCALAR,
)


def _agrees(data: bytes, first: bool, last: bool) -> None:
    fast = _parse_whole(data, first, last)
    if fast is None:
        return
    exact = _parse_rows(_Piece(0, data, first, last))
    assert exact.status == "ok", (data, exact.status, exact.reason)
    assert json.dumps(fast) == json.dumps(exact.rows)  # equal values (NaN-proof), same types and order


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_ROW, max_size=6), ascii_=st.booleans(), sep=st.sampled_from([", ", ",", ",\n", " , "]),
       cuts=st.lists(st.integers(0, 10_000), max_size=4), data=st.data())
def test_one_load_agrees_with_row_by_row(rows, ascii_, sep, cuts, data):
    text = "[" + sep.join(json.dumps(r, ensure_ascii=ascii_) for r in rows) + "]" + data.draw(st.sampled_from(["", "\n", " x"]))
    raw = text.encode("utf-8", "surrogatepass")
    # a damaged byte here and there: truncation, a flipped bracket, invalid UTF-8
    if data.draw(st.booleans()) and raw:
        at = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + data.draw(st.sampled_from([b"", b"]", b"[", b",", b"\xff", b'"'])) + raw[at + 1:]
    bounds = sorted({0, len(raw), *(c % (len(raw) + 1) for c in cuts)})
    # where `_pieces` cuts (right after each row separator) and arbitrary bytes
    for m in __import__("re").finditer(rb"\]\][ \t\r\n]*,[ \t\r\n]*(?=\[)|\}[ \t\r\n]*,[ \t\r\n]*(?=\{)", raw):
        bounds.append(m.end())
    bounds = sorted(set(bounds))
    for lo, hi in zip(bounds, bounds[1:]):
        _agrees(raw[lo:hi], lo == 0, hi == len(raw))
    for lo in bounds:
        for hi in bounds:
            if lo < hi:
                _agrees(raw[lo:hi], lo == 0, hi == len(raw))


def test_what_the_one_load_path_leaves_to_the_exact_one():
    # accepted: rows each followed by a comma, or by the array's end in the last piece
    assert _parse_whole(b'[["a", "b", ["c"], []], ', True, False) == [["a", "b", ["c"], []]]
    assert _parse_whole(b'["a", "b", ["c"], []]]\n', False, True) == [["a", "b", ["c"], []]]
    assert _parse_whole(b" [ ]", True, True) == []
    # left to the exact path, which says what is wrong
    for data, first, last in [
        (b'[["a", "b", [["c"]], ', True, False),  # a cut inside a row
        (b'["a", "b]], ', False, False),  # a cut inside a string
        (b"\xef\xbb\xbf[]", True, True),  # a BOM
        (b'["a", "b", ["c"], []], ]', False, True),  # a trailing comma
        (b'[["a\x01", "b", ["c"], []]]', True, True),  # a raw control character (json reads it)
        (b'[["\\ud800", "b", ["c"], []]]', True, True),  # a lone surrogate (json reads it)
        (b"[[NaN, 1e999, 123456789012345678901234567890]]", True, True),
        (b",", False, False),
    ]:
        assert _parse_whole(data, first, last) is None, data
