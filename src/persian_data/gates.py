"""Hard gates: the specification's four, the lock's hashes, and those each stage registers.

A gate is a function `(ctx: GateContext) -> list[GateFailure | GateNote]`. Stages register
theirs with `@gate(name)`; `run_gates` runs every registered gate and never stops at the first
failure, so the user sees the whole list at once. `fetch` runs them trusting the hash cache for
files unchanged since they were hashed; `verify` re-reads every byte.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Protocol

import orjson

from .catalog import CATALOG, Source
from .errors import LockFileError
from .integrity import HashCache, hash_file, read_lock
from .layout import Layout
from .provenance import output_states, read_lock_quietly, repair_hint
from .records import counts, data_file_stats, data_files

log = logging.getLogger("persian_data")


@dataclass(frozen=True)
class GateFailure:
    gate: str  # which gate
    path: str  # root-relative path of what failed (or "" for a global failure)
    reason: str  # why, in words a user can act on

    def __str__(self) -> str:
        where = f" {self.path}:" if self.path else ""
        return f"FAIL [{self.gate}]{where} {self.reason}"


@dataclass(frozen=True)
class GateNote:
    """Not a failure: something a gate could not check, said out loud (e.g. a missing extra)."""

    gate: str
    message: str

    def __str__(self) -> str:
        return f"NOTE [{self.gate}] {self.message}"


@dataclass
class GateContext:
    layout: Layout
    sources: list[Source] = field(default_factory=lambda: list(CATALOG))
    cache: HashCache | None = None
    thorough: bool = False  # verify: re-hash every byte instead of trusting the cache
    required_stages: frozenset[str] = frozenset()  # stages whose outputs must exist (this run prepared them)
    # root-relative path -> sha256 of every data file, as this run's records step just listed them
    # (each file stat'ed against the hash cache moments ago): gates trust it instead of asking again
    known: dict[str, str] | None = None
    # sha256 of the checksum file as the records step wrote it from `known`
    checksums_sha256: str | None = None
    # root-relative path -> why: downloaded files the records step found not to be what the lock
    # records (their checksum lines keep the lock's hash; the checksums gate names them)
    damaged: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (source key, why)
    # an output made from inputs that changed since fails the run (verify, prepare); a plain fetch
    # (which is what changed them) only notes it
    stale_is_failure: bool = True
    _read_now: dict[str, str] = field(default_factory=dict, repr=False)  # thorough: each file read once
    # every source the root knows (the five and those it declares): the counts file holds all their keys
    catalog: tuple[Source, ...] | list[Source] = CATALOG

    def known_sha256(self, rel: str) -> str | None:
        return self.known.get(rel) if self.known is not None and not self.thorough else None

    def sha256(self, path, st: os.stat_result | None = None) -> str:
        """The file's sha256: from the hash cache when the file is unchanged since it was hashed
        (a stat), else read now. `thorough` (verify) always reads, once per file and run."""
        if self.cache is not None and not self.thorough:
            hit = self.cache.lookup(path, st)
            if hit is not None:
                return hit.sha256
        key = os.fspath(path)
        if self.thorough and key in self._read_now:
            return self._read_now[key]
        digests = hash_file(path)
        if self.cache is not None:
            self.cache.put(path, digests)
        if self.thorough:
            self._read_now[key] = digests.sha256
        return digests.sha256


    def content_key(self, gate_name: str, paths) -> str | None:
        """A key naming the exact bytes of `paths` (from the hash cache), for remembering that an
        expensive check passed on them; None in thorough mode, or when a file is missing."""
        if self.cache is None or self.thorough:
            return None
        try:
            return gate_name + ":" + ",".join(self.cache.digests(p).sha256 for p in paths)
        except FileNotFoundError:
            return None

    def passed_before(self, key: str | None) -> bool:
        return key is not None and self.cache is not None and self.cache.memo_get(key) == "pass"

    def remember_pass(self, key: str | None) -> None:
        if key is not None and self.cache is not None:
            self.cache.memo_put(key, "pass")


Result = "list[GateFailure | GateNote]"
GateFn = Callable[[GateContext], "list[GateFailure | GateNote]"]
MarkerFn = Callable[[Layout, "list[Source]"], "list"]  # (layout, the run's sources) -> paths a stage leaves


class Warm(Protocol):
    """Whatever a gate's warm-up started (e.g. a child process); closed when the run ends."""

    def close(self) -> None: ...


