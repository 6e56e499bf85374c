"""eval-stt score mode: exact counts, the Persian normalizer, bootstrap, formats, bad input, leakage,
and the fast alignment path against jiwer itself."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import jiwer
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import copy_tree
from persian_data.cli import main
from persian_data.evaluate.score import Counts, align_chars, align_words, bootstrap, breakdown
from persian_data.evaluate.textnorm import PREFIXES, SUFFIXES, normalize_for_scoring, normalize_one, normalize_pairs

CV_TEST = "datasets/speech/commonvoice_fa/manifests/test.jsonl"
FL_TEST = "datasets/speech/fleurs_fa/manifests/test.jsonl"


@pytest.fixture(scope="session")
def speech_root(hub, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval") / "root"
    assert main(["run", "--root", str(root), "--endpoint", hub.endpoint, "--only", "speech"]) == 0
    return root


@pytest.fixture
def root(speech_root, tmp_path) -> Path:
    """A private copy (tests write evals/ and some change manifests)."""
    dst = tmp_path / "root"
    copy_tree(speech_root, dst)
    return dst


def manifest(root: Path, rel: str) -> list[dict]:
    return [json.loads(x) for x in (root / rel).read_text(encoding="utf-8").splitlines() if x.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def results(root: Path, corpus: str, name: str, split: str = "test") -> dict:
    return json.loads((root / "evals" / f"{corpus}-{split}-{name}" / "results.json").read_text(encoding="utf-8"))


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in (root / "datasets").rglob("*") if p.is_file()}


# -- exact figures ----------------------------------------------------------------------------------

@pytest.mark.parametrize("corpus,rel", [("commonvoice", CV_TEST), ("fleurs", FL_TEST)])
def test_oracle_hypotheses_score_zero(root, tmp_path, corpus, rel, capsys):
    rows = manifest(root, rel)
    hyp = write_jsonl(tmp_path / "oracle.jsonl", [{"id": r["id"], "text": r["text"]} for r in rows])
    assert main(["eval-stt", "--root", str(root), "--corpus", corpus, "--hypotheses", str(hyp)]) == 0
    res = results(root, corpus, "oracle")
    for view in ("raw", "normalized"):
        for unit in ("words", "chars"):
            t = res[view][unit]
            assert t["error_rate"] == 0 and t["errors"] == 0 and t["utterances"] == len(rows) and t["ref"] > 0
    assert res["bootstrap"]["wer"] == [0.0, 0.0]
    out = root / "evals" / f"{corpus}-test-oracle"
    assert len((out / "utterances.jsonl").read_text(encoding="utf-8").splitlines()) == len(rows)
    assert "| normalized | WER |" in (out / "report.md").read_text(encoding="utf-8")
    assert "WER 0.00 %" in capsys.readouterr().out


def test_known_substitutions_deletions_insertions_and_missing(root, tmp_path):
    rows = manifest(root, FL_TEST)
    assert len(rows) >= 4
    words = [normalize_one(r["text"]).split() for r in rows]
    hyps = [list(w) for w in words]
    hyps[0][1] = "زرافه"  # 1 substitution
    del hyps[1][-2:]  # 2 deletions
    hyps[2].append("اضافه")  # 1 insertion
    lines = [{"id": r["id"], "text": " ".join(h)} for r, h in zip(rows, hyps)]
    missing = lines.pop(3)  # its words are all deletions
    write_jsonl(tmp_path / "edits.jsonl", lines)
    assert main(["eval-stt", "--root", str(root), "--corpus", "fleurs", "--hypotheses", str(tmp_path / "edits.jsonl")]) == 0
    t = results(root, "fleurs", "edits")
    w = t["normalized"]["words"]
    n_ref = sum(len(x) for x in words)
    assert (w["substitutions"], w["deletions"], w["insertions"]) == (1, 2 + len(words[3]), 1)
    assert w["correct"] == n_ref - 3 - len(words[3]) and w["ref"] == n_ref
    assert w["error_rate"] == pytest.approx((4 + len(words[3])) / n_ref)
    assert w["sentence_errors"] == 4
    assert t["utterances"]["missing_hypotheses"] == 1 and t["utterances"]["missing_examples"] == [missing["id"]]
    assert t["top_errors"]["substitutions"][0]["hyp"] == "زرافه"
    per = [json.loads(x) for x in (root / "evals/fleurs-test-edits/utterances.jsonl").read_text("utf-8").splitlines()]
    assert per[3]["missing"] and per[3]["normalized"]["words"][2] == len(words[3])
    assert ["replace", 1, 2, 1, 2] in per[0]["alignment"]
    assert per[1]["alignment"][-1] == ["delete", len(words[1]) - 2, len(words[1]), len(words[1]) - 2, len(words[1]) - 2]


def _variant(text: str) -> str:
    t = text.replace("\u200c", " " if len(text) % 2 else "").replace("ی", "ي").replace("ک", "ك")
    t = t.translate(str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789"))
    return "«" + t.replace(" ", "\u064e ", 1) + "»؟"


def test_spelling_variants_score_zero_after_normalization(root, tmp_path):
    for corpus, rel in (("commonvoice", CV_TEST), ("fleurs", FL_TEST)):
        rows = manifest(root, rel)
        write_jsonl(tmp_path / "variants.jsonl", [{"id": r["id"], "text": _variant(r["text"])} for r in rows])
        assert main(["eval-stt", "--root", str(root), "--corpus", corpus, "--hypotheses", str(tmp_path / "variants.jsonl")]) == 0
        res = results(root, corpus, "variants")
        assert res["raw"]["words"]["error_rate"] > 0 and res["raw"]["chars"]["error_rate"] > 0
        assert res["normalized"]["words"]["error_rate"] == 0 and res["normalized"]["chars"]["error_rate"] == 0
        assert res["normalizer_changes"]["hypotheses"]["letters"]["fraction"] > 0
        assert res["normalizer_changes"]["hypotheses"]["punctuation"]["fraction"] == 1.0


def test_normalizer_zwnj_convention_and_counters():
    forms = ["می‌خواهم کتاب‌ها", "می خواهم کتاب ها", "میخواهم کتابها", "مي خواهم كتاب ها!", "ميخواهم کِتابها"]
    r = normalize_for_scoring(forms)
    assert len(set(r.texts)) == 1 and r.texts[0] == "میخواهم کتابها"
    assert r.changed["zwnj"] == 3  # written ZWNJ, and the two space-split forms joined by the affix rules
    assert r.changed["letters"] == 2 and r.changed["diacritics"] == 1 and r.changed["punctuation"] == 1
    assert normalize_one("سال 1402 و ١٤٠٢، Hello") == "سال ۱۴۰۲ و ۱۴۰۲ hello"
    assert normalize_for_scoring(["", "  ", "."]).texts == ["", "", ""]


# -- ZWNJ, space or nothing at a bound affix (issue 21 item 6) -------------------------------------

ZWNJ = "\u200c"


def _three_ways(word: str) -> dict[str, str]:
    return {"zwnj": word, "space": word.replace(ZWNJ, " "), "glued": word.replace(ZWNJ, "")}


def _scored(refs: list[str], hyps: list[str]) -> tuple[dict, dict]:
    """(normalized, raw) word totals, as eval-stt computes them."""
    ref_norm, hyp_norm = normalize_pairs(refs, hyps)
    norm = align_words(ref_norm.texts, hyp_norm.texts, single_spaced=True).counts.total()
    return norm, align_words(refs, hyps).counts.total()


def test_every_zwnj_word_of_the_test_references_scores_the_same_three_ways(speech_root):
    """Each ZWNJ word of the Common Voice and FLEURS test references, alone written with ZWNJ, with
    a space or glued in the hypothesis (the rest of the sentence as the reference has it)."""
    checked = 0
    for rel in (CV_TEST, FL_TEST):
        for row in manifest(speech_root, rel):
            ref = row["text"]
            for k, word in enumerate(ref.split(" ")):
                if ZWNJ not in word.strip(ZWNJ):
                    continue
                outcomes = {}
                for form, written in _three_ways(word).items():
                    hyp = ref.split(" ")
                    hyp[k] = written
                    outcomes[form] = _scored([ref], [" ".join(hyp)])
                for form, (norm, raw) in outcomes.items():
                    assert norm["errors"] == 0 and norm["ref"] == outcomes["zwnj"][0]["ref"], (word, form, norm)
                    assert (raw["errors"] > 0) == (form != "zwnj"), (word, form, raw)  # raw WER still shows it
                checked += 1
    assert checked, "no ZWNJ word in the test references: this test would check nothing"


# one word per bound affix of the issue, written with ZWNJ, in a sentence
AFFIX_WORDS = {
    "تر": "صدا آهسته‌تر شد", "ترین": "این بزرگ‌ترین شهر است", "ها": "سال‌ها گذشت", "های": "کتاب‌های تازه رسید",
    "ام": "من ایرانی‌ام و کار می‌کنم", "ات": "دفتر‌ات را آوردی", "اش": "ماشین‌اش خراب شد", "ای": "صندلی‌ای خریدم",
    "اند": "آن‌ها ایرانی‌اند", "ایم": "ما ایرانی‌ایم", "اید": "شما ایرانی‌اید", "می": "فردا به خانه می‌روم",
    "نمی": "هنوز نمی‌دانم چه بگویم", "بی": "او بی‌کار است",
}


@pytest.mark.parametrize("affix", sorted(AFFIX_WORDS))
def test_a_bound_affix_scores_the_same_spaced_with_zwnj_or_glued(affix):
    assert affix in SUFFIXES | PREFIXES
    sentence = AFFIX_WORDS[affix]
    word = next(w for w in sentence.split() if ZWNJ in w and (w.endswith(ZWNJ + affix) or w.startswith(affix + ZWNJ)))
    forms = _three_ways(word)
    for ref_form, ref_word in forms.items():  # every spelling of the reference against every hypothesis
        ref = sentence.replace(word, ref_word)
        for hyp_form, hyp_word in forms.items():
            norm, raw = _scored([ref], [sentence.replace(word, hyp_word)])
            assert norm["errors"] == 0, (affix, ref_form, hyp_form, norm)
            assert (raw["errors"] > 0) == (ref_form != hyp_form), (affix, ref_form, hyp_form, raw)
    # a real error next to the affix still counts, once
    norm, _ = _scored([sentence.replace(word, forms["zwnj"])], [sentence.replace(word, forms["space"]) + " اضافه"])
    assert norm["insertions"] == 1 and norm["errors"] == 1


@pytest.mark.parametrize("ref, hyp, want", [
    # free words that are also affixes stay words where the reference has them as words
    ("او گفت ای دوست من", "او گفت دوست من", {"ref": 5, "deletions": 1, "errors": 1}),
    ("لباس تر شد", "لباس شد", {"ref": 3, "deletions": 1, "errors": 1}),
    ("ای کاش می‌آمدی", "کاش می‌آمدی", {"ref": 3, "deletions": 1, "errors": 1}),
    ("بی ام و خرید", "بی و خرید", {"ref": 4, "deletions": 1, "errors": 1}),
    # an affix the reference does not have is an insertion, not a joined word
    ("او خسته شد", "او خسته تر شد", {"ref": 3, "insertions": 1, "errors": 1}),
    # (ها is joined by the shared step wherever it follows a word: one wrong word, not two)
    ("کتاب را خواند", "کتاب ها را خواند", {"ref": 3, "substitutions": 1, "errors": 1}),
    # the reference's spaced free word against a glued hypothesis: the same words
    ("لباس تر شد", "لباستر شد", {"ref": 3, "errors": 0}),
])
def test_free_words_are_not_merged(ref, hyp, want):
    norm, _ = _scored([ref], [hyp])
    assert {k: norm[k] for k in want} == want, norm


def test_spacing_is_counted_and_references_never_change():
    refs = ["صدا آهسته‌تر شد", "او گفت ای دوست", "سال ۱۴۰۲"]
    hyps = ["صدا آهسته تر شد", "او گفت دوست", "سال 1402"]
    ref_norm, hyp_norm = normalize_pairs(refs, hyps)
    assert ref_norm.texts == normalize_for_scoring(refs).texts
    assert hyp_norm.changed["spacing"] == 1 and ref_norm.changed["spacing"] == 0
    assert hyp_norm.texts == ["صدا آهستهتر شد", "او گفت دوست", "سال ۱۴۰۲"]
    # digits of Latin tokens (kept by the shared normalizer) are unified for scoring too
    assert normalize_one("mp3 و Windows 10") == normalize_one("mp۳ و Windows ۱۰") == "mp۳ و windows ۱۰"


# -- bootstrap --------------------------------------------------------------------------------------

def _counts(rng, n, scale):
    ref = rng.integers(1, scale, n)
    err = rng.binomial(ref, 0.2)
    z = np.zeros(n, dtype=np.int64)
    return Counts(ref - err, err, z, z.copy(), ref, ref)


def test_bootstrap_is_seeded_and_contains_the_point_estimate():
    rng = np.random.default_rng(7)
    w, c = _counts(rng, 500, 14), _counts(rng, 500, 60)
    a = bootstrap(w, c, rounds=300, seed=3)
    assert a == bootstrap(w, c, rounds=300, seed=3)
    assert a != bootstrap(w, c, rounds=300, seed=4)
    point_w = w.errors.sum() / w.ref_len.sum()
    point_c = c.errors.sum() / c.ref_len.sum()
    assert a["wer"][0] < point_w < a["wer"][1] and a["cer"][0] < point_c < a["cer"][1]
    assert a["wer"][1] - a["wer"][0] < 0.1


def test_breakdown_groups_pool_the_tail_and_add_up():
    rng = np.random.default_rng(2)
    n = 2000
    labels = [f"v{int(x)}" if x < 30 else "" for x in rng.integers(0, 32, n)]
    w, c = _counts(rng, n, 14), _counts(rng, n, 60)
    rows = breakdown(labels, w, c, max_groups=10)
    assert len(rows) == 10 and "(other)" in {r["value"] for r in rows}
    assert sum(r["utterances"] for r in rows) == n and sum(r["words"] for r in rows) == w.ref_len.sum()
    unknown = [r for r in rows if r["value"] == "(unknown)"]
    mask = np.array([not x for x in labels])
    if unknown:
        assert unknown[0]["utterances"] == mask.sum()
        assert unknown[0]["wer"] == pytest.approx(w.errors[mask].sum() / w.ref_len[mask].sum())
    keep = rng.random(n) < 0.5
    assert sum(r["utterances"] for r in breakdown(labels, w, c, keep)) == keep.sum()


# -- the fast path equals jiwer ---------------------------------------------------------------------

_TOKENS = ["a", "b", "ab", "ی", "ي", "می", "\u200c", " ", "  ", "\t", "x y", ""]
_sentence = st.lists(st.sampled_from(_TOKENS), max_size=14).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_sentence, _sentence), min_size=1, max_size=8))
def test_counts_and_alignments_equal_jiwer(pairs):
    refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
    aligned = align_words(refs, hyps, keep_ops=True)
    wc, ops = aligned.counts, aligned.ops
    ref_tok = [aligned.tokens(k)[0] for k in range(len(refs))]
    hyp_tok = [aligned.tokens(k)[1] for k in range(len(refs))]
    cc = align_chars(refs, hyps)
    jw = jiwer.process_words(refs, hyps)
    jc = jiwer.process_characters(refs, hyps)
    assert (wc.hits.sum(), wc.subs.sum(), wc.dels.sum(), wc.ins.sum()) == (jw.hits, jw.substitutions, jw.deletions,
                                                                          jw.insertions)
    assert (cc.hits.sum(), cc.subs.sum(), cc.dels.sum(), cc.ins.sum()) == (jc.hits, jc.substitutions, jc.deletions,
                                                                          jc.insertions)
    assert ref_tok == jw.references and hyp_tok == jw.hypotheses
    for k, chunks in enumerate(jw.alignments):
        theirs = [(x.type.replace("substitute", "replace"), x.ref_start_idx, x.ref_end_idx, x.hyp_start_idx,
                   x.hyp_end_idx) for x in chunks]
        mine = ops[k] if ops[k] is not None else ([("equal", 0, len(ref_tok[k]), 0, len(ref_tok[k]))] if ref_tok[k] else [])
        assert mine == theirs
        one = jiwer.process_characters(refs[k], hyps[k])
        assert (cc.hits[k], cc.subs[k], cc.dels[k], cc.ins[k]) == (one.hits, one.substitutions, one.deletions,
                                                                  one.insertions)


def test_single_spaced_fast_path_on_normalized_text_equals_jiwer():
    r = random.Random(9)
    pieces = ["می‌خواهم", "كتاب ها", "  ", "\t", "\n", "۱۲3", "«سلام»", "\u2028", "A.B", " ", "\u00a0", "ي"]
    raw = ["".join(r.choice(pieces) for _ in range(r.randint(0, 9))) for _ in range(400)]
    norm = normalize_for_scoring(raw).texts
    assert all("  " not in t and t == t.strip() and not any(c.isspace() and c != " " for c in t) for t in norm)
    refs, hyps = norm[:200], norm[200:]
    fast = align_words(refs, hyps, single_spaced=True).counts
    jw = jiwer.process_words(refs, hyps)
    assert (fast.subs.sum(), fast.dels.sum(), fast.ins.sum(), fast.hits.sum()) == (jw.substitutions, jw.deletions,
                                                                                  jw.insertions, jw.hits)


def test_counts_equal_jiwer_on_a_large_random_corpus():
    r = random.Random(5)
    vocab = ["".join(r.choice("ابپتسشکگلمنوهی") for _ in range(r.randint(1, 5))) for _ in range(300)]
    refs, hyps = [], []
    for _ in range(3000):
        w = [r.choice(vocab) for _ in range(r.randint(0, 14))]
        h = [x if r.random() > 0.2 else r.choice(vocab) for x in w if r.random() > 0.05]
        if r.random() < 0.1:
            h.insert(r.randint(0, len(h)), r.choice(vocab))
        refs.append(" ".join(w))
        hyps.append(" ".join(h))
    wc = align_words(refs, hyps).counts
    cc = align_chars(refs, hyps)
    jw, jc = jiwer.process_words(refs, hyps), jiwer.process_characters(refs, hyps)
    assert (wc.subs.sum(), wc.dels.sum(), wc.ins.sum(), wc.hits.sum()) == (jw.substitutions, jw.deletions,
                                                                          jw.insertions, jw.hits)
    assert (cc.subs.sum(), cc.dels.sum(), cc.ins.sum(), cc.hits.sum()) == (jc.substitutions, jc.deletions,
                                                                          jc.insertions, jc.hits)


# -- formats and id checks --------------------------------------------------------------------------

def test_nemo_and_tsv_give_the_same_scores_as_jsonl(root, tmp_path):
    rows = manifest(root, CV_TEST)
    hyps = {r["id"]: normalize_one(r["text"]).split()[0] for r in rows}  # one word each: many deletions
    write_jsonl(tmp_path / "plain.jsonl", [{"id": k, "text": v} for k, v in hyps.items()])
    write_jsonl(tmp_path / "nemo.json", [{"audio_filepath": f"../../audio/test/{r['id']}.mp3", "duration": 1.0,
                                           "text": r["text"], "pred_text": hyps[r["id"]]} for r in rows])
    (tmp_path / "t.tsv").write_text("id\ttext\n" + "".join(f"{k}\t{v}\n" for k, v in hyps.items()), encoding="utf-8")
    got = []
    for f in ("plain.jsonl", "nemo.json", "t.tsv"):
        assert main(["eval-stt", "--root", str(root), "--hypotheses", str(tmp_path / f)]) == 0
        res = results(root, "commonvoice", Path(f).stem)
        got.append((res["normalized"], res["raw"], res["bootstrap"]))
    assert got[0] == got[1] == got[2] and got[0][0]["words"]["deletions"] > 0
    assert results(root, "commonvoice", "nemo")["hypotheses"]["format"] == "nemo"


def test_duplicates_and_unknown_ids_are_reported(root, tmp_path, capsys):
    rows = manifest(root, CV_TEST)
    lines = [{"id": r["id"], "text": r["text"]} for r in rows] + [{"id": rows[0]["id"], "text": rows[0]["text"]},
                                                                  {"id": "common_voice_fa_0", "text": "سلام"}]
    write_jsonl(tmp_path / "dups.jsonl", lines)
    assert main(["eval-stt", "--root", str(root), "--hypotheses", str(tmp_path / "dups.jsonl")]) == 2
    assert "common_voice_fa_0" in capsys.readouterr().err
    assert main(["eval-stt", "--root", str(root), "--hypotheses", str(tmp_path / "dups.jsonl"), "--allow-unknown-ids"]) == 0
    u = results(root, "commonvoice", "dups")["utterances"]
    assert (u["unknown_ids"], u["duplicate_ids"], u["missing_hypotheses"]) == (1, 1, 0)
    lines[len(rows)]["text"] = "متن دیگر"
    write_jsonl(tmp_path / "conflict.jsonl", lines)
    assert main(["eval-stt", "--root", str(root), "--hypotheses", str(tmp_path / "conflict.jsonl")]) == 2
    assert "given twice with different texts" in capsys.readouterr().err


def test_limit_scores_the_first_clips_and_reports_the_rest(root, tmp_path, capsys):
    rows = manifest(root, FL_TEST)
    write_jsonl(tmp_path / "all.jsonl", [{"id": r["id"], "text": r["text"]} for r in rows])
    assert main(["eval-stt", "--root", str(root), "--corpus", "fleurs", "--hypotheses", str(tmp_path / "all.jsonl"),
                 "--limit", "2"]) == 0
    res = results(root, "fleurs", "all")
    assert res["normalized"]["words"]["utterances"] == 2 and res["utterances"]["hypotheses_beyond_limit"] == len(rows) - 2
    assert res["utterances"]["unknown_ids"] == 0 and "past --limit" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["utf8", "jsonl_column", "tsv_columns", "other_corpus", "no_manifest"])
def test_bad_input_one_line_error_exit_2_nothing_written(root, tmp_path, case, capsys):
    cv = manifest(root, CV_TEST)
    f = tmp_path / "bad.jsonl"
    corpus = "commonvoice"
    if case == "utf8":
        f.write_bytes(f'{{"id": "{cv[0]["id"]}", "text": "سلام"}}\n'.encode() + b'{"id": "x", "text": "\xff\xfe"}\n')
    elif case == "jsonl_column":
        write_jsonl(f, [{"id": r["id"], "transcript": r["text"]} for r in cv])
    elif case == "tsv_columns":
        f.write_text("".join(f"{r['id']}\t{r['text']}\textra\n" for r in cv), encoding="utf-8")
    elif case == "other_corpus":
        write_jsonl(f, [{"id": r["id"], "text": r["text"]} for r in manifest(root, FL_TEST)])
    else:
        write_jsonl(f, [{"id": r["id"], "text": r["text"]} for r in cv])
        (root / CV_TEST).unlink()
    before = snapshot(root)
    assert main(["eval-stt", "--root", str(root), "--corpus", corpus, "--hypotheses", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    expect = {"utf8": "bad.jsonl:2: not valid UTF-8", "jsonl_column": "no 'text' key", "tsv_columns": "found 3",
              "other_corpus": "wrong --corpus", "no_manifest": "no commonvoice test manifest"}[case]
    assert expect in err
    assert snapshot(root) == before
    assert not (root / "evals").exists()


# -- leakage ----------------------------------------------------------------------------------------

def test_leakage_report_and_exclusion(root, tmp_path, capsys):
    test = manifest(root, CV_TEST)
    train_path = root / "datasets/speech/commonvoice_fa/manifests/train.jsonl"
    train = manifest(root, "datasets/speech/commonvoice_fa/manifests/train.jsonl")
    # a train clip with test clip 0's sentence (spelled differently) and test clip 1's speaker
    extra = dict(train[0], id="common_voice_fa_999", text=_variant(test[0]["text"]), client_id=test[1]["client_id"])
    test_speakers = {r["client_id"] for r in test}
    train = [r for r in train if r["client_id"] not in test_speakers and normalize_one(r["text"]) not in
             {normalize_one(t["text"]) for t in test}] + [extra]
    write_jsonl(train_path, train)
    write_jsonl(tmp_path / "h.jsonl", [{"id": r["id"], "text": "غلط"} for r in test])
    assert main(["eval-stt", "--root", str(root), "--hypotheses", str(tmp_path / "h.jsonl")]) == 0
    lk = results(root, "commonvoice", "h")["leakage"]
    assert (lk["sentences_in_train"], lk["utterances_by_train_speakers"]) == (1, sum(
        r["client_id"] == test[1]["client_id"] for r in test))
    assert lk["sentence_examples"][0]["id"] == test[0]["id"]
    assert main(["eval-stt", "--root", str(root), "--hypotheses", str(tmp_path / "h.jsonl"), "--exclude-leaked",
                 "--name", "clean"]) == 0
    res = results(root, "commonvoice", "clean")
    assert res["utterances"]["excluded_leaked"] == lk["leaked_utterances"] >= 2
    assert res["normalized"]["words"]["utterances"] == len(test) - lk["leaked_utterances"]
    capsys.readouterr()
    assert main(["eval-stt", "--root", str(root), "--leakage"]) == 0
    out = capsys.readouterr().out
    assert "commonvoice-test: 1 of" in out
    report = json.loads((root / "evals/leakage.json").read_text("utf-8"))
    assert report["speakers"]["commonvoice"]["by_split_pair"].get("train+test", 0) >= 1
    assert "fleurs" not in report["speakers"]  # FLEURS publishes no speaker id
    assert "fleurs-test" in report["splits"]
    assert os.path.exists(root / "evals/leakage.md")
