"""The two VITS voices: Kamtera/persian-tts-female-vits and Kamtera/persian-tts-male-vits
(keys `tts-female`, `tts-male`; voices `female`, `male`).

Coqui TTS VITS models, single speaker, phonemes from espeak-ng (SOURCES.md D). Each repo holds
several ~1 GB training checkpoints; the default selection is the inference set (README, config,
the checkpoint coqui's catalog uses), `--full` mirrors everything. Model repos are not read by a
prepare stage: the voice check (`tts.check`) and the TTS commands use them. The catalog entries are
`FEMALE` and `MALE`; `replica_files` builds the local hub's replicas (placeholder checkpoints, or
the tiny real ones a test hands in as `voice_assets`).
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from typing import Any

from ..localhub import replica_kit as kit
from ..source import VOICE_BUCKET, Source

FEMALE = Source(
    key="tts-female",
    repo_id="Kamtera/persian-tts-female-vits",
    repo_type="model",
    bucket=VOICE_BUCKET,
    folder="kamtera_vits_female",
    content_dir="model",
    count_key="tts_female_files",
    license="openrail",
    title="Kamtera/persian-tts-female-vits (Hugging Face)",
    # The inference set; the repo also holds ~1 GB training checkpoints (--full takes them).
    allow_patterns=("README.md", "config.json", "best_model_30824.pth"),
    voice="female",
    card_title=("Text to speech: female voice", "صدای زن"),
)
MALE = Source(
    key="tts-male",
    repo_id="Kamtera/persian-tts-male-vits",
    repo_type="model",
    bucket=VOICE_BUCKET,
    folder="kamtera_vits_male",
    content_dir="model",
    count_key="tts_male_files",
    license="openrail",
    title="Kamtera/persian-tts-male-vits (Hugging Face)",
    allow_patterns=("README.md", "config.json", "best_model_91323.pth"),
    voice="male",
    card_title=("Text to speech: male voice", "صدای مرد"),
)
SOURCES = (FEMALE, MALE)
VOICES = {s.voice: s for s in SOURCES}


# ---------------------------------------------------------------------------------------------
# The local hub's replicas
# ---------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------
TTS_FILES: dict[str, tuple[str, ...]] = {
    "female": (
        ".gitattributes", "README.md", "config.json", "config-0.json", "config-1.json", "config-2.json",
        "best_model_1725.pth", "best_model_3796.pth", "best_model_23604.pth", "best_model_30824.pth",
        "checkpoint_5000.pth", "checkpoint_26000.pth", "checkpoint_48000.pth",
        "phoneme_cache.zip", "events.out.tfevents.1673758534.8f6deb5c5186", "train_vits.py",
    ),
    "male": (
        ".gitattributes", "README.md", "config.json", "config-0.json",
        "best_model_65633.pth", "best_model_91323.pth",
        "checkpoint_49000.pth", "checkpoint_77000.pth", "checkpoint_105000.pth",
        "phoneme_cache.zip", "events.out.tfevents.1674024033.2ba09f99fefc", "train_vits.py",
    ),
}
# voice -> (config, checkpoint) that synthesis needs (what the catalog fetches by default).
TTS_INFERENCE = {"female": ("config.json", "best_model_30824.pth"), "male": ("config.json", "best_model_91323.pth")}

_TTS_CHARACTERS = "ءابتثجحخدذرزسشصضطظعغفقلمنهويِپچژکگیآأؤإئًَُّ"
_TTS_PUNCTUATIONS = "!(),-.:;? ̠،؛؟‌<>"
_TTS_PHONEMES = (
    "ˈˌːˑpbtdʈɖcɟkɡqɢʔɴŋɲɳnɱmʙrʀⱱɾɽɸβfvθðszʃʒʂʐçʝxɣχʁħʕhɦɬɮʋɹɻjɰlɭʎʟaegiouwyɪʊ̩æɑɔəɚɛɝɨ̃ʉʌʍ"
    "0123456789\"#$%*+/=ABCDEFGHIJKLMNOPRSTUVWXYZ[]^_{}"
)
_TTS_TEST_SENTENCES = (
    "زندگی فقط یک بار است؛ از آن به خوبی استفاده کن",
    "این یک نمونه از صدای تولید شده است",
    "سلام، حال شما چطور است؟",
)


def _vits_config(voice: str, variant: int = -1) -> dict[str, Any]:
    """A Coqui TTS VitsConfig as written by the trainer (`config.json` / `config-N.json`)."""
    run = f"vits-{voice}-persian"
    batch = (14, 16, 12, 8)[variant + 1]
    dataset_path = "/kaggle/input/persian-tts-dataset-famale" if voice == "female" else "/kaggle/input/persian-tts-dataset-male"
    vocab = 4 + len(_TTS_PHONEMES) + len(_TTS_PUNCTUATIONS)  # pad, eos, bos, blank + phonemes + punctuation
    return {
        "output_path": "/kaggle/working/",
        "logger_uri": None,
        "run_name": run,
        "project_name": None,
        "run_description": "\U0001f438Coqui trainer run.",
        "print_step": 25,
        "plot_step": 100,
        "model_param_stats": False,
        "wandb_entity": None,
        "dashboard_logger": "tensorboard",
        "log_model_step": None,
        "save_step": 1000,
        "save_n_checkpoints": 5,
        "save_checkpoints": True,
        "save_all_best": False,
        "save_best_after": 10000,
        "target_loss": None,
        "print_eval": True,
        "test_delay_epochs": -1,
        "run_eval": True,
        "run_eval_steps": None,
        "distributed_backend": "nccl",
        "distributed_url": "tcp://localhost:54321",
        "mixed_precision": False,
        "epochs": 1000,
        "batch_size": batch,
        "eval_batch_size": batch // 2,
        "grad_clip": [1000, 1000],
        "scheduler_after_epoch": True,
        "lr": 0.001,
        "optimizer": "AdamW",
        "optimizer_params": {"betas": [0.8, 0.99], "eps": 1e-09, "weight_decay": 0.01},
        "lr_scheduler": None,
        "lr_scheduler_params": {},
        "use_grad_scaler": False,
        "cudnn_enable": True,
        "cudnn_deterministic": False,
        "cudnn_benchmark": False,
        "training_seed": 54321,
        "model": "vits",
        "num_loader_workers": 0,
        "num_eval_loader_workers": 2,
        "use_noise_augment": False,
        "audio": {
            "fft_size": 1024,
            "sample_rate": 24000,
            "win_length": 1024,
            "hop_length": 256,
            "num_mels": 80,
            "mel_fmin": 0,
            "mel_fmax": None,
        },
        "use_phonemes": True,
        "phonemizer": "espeak",
        "phoneme_language": "fa",
        "compute_input_seq_cache": True,
        "text_cleaner": "basic_cleaners",
        "enable_eos_bos_chars": False,
        "test_sentences_file": "",
        "phoneme_cache_path": "/kaggle/working/phoneme_cache",
        "characters": {
            "characters_class": "TTS.tts.utils.text.characters.IPAPhonemes",
            "vocab_dict": None,
            "pad": "<PAD>",
            "eos": "<EOS>",
            "bos": "<BOS>",
            "blank": "<BLNK>",
            "characters": _TTS_CHARACTERS,
            "punctuations": _TTS_PUNCTUATIONS,
            "phonemes": _TTS_PHONEMES,
            "is_unique": True,
            "is_sorted": True,
        },
        "add_blank": True,
        "batch_group_size": 5,
        "loss_masking": None,
        "min_audio_len": 1,
        "max_audio_len": float("inf"),  # written as Infinity, as coqpit does (not strict JSON)
        "min_text_len": 1,
        "max_text_len": float("inf"),
        "compute_f0": False,
        "compute_linear_spec": True,
        "precompute_num_workers": 0,
        "start_by_longest": False,
        "shuffle": False,
        "drop_last": False,
        "datasets": [
            {
                "formatter": "mozilla",
                "dataset_name": "",
                "path": dataset_path,
                "meta_file_train": "metadata.csv",
                "ignored_speakers": None,
                "language": "",
                "phonemizer": "",
                "meta_file_val": "",
                "meta_file_attn_mask": "",
            }
        ],
        "test_sentences": [[s] for s in _TTS_TEST_SENTENCES],
        "eval_split_max_size": None,
        "eval_split_size": 0.01,
        "use_speaker_weighted_sampler": False,
        "speaker_weighted_sampler_alpha": 1.0,
        "use_language_weighted_sampler": False,
        "language_weighted_sampler_alpha": 1.0,
        "use_length_weighted_sampler": False,
        "length_weighted_sampler_alpha": 1.0,
        "model_args": {
            "num_chars": vocab,
            "out_channels": 513,
            "spec_segment_size": 32,
            "hidden_channels": 192,
            "hidden_channels_ffn_text_encoder": 768,
            "num_heads_text_encoder": 2,
            "num_layers_text_encoder": 6,
            "kernel_size_text_encoder": 3,
            "dropout_p_text_encoder": 0.1,
            "dropout_p_duration_predictor": 0.5,
            "kernel_size_posterior_encoder": 5,
            "dilation_rate_posterior_encoder": 1,
            "num_layers_posterior_encoder": 16,
            "kernel_size_flow": 5,
            "dilation_rate_flow": 1,
            "num_layers_flow": 4,
            "resblock_type_decoder": "1",
            "resblock_kernel_sizes_decoder": [3, 7, 11],
            "resblock_dilation_sizes_decoder": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
            "upsample_rates_decoder": [8, 8, 2, 2],
            "upsample_initial_channel_decoder": 512,
            "upsample_kernel_sizes_decoder": [16, 16, 4, 4],
            "periods_multi_period_discriminator": [2, 3, 5, 7, 11],
            "use_sdp": True,
            "noise_scale": 1.0,
            "inference_noise_scale": 0.667,
            "length_scale": 1,
            "noise_scale_dp": 1.0,
            "inference_noise_scale_dp": 1.0,
            "max_inference_len": None,
            "init_discriminator": True,
            "use_spectral_norm_disriminator": False,
            "use_speaker_embedding": False,
            "num_speakers": 0,
            "speakers_file": None,
            "d_vector_file": None,
            "speaker_embedding_channels": 256,
            "use_d_vector_file": False,
            "d_vector_dim": 0,
            "detach_dp_input": True,
            "use_language_embedding": False,
            "embedded_language_dim": 4,
            "num_languages": 0,
            "language_ids_file": None,
            "use_speaker_encoder_as_loss": False,
            "speaker_encoder_config_path": "",
            "speaker_encoder_model_path": "",
            "condition_dp_on_speaker": True,
            "freeze_encoder": False,
            "freeze_DP": False,
            "freeze_PE": False,
            "freeze_flow_decoder": False,
            "freeze_waveform_decoder": False,
            "encoder_sample_rate": None,
            "interpolate_z": True,
            "reinit_DP": False,
            "reinit_text_encoder": False,
        },
        "lr_gen": 0.0002,
        "lr_disc": 0.0002,
        "lr_scheduler_gen": "ExponentialLR",
        "lr_scheduler_gen_params": {"gamma": 0.999875, "last_epoch": -1},
        "lr_scheduler_disc": "ExponentialLR",
        "lr_scheduler_disc_params": {"gamma": 0.999875, "last_epoch": -1},
        "kl_loss_alpha": 1.0,
        "disc_loss_alpha": 1.0,
        "gen_loss_alpha": 1.0,
        "feat_loss_alpha": 1.0,
        "mel_loss_alpha": 45.0,
        "dur_loss_alpha": 1.0,
        "speaker_encoder_loss_alpha": 1.0,
        "return_wav": True,
        "use_weighted_sampler": False,
        "weighted_sampler_attrs": {},
        "weighted_sampler_multipliers": {},
        "r": 1,
        "num_speakers": 0,
        "use_speaker_embedding": False,
        "speakers_file": None,
        "speaker_embedding_channels": 256,
        "language_ids_file": None,
        "use_language_embedding": False,
        "use_d_vector_file": False,
        "d_vector_file": None,
        "d_vector_dim": 0,
    }


def _config_bytes(voice: str, variant: int = -1) -> bytes:
    return json.dumps(_vits_config(voice, variant), indent=4, ensure_ascii=False).encode("utf-8")


def _placeholder(size: int, repo_id: str, path: str) -> bytes:
    head = f"persian-data replica placeholder, not a model: {repo_id}/{path}\n".encode()
    return (head + kit.pseudo_bytes(max(0, size - len(head)), "ckpt", repo_id, path))[:size]


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _tfevents(voice: str, start: int) -> bytes:
    """A small, valid TensorBoard event file: file_version, then scalar summaries."""

    def event(wall: float, step: int, payload: bytes) -> bytes:
        body = b"\x09" + struct.pack("<d", wall) + b"\x10" + _varint(step) + payload
        head = struct.pack("<Q", len(body))
        return head + struct.pack("<I", _masked_crc(head)) + body + struct.pack("<I", _masked_crc(body))

    def scalar(tag: str, value: float) -> bytes:
        t = tag.encode()
        val = b"\x0a" + _varint(len(t)) + t + b"\x15" + struct.pack("<f", value)
        summary = b"\x0a" + _varint(len(val)) + val
        return b"\x2a" + _varint(len(summary)) + summary

    version = b"brain.Event:2"
    out = [event(float(start), 0, b"\x1a" + _varint(len(version)) + version)]
    for i in range(1, 21):
        step = i * 250
        out.append(event(start + 60.0 * i, step, scalar("TrainIterStats/loss_gen", 40.0 / (1 + i / 4))))
        out.append(event(start + 60.0 * i + 1, step, scalar("TrainIterStats/loss_mel", 30.0 / (1 + i / 8))))
    return b"".join(out)


def _phoneme_cache_zip(voice: str) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        r = kit.rng("phoneme-cache", voice)
        for _ in range(6):
            ids = np.array([r.randint(0, 120) for _ in range(r.randint(10, 40))], dtype="<i4")
            npy = io.BytesIO()
            np.save(npy, ids, allow_pickle=False)
            info = zipfile.ZipInfo(f"phoneme_cache/{r.randint(10**8, 10**9 - 1)}_phoneme.npy", (2023, 1, 15, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, npy.getvalue())
    return buf.getvalue()


_TRAIN_SCRIPT = '''\
import os

from trainer import Trainer, TrainerArgs

from TTS.config.shared_configs import BaseAudioConfig
from TTS.tts.configs.shared_configs import BaseDatasetConfig, CharactersConfig
from TTS.tts.configs.vits_config import VitsConfig
from TTS.tts.datasets import load_tts_samples
from TTS.tts.models.vits import Vits
from TTS.tts.utils.text.tokenizer import TTSTokenizer
from TTS.utils.audio import AudioProcessor

output_path = "/kaggle/working/"

dataset_config = BaseDatasetConfig(
    formatter="mozilla", meta_file_train="metadata.csv", path="DATASET_PATH"
)

audio_config = BaseAudioConfig(
    sample_rate=24000,
    do_trim_silence=True,
    resample=False,
    mel_fmin=0,
    mel_fmax=None,
)

character_config = CharactersConfig(
    characters=CHARACTERS,
    punctuations=PUNCTUATIONS,
    phonemes=PHONEMES,
    pad="<PAD>",
    eos="<EOS>",
    bos="<BOS>",
    blank="<BLNK>",
    characters_class="TTS.tts.utils.text.characters.IPAPhonemes",
)

config = VitsConfig(
    audio=audio_config,
    run_name="RUN_NAME",
    batch_size=14,
    eval_batch_size=7,
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
    characters=character_config,
    phoneme_cache_path=os.path.join(output_path, "phoneme_cache"),
    compute_input_seq_cache=True,
    print_step=25,
    print_eval=True,
    mixed_precision=False,
    test_sentences=TEST_SENTENCES,
    output_path=output_path,
    datasets=[dataset_config],
)

# Audio processor: feature extraction and audio I/O.
ap = AudioProcessor.init_from_config(config)

# Tokenizer: text to character/phoneme ids.
tokenizer, config = TTSTokenizer.init_from_config(config)

train_samples, eval_samples = load_tts_samples(
    dataset_config,
    eval_split=True,
    eval_split_max_size=config.eval_split_max_size,
    eval_split_size=config.eval_split_size,
)

model = Vits(config, ap, tokenizer, speaker_manager=None)

trainer = Trainer(
    TrainerArgs(restore_path=RESTORE_PATH),
    config,
    output_path,
    model=model,
    train_samples=train_samples,
    eval_samples=eval_samples,
)
trainer.fit()
'''


def _train_script(voice: str) -> bytes:
    cfg = _vits_config(voice)
    restore = "None" if voice == "female" else '"/kaggle/input/persian-tts-female-vits/best_model_30824.pth"'
    text = (
        _TRAIN_SCRIPT.replace("DATASET_PATH", cfg["datasets"][0]["path"])
        .replace("RUN_NAME", cfg["run_name"])
        .replace("CHARACTERS", json.dumps(_TTS_CHARACTERS, ensure_ascii=False))
        .replace("PUNCTUATIONS", json.dumps(_TTS_PUNCTUATIONS, ensure_ascii=False))
        .replace("PHONEMES", json.dumps(_TTS_PHONEMES, ensure_ascii=False))
        .replace("TEST_SENTENCES", json.dumps([[s] for s in _TTS_TEST_SENTENCES], ensure_ascii=False))
        .replace("RESTORE_PATH", restore)
    )
    return text.encode("utf-8")


def _tts_readme(voice: str, repo_id: str) -> bytes:
    ckpt = TTS_INFERENCE[voice][1]
    dataset = "Kamtera/persian-tts-dataset" if voice == "female" else "Kamtera/persian-tts-dataset-male"
    origin = "" if voice == "female" else "- finetuned persian-tts-female-vits model on persian-tts-dataset-male dataset\n"
    return (
        "---\n"
        "license: openrail\n"
        "datasets:\n"
        f"- {dataset}\n"
        "language:\n- fa\n"
        "tags:\n- text-to-speech\n- TTS\n- Persian\n- Farsi\n- Coqui\n- CoquiTTS\n- audio\n"
        "pipeline_tag: text-to-speech\n"
        "library_name: TTS\n"
        "---\n\n"
        f"# {repo_id.split('/')[1]}\n\n"
        f"- persian-tts-{voice} vits model for text to speech purposes.\n"
        "- Persian فارسی\n"
        f"- Single-speaker {voice} voice\n"
        f"{origin}\n"
        "## Uses\n\n"
        "Install dependencies:\n\n"
        "```\npip install TTS\nsudo apt-get -y install espeak-ng\n```\n\n"
        "Generate audio from text using the cli:\n\n"
        "```\n"
        'tts --text "زندگی فقط یک بار است؛ از آن به خوبی استفاده کن" \\\n'
        f'    --model_path "{ckpt}" \\\n'
        '    --config_path "config.json" \\\n'
        '    --out_path "speech1.wav"\n'
        "```\n\n"
        "- Cloud Provider: kaggle\n\n"
        "<!-- persian-data replica: placeholder checkpoints for offline tests, not the real model -->\n"
    ).encode("utf-8")


def tts_repo(
    voice: str,
    scale: kit.ReplicaScale = kit.TINY,
    *,
    voice_assets: tuple[bytes, bytes] | None = None,
) -> dict[str, bytes]:
    """`voice` is "female" or "male". `voice_assets` = (config.json bytes, checkpoint bytes) for
    the inference pair (female best_model_30824.pth, male best_model_91323.pth)."""
    if voice not in TTS_FILES:
        raise ValueError(f"voice must be 'female' or 'male', not {voice!r}")
    repo_id = VOICES[voice].repo_id
    cfg_name, ckpt_name = TTS_INFERENCE[voice]
    files: dict[str, bytes] = {}
    for path in TTS_FILES[voice]:
        if path.endswith(".pth"):
            files[path] = _placeholder(scale.checkpoint_bytes, repo_id, path)
        elif path.startswith("config-"):
            files[path] = _config_bytes(voice, int(path[len("config-") : -len(".json")]))
    files[cfg_name] = _config_bytes(voice)
    if voice_assets is not None:
        files[cfg_name], files[ckpt_name] = bytes(voice_assets[0]), bytes(voice_assets[1])
    tfevents = next(p for p in TTS_FILES[voice] if p.startswith("events.out.tfevents."))
    files[tfevents] = _tfevents(voice, int(tfevents.split(".")[3]))
    files["phoneme_cache.zip"] = _phoneme_cache_zip(voice)
    files["train_vits.py"] = _train_script(voice)
    files["README.md"] = _tts_readme(voice, repo_id)
    files[".gitattributes"] = kit.GITATTRIBUTES_MODEL.encode()
    return dict(sorted(files.items()))


def replica_files(scale: kit.ReplicaScale = kit.TINY, *, key: str, voice_assets: dict | None = None,
                  **_: Any) -> dict[str, bytes]:
    """`voice_assets` maps "female"/"male" (or the source key) to (config.json bytes, checkpoint bytes)."""
    voice = next(s.voice for s in SOURCES if s.key == key)
    assets = (voice_assets or {}).get(voice) or (voice_assets or {}).get(key)
    return tts_repo(voice, scale, voice_assets=assets)
