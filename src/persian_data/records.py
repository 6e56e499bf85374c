"""The specification's records: README.source.md, the checksum file, the counts, the summary.

One file set everywhere: regular files under `datasets/` larger than one byte, exactly what
the specification's `find datasets -type f -size +1c` selects (no symlinks, hidden files
included). The counts in `logs/dataset_sources.json` count the same set per content folder, so
the counts and the checksum file always agree. Paths are sorted by their bytes (as `LC_ALL=C
sort -z` would), so the file is identical on every machine.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path

from .atomic import write_if_changed
from .catalog import CATALOG, Source
from .integrity import HashCache, LockedSource
from .layout import Layout
from .provenance import lock_mismatch, locked_files, repair_hint

log = logging.getLogger("persian_data")


def data_file_entries(folder: Path | str) -> list[tuple[str, os.stat_result]]:
    """(path as str, lstat) of the regular files (not symlinks) of more than one byte below
    `folder`, sorted by path bytes. One lstat per file, and no Path object per file (for 49k clips
    those cost more than the walk): callers reuse the stat instead of asking again."""
    found: list[tuple[str, os.stat_result]] = []

    def walk(top: str) -> None:
        try:
            entries = list(os.scandir(top))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                walk(entry.path)
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size > 1:
                found.append((entry.path, st))

    walk(os.fspath(folder))
    found.sort(key=lambda item: os.fsencode(item[0]))
    return found


def data_file_stats(folder: Path) -> list[tuple[Path, os.stat_result]]:
    """`data_file_entries` with Path objects."""
    return [(Path(path), st) for path, st in data_file_entries(folder)]


def data_files(folder: Path) -> list[Path]:
    """Regular files (not symlinks) of more than one byte below `folder`, sorted by path bytes."""
    return [path for path, _ in data_file_stats(folder)]


def count_files(layout: Layout, source: Source) -> int:
    return len(data_files(layout.content_dir(source)))


def counts(layout: Layout, catalog: tuple[Source, ...] | list[Source] = CATALOG) -> dict[str, int]:
    """The specification's five count keys, always all five, then one per corpus the root declares
    (`catalog`: every source the root knows)."""
    return {source.count_key: count_files(layout, source) for source in catalog}


def write_counts(layout: Layout, catalog: tuple[Source, ...] | list[Source] = CATALOG) -> dict[str, int]:
    meta = counts(layout, catalog)
    write_if_changed(layout.sources_json, json.dumps(meta, indent=2) + "\n", layout.tmp_dir)
    return meta


def readme_text(source: Source, locked: LockedSource) -> str:
    selection = ", ".join(locked.patterns) if locked.patterns else "the whole repository"
    lines = [
        f"Source: {source.title}",
        f"URL: {source.url}",
        f"License: {source.license}",
        f"Revision: {locked.revision}",
        f"Requested revision: {locked.requested_revision}",
        f"Repo type: {source.repo_type}",
        f"Files: {len(locked.files)} ({sum(f.size for f in locked.files.values())} bytes) in "
        f"{source.content_dir}/, selected by: {selection}",
        "Hashes: checksums/persian-data.lock.json (Hub hashes), checksums/datasets.sha256.txt (sha256)",
    ]
    lines += [f"Note: {note}" for note in source.notes]
    return "\n".join(lines) + "\n"


def write_readmes(layout: Layout, lock: dict[str, LockedSource], sources: list[Source],
                  cache: HashCache | None = None) -> None:
    for source in sources:
        if source.key in lock:
            write_if_changed(layout.source_readme(source), readme_text(source, lock[source.key]), layout.tmp_dir,
                             on_placed=cache.placed if cache is not None else None)


def checksum_line(sha256: str, rel: str) -> str:
    # sha256sum escapes names holding a backslash or newline; the layout never has such names
    # (remote names with them are refused), so plain lines are exact.
    return f"{sha256}  {rel}\n"


def write_checksums(layout: Layout, cache: HashCache, on_bytes=None, known: dict[str, str] | None = None,
                    lock: dict[str, LockedSource] | None = None,
                    damaged: dict[str, tuple[str, str]] | None = None) -> list[str]:
    """Write checksums/datasets.sha256.txt. A file the cache knows unchanged (same size, mtime and
    inode as when it was hashed: while downloading, or while a stage wrote it) costs a stat();
    only the others are read and hashed, in threads. `known` (if given) is filled with every
    listed file's root-relative path and sha256, so the gates of the same run need not stat again.

    A downloaded file (under a source's data/ or model/) is never given a line that differs from
    its `lock` record: when its bytes are not the lock's, its line keeps the lock's sha256 (so
    `sha256sum -c` still fails on it) and `damaged` (if given) gets its path -> (source key, why)."""
    found = data_file_entries(layout.datasets)
    hits = cache.known_sha256(found)
    unknown = [path for (path, _), hit in zip(found, hits) if hit is None]
    fresh = cache.digests_many(unknown, on_bytes=on_bytes)
    log.info("records: %d file(s) known by the hash taken when they were written, %d hashed now",
             len(found) - len(unknown), len(unknown))
    prefix, relative = layout.root.as_posix().rstrip("/") + "/", layout.relative
    cut = len(prefix)
    digests = {path[cut:] if path.startswith(prefix) and "/." not in path else relative(path):
               hit or fresh[path].sha256 for (path, _), hit in zip(found, hits)}
    if known is not None:
        known.update(digests)
    listed = dict(digests)
    for rel, (key, entry) in locked_files(layout, lock or {}).items():
        sha = digests.get(rel)
        if sha is None:
            continue  # missing (or one byte): the lock gate names it
        why = lock_mismatch(entry, os.stat(layout.root / rel).st_size, sha)
        if why is not None:
            listed[rel] = entry.sha256
            if damaged is not None:
                damaged[rel] = (key, f"{why}: not the file that was downloaded; its line in "
                                     f"{layout.relative(layout.checksums_file)} keeps the lock's sha256; "
                                     f"{repair_hint(key)}")
    lines = [checksum_line(sha, rel) for rel, sha in listed.items()]
    text = "".join(lines)
    write_if_changed(layout.checksums_file, text, layout.tmp_dir)
    return lines


def bucket_mtimes(layout: Layout, catalog: tuple[Source, ...] | list[Source] = CATALOG) -> list[tuple[str, str]]:
    out = []
    for source in catalog:
        root = layout.bucket_root(source)
        when = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(root.stat().st_mtime)) if root.exists() else "missing"
        out.append((layout.relative(root), when))
    return out


def summary_block(layout: Layout, meta: dict[str, int], gate_lines: list[str], ok: bool, head: int = 5,
                  endpoint_lines: list[str] | tuple[str, ...] = (), status: str | None = None,
                  catalog: tuple[Source, ...] | list[Source] = CATALOG) -> str:
    """The specification's summary block. `status` overrides the status line (a run that stopped
    on an error says so)."""
    try:  # shown as it is, even when damaged (the checksums gate says what is wrong with it)
        lines = layout.checksums_file.read_bytes().decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        lines = []
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out = [f"===== persian-data summary {stamp} =====",
           f"status: {status or ('COMPLETE' if ok else 'NOT COMPLETE (gates failed)')}",
           f"file counts ({layout.relative(layout.sources_json)}):"]
    out += [f"  {key}: {value}" for key, value in meta.items()]
    out.append("bucket roots, last modified:")
    out += [f"  {path}  {when}" for path, when in bucket_mtimes(layout, catalog)]
    out.append(f"{layout.relative(layout.checksums_file)}: {len(lines)} line(s)")
    out.append("  head:")
    out += [f"    {line}" for line in lines[:head]]
    out.append("  tail:")
    out += [f"    {line}" for line in lines[-head:]]
    if endpoint_lines:  # several endpoints: which one served how many files and bytes
        out.append("endpoints:")
        out += [f"  {line}" for line in endpoint_lines]
    out.append("gates:")
    out += [f"  {line}" for line in gate_lines]
    out.append("===== end of summary =====")
    return "\n".join(out) + "\n"


def append_summary(layout: Layout, block: str) -> None:
    layout.download_log.parent.mkdir(parents=True, exist_ok=True)
    with open(layout.download_log, "a", encoding="utf-8") as handle:
        handle.write(block)
        handle.flush()
        os.fsync(handle.fileno())

