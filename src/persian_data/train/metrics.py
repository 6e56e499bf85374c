"""Scores during training, with eval-stt's scoring code: its normalizer (`evaluate.textnorm`) and
its corpus-level counts (`evaluate.score`, the same rapidfuzz engine, equal to jiwer's). The
references are the manifest texts, as eval-stt reads them, whatever --targets the model learns."""

from __future__ import annotations

import numpy as np

from ..evaluate.score import align_chars, align_words
from ..evaluate.textnorm import normalize_for_scoring


def score_texts(refs: list[str], hyps: list[str], groups: list[str] | None = None) -> dict[str, float]:
    """Corpus-level WER/CER, normalized (the headline, what the best checkpoint is chosen by) and raw;
    with `groups` (one label per clip, e.g. its corpus), the normalized WER/CER of each group too
    (`wer_<group>`, even for a single group, so every run's eval curve has the same keys)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    ref_n = normalize_for_scoring(refs).texts
    hyp_n = normalize_for_scoring(hyps).texts
    words = align_words(ref_n, hyp_n, single_spaced=True).counts
    chars = align_chars(ref_n, hyp_n)
    out = {"wer": words.total()["error_rate"], "cer": chars.total()["error_rate"],
           "wer_raw": align_words(refs, hyps).counts.total()["error_rate"],
           "cer_raw": align_chars(refs, hyps).total()["error_rate"]}
    if groups:
        g = np.asarray(groups)
        labels = sorted(set(groups))
        for label in labels:
            keep = g == label
            out[f"wer_{label}"] = words.total(keep)["error_rate"]
            out[f"cer_{label}"] = chars.total(keep)["error_rate"]
    return out
