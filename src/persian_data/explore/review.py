"""The chat corpus's review examples and near-duplicate pairs, read from what `prepare text` wrote.

`combined.review.md` (prepare/chat_review.py) holds, per cleaning rule that fired, its count and a
few masked before/after examples; `combined.stats.json` holds the near-duplicate example pairs.
Both are small. The review file is read back by its own fixed structure (rule sections `## \\`key\\`:`,
`**Example n**`, `before:`/`after:` (or `dropped:` / `near-identical to ...:`) and `> ` quoted
lines); anything else in it is ignored, so an older or hand-edited file shows what it can.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_RULE_ROW = re.compile(r"^\| `([a-z_]+)` — (.*) \| (\d+) \|$")
_SECTION = re.compile(r"^## `([a-z_]+)`: (.*) \((\d+)\)$")
_EXAMPLE = re.compile(r"^\*\*Example (\d+)\*\*(?: \(Jaccard ([0-9.]+)\))?")


@dataclass
class RuleExamples:
    key: str
    description: str
    fired: int
    examples: list[dict[str, str]] = field(default_factory=list)  # before/after (or dropped/similar_to)


def _unquote(lines: list[str]) -> str:
    return "\n".join(line[2:] if line.startswith("> ") else line[1:] for line in lines)


def read_review(path: Path | None) -> list[RuleExamples]:
    """Every rule of the summary table (with its count), with the examples of those that fired."""
    if path is None:
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    rules: dict[str, RuleExamples] = {}
    current: RuleExamples | None = None
    example: dict[str, str] | None = None
    label: str | None = None
    quoted: list[str] = []

    def flush_quote() -> None:
        nonlocal quoted
        if example is not None and label and quoted:
            example[label] = _unquote(quoted)
        quoted = []

    for line in text.splitlines():
        if m := _RULE_ROW.match(line):
            rules.setdefault(m.group(1), RuleExamples(m.group(1), m.group(2), int(m.group(3))))
        elif m := _SECTION.match(line):
            flush_quote()
            current = rules.setdefault(m.group(1), RuleExamples(m.group(1), m.group(2), int(m.group(3))))
            example, label = None, None
        elif current is not None and (m := _EXAMPLE.match(line)):
            flush_quote()
            example = {"jaccard": m.group(2)} if m.group(2) else {}
            current.examples.append(example)
            label = None
        elif example is not None and line.rstrip().endswith(":") and not line.startswith(">"):
            flush_quote()
            word = line.strip().rstrip(":").lower()
            label = {"before": "before", "after": "after", "dropped": "dropped"}.get(word, "similar_to")
        elif line.startswith(">"):
            quoted.append(line)
        elif quoted and not line.strip():
            flush_quote()
    flush_quote()
    return list(rules.values())


def chat_stats(stats_path: Path | None) -> dict[str, Any]:
    """combined.stats.json as a dict ({} when absent or unreadable: the page says what is missing)."""
    if stats_path is None:
        return {}
    try:
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stats if isinstance(stats, dict) else {}


def near_duplicates(stats_path: Path | None) -> dict[str, Any]:
    """The near-duplicate counters and example pairs of combined.stats.json ({} when absent)."""
    found = (chat_stats(stats_path).get("rules") or {}).get("near_duplicates") or {}
    return found if isinstance(found, dict) else {}
