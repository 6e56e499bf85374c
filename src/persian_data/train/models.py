"""Loading the model to fine-tune: Whisper (seq2seq, Persian transcription prompt) or a CTC model
of the wav2vec2 family (a character vocabulary built from the training transcripts, saved with it).

Anything `transformers` loads: a Hub name (through `HF_ENDPOINT` and the token, like any
`from_pretrained`) or a local folder. The family is read from the config first, so a dry run and the
data checks need no weights.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import TrainInputError
from .options import CTC, WHISPER

log = logging.getLogger("persian_data.train")

WHISPER_LANGUAGE, WHISPER_TASK = "persian", "transcribe"
# CTC models whose output is a character vocabulary (Wav2Vec2CTCTokenizer) over raw-audio encoders.
CTC_MODEL_TYPES = ("wav2vec2", "wav2vec2-conformer", "wav2vec2-bert", "hubert", "wavlm", "data2vec-audio",
                   "unispeech", "unispeech-sat", "sew", "sew-d")
PAD, UNK, WORD = "[PAD]", "[UNK]", "|"


@dataclass
class ModelSpec:
    name: str
    family: str
    model_type: str
    config: object
    token: str | None
    prompt: list[int] | None = None  # Whisper: <|startoftranscript|><|fa|><|transcribe|><|notimestamps|>


def _cannot_load(name: str, exc: BaseException, token: str | None) -> TrainInputError:
    msg = " ".join(str(exc).split())[:300] or type(exc).__name__
    if token:
        msg = msg.replace(token, "***")
    return TrainInputError(f"--model {name}: cannot load it ({msg}); give a Hub model name (HF_ENDPOINT and "
                           f"--token/HF_TOKEN are honoured) or a folder holding a transformers model")


def inspect(name: str, token: str | None) -> ModelSpec:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(name, token=token)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _cannot_load(name, exc, token) from None
    model_type = getattr(config, "model_type", "")
    if model_type == "whisper":
        family = WHISPER
    elif model_type in CTC_MODEL_TYPES:
        family = CTC
    else:
        raise TrainInputError(f"--model {name}: a {model_type or 'model of unknown type'} model; train-stt fine-tunes "
                              f"Whisper (seq2seq) or a CTC model of the wav2vec2 family ({', '.join(CTC_MODEL_TYPES)})")
    spec = ModelSpec(name, family, model_type, config, token)
    if family == WHISPER:
        spec.prompt = _whisper_prompt(spec)
    return spec


def _whisper_prompt(spec: ModelSpec) -> list[int]:
    """The decoder prompt of a Persian transcription, from the model's generation config: the ids
    `generate(language="persian", task="transcribe")` puts before the text, so the labels the model
    learns and the prompt it is later given cannot disagree."""
    from transformers import GenerationConfig

    try:
        gen = GenerationConfig.from_pretrained(spec.name, token=spec.token)
    except (OSError, ValueError) as exc:
        raise _cannot_load(spec.name, exc, spec.token) from None
    lang = (getattr(gen, "lang_to_id", None) or {}).get("<|fa|>")
    task = (getattr(gen, "task_to_id", None) or {}).get(WHISPER_TASK)
    no_ts = getattr(gen, "no_timestamps_token_id", None)
    if lang is None or task is None or not getattr(gen, "is_multilingual", True):
        raise TrainInputError(f"--model {spec.name}: a Whisper model without a Persian transcription prompt (its "
                              f"generation config has no <|fa|> or transcribe token: English-only?); take a "
                              f"multilingual one (e.g. openai/whisper-small)")
    prompt = [spec.config.decoder_start_token_id, lang, task]
    return prompt + ([no_ts] if no_ts is not None else [])


def window_seconds(spec: ModelSpec) -> float | None:
    """Whisper's audio window: its encoder positions, 20 ms each (1,500 -> 30 s)."""
    if spec.family != WHISPER:
        return None
    return int(spec.config.max_source_positions) * 0.02


# -- processors ------------------------------------------------------------------------------------

def build_vocab(targets: list[str]) -> dict[str, int]:
    """Every character of the training targets, the space as the word delimiter, a blank/pad (id 0,
    CTC's blank) and an unknown token. Sorted: the same targets always give the same ids."""
    chars = sorted(set("".join(targets)) - {" "})
    vocab = {PAD: 0, UNK: 1, WORD: 2}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    return vocab


def load_processor(spec: ModelSpec, targets: list[str]):
    """Whisper: the model's processor. CTC: the model's feature extractor and a new tokenizer over `targets`' characters (its vocab.json
    is saved with the model)."""
    try:
        if spec.family == WHISPER:
            from transformers import WhisperProcessor

            return WhisperProcessor.from_pretrained(spec.name, token=spec.token)
        from transformers import AutoFeatureExtractor, Wav2Vec2CTCTokenizer, Wav2Vec2Processor

        extractor = AutoFeatureExtractor.from_pretrained(spec.name, token=spec.token)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _cannot_load(spec.name, exc, spec.token) from None
    with tempfile.TemporaryDirectory(prefix="persian-data-vocab-") as tmp:  # the tokenizer reads a file
        vocab_file = Path(tmp) / "vocab.json"
        vocab_file.write_text(json.dumps(build_vocab(targets), ensure_ascii=False), encoding="utf-8")
        tokenizer = Wav2Vec2CTCTokenizer(str(vocab_file), unk_token=UNK, pad_token=PAD, word_delimiter_token=WORD)
    return Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer)


