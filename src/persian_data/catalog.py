"""The five sources, declared once.

Adding a sixth source means adding one `Source` entry to `CATALOG`: fetch, records, counts,
gates and the CLI all read from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UnknownSourceError

HUB_URL = "https://huggingface.co"


@dataclass(frozen=True)
class Source:
    key: str  # short name used on the command line (`--only text,fleurs`)
    repo_id: str
    repo_type: str  # "dataset" or "model", as huggingface_hub spells it
    bucket: str  # first folder under datasets/: text, speech or tts
    folder: str  # second folder: the source's home in the layout
    content_dir: str  # "data" or "model": where the repo's files land
    count_key: str  # key in logs/dataset_sources.json, as the specification names it
    license: str
    title: str  # what the README.source.md says the source is
    allow_patterns: tuple[str, ...] | None = None  # default selection; None = the whole repo
    revision: str = "main"
    notes: tuple[str, ...] = field(default=())

    @property
    def url(self) -> str:
        """The exact URL the specification writes for this source."""
        prefix = "datasets/" if self.repo_type == "dataset" else ""
        return f"{HUB_URL}/{prefix}{self.repo_id}"

    def patterns(self, full: bool) -> tuple[str, ...] | None:
        """File patterns to take (fnmatch, `*` crosses `/`), or None for everything."""
        return None if full else self.allow_patterns


CATALOG: tuple[Source, ...] = (
    Source(
        key="text",
        repo_id="Kamtera/Persian-conversational-dataset",
        repo_type="dataset",
        bucket="text",
        folder="persian_conversation",
        content_dir="data",
        count_key="text_persian_conversation_files",
        license="apache-2.0 (see dataset card)",
        title="Kamtera/Persian-conversational-dataset (Hugging Face)",
    ),
    Source(
        key="commonvoice",
        repo_id="hezarai/common-voice-13-fa",
        repo_type="dataset",
        bucket="speech",
        folder="commonvoice_fa",
        content_dir="data",
        count_key="speech_commonvoice_fa_files",
        license="cc0-1.0 (Common Voice 13)",
        title="hezarai/common-voice-13-fa (Hugging Face mirror of Common Voice 13 Persian)",
    ),
    Source(
        key="fleurs",
        repo_id="google/fleurs",
        repo_type="dataset",
        bucket="speech",
        folder="fleurs_fa",
        content_dir="data",
        count_key="speech_fleurs_fa_files",
        license="cc-by-4.0",
        title="google/fleurs (Hugging Face)",
        # The whole repo is ~350 GB over 102 languages; Persian is data/fa_ir (~3.1 GB).
        allow_patterns=("data/fa_ir/*", "README.md"),
        notes=("Persian config fa_ir only (data/fa_ir/); --full mirrors every language.",),
    ),
    Source(
        key="tts-female",
        repo_id="Kamtera/persian-tts-female-vits",
        repo_type="model",
        bucket="tts",
        folder="kamtera_vits_female",
        content_dir="model",
        count_key="tts_female_files",
        license="openrail",
        title="Kamtera/persian-tts-female-vits (Hugging Face)",
        # The inference set; the repo also holds ~1 GB training checkpoints (--full takes them).
        allow_patterns=("README.md", "config.json", "best_model_30824.pth"),
    ),
    Source(
        key="tts-male",
        repo_id="Kamtera/persian-tts-male-vits",
        repo_type="model",
        bucket="tts",
        folder="kamtera_vits_male",
        content_dir="model",
        count_key="tts_male_files",
        license="openrail",
        title="Kamtera/persian-tts-male-vits (Hugging Face)",
        allow_patterns=("README.md", "config.json", "best_model_91323.pth"),
    ),
)

BY_KEY: dict[str, Source] = {s.key: s for s in CATALOG}

# Convenient groups for `--only`.
ALIASES: dict[str, tuple[str, ...]] = {
    "speech": ("commonvoice", "fleurs"),
    "tts": ("tts-female", "tts-male"),
    "cv": ("commonvoice",),
    "all": tuple(BY_KEY),
}


def select(only: str | list[str] | None) -> list[Source]:
    """Sources named by `--only` (comma separated keys or aliases), in catalog order."""
    if not only:
        return list(CATALOG)
    names = only.split(",") if isinstance(only, str) else list(only)
    wanted: set[str] = set()
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name in BY_KEY:
            wanted.add(name)
        elif name in ALIASES:
            wanted.update(ALIASES[name])
        else:
            known = ", ".join(list(BY_KEY) + list(ALIASES))
            raise UnknownSourceError(f"unknown source {name!r}; known: {known}")
    return [s for s in CATALOG if s.key in wanted]
