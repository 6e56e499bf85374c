"""Runs the stages in order: (lock the root) -> fetch -> prepare -> records -> gates -> summary.

Every command that changes a root goes through `Run`: it holds an exclusive lock on the root
(two runs never interleave their writes), sends every log line to stderr and to
`logs/dataset_download.log`, clears temp files a killed run may have left, and saves the hash
cache at the end.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tqdm.contrib.logging import logging_redirect_tqdm

from .catalog import CHAT_BUCKET, SPEECH_BUCKET, VOICE_BUCKET, Source, root_sources
from .errors import RunLockedError
from typing import TYPE_CHECKING
from .gates import GateContext, release_warm, run_gates, warm_up
from .integrity import HashCache, LockedSource, read_lock, write_lock
from .layout import Layout
from .progress import is_interactive, progress
from .records import append_summary, summary_block, write_checksums, write_counts, write_readmes

if TYPE_CHECKING:  # the download machinery (huggingface_hub, httpx) is imported only by commands that fetch
    from .fetch import FetchOptions, FetchReport

log = logging.getLogger("persian_data")

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class RedactFilter(logging.Filter):
    """Keeps secrets (the Hub token) out of every log line."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


def redact(text: str, secrets: list[str | None]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


@dataclass
class Run:
    layout: Layout
    secrets: list[str] = field(default_factory=list)
    verbose: bool = False
    _stack: ExitStack = field(default_factory=ExitStack)
    cache: HashCache | None = None
    endpoint_lines: list[str] = field(default_factory=list)  # several endpoints: who served what (summary)

    def __enter__(self) -> "Run":
        layout = self.layout
        layout.state_dir.mkdir(parents=True, exist_ok=True)
        self._take_root_lock()
        self._setup_logging()
        # A killed run may have left temp files; they are only ever ours, under the state folder.
        shutil.rmtree(layout.tmp_dir, ignore_errors=True)
        layout.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.cache = HashCache(layout.hash_cache, layout.root)
        return self

    def __exit__(self, *exc) -> None:
        try:
            release_warm()
            if self.cache is not None:
                self.cache.save(self.layout.tmp_dir)
            shutil.rmtree(self.layout.tmp_dir, ignore_errors=True)
            staging = self.layout.staging_dir
            if staging.exists() and not any(staging.iterdir()):
                staging.rmdir()
        finally:
            self._stack.close()

    def _take_root_lock(self) -> None:
        path = self.layout.run_lock
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunLockedError(f"{self.layout.root} is in use by another persian-data run ({holder}); "
                                 f"wait for it to finish (the lock is {path})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}")
        handle.flush()

        def release() -> None:
            try:
                path.unlink(missing_ok=True)  # unlink while still holding it: no stale file left
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()

        self._stack.callback(release)

    def _setup_logging(self) -> None:
        root_logger = logging.getLogger("persian_data")
        root_logger.setLevel(logging.DEBUG if self.verbose else logging.INFO)
        redactor = RedactFilter(self.secrets)
        self.layout.download_log.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(self.layout.download_log, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        file_handler.addFilter(redactor)
        file_handler.setLevel(logging.INFO)
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(levelname)s %(message)s" if not is_interactive() else "%(message)s"))
        console.addFilter(redactor)
        root_logger.addHandler(file_handler)
        root_logger.addHandler(console)
        # huggingface_hub's own warnings (e.g. retries) go to the same places.
        hub_logger = logging.getLogger("huggingface_hub")
        hub_logger.addHandler(file_handler)

        def teardown() -> None:
            for handler in (file_handler, console):
                root_logger.removeHandler(handler)
            hub_logger.removeHandler(file_handler)
            file_handler.close()

        self._stack.callback(teardown)
        if is_interactive():
            self._stack.enter_context(logging_redirect_tqdm([root_logger]))


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
           catalog: tuple[Source, ...] | None = None) -> Outcome:
    """Records, gates and the summary block, shared by every command that ends a run."""
    layout = run.layout
    catalog = known_sources(layout, sources, catalog)
    if write:
        if lock is not None:
            write_readmes(layout, lock, sources, run.cache)
        log.info("records: hashing data files for %s", layout.relative(layout.checksums_file))
        with progress(None, "checksums", "B", logger=log, unit_scale=True) as bar:
            known: dict[str, str] | None = {}
            lines = write_checksums(layout, run.cache, on_bytes=bar.update, known=known)
        checksums_sha256: str | None = hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()
        meta = write_counts(layout, catalog)
        log.info("records: %d checksum line(s); counts %s", len(lines), meta)
    else:
        from .records import counts

        meta = counts(layout, catalog)
        known = checksums_sha256 = None
    ctx = GateContext(layout, sources, run.cache, thorough=thorough, required_stages=frozenset(prepared),
                      known=known, checksums_sha256=checksums_sha256, catalog=catalog)
    failures, notes, names = run_gates(ctx)
    for note in notes:
        log.warning("%s", note)
    for failure in failures:
        log.error("%s", failure)
    ok = not failures
    gate_lines = [str(f) for f in failures] + [str(n) for n in notes]
    checked = ", ".join(s.key for s in sources) or "no source"
    unchecked = [s.key for s in catalog if s not in sources]
    gate_lines.append(f"{'PASS' if ok else 'FAIL'}: gates {', '.join(names)} for {checked}"
                      + (f" (partial run: {', '.join(unchecked)} not checked)" if unchecked else ""))
    log.info("%s", gate_lines[-1])
    append_summary(layout, summary_block(layout, meta, gate_lines, ok, endpoint_lines=run.endpoint_lines,
                                         catalog=catalog))
    return Outcome(ok, [str(f) for f in failures], [str(n) for n in notes])


# A prepare stage is named by the bucket it prepares (`prepare text`, `prepare speech`).
STAGE_GATE_MODULES = {CHAT_BUCKET: "persian_data.prepare.chat", SPEECH_BUCKET: "persian_data.prepare.speech",
                      VOICE_BUCKET: "persian_data.tts.check"}


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


def run_fetch(layout: Layout, sources: list[Source], options: FetchOptions, *, verbose: bool = False,
              prepare: tuple[str, ...] = (), prepare_options: PrepareOptions | None = None,
              after_gates: Callable[[Path], object] | None = None,
              catalog: tuple[Source, ...] | None = None) -> Outcome:
    """`after_gates(root)`: run under the root lock once the verdict is in (`run` writes the data
    card there); its failure must not change the verdict, so it handles its own errors.
    `catalog`: every source the root knows (default: the five and its persian-data.toml's)."""
    from .fetch import fetch
    from .preflight import check_remote

    # a bad declaration fails here, before any byte is downloaded (with --locked: at its locked commit)
    check_remote(sources, options, read_lock(layout.lock_file) if options.locked else None)
    load_stage_gates()
    with Run(layout, secrets=options.secrets(), verbose=verbose) as run:
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
                 report.bytes_downloaded, time.monotonic() - started)
        prepared: tuple[str, ...] = ()
        if prepare and report.ok:
            prepared = run_prepare_stages(run, prepare, sources, prepare_options)
        outcome = finish(run, sources, lock=lock, prepared=prepared, catalog=catalog)
        outcome.report = report
        if not report.ok:
            outcome.ok = False
            outcome.failures = [line for lines in report.failed.values() for line in lines] + outcome.failures
        if after_gates is not None and not options.dry_run:
            after_gates(layout.root)
        return outcome


