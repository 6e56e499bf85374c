"""The chat stage's statistics: what `combined.stats.json` holds, per file and for the run, and how a
file's or a piece's counts are merged into the run's."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .chat_review import REVIEW_EXAMPLES

STATS_VERSION = 1

SKIP_REASONS = (
    "not_a_list",
    "wrong_item_count",
    "non_string_field",
    "answers_not_list",
    "no_answers",
    "empty_question",
    "empty_answer",
)
RULE_SKIP_REASONS = (  # rows the cleaning rules (chat_clean) skip
    "pii",  # --pii drop: the row holds personal data
    "non_answer",  # every answer was a non-answer
    "not_persian",  # the user turn is not mostly Persian script
)


@dataclass
class FileStats:
    file: str
    bytes: int = 0
    rows_read: int = 0
    rows_converted: int = 0  # rows that gave at least one conversation (before dedup)
    conversations_written: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    answers_skipped: dict[str, int] = field(default_factory=dict)
    rows_accepted: dict[str, int] = field(default_factory=dict)  # rows kept in a tolerated form, by form
    status: str = "ok"  # or "rejected"
    error: dict[str, Any] | None = None


@dataclass
class ChatStats:
    options: dict[str, Any]
    files: list[FileStats] = field(default_factory=list)
    rows_read: int = 0
    written: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    answers_skipped: dict[str, int] = field(default_factory=dict)
    rows_accepted: dict[str, int] = field(default_factory=dict)
    characters: dict[str, int] = field(default_factory=lambda: {"system": 0, "user": 0, "assistant": 0, "total": 0})
    splits: dict[str, int] | None = None
    files_rejected: list[str] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # file name -> lines, sha256
    # the cleaning rules (chat_clean): counts only, never the personal data itself
    pii_found: dict[str, int] = field(default_factory=dict)
    pii_masked: dict[str, int] = field(default_factory=dict)
    answers_dropped: dict[str, int] = field(default_factory=dict)
    contact_lines_removed: int = 0
    answers_trimmed: int = 0
    near_duplicates: dict[str, Any] | None = None
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # for the review sample
    inputs: dict[str, str] = field(default_factory=dict)  # raw file -> sha256 (provenance: stale outputs)
    seconds: float = 0.0  # wall time; logged, not written to the stats file (reruns are identical)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATS_VERSION,
            "written": self.written,
            "rows_read": self.rows_read,
            "duplicates": self.duplicates,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": sum(self.skipped.values()),
            "answers_skipped": dict(sorted(self.answers_skipped.items())),
            "rows_accepted": dict(sorted(self.rows_accepted.items())),
            "characters": self.characters,
            "splits": self.splits,
            "files_rejected": self.files_rejected,
            "outputs": self.outputs,
            "rules": {
                "pii": {"mode": self.options.get("pii"), "found": dict(sorted(self.pii_found.items())),
                        "masked": dict(sorted(self.pii_masked.items())),
                        "conversations_dropped": self.skipped.get("pii", 0)},
                "answers_dropped": dict(sorted(self.answers_dropped.items())),
                "answers_trimmed": self.answers_trimmed,
                "contact_lines_removed": self.contact_lines_removed,
                "non_answer_rows_dropped": self.skipped.get("non_answer", 0),
                "not_persian_rows_dropped": self.skipped.get("not_persian", 0),
                "near_duplicates": self.near_duplicates,
            },
            "files": [
                {**asdict(f), "skipped": dict(sorted(f.skipped.items())),
                 "answers_skipped": dict(sorted(f.answers_skipped.items())),
                 "rows_accepted": dict(sorted(f.rows_accepted.items()))}
                for f in self.files
            ],
            "options": self.options,
            "inputs": self.inputs,
        }


def _add(d: dict[str, int], key: str, n: int = 1) -> None:
    d[key] = d.get(key, 0) + n


def _merge_tally(stats: ChatStats, tally: tuple) -> None:
    """One piece's rule counts and examples (`PieceTally.as_tuple`) into the run's."""
    found, masked, dropped, contact_lines, trimmed, examples = tally
    for k, v in found.items():
        _add(stats.pii_found, k, v)
    for k, v in masked.items():
        _add(stats.pii_masked, k, v)
    for k, v in dropped.items():
        _add(stats.answers_dropped, k, v)
    stats.contact_lines_removed += contact_lines
    stats.answers_trimmed += trimmed
    for rule, items in examples.items():
        got = stats.examples.setdefault(rule, [])
        got.extend(items[:max(0, REVIEW_EXAMPLES - len(got))])


def _merge(stats: ChatStats, fs: FileStats) -> None:
    stats.rows_read += fs.rows_read
    stats.written += fs.conversations_written
    stats.duplicates += fs.duplicates
    for k, v in fs.skipped.items():
        _add(stats.skipped, k, v)
    for k, v in fs.answers_skipped.items():
        _add(stats.answers_skipped, k, v)
    for k, v in fs.rows_accepted.items():
        _add(stats.rows_accepted, k, v)


def _fmt(d: dict[str, int]) -> str:
    return " (" + ", ".join(f"{k} {v}" for k, v in sorted(d.items())) + ")" if d else ""
