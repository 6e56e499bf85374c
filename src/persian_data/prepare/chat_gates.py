"""The chat stage's gate: each chat corpus's combined.jsonl (and train/valid) as its stats say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from ..catalog import CHAT_BUCKET, CHAT_SOURCE, Source
from ..gates import GateFailure, GateNote, gate
from ..layout import Layout
from .chat_convert import check_conversation

_MAX_LISTED = 5


def _check_jsonl(ctx, path: Path, expected: int | None, what: str, recorded: dict | None,
                 parse: bool) -> list[GateFailure]:
    """One chat output against what the stage recorded while writing it.

    Normal runs: the file's sha256 must be the one the stage took while writing (from the run's
    hash cache: a stat(), or a real hash when the file changed since) and its line count is the
    stats'. `verify` (parse) also reads every line and checks the exact schema."""
    layout = ctx if isinstance(ctx, Layout) else ctx.layout
    rel = layout.relative(path)
    fails: list[GateFailure] = []
    sha = recorded.get("sha256") if isinstance(recorded, dict) else None
    if isinstance(sha, str) and expected is not None and recorded.get("lines") != expected:
        fails.append(GateFailure("chat", rel, f"the stats record {recorded.get('lines')} lines written "
                                              f"but {expected} {what}"))
    if isinstance(sha, str) and not isinstance(ctx, Layout):
        got = ctx.sha256(path)
        if got != sha:
            fails.append(GateFailure("chat", rel, f"sha256 is {got}, but `prepare text` wrote {sha}: "
                                                  "the file changed since; rerun `persian-data prepare text`"))
            parse = True  # say what is wrong with it, too
        elif not parse:
            return fails  # the bytes the stage wrote and validated, line by line, as it produced them
    bad = 0
    n = 0
    if not parse:  # stats from an older version (no recorded hash): count lines, no JSON work
        with open(path, "rb") as fh:
            n = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 22), b""))
        if expected is not None and n != expected:
            fails.append(GateFailure("chat", rel, f"{n} lines, but the stats say {expected} {what}"))
        return fails
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            try:
                problem = check_conversation(orjson.loads(line))
            except orjson.JSONDecodeError as e:
                problem = f"not valid JSON ({e})"
            if problem is not None:
                bad += 1
                if bad <= _MAX_LISTED:
                    fails.append(GateFailure("chat", rel, f"line {n}: {problem}"))
    if bad > _MAX_LISTED:
        fails.append(GateFailure("chat", rel, f"{bad} bad lines in all (first {_MAX_LISTED} listed)"))
    if expected is not None and n != expected:
        fails.append(GateFailure("chat", rel, f"{n} lines, but the stats say {expected} {what}"))
    return fails


def _chat_sources(sources) -> list[Source]:
    return [s for s in sources if s.bucket == CHAT_BUCKET]


@gate("chat", stage=CHAT_BUCKET,
      markers=lambda layout, sources: [p for s in _chat_sources(sources)
                                       for p in (layout.chat_combined(s), layout.chat_stats(s))])
def chat_gates(ctx) -> list[GateFailure | GateNote]:
    """For each chat corpus: combined.jsonl exists, is non-empty, holds the bytes and line count
    `prepare text` recorded; the same for train/valid when the stats list a split. `verify` also
    parses every line with the exact schema; other runs cost a stat() per output (the stage
    validated each line as it wrote it). `ctx`: the run's GateContext, or a Layout (the
    specification's corpus, thorough)."""
    sources = [CHAT_SOURCE] if isinstance(ctx, Layout) else _chat_sources(ctx.sources)
    return [f for source in sources for f in _gate_source(ctx, source)]


def _gate_source(ctx, source: Source) -> list[GateFailure | GateNote]:
    layout = ctx if isinstance(ctx, Layout) else ctx.layout
    parse = isinstance(ctx, Layout) or ctx.thorough
    if not source.reader.data_files(layout.content_dir(source)):
        return []  # the corpus is not there: nothing to check
    combined = layout.chat_combined(source)
    rel = layout.relative(combined)
    if not combined.is_file():
        return [GateFailure("chat", rel, "missing; run `persian-data prepare text`")]
    if combined.stat().st_size == 0:
        return [GateFailure("chat", rel, "empty")]
    fails: list[GateFailure | GateNote] = []
    stats_path = layout.chat_stats(source)
    stats: dict[str, Any] | None = None
    try:
        stats = orjson.loads(stats_path.read_bytes())
        if not isinstance(stats, dict) or not isinstance(stats.get("written"), int):
            raise ValueError("no integer 'written'")
    except FileNotFoundError:
        fails.append(GateFailure("chat", layout.relative(stats_path), "missing; rerun `persian-data prepare text`"))
        stats = None
    except (orjson.JSONDecodeError, ValueError) as e:
        fails.append(GateFailure("chat", layout.relative(stats_path), f"unreadable: {e}"))
        stats = None
    outputs = (stats or {}).get("outputs")
    outputs = outputs if isinstance(outputs, dict) else {}
    fails += _check_jsonl(ctx, combined, stats["written"] if stats else None, "written",
                          outputs.get(combined.name), parse)
    splits = (stats or {}).get("splits")
    if isinstance(splits, dict):
        for name in ("train", "valid"):
            p = layout.chat_split(name, source)
            if not p.is_file():
                fails.append(GateFailure("chat", layout.relative(p), "missing, but the stats list a split"))
                continue
            fails += _check_jsonl(ctx, p, splits.get(name), f"in {name}", outputs.get(p.name), parse)
    return fails
