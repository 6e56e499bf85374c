"""The review sample beside the chat corpus: ``combined.review.md``.

For each cleaning rule that fired, how many times and a handful of before/after examples, so a
person can judge the rules in two minutes. Everything shown is masked: the workers take the
examples after the PII masker ran, and a PII example shows the text with each span replaced by
its placeholder, in bold (where the data was), never the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes
from ..layout import Layout

REVIEW_EXAMPLES = 5  # per rule

RULES = {  # example key -> what the rule does
    "pii_mask": "personal data masked (typed placeholders)",
    "pii_drop": "conversation or answer dropped: it holds personal data (--pii drop)",
    "not_persian": "conversation dropped: the question is not mostly Persian script",
    "answer_not_persian": "answer dropped: not mostly Persian script",
    "answer_contact_removed": "contact / advertising lines cut out of an answer (the advice stays)",
    "answer_contact_only": "answer dropped: only a contact line or solicitation",
    "answer_referral_only": "answer dropped: only a referral (\"consult a lawyer\")",
    "answer_no_content": "answer dropped: greetings only, no content",
    "answer_too_short": "answer dropped: shorter than --min-answer-chars once masked",
    "near_duplicate": "question collapsed: near-identical to a kept one (Jaccard >= 0.8 on word 3-grams)",
}


def review_path(layout: Layout, source=None) -> Path:
    """`source`: a chat corpus (default: the specification's)."""
    return layout.chat_combined(source).with_name("combined.review.md")


def _quote(text: str) -> str:
    return "\n".join("> " + line if line.strip() else ">" for line in text.replace("\r", "").split("\n"))


def render_review(stats) -> str:
    rules = stats.to_json()["rules"]
    counts: dict[str, int] = {
        "pii_mask": sum(stats.pii_masked.values()),
        "pii_drop": rules["pii"]["conversations_dropped"] + stats.answers_dropped.get("pii", 0),
        "not_persian": stats.skipped.get("not_persian", 0),
        "answer_not_persian": stats.answers_dropped.get("not_persian", 0),
        "answer_contact_removed": stats.answers_trimmed,
        "near_duplicate": (stats.near_duplicates or {}).get("rows_collapsed", 0),
    }
    for reason in ("contact_only", "referral_only", "no_content", "too_short"):
        counts[f"answer_{reason}"] = stats.answers_dropped.get(reason, 0)
    out = ["# Chat corpus: review sample", "",
           f"{stats.written} conversations written from {stats.rows_read} rows. Options: "
           f"pii={stats.options.get('pii')}, min_answer_chars={stats.options.get('min_answer_chars')}, "
           f"near_dup={stats.options.get('near_dup')}, script_check={stats.options.get('script_check')}, "
           f"answer_rules={stats.options.get('answer_rules')}.", "",
           "Every text below is masked: personal data appears only as its **[PLACEHOLDER]**.", "",
           "| rule | fired |", "|---|---|"]
    fired = [k for k in RULES if counts.get(k)]
    for key in RULES:
        out.append(f"| `{key}` — {RULES[key]} | {counts.get(key, 0)} |")
    if stats.pii_masked:
        out += ["", "Personal data masked, by type: "
                + ", ".join(f"{k} {v}" for k, v in sorted(stats.pii_masked.items()))]
    for key in fired:
        out += ["", f"## `{key}`: {RULES[key]} ({counts[key]})", ""]
        if key == "near_duplicate":
            for n, ex in enumerate((stats.near_duplicates or {}).get("examples", []), 1):
                out += [f"**Example {n}** (Jaccard {ex['jaccard']})", "", "dropped:", "", _quote(ex["dropped"]), "",
                        "near-identical to (the group keeps its smallest digest):", "", _quote(ex["similar_to"]), ""]
            continue
        for n, ex in enumerate(stats.examples.get(key, [])[:REVIEW_EXAMPLES], 1):
            out += [f"**Example {n}**", "", "before:", "", _quote(ex["before"]), "", "after:", "",
                    _quote(ex["after"]), ""]
    return "\n".join(out).rstrip() + "\n"


def write_review(layout: Layout, stats, on_placed=None, source=None) -> None:
    atomic_write_bytes(review_path(layout, source), render_review(stats).encode("utf-8"), layout.tmp_dir,
                       on_placed=on_placed)
