"""`persian-data eval-stt`: score mode, run mode and the leakage report, tied together.

Score mode reads a hypotheses file; run mode (`transcribe`) writes one and then scores it the same
way. Every input is checked before anything is written, so bad input leaves no folder behind.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..catalog import Source, root_sources
from ..layout import Layout
from . import report as rep
from .errors import EvalInputError
from .hypotheses import Hypotheses, match, read_hypotheses
from .leakage import build_index, overview, split_leakage
from .references import EVAL_SPLITS, References, load_references, source as speech_source
from .score import align_chars, align_words, alignment, bootstrap, breakdown, duration_labels, top_errors
from .textnorm import RULES, SHARED_CONFIG, normalize_pairs

log = logging.getLogger("persian_data.evaluate")


@dataclass
class ScoreOptions:
    name: str | None = None
    bootstrap_rounds: int = 1000
    seed: int = 0
    exclude_leaked: bool = False
    allow_unknown_ids: bool = False
    limit: int | None = None


@contextmanager
def paused_gc():
    """No cyclic garbage collection while scoring. Scoring keeps ~10^6 small lists, tuples and
    strings alive (tokens, alignments) and makes no reference cycles; the collector would rescan
    them again and again as they pile up: about a third of the alignment time on 100,000 clips."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _check_split(split: str) -> None:
    if split not in EVAL_SPLITS:
        raise EvalInputError(f"--split must be one of {', '.join(EVAL_SPLITS)}, not {split!r}")


def load_split(layout: Layout, source: Source, split: str, limit: int | None) -> References:
    _check_split(split)
    refs = load_references(layout, source, split)
    if limit is not None:
        refs = refs.subset(list(range(min(limit, len(refs)))))
    return refs


def score_hypotheses_file(layout: Layout, source: Source, split: str, path: Path, options: ScoreOptions,
                          sources=None) -> dict:
    """Score mode: read and check everything, then score and write the outputs. `sources`: the
    root's (for the leakage index; default: the five and its persian-data.toml's)."""
    with paused_gc():
        refs = load_split(layout, source, split, options.limit)
        hyps = read_hypotheses(path)
        name = rep.safe_name(options.name or Path(path).stem)
        return score(layout, refs, hyps, name, options, sources=sources)


def score(layout: Layout, refs: References, hyps: Hypotheses, name: str, options: ScoreOptions,
          run_info: dict | None = None, sources=None) -> dict:
    with paused_gc():
        return _score(layout, refs, hyps, name, options, run_info,
                      sources if sources is not None else root_sources(layout.root))


