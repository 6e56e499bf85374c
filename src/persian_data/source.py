"""What a corpus is to the rest of the tool: its catalog entry (`Source`) and its policies.

A `Source` says where a corpus comes from (repo, type, revision, patterns), where it lives in the
layout (bucket, folder, content folder, count key), how its files are read (`shape` and the
shape's settings in `reader`), and what the generic stages need to know about it: who speaks
(`SpeechPolicy`), which system turn a chat corpus gets (`ChatPolicy`), which voice a model repo is,
and the card's titles. The generic stages read these fields; none of them asks for a source key.

This module imports nothing of the package: everything else may import it. The corpora themselves
live in `persian_data.corpora`, one module each; `persian_data.catalog` lists them.

A shape's module (`corpora.speech_parquet`, `speech_tsv_tar`, `chat_json`, `chat_jsonl`) holds its reader
class, `BUCKET` (where its corpora live), `from_config(fields)` (a declared corpus's reader and
policies from its table in `persian-data.toml`) and `check_remote(source, listing, sample, fail)`
(the declaration against the repo's files and first bytes, before anything is downloaded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HUB_URL = "https://huggingface.co"

# The first folder under datasets/ ("bucket"): what kind of data a source holds. A prepare stage
# prepares one bucket (`prepare text` the chat corpora, `prepare speech` the speech corpora).
CHAT_BUCKET = "text"  # datasets/text/, as the specification names it (a folder, not a source key)
SPEECH_BUCKET = "speech"
VOICE_BUCKET = "tts"

# Source split name -> published name, unless a corpus says otherwise: tools expect `validation`.
DEFAULT_SPLIT_NAMES: tuple[tuple[str, str], ...] = (("dev", "validation"),)


@dataclass(frozen=True)
class SpeechPolicy:
    """What a speech corpus's manifest columns mean, and how its splits are named.

    The manifest keeps the source's own column names; these say which one names the speaker, the
    gender, the age and the accent (None: the corpus has none). The stage counts speakers only
    when there is a speaker column; `eval-stt` breaks the scores down by gender/age/accent when
    present and checks speaker leakage (a test speaker also in train) when there is a speaker
    column; the card draws what is there."""

    speaker: str | None = None
    gender: str | None = None
    age: str | None = None
    accent: str | None = None
    split_names: tuple[tuple[str, str], ...] = DEFAULT_SPLIT_NAMES

    def published(self, source_split: str) -> str:
        return dict(self.split_names).get(source_split, source_split)

    @property
    def breakdown(self) -> tuple[str, ...]:
        """Manifest columns `eval-stt` breaks the scores down by (besides the clip duration)."""
        return tuple(c for c in (self.gender, self.age, self.accent) if c)


@dataclass(frozen=True)
class ChatPolicy:
    """A chat corpus's own system turn (None: `ChatOptions.system_prompt`, the legal-assistant
    prompt of the specification's corpus)."""

    system_prompt: str | None = None


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
    hub_config: str | None = None  # the repo's dataset config its files are (FLEURS: fa_ir), as a model card names it
    notes: tuple[str, ...] = field(default=())
    shape: str | None = None  # how its files are read: speech-parquet, speech-tsv-tar, chat-json, chat-jsonl
    reader: Any = None  # the shape's settings (a frozen dataclass of that shape's module)
    speech: SpeechPolicy | None = None
    chat: ChatPolicy | None = None
    voice: str | None = None  # a voice's name (`synth --voice female`) for a VITS model repo
    card_title: tuple[str, str] = ("", "")  # (English, Persian) heading of its card section
    aliases: tuple[str, ...] = ()  # other `--only` names for this source alone (e.g. cv)
    declared_in: str | None = None  # the sources file that declared it (None: one of the five)
    # a declared corpus's fields that name a column or key of its data, as (field, name): checked
    # against the repo's data before anything is downloaded
    data_fields: tuple[tuple[str, Any], ...] = ()

    @property
    def url(self) -> str:
        """The exact URL the specification writes for this source."""
        prefix = "datasets/" if self.repo_type == "dataset" else ""
        return f"{HUB_URL}/{prefix}{self.repo_id}"

    def patterns(self, full: bool) -> tuple[str, ...] | None:
        """File patterns to take (fnmatch, `*` crosses `/`), or None for everything."""
        return None if full else self.allow_patterns


def template_regex(template: str) -> re.Pattern:
    """A file template (`data/{split}-*.parquet`) as a regex on content-relative POSIX paths:
    `{split}` captures one path component's part, `*` matches within a folder, `**` across."""
    out = ""
    for part in re.split(r"(\{split\}|\*\*|\*)", template):
        out += {"{split}": r"(?P<split>[^/]+?)", "**": r".*", "*": r"[^/]*"}.get(part, re.escape(part))
    return re.compile(f"^{out}$")


def files_by_split(content: Path, template: str, suffix: str) -> dict[str, list[Path]]:
    """The files under `content` (hidden folders skipped) whose relative path matches `template`,
    by the `{split}` it captures, each list in path order."""
    pattern = template_regex(template)
    found: dict[str, list[Path]] = {}
    for path in sorted(content.rglob(f"*{suffix}")) if content.is_dir() else []:
        rel = path.relative_to(content).as_posix()
        if any(part.startswith(".") for part in rel.split("/")):
            continue  # e.g. .cache/huggingface bookkeeping
        match = pattern.match(rel)
        if match and path.is_file():
            found.setdefault(match["split"], []).append(path)
    return found