def sampling_rate(processor) -> int:
    return int(processor.feature_extractor.sampling_rate)


def tokenize(spec: ModelSpec, processor, targets: list[str]) -> list[list[int]]:
    """Label ids. Whisper: prompt + text + <|endoftext|> (the collator drops <|startoftranscript|>,
    which the model puts back when it shifts the labels right)."""
    if not targets:
        return []
    tok = processor.tokenizer
    if spec.family != WHISPER:
        return tok(targets).input_ids
    eot = tok.eos_token_id
    return [spec.prompt + ids + [eot] for ids in tok(targets, add_special_tokens=False).input_ids]


# -- label limits ----------------------------------------------------------------------------------

def label_limit(spec: ModelSpec, processor) -> Callable[[list[int], float], bool]:
    """fits(label ids, clip seconds): Whisper's decoder has `max_target_positions` (448) positions for
    the labels after <|startoftranscript|>; a CTC model needs an output frame per label, plus one
    blank between two equal labels."""
    config = spec.config
    if spec.family == WHISPER:
        limit = int(config.max_target_positions)
        sot = config.decoder_start_token_id

        def fits_whisper(ids: list[int], seconds: float) -> bool:
            return len(ids) - (1 if ids and ids[0] == sot else 0) <= limit

        return fits_whisper
    frames = _ctc_frames(config)
    sr = sampling_rate(processor)
    if frames is None:  # no convolution front end to count with: CTC's zero_infinity guards such clips
        return lambda ids, seconds: True

    def fits_ctc(ids: list[int], seconds: float) -> bool:
        repeats = sum(1 for a, b in zip(ids, ids[1:]) if a == b)
        return len(ids) + repeats <= frames(int(round(seconds * sr)))

    return fits_ctc


def _ctc_frames(config) -> Callable[[int], int] | None:
    """Output frames for n input samples: the convolution stack's arithmetic (as the wav2vec2
    models' `_get_feat_extract_output_lengths`), including an adapter's strides."""
    kernels, strides = getattr(config, "conv_kernel", None), getattr(config, "conv_stride", None)
    if not kernels or not strides:
        return None
    adapter = getattr(config, "num_adapter_layers", 0) if getattr(config, "add_adapter", False) else 0
    adapter_stride = getattr(config, "adapter_stride", 2)

    def frames(n: int) -> int:
        for k, s in zip(kernels, strides):
            n = (n - k) // s + 1
        for _ in range(adapter):
            n = (n - 1) // adapter_stride + 1
        return max(n, 0)

    return frames


# -- the model -------------------------------------------------------------------------------------

def load_model(spec: ModelSpec, processor, *, freeze_encoder: bool, gradient_checkpointing: bool):
    import torch

    try:
        if spec.family == WHISPER:
            from transformers import WhisperForConditionalGeneration

            model = WhisperForConditionalGeneration.from_pretrained(spec.name, token=spec.token)
        else:
            from transformers import AutoModelForCTC
            from transformers.utils import logging as hf_logging

            tok = processor.tokenizer
            level = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()  # its "MISMATCH, reinit" table for lm_head: expected, said below
            try:
                model = AutoModelForCTC.from_pretrained(
                    spec.name, token=spec.token, vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                    bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, ctc_loss_reduction="mean",
                    ctc_zero_infinity=True, ignore_mismatched_sizes=True)
            finally:
                hf_logging.set_verbosity(level)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise _cannot_load(spec.name, exc, spec.token) from None
    if gradient_checkpointing:
        model.config.use_cache = False
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if spec.family == WHISPER:
        gen = model.generation_config
        gen.language, gen.task = WHISPER_LANGUAGE, WHISPER_TASK
        gen.forced_decoder_ids = None
        model.config.forced_decoder_ids = None
        if freeze_encoder:
            model.freeze_encoder()
            model.model.encoder.gradient_checkpointing = False  # nothing to recompute in a frozen encoder
    else:
        # The new vocabulary's output layer starts fresh, whatever the checkpoint had there (another
        # vocabulary's rows, or none for a pretrained-only encoder).
        head = model.lm_head
        torch.nn.init.normal_(head.weight, mean=0.0, std=getattr(model.config, "initializer_range", 0.02))
        if head.bias is not None:
            torch.nn.init.zeros_(head.bias)
        log.info("a new output layer for %d symbols (the training transcripts' characters and [PAD] [UNK] | "
                 "<s> </s>)", head.weight.shape[0])
        model.freeze_feature_encoder()  # the convolutional front end stays as pretrained (HF's CTC recipe)
        if freeze_encoder:
            model.freeze_base_model()
    return model