def _score(layout: Layout, refs: References, hyps: Hypotheses, name: str, options: ScoreOptions,
           run_info: dict | None, sources) -> dict:
    matched = match(hyps, refs, allow_unknown=options.allow_unknown_ids)
    out_dir = rep.output_dir(layout, refs.corpus, refs.split, name)
    t0 = time.perf_counter()
    ref_norm, hyp_norm = normalize_pairs(refs.texts, matched.texts)
    index = build_index(layout, sources, loaded=refs)
    leak_section, leaked = split_leakage(index, refs, ref_norm.texts)
    keep = ~leaked if options.exclude_leaked else None

    raw_w = align_words(refs.texts, matched.texts).counts
    raw_c = align_chars(refs.texts, matched.texts)
    aligned = align_words(ref_norm.texts, hyp_norm.texts, keep_ops=True, single_spaced=True)
    norm_w = aligned.counts
    norm_c = align_chars(ref_norm.texts, hyp_norm.texts)
    boot = bootstrap(norm_w, norm_c, rounds=options.bootstrap_rounds, seed=options.seed, keep=keep)

    breakdowns = {col: breakdown(refs.columns[col], norm_w, norm_c, keep) for col in refs.breakdown}
    breakdowns["duration"] = breakdown(duration_labels(refs.durations), norm_w, norm_c, keep)
    n_present = sum(matched.present)
    results = {
        "corpus": refs.corpus, "split": refs.split, "name": name,
        "manifest": layout.relative(refs.manifest) if refs.manifest.is_relative_to(layout.root) else str(refs.manifest),
        "hypotheses": {"path": str(hyps.path), "format": hyps.format},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tool": {"persian_data": __version__, "edit_distance": "rapidfuzz Levenshtein (jiwer 4's counts)"},
        "wer": norm_w.total(keep)["error_rate"], "cer": norm_c.total(keep)["error_rate"],
        "wer_raw": raw_w.total(keep)["error_rate"], "cer_raw": raw_c.total(keep)["error_rate"],
        "normalized": {"words": norm_w.total(keep), "chars": norm_c.total(keep)},
        "raw": {"words": raw_w.total(keep), "chars": raw_c.total(keep)},
        "bootstrap": boot,
        "utterances": {"manifest": len(refs), "scored": int(keep.sum()) if keep is not None else len(refs),
                       "with_hypothesis": n_present, "missing_hypotheses": len(matched.missing),
                       "unknown_ids": len(matched.unknown), "duplicate_ids": len(matched.duplicates),
                       "hypotheses_beyond_limit": matched.beyond_limit,
                       "excluded_leaked": int(leaked.sum()) if options.exclude_leaked else 0,
                       **{k: v for k, v in matched.summary().items() if k.endswith("examples")}},
        "normalizer": {"shared_config": SHARED_CONFIG.__dict__, "rules": list(RULES),
                       "zwnj": "joined: ZWNJ deleted after the shared affix rules (see textnorm.py)"},
        "normalizer_changes": {
            "references": {r: {"texts": ref_norm.changed[r], "fraction": ref_norm.changed[r] / max(len(refs), 1)}
                           for r in RULES},
            "hypotheses": {r: {"texts": hyp_norm.changed[r], "fraction": hyp_norm.changed[r] / max(n_present, 1)}
                           for r in RULES}},
        "breakdowns": breakdowns,
        "top_errors": top_errors(aligned, keep),
        "leakage": leak_section,
        "utterances_format": {"raw/normalized words/chars": rep.COUNT_FIELDS,
                              "alignment": "normalized words, blocks [tag, ref_start, ref_end, hyp_start, hyp_end] with "
                                           "difflib tags equal/replace/delete/insert (jiwer: substitute for replace)"},
    }
    if run_info is not None:
        results["run"] = run_info
    rows = _utterance_rows(refs, matched, ref_norm.texts, hyp_norm.texts, raw_w, raw_c, norm_w, norm_c, aligned.ops,
                           leaked)
    rep.write_outputs(layout, out_dir, results, rows, rep.markdown(results))
    results["output_dir"] = str(out_dir)
    log.debug("scored %d utterances in %.2f s", len(refs), time.perf_counter() - t0)
    return results


def _utterance_rows(refs, matched, ref_n, hyp_n, raw_w, raw_c, norm_w, norm_c, ops, leaked):
    """utterances.jsonl, one row at a time (a list of 100,000 dicts would cost hundreds of MB)."""
    step = 4096
    for start in range(0, len(refs.ids), step):
        sl = slice(start, start + step)

        def cols(c):
            return list(zip(c.hits[sl].tolist(), c.subs[sl].tolist(), c.dels[sl].tolist(), c.ins[sl].tolist(),
                            c.ref_len[sl].tolist()))

        rw, rc, nw, nc = cols(raw_w), cols(raw_c), cols(norm_w), cols(norm_c)
        leaked_l = leaked[sl].tolist()
        for j, k in enumerate(range(start, min(start + step, len(refs.ids)))):
            yield {"id": refs.ids[k], "ref": refs.texts[k], "hyp": matched.texts[k], "ref_normalized": ref_n[k],
                   "hyp_normalized": hyp_n[k], "missing": not matched.present[k], "leaked": leaked_l[j],
                   "raw": {"words": rw[j], "chars": rc[j]}, "normalized": {"words": nw[j], "chars": nc[j]},
                   "alignment": alignment(nw[j][4], ops[k])}


def print_summary(results: dict, stream=None) -> None:
    stream = stream or sys.stderr
    for line in rep.rule_lines(results):
        print(line, file=stream)
    u = results["utterances"]
    if u["missing_hypotheses"]:
        print(f"warning: {u['missing_hypotheses']} clip(s) have no hypothesis (e.g. {', '.join(u['missing_examples'])}); "
              f"scored as deletions", file=stream)
    if u["unknown_ids"]:
        print(f"warning: {u['unknown_ids']} unknown id(s) left out (e.g. {', '.join(u['unknown_examples'])})",
              file=stream)
    if u["hypotheses_beyond_limit"]:
        print(f"note: {u['hypotheses_beyond_limit']} hypothesis(es) for clips past --limit were not scored",
              file=stream)
    if u["duplicate_ids"]:
        print(f"warning: {u['duplicate_ids']} id(s) repeated with the same text, counted once", file=stream)
    lk = results["leakage"]
    print(f"leakage: {lk['sentences_in_train']} clip(s) with a train sentence, {lk['utterances_by_train_speakers']} "
          f"by a train speaker ({lk['leaked_utterances']} in all)", file=stream)
    print(rep.headline(results))
    print(f"wrote {results['output_dir']}/", file=stream)


def leakage_report(layout: Layout, sources) -> dict:
    """`eval-stt --leakage`: writes evals/leakage.json and evals/leakage.md; returns the report."""
    report = overview(layout, sources, build_index(layout, sources))
    if not report["splits"]:
        raise EvalInputError(f"{layout.root}: no speech manifests; run `persian-data prepare speech` first")
    import orjson

    from ..atomic import atomic_write_bytes

    out = rep.evals_dir(layout)
    atomic_write_bytes(out / "leakage.md", rep.leakage_markdown(report).encode("utf-8"), layout.tmp_dir)
    atomic_write_bytes(out / "leakage.json", orjson.dumps(report, option=orjson.OPT_INDENT_2), layout.tmp_dir)
    return report


def print_leakage(report: dict, layout: Layout) -> None:
    for key, s in report["splits"].items():
        print(f"{key}: {s['sentences_in_train']} of {s['utterances']} clip(s) have a train sentence, "
              f"{s['utterances_by_train_speakers']} are by a train speaker; leaked {100 * s['leaked_fraction']:.2f} %")
    for corpus, sp in report["speakers"].items():
        print(f"{corpus} speakers in more than one split: {sp['in_more_than_one_split']} of {sp['speakers']} "
              f"{sp['by_split_pair']}")
    print(f"wrote {rep.evals_dir(layout)}/leakage.json and leakage.md", file=sys.stderr)



def _setup_logging(verbose: bool) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s",
                            stream=sys.stderr)


