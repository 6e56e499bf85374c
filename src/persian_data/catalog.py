"""The sources: the specification's five (`corpora.registry`) and those a root declares.

Fetch, records, counts, gates and the CLI read the sources from here. Everything specific to one
corpus lives in its module under `persian_data.corpora`; a corpus of a known shape is declared in
`persian-data.toml` (see `corpora.declared`) without a line of Python.
"""

from __future__ import annotations

import os
from pathlib import Path

from .corpora import declared
from .corpora.registry import BUILTIN
from .errors import SourcesConfigError, UnknownSourceError
from .source import CHAT_BUCKET, SPEECH_BUCKET, VOICE_BUCKET, Source

CATALOG: tuple[Source, ...] = BUILTIN

BY_KEY: dict[str, Source] = {s.key: s for s in CATALOG}

# The specification's chat corpus: where `Layout.chat_combined()` & co. point without a source.
CHAT_SOURCE: Source = next(s for s in CATALOG if s.bucket == CHAT_BUCKET)

# The specification's speech corpus for STT train/eval (Common Voice): `eval-stt`'s default corpus.
DEFAULT_SPEECH_SOURCE: Source = next(s for s in CATALOG if s.bucket == SPEECH_BUCKET)

# Voice name (as `synth --voice` and `/api/tts?voice=` spell it) -> its source.
VOICE_SOURCES: dict[str, Source] = {s.voice: s for s in CATALOG if s.voice}


def root_sources(root: Path | str, sources_file: Path | str | None = None) -> tuple[Source, ...]:
    """The five and the corpora declared for this root: in `sources_file` (`--sources FILE`) when
    given, else in `<root>/persian-data.toml` when there is one."""
    if sources_file is not None:
        path = Path(sources_file)
        if not path.is_file():
            raise SourcesConfigError(f"{os.fspath(sources_file)}: no such file (--sources)")
    else:
        path = Path(root) / declared.FILE_NAME
        if not path.is_file():
            return CATALOG
    return CATALOG + declared.load(path, CATALOG)


def aliases(sources: tuple[Source, ...] | list[Source] = CATALOG) -> dict[str, tuple[str, ...]]:
    """Groups for `--only`: the speech corpora (speech), the voices (tts), the chat corpora (chat),
    each source's own aliases (cv), and all."""
    out: dict[str, tuple[str, ...]] = {}
    for name, bucket in (("speech", SPEECH_BUCKET), ("tts", VOICE_BUCKET), ("chat", CHAT_BUCKET)):
        out[name] = tuple(s.key for s in sources if s.bucket == bucket)
    for source in sources:
        for alias in source.aliases:
            out[alias] = (source.key,)
    out["all"] = tuple(s.key for s in sources)
    return out


# Convenient groups for `--only`.
ALIASES: dict[str, tuple[str, ...]] = aliases()


def select(only: str | list[str] | None, sources: tuple[Source, ...] | list[Source] = CATALOG) -> list[Source]:
    """Sources named by `--only` (comma separated keys or aliases), in catalog order; `sources`:
    the root's (the five and those it declares)."""
    if not only:
        return list(sources)
    by_key = {s.key: s for s in sources}
    groups = aliases(sources)
    names = only.split(",") if isinstance(only, str) else list(only)
    wanted: set[str] = set()
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name in by_key:
            wanted.add(name)
        elif name in groups:
            wanted.update(groups[name])
        else:
            known = ", ".join(list(by_key) + [g for g in groups if g not in by_key])
            raise UnknownSourceError(f"unknown source {name!r}; known: {known}")
    return [s for s in sources if s.key in wanted]
