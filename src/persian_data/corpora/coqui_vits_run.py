"""What a Coqui TTS VITS training run leaves in a model repo, as the Kamtera voices' repos hold it
(SOURCES.md D), for the local hub's replicas of the two voices: the trainer's config.json (and the
config-N.json of earlier runs), the training script, a TensorBoard event file and the phoneme cache.
Every file is a pure function of its arguments.
"""

from __future__ import annotations

import io
import json
import struct
from importlib.resources import files
from typing import Any

from ..localhub import replica_kit as kit

_CONFIG_TEMPLATE = "coqui_vits_config.json"
# voice -> what its trainer's config names: the run and the dataset folder (the female one misspelt, as written).
_RUNS = {"female": ("vits-female-persian", "/kaggle/input/persian-tts-dataset-famale"),
         "male": ("vits-male-persian", "/kaggle/input/persian-tts-dataset-male")}


def vits_config(voice: str, variant: int = -1) -> dict[str, Any]:
    """A Coqui TTS VitsConfig as written by the trainer (`config.json`, or `config-N.json` of earlier runs
    with other batch sizes): the template (coqui_vits_config.json) with the voice's run and dataset."""
    cfg = json.loads(files(__package__).joinpath(_CONFIG_TEMPLATE).read_text("utf-8"))
    cfg["run_name"], cfg["datasets"][0]["path"] = _RUNS[voice]
    cfg["batch_size"] = (14, 16, 12, 8)[variant + 1]
    cfg["eval_batch_size"] = cfg["batch_size"] // 2
    return cfg


def config_bytes(voice: str, variant: int = -1) -> bytes:
    return json.dumps(vits_config(voice, variant), indent=4, ensure_ascii=False).encode("utf-8")


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


def tfevents(voice: str, start: int) -> bytes:
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


def phoneme_cache_zip(voice: str) -> bytes:
    import zipfile  # only the replica needs it, not every command that imports the corpora

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


def train_script(voice: str) -> bytes:
    cfg = vits_config(voice)
    restore = "None" if voice == "female" else '"/kaggle/input/persian-tts-female-vits/best_model_30824.pth"'
    text = (
        _TRAIN_SCRIPT.replace("DATASET_PATH", cfg["datasets"][0]["path"])
        .replace("RUN_NAME", cfg["run_name"])
        .replace("CHARACTERS", json.dumps(cfg["characters"]["characters"], ensure_ascii=False))
        .replace("PUNCTUATIONS", json.dumps(cfg["characters"]["punctuations"], ensure_ascii=False))
        .replace("PHONEMES", json.dumps(cfg["characters"]["phonemes"], ensure_ascii=False))
        .replace("TEST_SENTENCES", json.dumps(cfg["test_sentences"], ensure_ascii=False))
        .replace("RESTORE_PATH", restore)
    )
    return text.encode("utf-8")
