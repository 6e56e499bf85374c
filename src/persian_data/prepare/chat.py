"""Chat corpora as chat-format JSONL, Persian-normalized, streaming.

Input: a chat corpus's data files, as its reader (`Source.reader`, from `persian_data.corpora`)
finds and reads them. The specification's corpus (the default): every ``*.json`` file under
``datasets/text/persian_conversation/data`` (natural order: ``dadrah_dataset.json``,
``...1-1000_10000``, ``...1-10000_100000``, ``...1-100000_276342``, then any others), each ONE
JSON array of rows ``[title, question, answers, keywords]``; a declared corpus's JSON arrays or
JSON lines (shapes ``chat-json``, ``chat-jsonl``). The reader turns each row into a neutral record
(title, question, answers) or the reason it makes no conversation; everything below works on those.
The raw files are only read, never modified.

Output, beside the corpus's ``data/`` (paths from `Layout`):
* ``combined.jsonl``: one conversation per line, exactly
  ``{"messages":[{"role":"system","content":…},{"role":"user","content":…},
  {"role":"assistant","content":…}]}``, UTF-8, no ``\\u`` escapes for non-ASCII text;
* ``train.jsonl`` / ``valid.jsonl`` when ``valid_fraction`` is set (stale ones are removed
  when it is not, so the three files always come from the same run);
* ``combined.stats.json``: rows read per file, conversations written, rows skipped by reason,
  duplicates, characters, the split sizes and the options used;
* ``combined.rejects.jsonl``: one line per skipped row ``{"file","index","reason","row"}``
  (the raw row as parsed), and one line per damaged file (``index`` null, ``byte_offset``).
Every output is written to a temp file in ``.persian-data/tmp`` and renamed into place, the stats
last: a killed run leaves the previous outputs (or none), never a half-written file.

Policies
--------
* **User turn (title rule).** The question, with the title in front (``title + "\\n\\n" +
  question``) only when the title adds something: when, ignoring spaces, newlines, ZWNJ and
  the punctuation around the title, the title is not already contained in the question. When the question
  is instead contained in the title (a one-line question that only repeats the title), the
  title alone is used. An empty title is ignored.
* **Assistant turn, ``answers="first"`` (default).** The first answer that is a non-empty string
  after normalization; empty or non-string answers before it are skipped (and counted in
  ``answers_skipped``).
* **``answers="all"``.** One conversation per usable answer, each with the same system and
  user turns. Every answer on the site is a separate lawyer's complete reply, so joining them
  would invent a multi-voice answer; separate conversations keep each one as written. (The
  split hashes the user turn, so all answers of one question land in the same split.)
* **System turn.** ``ChatOptions.system_prompt`` (default `DEFAULT_SYSTEM_PROMPT`, the legal
  assistant of the specification's corpus; a declared corpus's own ``system_prompt`` replaces that
  default), normalized like the rest when ``normalize`` is on.
* **``normalize=False``** keeps the text as it is, only trimmed (lone surrogates, which cannot
  be UTF-8, are dropped); control characters then appear as JSON escapes (``\\u0007``), the
  only ``\\u`` escapes the output can hold.
* **Rows that cannot make a conversation** are skipped, counted by reason and written to the
  rejects file: ``not_a_list``, ``wrong_item_count`` (not 3 or 4 items), ``non_string_field``
  (title or question not a string, or no answer that is a string), ``answers_not_list`` (null,
  a number, ...), ``no_answers`` (an empty list), ``empty_question`` / ``empty_answer`` (empty
  after normalization); a declared corpus's reader adds its own (``not_an_object``,
  ``missing_field``, ``not_single_turn``). ``keywords`` is not used and not checked.
* **Rows kept in a tolerated form** are counted in ``rows_accepted`` (per file and in total):
  ``answer_not_list`` (``[title, question, "answer", keywords]``: one answer as a bare string,
  as code in the wild guards for) and ``missing_keywords`` (``[title, question, answers]``).
* **Duplicates.** Conversations whose (user, assistant) pair is identical after normalization
  are written once; later copies are counted (per file and in total). Kept in memory as a set of
  16-byte blake2b digests of the two turns' JSON: ~100 bytes a conversation.
* **Damaged files** (invalid UTF-8, invalid JSON, a truncated array): the whole file is skipped
  and the run goes on. Rows of that file converted before the damage was found are taken back
  out of every output, so a file contributes all its rows or none, and the output does not
  depend on where in a file the damage happens to sit. The log names the file, the reason and
  the byte offset; the stats list it under ``files_rejected`` and count its parsed rows under
  ``skipped["file_" + reason]``; the rejects file holds one line for it.
* **Split.** ``valid_fraction=F`` puts a conversation in ``valid`` when its blake2b-64 digest of
  the user turn (the JSON ``{"role":"user","content":…}`` exactly as written in the line), read
  as a big-endian integer, is below ``F * 2**64``.
  A pure function of the text: the same on every rerun and machine (for one Unicode version
  of Python's ``unicodedata``, which the normalizer uses).

Streaming
---------
Memory does not grow with the corpus. The main process reads each file in pieces of about
4 MiB, cut right after a row separator (``]], [`` as ``json.dump`` writes it), and hands the
pieces to worker processes (two on this 2-core machine, for inputs of 48 MiB and more). A worker
decodes its piece (strict UTF-8), parses it row by row with the json C scanner
(``JSONDecoder.raw_decode``), and does the per-row work (validate, normalize, title and answers
rules, serialize, hash). The main process takes the results back in file order, drops
duplicates and writes, so the output is the same whatever the number of workers (or the engine:
with ``--engine ray`` the pieces are Ray tasks on a cluster, `persian_data.engine`). Bytes that
only look like a separator (inside a string, or in a malformed row) make a piece end inside a
row; the worker says so, and the main process parses that piece again joined with the next.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import time
import uuid
from collections import deque
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import orjson

from ..atomic import atomic_write_bytes
from ..catalog import CHAT_SOURCE, Source
from ..compiled import SPEEDUPS
from ..corpora.chat_pieces import RawFileError, iter_raw_rows
from ..engine.local import LocalEngine
from ..layout import Layout
from ..progress import progress
from ..provenance import input_record
from .chat_convert import (DEFAULT_SYSTEM_PROMPT, ROLES, ChatOptions, _Converter, _worker_init,
                           check_conversation, user_turn)
from .chat_gates import chat_gates  # noqa: F401  (registers the gate)
from .chat_near_dup import Candidates, collapse_and_copy
from .chat_output import _Writers
from .chat_reading import ChatError, ChatSourceMissingError, _Reading
from .chat_review import write_review
from .chat_stats import RULE_SKIP_REASONS, SKIP_REASONS, STATS_VERSION, ChatStats, FileStats, _fmt  # noqa: F401

__all__ = ["DEFAULT_SYSTEM_PROMPT", "ROLES", "ChatError", "ChatOptions", "ChatSourceMissingError", "ChatStats",
           "RawFileError", "chat_gates", "check_conversation", "iter_conversations", "iter_raw_rows",
           "prepare_chat", "raw_files", "user_turn"]

LOG = logging.getLogger("persian_data.prepare.chat")
AUTO_WORKERS_MIN_BYTES = 48 << 20  # below this much input, workers cost more than they save


def _pick_workers(options: ChatOptions, total_bytes: int) -> int:
    if options.workers is not None:
        return max(0, int(options.workers))
    if total_bytes < AUTO_WORKERS_MIN_BYTES:
        return 0
    return max(1, min(2, os.cpu_count() or 1))


def raw_files(layout: Layout, source: Source = CHAT_SOURCE) -> list[Path]:
    """A chat corpus's data files, in the order they are read (default: the specification's corpus)."""
    return source.reader.data_files(layout.content_dir(source))


def prepare_chat(layout: Layout, options: ChatOptions = ChatOptions(), *,
                 logger: logging.Logger | None = None, cache=None, source: Source = CHAT_SOURCE,
                 engine=None) -> ChatStats:
    """Build combined.jsonl (and train/valid, stats, rejects) from a chat corpus's raw files
    (default: the specification's corpus). `engine` (`persian_data.engine`) converts the pieces:
    worker processes here by default (none for small inputs), Ray tasks with the `ray` engine."""
    log = logger or LOG
    t0 = time.monotonic()
    options = _corpus_options(options, source)
    files = raw_files(layout, source)
    raw_dir = layout.content_dir(source)
    if not files:
        where = layout.relative(raw_dir) if raw_dir.is_relative_to(layout.root) else str(raw_dir)
        raise ChatSourceMissingError(
            f"no raw conversation files ({', '.join(source.reader.files)}) in {where}; fetch the {source.key} "
            f"source first (persian-data fetch --only {source.key})")
    sizes = [p.stat().st_size for p in files]
    total_bytes = sum(sizes)
    split = options.valid_fraction is not None
    stats = ChatStats(options=options.as_dict(), inputs=input_record(layout, files, cache))
    if split:
        stats.splits = {"train": 0, "valid": 0}
    converter = _Converter(options)  # validates the options; also used in-process
    engine = engine or LocalEngine()
    n_workers = _pick_workers(options, total_bytes) if engine.local else engine.cpus()
    if SPEEDUPS is None:
        log.warning("chat: the C extension persian_data._speedups was not built (no C compiler or Python "
                    "headers at install): the rules run in Python, slower; install gcc and python3-dev and "
                    "reinstall (pip install -e .) for full speed")
    log.info("chat: %s: %d raw file(s), %.1f MB; answers=%s, normalize=%s, valid_fraction=%s, workers=%d",
             source.key, len(files), total_bytes / 1e6, options.answers, options.normalize, options.valid_fraction,
             n_workers)

    with ExitStack() as stack:
        pool = _start_pool(stack, n_workers, options, source.reader, engine, layout)
        run = _Reading(layout, source, converter, pool, n_workers,
                       _Writers(stack, layout, source, split, cache, staged=options.near_dup),
                       Candidates(tmp_dir=layout.tmp_dir) if options.near_dup else None, stats, split,
                       int(float(options.valid_fraction) * 2**64) if split else 0, log,
                       stack.enter_context(progress(total_bytes, "chat: reading", "B", logger=log, unit_scale=True)))
        for path, size in zip(files, sizes):
            run.convert_file(path, size)
        if run.cands is not None:
            _near_dup_pass(layout, source, run.out, run.cands, stats, split, len(converter.system), log,
                           _pool_map(pool) if engine.local and pool is not None else engine.map)
        stats.characters["total"] = sum(stats.characters[k] for k in ("system", "user", "assistant"))
        if stats.written == 0:
            raise ChatError(
                "no conversation could be built from " + ", ".join(f.file for f in stats.files)
                + (f" (damaged: {', '.join(stats.files_rejected)})" if stats.files_rejected else "")
                + "; nothing written")
        out = run.out
    # Leaving the stack renamed combined/train/valid/rejects into place and shut the pool down.
    if not split:
        for name in ("train", "valid"):
            layout.chat_split(name, source).unlink(missing_ok=True)
    write_review(layout, stats, on_placed=cache.placed if cache is not None else None, source=source)
    # The stats last: the gate compares their "written" with combined.jsonl, so a run killed
    # between the renames is caught by `verify`.
    # What the gate checks without reading the outputs again: each one's line count and the sha256
    # of the bytes written (every line was built from validated turns as it was produced).
    stats.outputs = {layout.chat_combined(source).name: {"lines": stats.written,
                                                         "sha256": out.digests[layout.chat_combined(source).name]}}
    if split:
        for name in ("train", "valid"):
            path = layout.chat_split(name, source)
            stats.outputs[path.name] = {"lines": stats.splits[name], "sha256": out.digests[path.name]}
    atomic_write_bytes(layout.chat_stats(source), orjson.dumps(stats.to_json(), option=orjson.OPT_INDENT_2)
                       + b"\n", layout.tmp_dir, on_placed=cache.placed if cache is not None else None)
    stats.seconds = time.monotonic() - t0
    mb = total_bytes / 1e6
    log.info("chat: %d conversations written from %d rows (%d skipped%s, %d duplicates) in %.1f s "
             "(%.1f MB/s)%s%s", stats.written, stats.rows_read, sum(stats.skipped.values()),
             _fmt(stats.skipped), stats.duplicates, stats.seconds, mb / max(stats.seconds, 1e-9),
             f"; train {stats.splits['train']}, valid {stats.splits['valid']}" if split else "",
             f"; DAMAGED, skipped whole: {', '.join(stats.files_rejected)}" if stats.files_rejected else "")
    return stats


def _corpus_options(options: ChatOptions, source: Source) -> ChatOptions:
    """A corpus's own system prompt replaces the default one (an explicit --system-prompt stays)."""
    own = source.chat.system_prompt if source.chat is not None else None
    if own and options.system_prompt == DEFAULT_SYSTEM_PROMPT:
        return replace(options, system_prompt=own)
    return options


def _start_pool(stack: ExitStack, n_workers: int, options: ChatOptions, reader, engine, layout: Layout):
    """The engine's workers (None: everything in this process), closed when `stack` closes: forked
    worker processes started before this stage starts any thread (`engine.local`), or Ray tasks,
    which leave their pieces' results in a folder of the root's tmp (`chat_convert._SET_ASIDE`),
    removed when `stack` closes. A local worker that dies makes the run fail (BrokenProcessPool),
    never hang."""
    if not n_workers:
        return None
    set_aside = None
    if not engine.local:
        folder = layout.tmp_dir / f"chat-results-{uuid.uuid4().hex}"
        folder.mkdir(parents=True)
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        set_aside = str(folder)
    pool = engine.executor(n_workers, initializer=_worker_init, initargs=(options, reader, None, set_aside))
    stack.callback(pool.close)
    return pool


def _pool_map(pool):
    """`engine.map` on the stage's own worker processes, idle once every file is read: the bands of
    the near-duplicate step run side by side. A lone item (one chunk of pairs to confirm) runs here,
    rather than ship its large shared arrays to a worker for one task."""

    def map_(fn, items, *shared):
        items = iter(items)
        head = list(itertools.islice(items, 2))
        if len(head) < 2:
            yield from (fn(item, *shared) for item in head)
            return
        pending = deque(pool.submit(fn, item, *shared) for item in head)
        for item in items:
            pending.append(pool.submit(fn, item, *shared))
            if len(pending) > 2 * pool.slots:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    return map_


def _near_dup_pass(layout: Layout, source: Source, out: _Writers, cands: Candidates, stats: ChatStats, split: bool,
                   n_sys: int, log: logging.Logger, map_=None) -> None:
    """Pass 2: collapse near-duplicate rows and copy the staged lines that stay to the outputs."""
    out.combined.flush()
    t = time.monotonic()
    # opened on the stage's stack: placed (and hashed) with the rejects when the stage ends well
    combined = out.open_final(layout.chat_combined(source))
    train = out.open_final(layout.chat_split("train", source)) if split else None
    valid = out.open_final(layout.chat_split("valid", source)) if split else None

    def write(line: bytes, in_valid: bool) -> None:
        combined.write(line)
        if split:
            (valid if in_valid else train).write(line)

    result = collapse_and_copy(cands, out.staged_path, write, map_=map_)
    stats.written -= result.lines_removed
    for f, n in result.removed_per_file.items():
        stats.files[f].conversations_written -= n
    stats.characters["user"] -= result.removed_chars["user"]
    stats.characters["assistant"] -= result.removed_chars["assistant"]
    stats.characters["system"] -= n_sys * result.lines_removed
    if split:
        for k in ("train", "valid"):
            stats.splits[k] -= result.removed_splits[k]
    stats.near_duplicates = {"rows_collapsed": result.rows_collapsed,
                             "conversations_removed": result.lines_removed,
                             "lsh_candidate_pairs": result.candidate_pairs, "examples": result.examples}
    log.info("chat: near-duplicates: %d question(s) collapsed (%d conversation(s) removed) in %.1f s",
             result.rows_collapsed, result.lines_removed, time.monotonic() - t)


# ----------------------------------------------------------------------------------------------
# Python API and gates
# ----------------------------------------------------------------------------------------------


def iter_conversations(root: str | Path, split: str = "combined", source: Source = CHAT_SOURCE) -> Iterator[dict]:
    """Iterate the conversations of a prepared root: split "combined", "train" or "valid" of a chat
    corpus (default: the specification's)."""
    layout = Layout(Path(root))
    if split == "combined":
        path = layout.chat_combined(source)
    elif split in ("train", "valid"):
        path = layout.chat_split(split, source)
    else:
        raise ValueError(f"split must be 'combined', 'train' or 'valid', not {split!r}")
    if not path.is_file():
        raise ChatSourceMissingError(
            f"{layout.relative(path)} does not exist; run `persian-data prepare text`"
            + (" with --valid-fraction" if split != "combined" else ""))
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                yield orjson.loads(line)