WarmupFn = Callable[[Layout, "list[Source]"], "Warm | None"]
_REGISTRY: dict[str, GateFn] = {}
_STAGE_MARKERS: dict[str, tuple[str, MarkerFn]] = {}
_SCOPES: dict[str, str] = {}  # gate name -> the bucket (text, speech, tts) whose sources it judges
_WARMUPS: dict[str, WarmupFn] = {}
_WARM: dict[str, Warm] = {}


def gate(name: str, *, stage: str | None = None, markers: MarkerFn | None = None,
         warmup: WarmupFn | None = None, bucket: str | None = None) -> Callable[[GateFn], GateFn]:
    """Register a gate. A stage's gate (`stage`: the bucket it prepares; `markers(layout, sources)`:
    paths its run leaves) only runs once that stage has produced output, or when this run prepared
    it; before that it says so in a note instead of failing a plain `fetch`.

    `bucket` (default: the stage's name) scopes a gate to the sources of one bucket: a run that
    touched none of them (`prepare text`, `fetch --only fleurs`) does not judge it, and its summary
    says which sources were not checked.

    `warmup(layout, sources)` is called when a run knows which sources it is about to download,
    so a gate with a slow start (the voice check imports torch) can begin it while the bytes
    stream; what it returns is found again with `warm(name)` and closed by `release_warm()`."""

    def register(fn: GateFn) -> GateFn:
        _REGISTRY[name] = fn
        if stage is not None and markers is not None:
            _STAGE_MARKERS[name] = (stage, markers)
        if warmup is not None:
            _WARMUPS[name] = warmup
        if bucket or stage:
            _SCOPES[name] = bucket or stage
        return fn

    return register


def registered() -> dict[str, GateFn]:
    return dict(_REGISTRY)


def warm_up(layout: Layout, sources: "list[Source]") -> None:
    """Start the warm-ups of the registered gates for `sources` (about to be downloaded). A warm-up
    is only an optimisation: one that fails is logged and its gate runs the slow way."""
    for name, fn in _WARMUPS.items():
        if name in _WARM or not sources:
            continue
        try:
            started = fn(layout, sources)
        except Exception as exc:  # noqa: BLE001 - never fail a run over a head start
            log.warning("gate %s: could not start its warm-up (%s: %s); it will run in this process",
                        name, type(exc).__name__, exc)
            continue
        if started is not None:
            _WARM[name] = started


def warm(name: str) -> "Warm | None":
    return _WARM.get(name)


def release_warm() -> None:
    while _WARM:
        _, started = _WARM.popitem()
        try:
            started.close()
        except Exception as exc:  # noqa: BLE001
            log.warning("closing a gate warm-up failed: %s", exc)


def run_gates(ctx: GateContext) -> tuple[list[GateFailure], list[GateNote], list[str]]:
    """Run every registered gate; return failures, notes, and the names of the gates run."""
    failures: list[GateFailure] = []
    notes: list[GateNote] = []
    buckets = {source.bucket for source in ctx.sources}
    ran: list[str] = []
    for name, fn in _REGISTRY.items():
        if name in _SCOPES and _SCOPES[name] not in buckets:
            continue  # none of its sources is part of this run
        ran.append(name)
        if name in _STAGE_MARKERS:
            stage, markers = _STAGE_MARKERS[name]
            if stage not in ctx.required_stages and not any(p.exists() for p in markers(ctx.layout, ctx.sources)):
                notes.append(GateNote(name, f"not prepared yet (run `persian-data prepare {stage}`); not checked"))
                continue
        try:
            results = fn(ctx)
        except Exception as exc:  # noqa: BLE001 - a crashing gate is itself a failure
            results = [GateFailure(name, "", f"gate crashed: {type(exc).__name__}: {exc}")]
        for item in results:
            (notes if isinstance(item, GateNote) else failures).append(item)
    return failures, notes, ran


