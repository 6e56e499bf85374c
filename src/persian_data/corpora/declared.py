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
pattern that selects nothing, a column the data does not have) is checked by `check_remote` before
any byte is downloaded, from the Hub's file list and the first (or, for parquet, last) bytes of one
data file, read by range.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from ..errors import SourcesConfigError
from .config import Fields
from .registry import SHAPES
from .source import Source

if TYPE_CHECKING:
    from ..plan import FetchOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

log = logging.getLogger("persian_data.fetch")

FILE_NAME = "persian-data.toml"
KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
RESERVED = ("speech", "tts", "chat", "cv", "all")  # `--only` groups
SAMPLE_TIMEOUT = 30.0


def load(path: Path, taken: tuple[Source, ...], where: str | None = None) -> tuple[Source, ...]:
    """The corpora `path` declares; `taken`: the sources they must not clash with."""
    where = where or os.fspath(path)
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
    title = fields.text("title", f"{repo} (Hugging Face)")
    source = dict(
        key=key, repo_id=repo, repo_type=repo_type, bucket=bucket, folder=folder, content_dir="data",
        count_key=count_key, license=fields.text("license", "see the dataset card"), title=title,
        allow_patterns=fields.texts("patterns"), revision=fields.text("revision", "main"),
        notes=(f"Declared in {Path(where).name} (shape {shape}).",), shape=shape,
        card_title=(fields.text("card_title", f"{key}: {repo}"), fields.text("card_title_fa", "")),
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


# -- against the repo, before anything is downloaded ------------------------------------------

def check_remote(sources: list[Source], options: FetchOptions) -> None:
    """Each declared corpus among `sources` against its repo: its patterns select files, its shape
    finds its data files there, and every column or key it names is in the data. Nothing is
    downloaded but the file list and a few ranged bytes of one data file per corpus. A repo that
    cannot be reached is left to the fetch, which says so."""
    declared = [s for s in sources if s.declared_in]
    if not declared:
        return
    from ..endpoints import describe, resolve_revisions
    from ..errors import PlanError
    from ..plan import list_tree

    endpoints = options.endpoint_list()
    found = resolve_revisions(endpoints, [(s.key, s.repo_id, s.repo_type, s.revision) for s in declared],
                              timeout=options.timeout)
    for source in declared:
        answers = [(ep, found[(ep.url, source.key)]) for ep in endpoints]
        ep, sha = next(((ep, res.sha) for ep, res in answers if res.sha), (None, None))

        def fail(field: str, problem: str, source: Source = source) -> None:
            raise SourcesConfigError(f"{source.declared_in}: [corpora.{source.key}] {field}: {problem}")

        if sha is None:
            if all(res.unreachable for _, res in answers):
                continue  # the fetch reports the unreachable endpoints
            fail("repo" if source.revision == "main" else "revision",
                 f"{source.repo_type} {source.repo_id}@{source.revision}: {describe(answers[0][1].error)}")
        try:
            files = list_tree(ep.api(), source, sha, source.allow_patterns, ep.label)
        except PlanError as exc:
            if "no file matches" in str(exc):
                fail("patterns", f"{list(source.allow_patterns or ['*'])} match no file of {source.repo_id}@{sha[:12]}")
            raise
        sizes = {f.path: f.size for f in files}
        SHAPES[source.shape].check_remote(source, sorted(sizes), _sampler(ep, source, sha, sizes, options), fail)


def _sampler(ep, source: Source, sha: str, sizes: dict[str, int], options: FetchOptions):
    """sample(path, n, tail) -> the first (or last) n bytes of a repo file by one ranged GET, or
    None when the endpoint ignores ranges on a large file or the read fails (the check is then
    left to the stage, which reads the whole file)."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import get_session, hf_raise_for_status

    def sample(path: str, n: int, tail: bool) -> bytes | None:
        size = sizes[path]
        if size == 0:
            return b""
        first = max(0, size - n) if tail else 0
        last = size - 1 if tail else min(size, n) - 1
        url = hf_hub_url(source.repo_id, path, repo_type=source.repo_type, revision=sha, endpoint=ep.url)
        headers = {**ep.headers(), "Range": f"bytes={first}-{last}"}
        try:
            with get_session().stream("GET", url, headers=headers, timeout=min(options.timeout, SAMPLE_TIMEOUT),
                                      follow_redirects=True) as resp:
                hf_raise_for_status(resp)
                if resp.status_code == 206:
                    return resp.read()
                if not tail:  # the whole file is coming: keep its first n bytes, hang up
                    got = bytearray()
                    for chunk in resp.iter_bytes():
                        got += chunk
                        if len(got) >= n:
                            break
                    return bytes(got[:n])
                if size <= 8 << 20:
                    return resp.read()[-n:]
                log.warning("%s: %s ignores ranges; the columns of %s are checked when it is prepared",
                            source.key, ep, path)
                return None
        except Exception as exc:  # noqa: BLE001 - a sample we cannot read: the stage checks instead
            log.warning("%s: could not read the start of %s (%s); it is checked when it is prepared",
                        source.key, path, exc)
            return None

    return sample