@dataclass
class PrepareOptions:
    chat: object | None = None  # prepare.chat.ChatOptions; None: defaults
    speech: object | None = None  # prepare.speech.SpeechOptions; None: defaults


def run_prepare_stages(run: Run, stages: tuple[str, ...], sources: list[Source],
                       options: PrepareOptions | None = None) -> tuple[str, ...]:
    """Run the prepare stages that apply to `sources`; return the names of those that ran.

    Every file a stage places is hashed while it is written and handed to the run's hash cache,
    so the records and gates after it cost a stat() per file, not a read."""
    options = options or PrepareOptions()
    done = []
    chat_sources = [s for s in sources if s.bucket == CHAT_BUCKET]
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
                         cache=run.cache, source=source)
            run.cache.memo_put(memo, _stat_keys([run.layout.chat_combined(source),
                                                 run.layout.chat_stats(source)]) or "")
        done.append(CHAT_BUCKET)
    speech_sources = [s for s in sources if s.bucket == SPEECH_BUCKET]
    if SPEECH_BUCKET in stages and speech_sources:
        from .prepare.speech import SpeechOptions, prepare_speech

        prepare_speech(run.layout, speech_sources, options.speech or SpeechOptions(),
                       logger=logging.getLogger("persian_data.prepare.speech"), cache=run.cache)
        done.append(SPEECH_BUCKET)
    return tuple(done)


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
    code = [Path(normalize.__file__), *sorted((package / "prepare").glob("chat*.py")),
            *sorted((package / "textclean").glob("*.py")), *sorted((package / "corpora").glob("chat*.py"))]
    for path in code:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update((_stat_keys(raw) or "").encode())
    digest.update(",".join(p.name for p in raw).encode())
    return f"stage:{source.key}:" + digest.hexdigest()


def run_prepare(layout: Layout, sources: list[Source], stages: tuple[str, ...], options: PrepareOptions,
                *, verbose: bool = False, explicit: bool = False,
                catalog: tuple[Source, ...] | None = None) -> Outcome:
    """`persian-data prepare`: the prepare stages on what is already fetched, then records and the
    gates of what this command touched (the rest is said to be unchecked, not failed)."""
    load_stage_gates(stages)
    with Run(layout, verbose=verbose) as run:
        targets, absent = prepare_targets(layout, sources, stages, explicit)
        for source in absent:
            log.warning("prepare: %s is not fetched (%s is missing); skipped. `persian-data fetch --only %s` "
                        "gets it", source.key, layout.relative(layout.content_dir(source)), source.key)
        prepared = run_prepare_stages(run, stages, targets, options)
        if not prepared:
            log.warning("prepare: nothing to do for %s: none of its sources is fetched", ",".join(stages))
        return finish(run, targets, lock=read_lock(layout.lock_file), prepared=prepared, catalog=catalog)


def run_verify(layout: Layout, sources: list[Source], *, quick: bool = False, verbose: bool = False,
               catalog: tuple[Source, ...] | None = None) -> Outcome:
    """Offline: re-check every gate. Writes nothing but the log's summary block."""
    load_stage_gates()
    with Run(layout, verbose=verbose) as run:
        log.info("verify: %s (%s)", layout.root, "trusting the hash cache" if quick else "re-hashing every file")
        return finish(run, sources, thorough=not quick, write=False, catalog=catalog)


def source_status(layout: Layout, sources: list[Source], options: FetchOptions | None = None) -> list[dict]:
    """Per source: present / incomplete / modified / missing, and with `options` (asks the Hub)
    stale when the Hub's branch has moved past the locked commit. Offline by default: files are
    checked by size, and by hash through the hash cache where it knows them."""
    lock = read_lock(layout.lock_file)
    cache = HashCache(layout.hash_cache, layout.root)
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
        rows.append(row)
    return rows
