"""Declared corpora against their repos, before any byte is downloaded.

`persian-data.toml` is read and checked on its own when a command starts (`corpora.declared`);
what needs the repo is checked here, at the start of `fetch`/`run`, for the declared corpora it
was asked for: the revision resolves, the patterns select files, the corpus's shape finds its
data files among them, and every column or key the declaration names is in the data. Only the
file list and a few bytes of one data file per corpus are read: the parquet footer (its last
64 KiB, by an HTTP range request), or the first bytes of a TSV, JSON or JSONL file. A problem is
one line naming the file, the corpus and the field (`SourcesConfigError`, exit 2). A repo that no
endpoint can reach is left to the fetch, which says so.
"""

from __future__ import annotations

import logging

from huggingface_hub import hf_hub_url
from huggingface_hub.utils import filter_repo_objects, get_session, hf_raise_for_status

from .corpora.registry import SHAPES
from .endpoints import Endpoint, describe, resolve_revisions
from .errors import SourcesConfigError
from .integrity import LockedSource
from .plan import FetchOptions, list_tree
from .source import Source

log = logging.getLogger("persian_data.fetch")

SAMPLE_TIMEOUT = 30.0
RANGE_IGNORED_MAX = 8 << 20  # a file this small may come whole from an endpoint that ignores ranges


def check_remote(sources: list[Source], options: FetchOptions, lock: dict[str, LockedSource] | None = None) -> None:
    """Each declared corpus among `sources` against its repo: its patterns select files, its shape
    finds its data files there, and every column or key it names is in the data. Nothing is
    downloaded but the file list and a few ranged bytes of one data file per corpus. A repo that
    cannot be reached is left to the fetch, which says so. `lock` (with --locked): a corpus it
    records is checked at its locked commit and selection."""
    declared = [s for s in sources if s.declared_in]
    if not declared:
        return
    lock = lock or {}
    wanted = {s.key: (lock[s.key].revision, lock[s.key].patterns) if s.key in lock else (s.revision, s.allow_patterns)
              for s in declared}
    endpoints = options.endpoint_list()
    found = resolve_revisions(endpoints, [(s.key, s.repo_id, s.repo_type, wanted[s.key][0]) for s in declared],
                              timeout=options.timeout)
    for source in declared:
        revision, patterns = wanted[source.key]
        answers = [(ep, found[(ep.url, source.key)]) for ep in endpoints]
        ep, sha = next(((ep, res.sha) for ep, res in answers if res.sha), (None, None))

        def fail(field: str, problem: str, source: Source = source) -> None:
            raise SourcesConfigError(f"{source.declared_in}: [corpora.{source.key}] {field}: {problem}")

        if sha is None:
            if all(res.unreachable for _, res in answers):
                continue  # the fetch reports the unreachable endpoints
            fail("repo" if revision == "main" else "revision",
                 f"{source.repo_type} {source.repo_id}@{revision}: {describe(answers[0][1].error)}")
        tree = list_tree(ep.api(), source, sha, None, ep.label)  # the whole listing: the patterns are judged here
        files = list(filter_repo_objects(tree, allow_patterns=list(patterns) if patterns else None,
                                         key=lambda f: f.path))  # as the fetch selects them
        if not files:
            fail("patterns", f"{list(patterns)} match no file of {source.repo_id}@{sha[:12]} "
                             f"({len(tree)} file(s) there)")
        sizes = {f.path: f.size for f in files}
        SHAPES[source.shape].check_remote(source, sorted(sizes), _sampler(ep, source, sha, sizes, options), fail)


def _sampler(ep: Endpoint, source: Source, sha: str, sizes: dict[str, int], options: FetchOptions):
    """sample(path, n, tail) -> the first (or last) n bytes of a repo file by one ranged GET, or
    None when the endpoint ignores ranges on a large file or the read fails (the check is then
    left to the stage, which reads the whole file)."""
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
                if size <= RANGE_IGNORED_MAX:
                    return resp.read()[-n:]
                log.warning("%s: %s ignores ranges; the columns of %s are checked when it is prepared",
                            source.key, ep, path)
                return None
        except Exception as exc:  # noqa: BLE001 - a sample we cannot read: the stage checks instead
            log.warning("%s: could not read the start of %s (%s); it is checked when it is prepared",
                        source.key, path, exc)
            return None

    return sample
