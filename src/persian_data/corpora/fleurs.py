"""FLEURS Persian: google/fleurs, config fa_ir only (key `fleurs`).

The whole repo holds 102 languages (~350 GB); Persian is `data/fa_ir/` (~3.1 GB): per split a
headerless TSV (`data/fa_ir/<split>.tsv`: id, wav file name, raw transcription, transcription,
character-level transcription, num_samples, gender) and `audio/<split>.tar.gz` with
`<split>/<file>.wav`, 16 kHz (shape `speech-tsv-tar`). `id` repeats once per speaker, so the clip
id is the wav name without `.wav` and the TSV `id` is kept as `fleurs_id`; `text` is the raw
transcription; both transcriptions are kept (the HF loader's names), the character-level column is
not. num_samples is checked against each WAV. `dev` is published as `validation`. FLEURS publishes
no speaker id. The catalog entry is `SOURCE`; `replica_files` builds the local hub's replica.
"""

from __future__ import annotations

import gzip
import io
import random
from typing import Any

from ..localhub import replica_kit as kit
from ..source import SPEECH_BUCKET, Source, SpeechPolicy
from .speech_tsv_tar import TsvTarReader

LANG = "fa_ir"

SOURCE = Source(
    key="fleurs",
    repo_id="google/fleurs",
    repo_type="dataset",
    bucket=SPEECH_BUCKET,
    folder="fleurs_fa",
    content_dir="data",
    count_key="speech_fleurs_fa_files",
    license="cc-by-4.0",
    title="google/fleurs (Hugging Face)",
    # The whole repo is ~350 GB over 102 languages; Persian is data/fa_ir (~3.1 GB).
    allow_patterns=(f"data/{LANG}/*", "README.md"),
    hub_config=LANG,
    notes=("Persian config fa_ir only (data/fa_ir/); --full mirrors every language.",),
    shape="speech-tsv-tar",
    reader=TsvTarReader(tsv=f"data/{LANG}/{{split}}.tsv", audio=f"data/{LANG}/audio/{{split}}.tar.gz",
                        member="{split}/{file}", header=False,
                        columns=("fleurs_id", "path", "raw_transcription", "transcription", None, "num_samples",
                                 "gender"),
                        file="path", text="raw_transcription", num_samples="num_samples", numeric=("fleurs_id",)),
    speech=SpeechPolicy(gender="gender", split_names=(("dev", "validation"),)),
    card_title=("Speech: FLEURS fa_ir", "گفتار: فلورز فارسی"),
)


# ---------------------------------------------------------------------------------------------
# The local hub's replica (fa_ir plus decoy languages)
# ---------------------------------------------------------------------------------------------
FLEURS_SPLITS = ("train", "dev", "test")
FLEURS_SAMPLE_RATE = 16_000
FLEURS_MTIME = 1_654_041_600  # 2022-06-01, fixed in every tar header

# Every defect in data/fa_ir (decoy languages have none), as real TSVs and archives have them; names
# do not depend on the scale. (The tests add hostile members of their own: tests/support.)
FLEURS_ADVERSARIAL: dict[str, dict[str, Any]] = {
    "missing_wav": {"split": "train", "wav": "17811245311098341999.wav",
                    "what": "TSV row whose wav is not in train.tar.gz"},
    "orphan_wav": {"split": "train", "member": "train/12000355550017723456.wav",
                   "what": "valid wav in the tar with no TSV row"},
    "wrong_num_samples": {"split": "train", "wav": "16661029384756102938.wav", "tsv_extra": 4000,
                          "what": "TSV num_samples = real frames + 4000"},
}

_FA_SENTENCES = (
    "دانشمندان در طول سال‌ها تغییرات زیادی را در این منطقه ثبت کرده‌اند.",
    "این شهر هر سال میزبان هزاران گردشگر از سراسر جهان است.",
    "رودخانه از میان دره‌ای سرسبز عبور می‌کند و به دریا می‌ریزد.",
    "بسیاری از ساکنان روستا در زمینه کشاورزی فعالیت می‌کنند.",
    "این کتاب در سال ۱۹۶۳ برای نخستین بار منتشر شد.",
    "پژوهشگران می‌گویند که دمای هوا در دهه اخیر افزایش یافته است.",
    "بازار قدیمی شهر پر از مغازه‌های کوچک و رنگارنگ است.",
    "مسابقه به دلیل باران شدید چند ساعت به تعویق افتاد.",
    "در زمستان جاده‌های کوهستانی اغلب بسته می‌شوند.",
    "موزه ملی مجموعه‌ای از آثار تاریخی ارزشمند را نگهداری می‌کند.",
)
_EN_SENTENCES = (
    "The river runs through a green valley before it reaches the sea.",
    "Many of the villagers work in farming and fishing.",
    "The book was first published in 1963.",
    "Researchers say the average temperature has risen over the last decade.",
    "The old market is full of small and colourful shops.",
    "The race was delayed by several hours because of heavy rain.",
)
_AR_SENTENCES = (
    "يمر النهر عبر واد أخضر قبل أن يصل إلى البحر.",
    "يعمل كثير من سكان القرية في الزراعة وصيد الأسماك.",
    "نشر الكتاب لأول مرة عام 1963.",
    "يقول الباحثون إن متوسط درجة الحرارة ارتفع خلال العقد الأخير.",
    "السوق القديم مليء بالمحلات الصغيرة والملونة.",
)


