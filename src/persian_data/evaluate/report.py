"""The outputs of one evaluation: `results.json`, `utterances.jsonl`, `report.md`, the console line.

They go to `evals/<corpus>-<split>-<name>/` under the root, outside `datasets/` (so the
specification's counts and checksums never change), each written atomically.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import orjson

from ..atomic import atomic_write_bytes, atomic_writer
from ..layout import Layout
from .errors import EvalInputError
from .textnorm import RULE_HELP, RULES

EVALS = "evals"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")

# Order of the numbers in utterances.jsonl's count lists.
COUNT_FIELDS = ["correct", "substitutions", "deletions", "insertions", "reference_length"]


def evals_dir(layout: Layout) -> Path:
    return layout.root / EVALS


def safe_name(name: str) -> str:
    """A name for the output folder: letters, digits, `._+-`; anything else becomes `-`."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.")[:100]
    if not cleaned or not _NAME.match(cleaned):
        raise EvalInputError(f"--name {name!r}: use letters, digits and ._+- for the output folder name")
    return cleaned


def output_dir(layout: Layout, corpus: str, split: str, name: str) -> Path:
    return evals_dir(layout) / f"{corpus}-{split}-{name}"


def write_outputs(layout: Layout, out: Path, results: dict, utterance_rows: Iterable[dict], markdown: str) -> None:
    tmp = layout.tmp_dir
    opts = orjson.OPT_APPEND_NEWLINE
    with atomic_writer(out / "utterances.jsonl", tmp) as f:
        chunk: list[bytes] = []
        for row in utterance_rows:
            chunk.append(orjson.dumps(row, option=opts))
            if len(chunk) >= 4096:
                f.write(b"".join(chunk))
                chunk.clear()
        f.write(b"".join(chunk))
    atomic_write_bytes(out / "report.md", markdown.encode("utf-8"), tmp)
    # results.json last: its presence means the folder is complete
    atomic_write_bytes(out / "results.json", orjson.dumps(results, option=orjson.OPT_INDENT_2 | opts), tmp)


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def headline(results: dict) -> str:
    n, r = results["normalized"], results["raw"]
    b = results["bootstrap"]
    u = results["utterances"]
    extra = []
    if u["missing_hypotheses"]:
        extra.append(f"{u['missing_hypotheses']} missing hypotheses counted as deletions")
    if u["excluded_leaked"]:
        extra.append(f"{u['excluded_leaked']} leaked utterances excluded")
    tail = f" ({'; '.join(extra)})" if extra else ""
    return (f"{results['corpus']} {results['split']} [{results['name']}]: WER {_pct(n['words']['error_rate'])} "
            f"(95 % CI {_pct(b['wer'][0])}-{_pct(b['wer'][1])}), CER {_pct(n['chars']['error_rate'])} "
            f"(95 % CI {_pct(b['cer'][0])}-{_pct(b['cer'][1])}) normalized; raw WER {_pct(r['words']['error_rate'])}, "
            f"CER {_pct(r['chars']['error_rate'])}; {n['words']['utterances']:,} utterances{tail}")


def rule_lines(results: dict) -> list[str]:
    ch = results["normalizer_changes"]
    out = []
    for rule in RULES:
        ref, hyp = ch["references"][rule], ch["hypotheses"][rule]
        out.append(f"{rule} rule ({RULE_HELP[rule]}) changed {_pct(ref['fraction'])} of references, "
                   f"{_pct(hyp['fraction'])} of hypotheses")
    return out


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return out