def eval_stt(layout: Layout, args, sources=None) -> int:
    """The `eval-stt` command (flags as `persian_data.cli` parses them); `sources`: the root's (the
    five and the corpora it declares)."""
    _setup_logging(getattr(args, "verbose", False))
    sources = sources if sources is not None else root_sources(layout.root)
    if args.leakage:
        print_leakage(leakage_report(layout, sources), layout)
        return 0
    source = speech_source(args.corpus, sources)
    if args.bootstrap < 0:
        raise EvalInputError("--bootstrap must be 0 or more")
    if args.limit is not None and args.limit < 1:
        raise EvalInputError("--limit must be 1 or more")
    options = ScoreOptions(name=args.name, bootstrap_rounds=args.bootstrap, seed=args.seed,
                           exclude_leaked=args.exclude_leaked, allow_unknown_ids=args.allow_unknown_ids,
                           limit=args.limit)
    if args.hypotheses is not None:
        results = score_hypotheses_file(layout, source, args.split, args.hypotheses, options, sources)
    else:
        from .transcribe import RunOptions, default_name, transcribe

        if args.batch_size < 1:
            raise EvalInputError("--batch-size must be 1 or more")
        run = RunOptions(model=args.model, device=args.device, batch_size=args.batch_size, token=args.token)
        refs = load_split(layout, source, args.split, options.limit)
        name = rep.safe_name(options.name or default_name(args.model))
        hyps, run_info = transcribe(layout, refs, run, name)
        results = score(layout, refs, hyps, name, options, run_info, sources)
    print_summary(results)
    return 0