def _fleurs_sentences(lang: str) -> tuple[str, ...]:
    if lang.startswith("fa"):
        return _FA_SENTENCES
    if lang.startswith("ar"):
        return _AR_SENTENCES
    return _EN_SENTENCES


def _fleurs_normalize(text: str) -> str:
    kept = "".join(c if (c.isalnum() or c in " \u200c") else " " for c in text.lower())
    return " ".join(kept.split())


def _fleurs_chars(normalized: str) -> str:
    return "".join(" ".join(word) + " | " for word in normalized.split()).rstrip()


def _wav_name(r: random.Random) -> str:
    return f"{r.randint(10**19, 2 * 10**19 - 1)}.wav"


def tar_gz(members: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """Deterministic tar.gz: (name, data, symlink target); data None + no target = directory."""
    import tarfile  # only the replica needs it, not every command that imports the corpora
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data, target in members:
            info = tarfile.TarInfo(name)
            info.mtime = FLEURS_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if target is not None:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
                tar.addfile(info)
            elif data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


FleursRow = tuple[int, str, str, int, str]  # id, wav file name, raw transcription, num_samples, gender
TarMember = tuple[str, bytes | None, str | None]  # name, data (None: a directory), symlink target


def fleurs_split(scale: kit.ReplicaScale, lang: str, split: str) -> tuple[list[FleursRow], list[TarMember]]:
    """One split of one language: its TSV rows and its tar members, in file order. Only fa_ir has the
    FLEURS_ADVERSARIAL defects."""
    adversarial = lang == LANG
    sentences = _fleurs_sentences(lang)
    r = kit.rng("fleurs", lang, split)
    ids = sorted(kit.rng("fleurs-ids", split).sample(range(1, 2010), scale.fleurs_clips_per_split))
    # (id, sentence index); the first two ids are recorded twice, by different speakers.
    takes = [(i, k) for k, i in enumerate(ids)]
    takes += [takes[0], takes[1]]
    rows: list[FleursRow] = []
    members: list[TarMember] = [(split, None, None)]
    genders = ("FEMALE", "MALE")
    for j, (fid, k) in enumerate(takes):
        raw = sentences[(fid + k) % len(sentences)]
        name = _wav_name(r)
        samples = kit.clip(scale, FLEURS_SAMPLE_RATE, raw, "fleurs", lang, split, name)
        gender = "OTHER" if (adversarial and j == 2) else genders[(fid + j) % 2]
        rows.append((fid, name, raw, samples.size, gender))
        members.append((f"{split}/{name}", kit.encode(samples, FLEURS_SAMPLE_RATE, "WAV"), None))
    if adversarial and split == "train":
        raw = sentences[0]
        rows.append((ids[0] + 1, FLEURS_ADVERSARIAL["missing_wav"]["wav"], raw, 16_000, "FEMALE"))
        bad = FLEURS_ADVERSARIAL["wrong_num_samples"]
        samples = kit.clip(scale, FLEURS_SAMPLE_RATE, raw, "fleurs-bad", lang)
        rows.append((ids[-1] + 1, bad["wav"], raw, samples.size + bad["tsv_extra"], "MALE"))
        members.append((f"{split}/{bad['wav']}", kit.encode(samples, FLEURS_SAMPLE_RATE, "WAV"), None))
        orphan = kit.clip(scale, FLEURS_SAMPLE_RATE, raw, "fleurs-orphan", lang)
        members.append((FLEURS_ADVERSARIAL["orphan_wav"]["member"], kit.encode(orphan, FLEURS_SAMPLE_RATE, "WAV"), None))
    return rows, members


def tsv_bytes(rows: list[FleursRow]) -> bytes:
    lines = []
    for fid, name, raw, num, gender in rows:
        norm = _fleurs_normalize(raw)
        lines.append(f"{fid}\t{name}\t{raw}\t{norm}\t{_fleurs_chars(norm)}\t{num}\t{gender}\n")
    return "".join(lines).encode()


def _fleurs_lang(scale: kit.ReplicaScale, lang: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for split in FLEURS_SPLITS:
        rows, members = fleurs_split(scale, lang, split)
        files[f"data/{lang}/{split}.tsv"] = tsv_bytes(rows)
        files[f"data/{lang}/audio/{split}.tar.gz"] = tar_gz(members)
    return files


_FLEURS_SCRIPT = '''\
"""FLEURS: Few-shot Learning Evaluation of Universal Representations of Speech."""

import os

import datasets

_CITATION = """\\
@article{fleurs2022arxiv,
  title = {FLEURS: Few-shot Learning Evaluation of Universal Representations of Speech},
  author = {Conneau, Alexis and Ma, Min and Khanuja, Simran and Zhang, Yu and Axelrod, Vera and Dalmia, Siddharth and Riesa, Jason and Rivera, Clara and Bapna, Ankur},
  journal={arXiv preprint arXiv:2205.12446},
  url = {https://arxiv.org/abs/2205.12446},
  year = {2022},
}
"""

_FLEURS_LANG = sorted(LANGS)
_BASE_URL = "https://huggingface.co/datasets/google/fleurs/resolve/main/data/{}/"
_DATA_URL = _BASE_URL + "audio/{}.tar.gz"
_META_URL = _BASE_URL + "{}.tsv"


class FleursConfig(datasets.BuilderConfig):
    def __init__(self, name, **kwargs):
        super().__init__(name=name, version=datasets.Version("2.0.0", ""), **kwargs)


class Fleurs(datasets.GeneratorBasedBuilder):
    BUILDER_CONFIGS = [FleursConfig(name=lang) for lang in _FLEURS_LANG]

    def _info(self):
        return datasets.DatasetInfo(
            features=datasets.Features(
                {
                    "id": datasets.Value("int32"),
                    "num_samples": datasets.Value("int32"),
                    "path": datasets.Value("string"),
                    "audio": datasets.Audio(sampling_rate=16_000),
                    "transcription": datasets.Value("string"),
                    "raw_transcription": datasets.Value("string"),
                    "gender": datasets.ClassLabel(names=["male", "female", "other"]),
                    "lang_id": datasets.ClassLabel(names=_FLEURS_LANG),
                    "language": datasets.Value("string"),
                }
            ),
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        splits = ["train", "dev", "test"]
        archives = dl_manager.download({s: _DATA_URL.format(self.config.name, s) for s in splits})
        metas = dl_manager.download({s: _META_URL.format(self.config.name, s) for s in splits})
        names = {"train": datasets.Split.TRAIN, "dev": datasets.Split.VALIDATION, "test": datasets.Split.TEST}
        return [
            datasets.SplitGenerator(
                name=names[s],
                gen_kwargs={"archive": dl_manager.iter_archive(archives[s]), "metadata_path": metas[s]},
            )
            for s in splits
        ]

    def _generate_examples(self, archive, metadata_path):
        gender_to_id = {"MALE": 0, "FEMALE": 1, "OTHER": 2}
        data = {}
        with open(metadata_path, encoding="utf-8") as f:
            for line in f:
                _id, file_name, raw, transcription, _, num_samples, gender = line.strip().split("\\t")
                data[file_name] = {
                    "id": int(_id),
                    "raw_transcription": raw,
                    "transcription": transcription,
                    "num_samples": int(num_samples),
                    "gender": gender_to_id[gender],
                    "lang_id": _FLEURS_LANG.index(self.config.name),
                    "language": self.config.name,
                }
        for key, (path, f) in enumerate(archive):
            name = os.path.basename(path)
            if name in data:
                yield key, dict(data[name], path=path, audio={"path": path, "bytes": f.read()})
'''


def fleurs_repo(scale: kit.ReplicaScale = kit.TINY, *, decoys: tuple[str, ...] = ("en_us", "ar_eg")) -> dict[str, bytes]:
    langs = [LANG, *[d for d in decoys if d != LANG]]
    files: dict[str, bytes] = {}
    for lang in langs:
        files.update(_fleurs_lang(scale, lang))
    listed = "\n".join(f"- {lang}" for lang in sorted(langs))
    files["README.md"] = (
        "---\n"
        "annotations_creators:\n- expert-generated\n- crowdsourced\n- machine-generated\n"
        "language_creators:\n- crowdsourced\n- expert-generated\n"
        f"language:\n{listed}\n"
        "license:\n- cc-by-4.0\n"
        "multilinguality:\n- multilingual\n"
        "size_categories:\n- 10K<n<100K\n"
        "task_categories:\n- automatic-speech-recognition\n"
        "pretty_name: 'The Cross-lingual TRansfer Evaluation of Multilingual Encoders for Speech (XTREME-S) benchmark'\n"
        "tags:\n- speech-recognition\n"
        "---\n\n"
        "# FLEURS\n\n"
        "Fleurs is the speech version of the FLoRes machine translation benchmark: n-way parallel\n"
        "speech in 102 languages, about 12 hours of supervision per language.\n\n"
        "Each language lives in `data/<lang>/`: `train.tsv`, `dev.tsv`, `test.tsv` (no header; id,\n"
        "file name, raw transcription, transcription, characters, num_samples, gender) and\n"
        "`audio/<split>.tar.gz` with `<split>/<file>.wav`, mono 16 kHz.\n\n"
        "<!-- persian-data replica: generated audio and text for offline tests, not the real data -->\n"
    ).encode()
    files["fleurs.py"] = _FLEURS_SCRIPT.replace("sorted(LANGS)", f"sorted({sorted(langs)!r})").encode()
    files[".gitattributes"] = kit.GITATTRIBUTES_DATASET.encode()
    return files


def replica_files(scale: kit.ReplicaScale = kit.TINY, **_: Any) -> dict[str, bytes]:
    return fleurs_repo(scale)