def markdown(results: dict) -> str:
    lines = [f"# STT evaluation: {results['corpus']} {results['split']}, {results['name']}", ""]
    lines += [headline(results), ""]
    src = results["hypotheses"]
    lines += [f"Hypotheses: `{src['path']}` ({src['format']}). Manifest: `{results['manifest']}`.", ""]
    if "run" in results:
        run = results["run"]
        lines += [f"Model `{run['model']}` on {run['device']}, batch {run['batch_size']}: RTFx {run['rtfx']:.1f} "
                  f"({run['audio_seconds']:.1f} s of audio in {run['processing_seconds']:.1f} s).", ""]
    lines += ["## Scores (corpus level)", ""]
    rows = []
    for view in ("normalized", "raw"):
        for unit in ("words", "chars"):
            t = results[view][unit]
            rows.append([view, "WER" if unit == "words" else "CER", t["utterances"], t["ref"], t["correct"],
                         t["substitutions"], t["deletions"], t["insertions"], _pct(t["error_rate"]),
                         _pct(t["sentence_error_rate"])])
    # column headings; "text": which form of the text was scored, raw or normalized
    lines += _table(["text", "metric", "utterances", "ref tokens", "correct", "sub", "del", "ins", "error rate",
                     "sentence error rate"], rows)
    b = results["bootstrap"]
    lines += ["", f"95 % bootstrap interval ({b['rounds']} rounds, seed {b['seed']}): WER {_pct(b['wer'][0])} - "
              f"{_pct(b['wer'][1])}, CER {_pct(b['cer'][0])} - {_pct(b['cer'][1])}.", ""]
    u = results["utterances"]
    lines += [f"Utterances in the manifest: {u['manifest']}; scored: {u['scored']}; missing hypotheses (scored as "
              f"deletions): {u['missing_hypotheses']}; unknown ids left out: {u['unknown_ids']}; repeated ids: "
              f"{u['duplicate_ids']}; leaked and excluded: {u['excluded_leaked']}.", ""]
    lines += ["## What the normalizer changed", ""]
    ch = results["normalizer_changes"]
    lines += _table(["rule", "what", "references", "hypotheses"],
                    [[r, RULE_HELP[r], _pct(ch["references"][r]["fraction"]), _pct(ch["hypotheses"][r]["fraction"])]
                     for r in RULES])
    lines += ["", "## Breakdowns (normalized)", ""]
    for col, rows_ in results["breakdowns"].items():
        lines += [f"### {col}", ""]
        lines += _table([col, "utterances", "words", "WER", "CER"],
                        [[r["value"], r["utterances"], r["words"], _pct(r["wer"]), _pct(r["cer"])] for r in rows_])
        lines += [""]
    top = results["top_errors"]
    lines += ["## Top substitutions", ""]
    lines += _table(["reference", "hypothesis", "count"], [[s["ref"], s["hyp"], s["count"]] for s in top["substitutions"]])
    lines += ["", "## Most-missed words (deleted or substituted)", ""]
    lines += _table(["word", "count"], [[s["word"], s["count"]] for s in top["missed_words"]])
    lines += ["", "## Leakage", ""]
    lk = results["leakage"]
    lines += [f"Clips whose normalized sentence is in a train split: {lk['sentences_in_train']} "
              f"({lk['distinct_sentences_in_train']} distinct; by corpus: {lk['sentences_in_train_by_corpus'] or {}}). "
              f"Clips by a speaker of the corpus's train split: {lk['utterances_by_train_speakers']}; by a speaker "
              f"in another split: {lk['utterances_by_speakers_in_another_split']}. Leaked in all: "
              f"{lk['leaked_utterances']} ({_pct(lk['leaked_fraction'])}). Train splits checked: "
              f"{lk['train_splits_checked']}.", ""]
    if lk["sentence_examples"]:
        lines += _table(["id", "sentence", "in train of"],
                        [[e["id"], e["text"], e["train_corpus"]] for e in lk["sentence_examples"]])
        lines += [""]
    return "\n".join(lines) + "\n"


def leakage_markdown(report: dict) -> str:
    lines = ["# Leakage between splits", ""]
    rows = [[key, s["utterances"], s["sentences_in_train"], s["distinct_sentences_in_train"],
             s["utterances_by_train_speakers"], s["leaked_utterances"], _pct(s["leaked_fraction"])]
            for key, s in report["splits"].items()]
    lines += _table(["split", "clips", "sentence in a train split", "distinct sentences", "clips by train speakers",
                     "leaked", "leaked %"], rows)
    lines += [""]
    for corpus, sp in report["speakers"].items():
        lines += [f"{corpus} speakers: {sp['speakers']}, in more than one split: {sp['in_more_than_one_split']} "
                  f"({sp['by_split_pair']}).", ""]
    return "\n".join(lines) + "\n"
