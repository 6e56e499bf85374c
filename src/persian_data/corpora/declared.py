"""Corpora a user declares, in `persian-data.toml` at the root (or the file `--sources` names).

    [corpora.my_asr]                  # the key: `--only my_asr`, `eval-stt --corpus my_asr`
    shape = "speech-parquet"          # speech-parquet, speech-tsv-tar, chat-json or chat-jsonl
    repo = "someone/persian-read-speech"
    patterns = ["data/*.parquet", "README.md"]   # optional: what to download (default: the repo)
    text = "transcript"               # then the shape's own fields (see its module's from_config)
    speaker = "speaker_id"

A declared corpus is a `Source` like the five: fetched, verified, locked, recorded, counted
(its own key in logs/dataset_sources.json), gated, prepared, scored and carded the same way. It
lives at `datasets/<bucket>/<key>/` (`folder` may name another `datasets/<bucket>/<name>`).

Everything wrong with a declaration is one line naming the file, the corpus and the field, exit 2:
what can be judged from the file is checked when it is read (`load`); what needs the repo (a
pattern that selects nothing, a column the data does not have) is checked by
`persian_data.preflight` before any byte is downloaded.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path, PurePosixPath

from ..errors import SourcesConfigError
from .config import Fields
from .registry import SHAPES
from ..source import Source

FILE_NAME = "persian-data.toml"
KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
RESERVED = ("speech", "tts", "chat", "cv", "all")  # `--only` groups


def load(path: Path, taken: tuple[Source, ...], where: str | None = None) -> tuple[Source, ...]:
    """The corpora `path` declares; `taken`: the sources they must not clash with."""
    where = where or os.fspath(path)
    if sys.version_info >= (3, 11):  # imported here: most roots declare nothing, and every command loads this
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SourcesConfigError(f"{where}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise SourcesConfigError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    extra = [k for k in data if k != "corpora"]
    if extra:
        raise SourcesConfigError(f"{where}: {extra[0]}: unknown; declare each corpus as a table [corpora.<key>]")
    corpora = data.get("corpora", {})
    if not isinstance(corpora, dict) or not all(isinstance(t, dict) for t in corpora.values()):
        raise SourcesConfigError(f"{where}: corpora: declare each corpus as a table [corpora.<key>]")
    declared: list[Source] = []
    for key, table in corpora.items():
        declared.append(declare(where, key, table, (*taken, *declared)))
    return tuple(declared)


def declare(where: str, key: str, table: dict, taken: tuple[Source, ...]) -> Source:
    """One `[corpora.<key>]` table as a Source, or the SourcesConfigError naming what is wrong."""
    fields = Fields(table, where, key)
    if not KEY.match(key):
        raise fields.error("key", "must be lowercase letters, digits and _ (starting with a letter)")
    if key in RESERVED or any(key == s.key or key in s.aliases for s in taken):
        raise fields.error("key", f"{key!r} is already a source or group ({', '.join(s.key for s in taken)}; "
                                  f"{', '.join(RESERVED)}); pick another key")
    shape = fields.text("shape", required=True)
    if shape not in SHAPES:
        raise fields.error("shape", f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    module = SHAPES[shape]
    repo = fields.text("repo", required=True)
    if not REPO.match(repo):
        raise fields.error("repo", f"{repo!r} is not a Hub repo id (owner/name)")
    repo_type = fields.text("repo_type", "dataset")
    if repo_type not in ("dataset", "model"):
        raise fields.error("repo_type", f"must be dataset or model, not {repo_type!r}")
    bucket = module.BUCKET
    folder = _folder(fields, fields.text("folder", f"datasets/{bucket}/{key}"), bucket)
    count_key = f"{bucket}_{folder}_files"
    for other in taken:
        if (other.bucket, other.folder) == (bucket, folder):
            raise fields.error("folder", f"datasets/{bucket}/{folder} is already {other.key}'s folder")
        if other.count_key == count_key:
            raise fields.error("folder", f"its count key {count_key} is already {other.key}'s")
    # `description`, not `title`: a chat corpus's rows have a `title` part
    title = fields.text("description", f"{repo} (Hugging Face)")
    source = dict(
        key=key, repo_id=repo, repo_type=repo_type, bucket=bucket, folder=folder, content_dir="data",
        count_key=count_key, license=fields.text("license", "see the dataset card"), title=title,
        allow_patterns=fields.texts("patterns"), revision=fields.text("revision", "main"),
        notes=(f"Declared in {Path(where).name} (shape {shape}).",), shape=shape,
        card_title=(fields.text("card_title", f"{key}: {repo}"), fields.text("card_title_fa") or ""),
        declared_in=where, **module.from_config(fields))
    unknown = fields.unknown()
    if unknown:
        raise fields.error(unknown[0], f"unknown field for shape {shape} (it takes: {', '.join(sorted(fields.read))})")
    return Source(**source)


def _folder(fields: Fields, value: str, bucket: str) -> str:
    path = PurePosixPath(value)
    parts = path.parts
    if path.is_absolute() or ".." in parts or not parts or parts[0] != "datasets":
        raise fields.error("folder", f"{value!r} is outside datasets/; a {bucket} corpus lives at "
                                     f"datasets/{bucket}/<name>")
    if len(parts) != 3 or parts[1] != bucket or not KEY.match(parts[2]):
        raise fields.error("folder", f"{value!r}: a {bucket} corpus lives at datasets/{bucket}/<name> "
                                     "(name: lowercase letters, digits and _)")
    return parts[2]
