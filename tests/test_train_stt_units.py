"""train-stt's pieces that need no corpus: the Whisper features against transformers' extractor, the
few-shot subset, the sampler's order, the CTC frame arithmetic and vocabulary."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("transformers")

from persian_data.train.fewshot import balanced_subset  # noqa: E402


@settings(max_examples=12, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=16_000 * 31), min_size=1, max_size=3), st.integers(0, 2**31))
def test_whisper_features_equal_the_extractor(lengths, seed):
    from transformers import WhisperFeatureExtractor

    from persian_data.train.features import whisper_features

    fe = _extractor(WhisperFeatureExtractor)
    rng = np.random.default_rng(seed)
    audios = [(rng.standard_normal(n) * rng.uniform(0.001, 0.5)).astype(np.float32) for n in lengths]
    expected = fe(audios, sampling_rate=16_000, return_tensors="pt").input_features
    got = whisper_features(fe, audios)
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < 1e-5


_FE = {}


def _extractor(cls):
    if cls not in _FE:
        _FE[cls] = cls(feature_size=80)
    return _FE[cls]


clip = st.tuples(st.sampled_from(["a", "b", "c", "d", "e", ""]), st.sampled_from(["male", "female", ""]),
                 st.floats(0.5, 10.0))


@settings(max_examples=60, deadline=None)
@given(st.lists(clip, min_size=1, max_size=60), st.floats(0.05, 5.0), st.integers(0, 1000))
def test_minutes_subset_is_seeded_long_enough_and_balanced(clips, minutes, seed):
    ids = [f"c{k:03d}" for k in range(len(clips))]
    speakers = [s for s, _, _ in clips]
    genders = [g for _, g, _ in clips]
    durations = [d for _, _, d in clips]
    picked = balanced_subset(ids, durations, speakers, genders, minutes, seed)
    # the same clips for the same seed, whatever order they come in
    order = list(reversed(range(len(ids))))
    again = balanced_subset([ids[k] for k in order], [durations[k] for k in order], [speakers[k] for k in order],
                            [genders[k] for k in order], minutes, seed)
    assert sorted(ids[k] for k in picked) == sorted(ids[order[k]] for k in again)
    total = sum(durations[k] for k in picked)
    if total < minutes * 60:
        assert len(picked) == len(ids)  # everything, when there is less than asked
    else:
        assert total - max(durations[k] for k in picked) < minutes * 60  # stops at the first clip past N
    # genders take turns: while two genders both still have clips, their counts differ by at most one
    counts = {g: sum(1 for k in picked if (genders[k] or "unknown") == (g or "unknown")) for g in set(genders)}
    avail = {g: sum(1 for x in genders if x == g) for g in set(genders)}
    open_genders = [g for g in counts if counts[g] < avail[g]]
    if open_genders:
        low = min(counts[g] for g in open_genders)
        assert max(counts.values()) <= low + 1


def test_minutes_subset_spreads_over_speakers():
    ids = [f"c{k}" for k in range(40)]
    speakers = [f"s{k % 4}" for k in range(40)]
    picked = balanced_subset(ids, [1.0] * 40, speakers, ["male"] * 40, minutes=8 / 60, seed=5)
    assert len(picked) == 8
    assert sorted(sum(1 for k in picked if speakers[k] == s) for s in {"s0", "s1", "s2", "s3"}) == [2, 2, 2, 2]
    assert balanced_subset(ids, [1.0] * 40, speakers, ["male"] * 40, 8 / 60, 6) != picked


def test_sampler_order_depends_on_seed_and_epoch_only():
    import torch

    from persian_data.train.data import SeededLengthSampler

    lengths = list(np.random.default_rng(0).integers(8_000, 160_000, 200))
    a, b = SeededLengthSampler(8, lengths, seed=1), SeededLengthSampler(8, lengths, seed=1)
    torch.manual_seed(123)  # the global RNG plays no part
    first = list(a)
    torch.manual_seed(456)
    assert list(b) == first and sorted(first) == list(range(200))
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)


def test_ctc_frame_arithmetic_matches_the_model_and_vocab_is_stable(tmp_path):
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    from persian_data.train.models import _ctc_frames, build_vocab

    config = Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                            conv_dim=(8, 8, 8), conv_stride=(5, 4, 2), conv_kernel=(10, 4, 2), add_adapter=True,
                            num_adapter_layers=2, adapter_stride=2, output_hidden_size=16)
    model = Wav2Vec2ForCTC(config)
    frames = _ctc_frames(config)
    for n in (400, 1_000, 16_000, 123_457):
        assert frames(n) == int(model._get_feat_extract_output_lengths(torch.tensor(n), add_adapter=True))
    vocab = build_vocab(["سلام دنیا", "دنیا"])
    assert vocab == build_vocab(["دنیا", "سلام دنیا"])
    assert vocab["[PAD]"] == 0 and vocab["|"] == 2 and " " not in vocab and set("سلامدنیا") <= set(vocab)


def test_readme_train_stt_commands_parse():
    """The README's three train-stt commands (Whisper, CTC, few-shot) are valid for the real parser."""
    import re
    import shlex
    from pathlib import Path

    from persian_data.cli import build_parser

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    section = text.split("### Training: `train-stt`", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    commands = [line for line in block.splitlines() if line.startswith("persian-data train-stt")]
    assert len(commands) == 3
    parsed = [build_parser().parse_args(shlex.split(line)[1:]) for line in commands]
    assert {p.model for p in parsed} >= {"openai/whisper-small", "facebook/wav2vec2-xls-r-300m"}
    assert any(p.minutes and p.corpus == "fleurs" for p in parsed)
