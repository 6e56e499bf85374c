"""Build loadable Coqui VITS voices with random weights, shaped like the Kamtera ones.

Used by the offline demo (to put real, loadable models into the local Hub replicas of the two
voice repos), by the tests and by the benchmark (with the real dimensions; tests/support/voices.py
writes one into a folder).

The config has the real voices' structure, taken from the author's training script
(karim23657/Persian-tts-coqui, recepies/vits/train_vits.py): 24 kHz audio, phonemes through
espeak with language "fa", basic_cleaners, characters class IPAPhonemes with the script's
symbol set. Only the sizes differ in tiny mode. The checkpoint is the dict Coqui's trainer
writes for `best_model_<step>.pth` (trainer.io.save_model): config, model state_dict, optimizer,
scheduler, scaler, step, epoch, date, model_loss.

Same arguments, same bytes: the seed fixes the weights, and the date is a constant.
"""

from __future__ import annotations

import io
import json

# From the author's training script (the real voices were trained with these).
CHARACTERS = "ءابتثجحخدذرزسشصضطظعغفقلمنهويِپچژکگیآأؤإئًَُّ"
PUNCTUATIONS = "!(),-.:;? ̠،؛؟<>"
PHONEMES = (
    "ˈˌːˑpbtdʈɖcɟkɡqɢʔɴŋɲɳnɱmʙrʀⱱɾɽɸβfvθðszʃʒʂʐçʝxɣχʁħʕhɦɬɮʋɹɻjɰlɭʎʟaegiouwyɪʊ̩æɑɔəɚɛɝɨ̃ʉʌʍ"
    '0123456789"#$%*+/=ABCDEFGHIJKLMNOPRSTUVWXYZ[]^_{}'
)
TEST_SENTENCES = [
    ["سلطان محمود در زمستانی سخت به طلخک گفت که: با این جامه ی یک لا در این سرما چه می کنی "],
    ["مردی نزد بقالی آمد و گفت پیاز هم ده تا دهان بدان خو شبوی سازم."],
    ["از مال خود پاره ای گوشت بستان و زیره بایی معطّر بساز"],
    ["یک بار هم از جهنم بگویید."],
    ["یکی اسبی به عاریت خواست"],
]
FIXED_DATE = "January 01, 2024"  # trainer writes today's date; a constant keeps builds identical

# Small but complete: every block of the real model is there, with fewer channels and layers.
# The product of upsample rates must stay 256 (= hop_length).
TINY_ARGS = dict(
    hidden_channels=16,
    hidden_channels_ffn_text_encoder=32,
    num_heads_text_encoder=2,
    num_layers_text_encoder=1,
    num_layers_posterior_encoder=1,
    num_layers_flow=1,
    upsample_initial_channel_decoder=32,
    resblock_kernel_sizes_decoder=[3],
    resblock_dilation_sizes_decoder=[[1, 3, 5]],
    init_discriminator=False,  # the multi-period discriminator alone is ~46 M fixed-size params
)


def vits_config(
    *,
    real_dims: bool = False,
    sample_rate: int = 24000,
    phonemes: str = PHONEMES,
    run_name: str = "vits_fa_female",
):
    """The VitsConfig of the Kamtera voices (tiny sizes unless `real_dims`)."""
    from TTS.config.shared_configs import BaseAudioConfig, BaseDatasetConfig
    from TTS.tts.configs.shared_configs import CharactersConfig
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import VitsArgs

    output_path = "/kaggle/working/"  # as in the real configs; never touched at inference
    audio = BaseAudioConfig(
        sample_rate=sample_rate, do_trim_silence=True, resample=False, mel_fmin=0, mel_fmax=None
    )
    characters = CharactersConfig(
        characters=CHARACTERS,
        punctuations=PUNCTUATIONS,
        phonemes=phonemes,
        pad="<PAD>",
        eos="<EOS>",
        bos="<BOS>",
        blank="<BLNK>",
        characters_class="TTS.tts.utils.text.characters.IPAPhonemes",
    )
    dataset = BaseDatasetConfig(
        formatter="mozilla",
        meta_file_train="metadata.csv",
        path="/kaggle/input/persian-tts-dataset-famale",
    )
    model_args = VitsArgs() if real_dims else VitsArgs(**TINY_ARGS)
    return VitsConfig(
        audio=audio,
        model_args=model_args,
        run_name=run_name,
        batch_size=32,
        eval_batch_size=16,
        batch_group_size=5,
        num_loader_workers=0,
        num_eval_loader_workers=2,
        run_eval=True,
        test_delay_epochs=-1,
        epochs=1000,
        save_step=1000,
        text_cleaner="basic_cleaners",
        use_phonemes=True,
        phoneme_language="fa",
        phonemizer="espeak",
        characters=characters,
        phoneme_cache_path=output_path + "phoneme_cache",
        compute_input_seq_cache=True,
        print_step=25,
        print_eval=True,
        mixed_precision=False,
        test_sentences=TEST_SENTENCES,
        output_path=output_path,
        datasets=[dataset],
    )


def _adamw_state(optimizer, step: int) -> dict:
    """An optimizer state_dict as after training (AdamW moments, zero-filled)."""
    import torch

    for group in optimizer.param_groups:
        for param in group["params"]:
            optimizer.state[param] = {
                "step": torch.tensor(float(step)),
                "exp_avg": torch.zeros_like(param),
                "exp_avg_sq": torch.zeros_like(param),
            }
    return optimizer.state_dict()


def build_vits(
    *,
    real_dims: bool = False,
    seed: int = 0,
    step: int = 30824,
    with_optimizer: bool | None = None,
    sample_rate: int = 24000,
    phonemes: str = PHONEMES,
    run_name: str = "vits_fa_female",
) -> tuple[bytes, bytes]:
    """Return (config_json_bytes, checkpoint_bytes) of a random-weight VITS.

    real_dims: the real voices' dimensions (VitsArgs defaults, discriminator included: ~83 M
        parameters, ~330 MB of weights); otherwise tiny (~1.3 M parameters, ~5.5 MB).
    with_optimizer: store AdamW states as a training checkpoint does (default: only with
        real_dims, which makes the file ~1 GB like the real ones).
    """
    import torch
    from TTS.tts.models.vits import Vits

    if with_optimizer is None:
        with_optimizer = real_dims
    config = vits_config(
        real_dims=real_dims, sample_rate=sample_rate, phonemes=phonemes, run_name=run_name
    )
    from .check import quiet_coqui

    with torch.random.fork_rng(devices=[]), quiet_coqui():
        torch.manual_seed(seed)
        model = Vits(config)  # also fills config.num_chars and the characters class path
    config_dict = config.to_dict()
    optimizer = scheduler = None
    if with_optimizer:
        optimizers = model.get_optimizer()
        optimizer = [_adamw_state(opt, step) for opt in optimizers]
        scheduler = [s.state_dict() for s in model.get_scheduler(optimizers)]
    state = {
        "config": config_dict,
        "model": model.state_dict(),
        "optimizer": optimizer,
        "scheduler": scheduler,
        "scaler": None,
        "step": step,
        "epoch": 0,
        "date": FIXED_DATE,
        "model_loss": {"train_loss": 1.0, "eval_loss": 1.0},
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    config_bytes = (json.dumps(config_dict, indent=4) + "\n").encode("utf-8")
    return config_bytes, buffer.getvalue()


def build_tiny_vits(seed: int = 0, step: int = 30824) -> tuple[bytes, bytes]:
    """Tiny voice for tests: (config_json_bytes, checkpoint_bytes)."""
    return build_vits(real_dims=False, seed=seed, step=step)