# -- the specification's gates ------------------------------------------------------------------

@gate("buckets")
def buckets_gate(ctx: GateContext) -> list[GateFailure]:
    """All buckets exist and contain non-empty files."""
    out = []
    for source in ctx.sources:
        folder = ctx.layout.content_dir(source)
        if not folder.is_dir():
            out.append(GateFailure("buckets", ctx.layout.relative(folder), "missing"))
        elif not data_files(folder):
            out.append(GateFailure("buckets", ctx.layout.relative(folder), "holds no non-empty file"))
    return out


@gate("checksums")
def checksums_gate(ctx: GateContext) -> list[GateFailure]:
    """checksums/datasets.sha256.txt exists, is non-empty, lists exactly the data files, and every
    listed hash matches the bytes."""
    layout = ctx.layout
    rel = layout.relative(layout.checksums_file)
    # downloaded files that are not what the lock records (their lines keep the lock's hash); the
    # lock gate names those of the run's own sources
    judged = {source.key for source in ctx.sources}
    out = [GateFailure("checksums", path, why) for path, (key, why) in sorted(ctx.damaged.items())
           if key not in judged]
    try:
        data = layout.checksums_file.read_bytes()
    except FileNotFoundError:
        return out + [GateFailure("checksums", rel, "missing")]
    if not data.strip():
        return out + [GateFailure("checksums", rel, "empty")]
    if (ctx.known is not None and not ctx.thorough and ctx.checksums_sha256 is not None
            and hashlib.sha256(data).hexdigest() == ctx.checksums_sha256):
        return out  # the very bytes this run's records step wrote from the listing the gates were handed
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return out + [GateFailure("checksums", rel, f"not UTF-8: {exc}")]
    listed: dict[str, str] = {}
    bad_lines = 0
    for number, line in enumerate(text.splitlines(), 1):
        digest, sep, path = line.partition("  ")
        if not sep or len(digest) != 64:
            bad_lines += 1
            if bad_lines <= 3:
                out.append(GateFailure("checksums", rel, f"line {number} is not '<sha256>  <path>'"))
            continue
        listed[path] = digest
    if bad_lines > 3:
        out.append(GateFailure("checksums", rel, f"{bad_lines} lines in all are not '<sha256>  <path>' (first 3 "
                                                 "listed); `persian-data prepare` or `fetch` writes the file again"))
    if ctx.known is not None and not ctx.thorough:  # records just listed every file with its hash
        actual = dict.fromkeys(ctx.known)
    else:
        actual = {layout.relative(p): (p, st) for p, st in data_file_stats(layout.datasets)}
    for path in sorted(set(actual) - set(listed)):
        out.append(GateFailure("checksums", path, f"not listed in {rel}"))
    for path in sorted(set(listed) - set(actual)):
        out.append(GateFailure("checksums", path, f"listed in {rel} but not on disk"))
    owners = _content_owners(layout)
    for path in sorted(set(actual) & set(listed) - set(ctx.damaged)):
        got = ctx.known_sha256(path) or ctx.sha256(*actual[path])
        if got != listed[path]:
            owner = next((key for prefix, key in owners if path.startswith(prefix)), None)
            hint = f"; a downloaded file: {repair_hint(owner)}" if owner else ""
            out.append(GateFailure("checksums", path, f"sha256 is {got}, {rel} says {listed[path]}{hint}"))
    return out


def _content_owners(layout: Layout) -> list[tuple[str, str]]:
    """(root-relative content folder + "/", source key) of every source: who downloaded a file."""
    return [(layout.relative(layout.content_dir(source)) + "/", source.key) for source in CATALOG]


