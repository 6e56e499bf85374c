"""An eval run as the Evals pages show it: its results, the corpus its clips come from, word alignments.

`eval-stt` writes `results.json` (every figure) and `utterances.jsonl` (per utterance: ref, hyp,
both normalized, counts, and the word alignment as `[tag, ref_start, ref_end, hyp_start, hyp_end]`
blocks over the normalized words, difflib's tags). The alignment is turned into columns, one per
aligned pair, sclite style: equal, substitution (ref → hyp), deletion (ref, no hyp), insertion
(no ref, hyp).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..evaluate.score import words
from ..source import SPEECH_BUCKET, Source

KIND = {"equal": "eq", "replace": "sub", "delete": "del", "insert": "ins"}


@dataclass(frozen=True)
class Column:
    kind: str  # eq | sub | del | ins
    ref: str
    hyp: str


def read_results(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def corpus_key(results: dict[str, Any], catalog: Iterable[Source]) -> str | None:
    """The key of the speech corpus the run's clips come from: the `corpus` results.json names, when it
    is one of the root's speech corpora."""
    keys = {s.key for s in catalog if s.bucket == SPEECH_BUCKET}
    corpus = results.get("corpus")
    return corpus if isinstance(corpus, str) and corpus in keys else None


def columns(utterance: dict[str, Any]) -> list[Column]:
    """The alignment of one utterance, one column per aligned word pair."""
    ref = words(str(utterance.get("ref_normalized") or ""))
    hyp = words(str(utterance.get("hyp_normalized") or ""))
    blocks = utterance.get("alignment")
    if not isinstance(blocks, list):
        blocks = [["equal", 0, len(ref), 0, len(hyp)]] if ref == hyp else [["replace", 0, len(ref), 0, len(hyp)]]
    out: list[Column] = []
    for block in blocks:
        try:
            tag, r0, r1, h0, h1 = block
        except (TypeError, ValueError):
            continue
        kind = KIND.get(tag, "sub")
        refs, hyps = ref[r0:r1], hyp[h0:h1]
        if kind == "del":
            out += [Column("del", w, "") for w in refs]
        elif kind == "ins":
            out += [Column("ins", "", w) for w in hyps]
        else:
            for i in range(max(len(refs), len(hyps))):
                r = refs[i] if i < len(refs) else ""
                h = hyps[i] if i < len(hyps) else ""
                out.append(Column(kind if r and h else ("del" if r else "ins"), r, h))
    return out


def percent(x: Any) -> str:
    try:
        return f"{100 * float(x):.2f} %"
    except (TypeError, ValueError):
        return "-"
