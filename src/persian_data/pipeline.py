"""Runs the stages in order: (lock the root) -> fetch -> prepare -> records -> gates -> summary.

Every command that changes a root goes through `Run` (run.py): the root's lock, the log, and the
outcome at the end of the log whatever ends the run. `verify` runs read-only (a shared lock, and
nothing written on a root it may not write).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .catalog import CHAT_BUCKET, SPEECH_BUCKET, VOICE_BUCKET, Source, root_sources
from .errors import NothingToDoError, UsageError
from .gates import GateContext, run_gates, warm_up
from .integrity import HashCache, LockedSource, read_lock, write_lock
from .layout import Layout, require_root
from .progress import counts_text, human_bytes, progress
from .provenance import cached_sha256, damaged_inputs, output_states
from .records import counts, summary_block, write_checksums, write_counts, write_readmes
from .run import Run

if TYPE_CHECKING:  # the download machinery (huggingface_hub, httpx) is imported only by commands that fetch
    from .fetch import FetchOptions, FetchReport

log = logging.getLogger("persian_data")


@dataclass
class Outcome:
    ok: bool
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    report: FetchReport | None = None


def known_sources(layout: Layout, sources: list[Source], catalog=None) -> tuple[Source, ...]:
    """Every source the root knows (`catalog`, default: the five and those its persian-data.toml
    declares), with any declared source of this run that the catalog lacks."""
    known = tuple(catalog) if catalog is not None else root_sources(layout.root)
    return known + tuple(s for s in sources if s not in known)


def finish(run: Run, sources: list[Source], *, thorough: bool = False, write: bool = True,
           lock: dict[str, LockedSource] | None = None, prepared: tuple[str, ...] = (),
           failures: list[str] | tuple[str, ...] = (), stale_is_failure: bool = True,
           catalog: tuple[Source, ...] | None = None) -> Outcome:
    """Records, gates and the summary block, shared by every command that ends a run. `failures`:
    what went wrong before the gates (a stage that did not run), listed first; `lock` (the lock as
    the run leaves it) keeps downloaded files that are not the lock's bytes out of the checksums;
    `catalog`: every source the root knows (default: the five and its persian-data.toml's)."""
    layout = run.layout
    catalog = known_sources(layout, sources, catalog)
    damaged: dict[str, tuple[str, str]] = {}
    if write:
        if lock is not None:
            write_readmes(layout, lock, sources, run.cache)
        log.info("records: hashing data files for %s", layout.relative(layout.checksums_file))
        with progress(None, "checksums", "B", logger=log, unit_scale=True) as bar:
            known: dict[str, str] | None = {}
            lines = write_checksums(layout, run.cache, on_bytes=bar.update, known=known, lock=lock, damaged=damaged)
        checksums_sha256: str | None = hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()
        meta = write_counts(layout, catalog)
        log.info("records: %d checksum line(s); file counts: %s", len(lines), counts_text(meta))
    else:
        meta = counts(layout, catalog)
        known = checksums_sha256 = None
    ctx = GateContext(layout, sources, run.cache, thorough=thorough, required_stages=frozenset(prepared),
                      known=known, checksums_sha256=checksums_sha256, damaged=damaged,
                      stale_is_failure=stale_is_failure, catalog=catalog)
    gate_failures, notes, names = run_gates(ctx)
    for note in notes:
        log.warning("%s", note)
    for failure in gate_failures:
        log.error("%s", failure)
    all_failures = list(failures) + [str(f) for f in gate_failures]
    ok = not all_failures
    gate_lines = all_failures + [str(n) for n in notes]
    checked = ", ".join(s.key for s in sources) or "no source"
    unchecked = [s.key for s in catalog if s not in sources]
    gate_lines.append(f"{'PASS' if ok else 'FAIL'}: gates {', '.join(names)} for {checked}"
                      + (f" (partial run: {', '.join(unchecked)} not checked)" if unchecked else ""))
    log.info("%s", gate_lines[-1])
    run.append_summary(summary_block(layout, meta, gate_lines, ok, endpoint_lines=run.endpoint_lines,
                                     catalog=catalog))
    return Outcome(ok, all_failures, [str(n) for n in notes])


# A prepare stage is named by the bucket it prepares (`prepare text`, `prepare speech`); `shards`
# judges the training shards made from the speech manifests.
STAGE_GATE_MODULES = {CHAT_BUCKET: "persian_data.prepare.chat", SPEECH_BUCKET: "persian_data.prepare.speech",
                      VOICE_BUCKET: "persian_data.tts.check", "shards": "persian_data.shards.gate"}


def load_stage_gates(stages: tuple[str, ...] | None = None) -> None:
    """Import the stage modules so their gates register (they live above this layer): those of
    `stages` (a `prepare` judges only what it touched), or all of them."""
    import importlib

    for module in (STAGE_GATE_MODULES[s] for s in (STAGE_GATE_MODULES if stages is None else stages)):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            if exc.name and exc.name.startswith("persian_data"):
                continue  # stage not built in this checkout
            raise


def run_job(layout: Layout, sources: list[Source], options: FetchOptions, *, verbose: bool = False,
            prepare: tuple[str, ...] = (), prepare_options: PrepareOptions | None = None,
            after_gates: Callable[[Path], object] | None = None,
            catalog: tuple[Source, ...] | None = None) -> Outcome:
    """`fetch` and `run`: download and lock `sources`, then (with `prepare`) the prepare stages, then
    records, gates and the summary; then `after_gates(root)` under the root lock once the verdict is
    in (`run` writes the data card there; its failure must not change the verdict, so it handles
    its own errors). `catalog`: every source the root knows (default: the five and its
    persian-data.toml's)."""
    from .fetch import fetch
    from .preflight import check_remote

    # a bad declaration fails here, before any byte is downloaded (with --locked: at its locked commit)
    check_remote(sources, options, read_lock(layout.lock_file) if options.locked else None)
    load_stage_gates()
    command = "run" if prepare else "fetch"
    with Run(layout, secrets=options.secrets(), verbose=verbose, command=command, create=True) as run:
        lock = read_lock(layout.lock_file)
        started = time.monotonic()
        # Gates with a slow start (the voice check imports torch) begin it while the bytes stream.
        report = fetch(layout, sources, options, run.cache, lock,
                       on_plan=lambda plans: warm_up(layout, [p.source for p in plans if p.needed]))
        if options.dry_run:
            return Outcome(True, report=report)
        run.endpoint_lines = report.endpoint_lines()
        write_lock(layout.lock_file, lock, layout.tmp_dir)
        log.info("fetch: %d file(s) downloaded (%s) in %.1fs", sum(len(v) for v in report.downloaded.values()),
                 human_bytes(report.bytes_downloaded), time.monotonic() - started)
        prepared: tuple[str, ...] = ()
        refused: list[str] = []
        if prepare and report.ok:
            prepared, refused = run_prepare_stages(run, prepare, sources, prepare_options, lock)
        fetch_failures = [line for lines in report.failed.values() for line in lines]
        # a plain fetch that brought new bytes makes outputs stale: said, for `prepare` to redo
        outcome = finish(run, sources, lock=lock, prepared=prepared, failures=fetch_failures + refused,
                         stale_is_failure=bool(prepare), catalog=catalog)
        outcome.report = report
        if after_gates is not None and not options.dry_run:
            after_gates(layout.root)
        return outcome


@dataclass
class PrepareOptions:
    chat: object | None = None  # prepare.chat.ChatOptions; None: defaults
    speech: object | None = None  # prepare.speech.SpeechOptions; None: defaults
    engine: object | None = None  # engine.EngineSpec: where the units of work run; None: here (local)


def run_prepare_stages(run: Run, stages: tuple[str, ...], sources: list[Source],
                       options: PrepareOptions | None = None,
                       lock: dict[str, LockedSource] | None = None) -> tuple[tuple[str, ...], list[str]]:
    """Run the prepare stages that apply to `sources`; return the names of those that ran, and a
    failure line for each source a stage refused because its downloaded files are not the `lock`'s
    (truncated, edited, missing: that source's last good outputs stay in place).

    Every file a stage places is hashed while it is written and handed to the run's hash cache,
    so the records and gates after it cost a stat() per file, not a read."""
    options = options or PrepareOptions()
    from .engine import open_engine

    with open_engine(options.engine, run.layout) as engine:  # Ray connects on first use
        return _prepare_stages(run, stages, sources, options, lock, engine)


def _prepare_stages(run: Run, stages: tuple[str, ...], sources: list[Source], options: PrepareOptions,
                    lock: dict[str, LockedSource] | None, engine) -> tuple[tuple[str, ...], list[str]]:
    done = []
    refused: list[str] = []
    chat_sources = [s for s in sources if s.bucket == CHAT_BUCKET]
    if CHAT_BUCKET in stages and chat_sources:
        chat_sources = _intact(run, CHAT_BUCKET, chat_sources, lock, refused)
    if CHAT_BUCKET in stages and chat_sources:
        from .prepare.chat import ChatOptions, prepare_chat

        chat_options = options.chat or ChatOptions()
        for source in chat_sources:
            memo = _chat_memo(run.layout, chat_options, source)
            outputs = _stat_keys([run.layout.chat_combined(source), run.layout.chat_stats(source)])
            if outputs is not None and run.cache.memo_get(memo) == outputs:
                log.info("chat: raw files, options and normalizer unchanged since the last prepare; kept %s",
                         run.layout.relative(run.layout.chat_combined(source)))
                continue
            prepare_chat(run.layout, chat_options, logger=logging.getLogger("persian_data.prepare.chat"),
                         cache=run.cache, source=source, engine=engine)
            run.cache.memo_put(memo, _stat_keys([run.layout.chat_combined(source),
                                                 run.layout.chat_stats(source)]) or "")
        done.append(CHAT_BUCKET)
    speech_sources = [s for s in sources if s.bucket == SPEECH_BUCKET]
    if SPEECH_BUCKET in stages and speech_sources:
        speech_sources = _intact(run, SPEECH_BUCKET, speech_sources, lock, refused)
    if SPEECH_BUCKET in stages and speech_sources:
        from .prepare.speech import SpeechOptions, prepare_speech

        prepare_speech(run.layout, speech_sources, options.speech or SpeechOptions(),
                       logger=logging.getLogger("persian_data.prepare.speech"), cache=run.cache, engine=engine)
        done.append(SPEECH_BUCKET)
    return tuple(done), refused


def _intact(run: Run, stage: str, sources: list[Source], lock: dict[str, LockedSource] | None,
            refused: list[str]) -> list[Source]:
    """The sources whose downloaded files are the bytes the lock records (a stat each; read only
    when the stat changed). For each other one, a line in `refused`: its stage does not run on it,
    so it never publishes outputs made from a damaged copy."""
    if not lock:
        return sources  # nothing recorded to compare with (a root built by hand); the gates say so
    intact = []
    sha256 = cached_sha256(run.cache)
    for source in sources:
        problems = damaged_inputs(run.layout, [source], lock, sha256)
        if not problems:
            intact.append(source)
            continue
        more = f" (and {len(problems) - 1} more file(s))" if len(problems) > 1 else ""
        line = (f"prepare {stage}: {source.key} was not prepared, its previous outputs are kept: "
                f"{problems[0]}{more}")
        log.error("%s", line)
        refused.append(line)
    return intact


def fetched(layout: Layout, source: Source) -> bool:
    """The source's content folder is there and holds something (a stage has input)."""
    folder = layout.content_dir(source)
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError:
        return False


def prepare_targets(layout: Layout, sources: list[Source], stages: tuple[str, ...],
                    explicit: bool) -> tuple[list[Source], list[Source]]:
    """The sources the stages will prepare, and those they would have but that are not fetched.

    Without `--only` a stage prepares what is there and says what is absent; a source named by
    `--only` is always handed over, so its stage fails clearly when it is missing."""
    wanted = [s for s in sources if s.bucket in stages]  # a stage prepares the bucket it is named after
    if explicit:
        return wanted, []
    return [s for s in wanted if fetched(layout, s)], [s for s in wanted if not fetched(layout, s)]


def _stat_keys(paths: list[Path]) -> str | None:
    try:
        return ";".join(f"{p.stat().st_size}:{p.stat().st_mtime_ns}:{p.stat().st_ino}" for p in paths)
    except FileNotFoundError:
        return None


def _chat_memo(layout: Layout, chat_options, source: Source) -> str:
    """Names everything a chat corpus's output depends on: raw files (by stat), options, how the
    corpus is read, normalizer code."""
    import hashlib

    from . import normalize

    raw = source.reader.data_files(layout.content_dir(source))
    digest = hashlib.sha256()
    digest.update(repr(chat_options).encode())
    digest.update(repr(source).encode())
    # The code that decides what the output holds: the normalizer, the chat stage's modules, the
    # text-cleaning rules (PII, answers, near-duplicates, script) and the readers of the chat shapes.
    package = Path(normalize.__file__).parent
    code = [*sorted(package.glob("normalize*.py")), package / "latin_tokens.py",
            *sorted((package / "prepare").glob("chat*.py")), *sorted((package / "textclean").glob("*.py")),
            *sorted((package / "corpora").glob("chat*.py"))]
    for path in code:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update((_stat_keys(raw) or "").encode())
    digest.update(",".join(p.name for p in raw).encode())
    return f"stage:{source.key}:" + digest.hexdigest()


def run_prepare(layout: Layout, sources: list[Source], stages: tuple[str, ...], options: PrepareOptions,
                *, verbose: bool = False, explicit: bool = False,
                catalog: tuple[Source, ...] | None = None) -> Outcome:
    """`persian-data prepare`: the prepare stages on what is already fetched, then records and the
    gates of what this command touched (the rest is said to be unchecked, not failed).

    Refused before anything is written: a root that does not exist, `--only` naming no source of
    the stages, a root where none of their sources is fetched."""
    require_root(layout)
    what = "+".join(stages)
    readable = sorted({s.key for s in known_sources(layout, sources, catalog) if s.bucket in stages})
    targets, absent = prepare_targets(layout, sources, stages, explicit)
    if explicit and not targets:
        raise UsageError(f"prepare {what}: --only {','.join(s.key for s in sources)} names none of the sources it "
                         f"prepares ({', '.join(readable)})")
    if not targets:
        raise NothingToDoError(f"prepare {what}: nothing to prepare in {layout.root}: none of "
                               f"{', '.join(readable)} is fetched there; `persian-data fetch` gets them")
    load_stage_gates(stages)
    with Run(layout, verbose=verbose, command=f"prepare {what}") as run:
        lock = read_lock(layout.lock_file)  # first: a damaged lock stops the run before any output changes
        for source in absent:
            log.warning("prepare: %s is not fetched (%s is missing); skipped. `persian-data fetch --only %s` "
                        "gets it", source.key, layout.relative(layout.content_dir(source)), source.key)
        prepared, refused = run_prepare_stages(run, stages, targets, options, lock)
        return finish(run, targets, lock=lock, prepared=prepared, failures=refused, catalog=catalog)


def run_verify(layout: Layout, sources: list[Source], *, quick: bool = False, verbose: bool = False,
               catalog: tuple[Source, ...] | None = None) -> Outcome:
    """Offline: re-check every gate. Writes nothing but the log's summary block (and the hash
    cache); on a root it may not write, nothing at all. Takes the root's lock shared: several
    verifies may run at once, never one while a run writes."""
    load_stage_gates()
    with Run(layout, verbose=verbose, command="verify", read_only=True) as run:
        log.info("verify: %s (%s)", layout.root, "trusting the hash cache" if quick else "re-hashing every file")
        return finish(run, sources, thorough=not quick, write=False, catalog=catalog)


def source_status(layout: Layout, sources: list[Source], options: FetchOptions | None = None) -> list[dict]:
    """Per source: present / incomplete / modified / missing, and with `options` (asks the Hub)
    stale when the Hub's branch has moved past the locked commit. Offline by default: files are
    checked by size, and by hash through the hash cache where it knows them.

    `outputs`: each output prepared from the source, current or stale (made from inputs that
    changed since), from the inputs its stage recorded. Reads only: nothing is written, not even
    the hash cache (a file it does not know unchanged is hashed in memory)."""
    require_root(layout)
    lock = read_lock(layout.lock_file)
    cache = HashCache(layout.hash_cache, layout.root)
    outputs = output_states(layout, sources, cached_sha256(cache), lock)
    rows = []
    found, endpoints = {}, []
    if options is not None:  # every endpoint, every source, at once: reachability and resolved commit
        from .endpoints import describe, resolve_revisions

        endpoints = options.endpoint_list()
        found = resolve_revisions(endpoints, [(s.key, s.repo_id, s.repo_type, s.revision) for s in sources],
                                  timeout=options.timeout)
    for source in sources:
        locked = lock.get(source.key)
        content = layout.content_dir(source)
        row = {"source": source.key, "repo": source.repo_id, "folder": layout.relative(content),
               "revision": locked.revision if locked else None, "files": 0, "bytes": 0, "state": "missing"}
        if locked:
            present = [(p, f) for p, f in locked.files.items() if (content / p).is_file()]
            row["files"] = len(present)
            row["bytes"] = sum((content / p).stat().st_size for p, _ in present)
            changed = [p for p, f in present if (content / p).stat().st_size != f.size or (
                (d := cache.lookup(content / p)) is not None and d.sha256 != f.sha256)]
            row["state"] = ("incomplete" if len(present) < len(locked.files) else
                            "modified" if changed else "present")
        if options is not None:  # the first endpoint that answers is the source of truth, as in fetch
            answers = [found[(ep.url, source.key)] for ep in endpoints]
            row["endpoints"] = {ep.label: res.sha or ("unreachable" if res.unreachable else "error")
                                + ("" if res.sha else f" ({describe(res.error)})") for ep, res in zip(endpoints, answers)}
            head = next((res.sha for res in answers if res.sha), None)
            row["hub_revision"] = head or f"unknown ({type(answers[0].error).__name__})"
            if head and row["state"] == "present" and head != locked.revision:
                row["state"] = "stale"
        row["outputs"] = [state.to_json() for state in outputs.get(source.key, [])]
        rows.append(row)
    return rows
