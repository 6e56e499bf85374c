"""Tiny randomly initialised ASR models, saved as ordinary `transformers` folders (no download).

For tests and benchmarks of run mode: `eval-stt --model <folder>` loads them through the same
`pipeline("automatic-speech-recognition")` call as a real model. Their vocabularies are Persian
letters, so what they emit (random text) goes through the Persian scoring path.

* `build_tiny_whisper(folder)`: WhisperForConditionalGeneration with small dims; a byte-level BPE
  tokenizer whose merges make every Persian letter one token, Whisper's special tokens, and a
  generation config with `lang_to_id` / `task_to_id`, so `language="persian", task="transcribe"`
  works as with a real checkpoint. Generation is limited to Persian letters and spaces.
* `build_tiny_ctc(folder)`: Wav2Vec2ForCTC with a small config and a Wav2Vec2CTCTokenizer whose
  vocabulary is the Persian letters plus the word delimiter.
"""

from __future__ import annotations

import json
from pathlib import Path

PERSIAN_LETTERS = "آابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهی"
WHISPER_SPECIALS = ("<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|fa|>", "<|translate|>", "<|transcribe|>",
                    "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>")


def _bytes_to_unicode() -> list[str]:
    """GPT-2's byte -> printable character table (the byte-level BPE alphabet)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


def build_tiny_whisper(folder: Path, *, seed: int = 0, d_model: int = 32, layers: int = 1,
                       max_new_tokens: int = 24, chunk_length: int = 30) -> Path:
    """`chunk_length`: the audio window in seconds (Whisper's is 30; a shorter one makes a far cheaper
    encoder, for tests that train it)."""
    import torch
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
                              WhisperProcessor, WhisperTokenizer)

    folder = Path(folder)
    byte_chars = _bytes_to_unicode()
    vocab = {c: i for i, c in enumerate(byte_chars)}
    merges = []
    letter_ids = []
    for letter in PERSIAN_LETTERS:
        a, b = (byte_chars[x] for x in letter.encode("utf-8"))
        merges.append((a, b))
        letter_ids.append(vocab.setdefault(a + b, len(vocab)))
    for tok in WHISPER_SPECIALS:
        vocab[tok] = len(vocab)
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges, pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": list(WHISPER_SPECIALS)})
    eot = vocab["<|endoftext|>"]
    allowed = set(letter_ids) | {vocab[byte_chars[0x20]], eot}
    suppress = [i for i in range(len(vocab)) if i not in allowed and vocab.get("<|startoftranscript|>") != i]
    config = WhisperConfig(vocab_size=len(vocab), num_mel_bins=80, d_model=d_model, encoder_layers=layers,
                           decoder_layers=layers, encoder_attention_heads=2, decoder_attention_heads=2,
                           encoder_ffn_dim=2 * d_model, decoder_ffn_dim=2 * d_model,
                           max_source_positions=50 * chunk_length, max_target_positions=max_new_tokens + 8, pad_token_id=eot, bos_token_id=eot,
                           eos_token_id=eot, decoder_start_token_id=vocab["<|startoftranscript|>"])
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=vocab["<|startoftranscript|>"], eos_token_id=eot, pad_token_id=eot, bos_token_id=eot,
        max_new_tokens=max_new_tokens, is_multilingual=True,
        lang_to_id={"<|en|>": vocab["<|en|>"], "<|fa|>": vocab["<|fa|>"]},
        task_to_id={"translate": vocab["<|translate|>"], "transcribe": vocab["<|transcribe|>"]},
        no_timestamps_token_id=vocab["<|notimestamps|>"], suppress_tokens=suppress, begin_suppress_tokens=[eot])
    processor = WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80, chunk_length=chunk_length),
                                 tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_tiny_ctc(folder: Path, *, seed: int = 0, hidden: int = 32) -> Path:
    import torch
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC,
                              Wav2Vec2Processor)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2}
    for letter in PERSIAN_LETTERS:
        vocab[letter] = len(vocab)
    vocab_file = folder / "vocab.json"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tokenizer = Wav2Vec2CTCTokenizer(str(vocab_file), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True,
                                         return_attention_mask=True)
    config = Wav2Vec2Config(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=2 * hidden, conv_dim=(32, 32, 32), conv_stride=(5, 4, 4),
                            conv_kernel=(10, 4, 4), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                            pad_token_id=0, feat_extract_norm="group", do_stable_layer_norm=False, mask_time_prob=0.0)
    torch.manual_seed(seed)
    model = Wav2Vec2ForCTC(config).eval()
    model.save_pretrained(folder)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


if __name__ == "__main__":  # pragma: no cover - `python tests/support/tiny_asr.py whisper|ctc FOLDER`
    import sys

    kind, out = sys.argv[1], Path(sys.argv[2])
    print((build_tiny_whisper if kind == "whisper" else build_tiny_ctc)(out))