@gate("counts")
def counts_gate(ctx: GateContext) -> list[GateFailure]:
    """logs/dataset_sources.json holds the five keys (and one per declared corpus), non-zero, equal
    to what is on disk."""
    layout = ctx.layout
    rel = layout.relative(layout.sources_json)
    try:
        recorded = orjson.loads(layout.sources_json.read_bytes())
    except FileNotFoundError:
        return [GateFailure("counts", rel, "missing")]
    except orjson.JSONDecodeError as exc:
        return [GateFailure("counts", rel, f"not valid JSON: {exc}")]
    out = []
    actual = counts(layout, ctx.catalog)
    expected_keys = [s.count_key for s in ctx.catalog]
    if not isinstance(recorded, dict) or sorted(recorded) != sorted(expected_keys):
        out.append(GateFailure("counts", rel, f"keys must be exactly {expected_keys}"))
        return out
    for source in ctx.sources:
        value = recorded.get(source.count_key)
        if not isinstance(value, int) or value <= 0:
            out.append(GateFailure("counts", rel, f"{source.count_key} is {value!r}, must be non-zero"))
        elif value != actual[source.count_key]:
            out.append(GateFailure("counts", rel, f"{source.count_key} is {value}, the folder holds "
                                                  f"{actual[source.count_key]}"))
    return out


@gate("readme")
def readme_gate(ctx: GateContext) -> list[GateFailure]:
    """Each README.source.md exists with the exact URL."""
    out = []
    for source in ctx.sources:
        path = ctx.layout.source_readme(source)
        rel = ctx.layout.relative(path)
        try:
            lines = path.read_text("utf-8").splitlines()
        except FileNotFoundError:
            out.append(GateFailure("readme", rel, "missing"))
            continue
        except UnicodeDecodeError as exc:
            out.append(GateFailure("readme", rel, f"not UTF-8 ({exc}); `persian-data fetch` writes it again"))
            continue
        if f"URL: {source.url}" not in lines:
            out.append(GateFailure("readme", rel, f"does not carry the exact line 'URL: {source.url}'"))
    return out


@gate("lock")
def lock_gate(ctx: GateContext) -> list[GateFailure]:
    """Every file of every locked source is in place with the lock's size and hash, and nothing else
    sits in the content folders."""
    layout = ctx.layout
    rel = layout.relative(layout.lock_file)
    try:
        lock = read_lock(layout.lock_file)
    except LockFileError as exc:
        return [GateFailure("lock", rel, str(exc))]
    out = []
    for source in ctx.sources:
        locked = lock.get(source.key)
        if locked is None:
            out.append(GateFailure("lock", rel, f"no entry for {source.key}"))
            continue
        content = layout.content_dir(source)
        for path, entry in sorted(locked.files.items()):
            final = content / path
            where = layout.relative(final)
            try:
                size = os.lstat(final).st_size
            except FileNotFoundError:
                out.append(GateFailure("lock", where, f"missing; {repair_hint(source.key)}"))
                continue
            if size != entry.size:
                out.append(GateFailure("lock", where, f"size {size}, the lock says {entry.size}; "
                                                      f"{repair_hint(source.key)}"))
                continue
            got = ctx.sha256(final)
            if got != entry.sha256:
                out.append(GateFailure("lock", where, f"sha256 {got} does not match the lock's {entry.sha256}; "
                                                      f"{repair_hint(source.key)}"))
        if content.exists():
            for path in data_files(content):
                if path.relative_to(content).as_posix() not in locked.files:
                    out.append(GateFailure("lock", layout.relative(path), f"not part of {source.repo_id}"
                                                                          f"@{locked.revision[:12]} (lock)"))
    return out


@gate("provenance")
def provenance_gate(ctx: GateContext) -> list[GateFailure | GateNote]:
    """Every derived output of the run's sources was made from the inputs now on disk (what a stage
    gate already judges of a record is left to it: the chat gate reads its stats, the `tts` gate
    checks an ONNX export against its sources)."""
    layout = ctx.layout
    states = output_states(layout, ctx.sources, ctx.sha256, read_lock_quietly(layout))
    out: list[GateFailure | GateNote] = []
    for state in (s for group in states.values() for s in group):
        if (state.state == "current" or (state.state == "unreadable" and state.kind.parsed_by_stage_gate)
                or (state.state == "stale" and state.kind.staleness_by_stage_gate)):
            continue
        if state.state == "unrecorded" or (state.state == "stale" and not ctx.stale_is_failure):
            out.append(GateNote("provenance", f"{state.path}: {state.message()}"))
        else:
            out.append(GateFailure("provenance", state.path, state.message()))
    return out
