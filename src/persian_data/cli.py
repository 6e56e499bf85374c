"""Command line: thin. Builds the parser from the command groups (`persian_data.commands`), runs the
chosen command's handler, prints one clear line per problem."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from . import __version__
from .catalog import CATALOG, root_sources, select
from .commands import card as commands_card
from .commands import data as commands_data
from .commands import demo as commands_demo
from .commands import evaluate as commands_evaluate
from .commands import explore as commands_explore
from .commands import shards as commands_shards
from .commands import status as commands_status
from .commands import train as commands_train
from .commands import voices as commands_voices
from .commands.common import fetch_options, remote_options
from .errors import PersianDataError
from .layout import Layout, require_root


DESCRIPTION = """\
Get the five public Persian sources (a chat corpus, Common Voice 13, FLEURS, two VITS voices) onto
disk, verified and in one layout, and make them ready to use: chat JSONL for fine-tuning, speech
manifests and NeMo/lhotse exports for ASR, the voices for synthesis.

Start with `persian-data run --root DATA` (fetch, prepare, check, write the data card), or
`persian-data demo` to see the whole job offline in about a minute."""

EPILOG = """\
examples:
  persian-data run --root DATA                      everything: fetch, prepare, gates, card
  persian-data fetch --root DATA --only text,cv     only the chat corpus and Common Voice
  persian-data fetch --root DATA --endpoint https://hf-mirror.com   through a mirror
  persian-data verify --root DATA                   re-hash everything, re-run every gate
  persian-data status --root DATA                   what is there, what is stale
Every command but fetch, run and demo works on a root that exists. Errors are one line on stderr;
exit 0 = all well, 1 = a gate failed or a step failed, 2 = the command line asks for something
that cannot be."""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (when it has a meaningful one and the help does not already say)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" not in text and action.default not in (None, False, argparse.SUPPRESS)
                and action.option_strings and action.nargs != 0):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


# The command groups, in the order `persian-data --help` lists them (commands/ holds one module each).
COMMANDS = (commands_data, commands_status, commands_voices, commands_explore, commands_evaluate, commands_train,
            commands_card, commands_demo, commands_shards)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="persian-data", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"persian-data {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")  # subcommands are _Parsers
    for group in COMMANDS:
        group.add_parsers(sub)  # each sets `run`, its handler
    return parser


def _install_sigint() -> None:
    """First Ctrl-C: stop cleanly with a resume hint. Second: exit at once."""
    state = {"count": 0}

    def handler(signum, frame):
        state["count"] += 1
        if state["count"] > 1:
            os._exit(130)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _install_sigint()
    # Every token the run may hold, to keep out of error messages (--endpoint-token values included).
    token = [getattr(args, "token", None) or os.environ.get("HF_TOKEN")] + [
        value.partition("=")[2] for value in (getattr(args, "endpoint_token", None) or ())]
    try:
        code = _dispatch(args)
        sys.stdout.flush()  # a reader that went away (`| head`) shows here, while it can still be handled
        return code
    except KeyboardInterrupt:
        print("\ninterrupted. Nothing partial was left in the layout; run the same command again to resume.",
              file=sys.stderr)
        return 130
    except PersianDataError as exc:
        from .run import redact

        print(f"error: {redact(str(exc), token)}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError as exc:
        if _stdout_closed():  # `status --json | head -3`: the reader has what it wanted; end quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 128 + signal.SIGPIPE  # what a tool killed by SIGPIPE reports, without the noise
        return _os_error(exc, token)
    except OSError as exc:  # disk full, permissions, a vanished folder: say what and where
        return _os_error(exc, token)


def _os_error(exc: OSError, token: list) -> int:
    from .run import redact

    print(f"error: {redact(str(exc), token)}. Nothing partial was left in the layout; fix the cause "
          f"and run the same command again.", file=sys.stderr)
    return 1


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on its write end)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _check_before_writing(args) -> tuple:
    """What can be refused before anything is read or created: the sources (`--only`), the endpoint
    settings, a root that does not exist (every command but fetch, run and demo needs one)."""
    # the five and the corpora the root declares (persian-data.toml, or --sources FILE)
    catalog = root_sources(args.root, args.sources) if hasattr(args, "sources") else CATALOG
    sources = select(args.only, catalog) if hasattr(args, "only") else []
    if args.command in ("fetch", "run"):
        fetch_options(args).endpoint_list()  # EndpointSettingError: exit 2, and no root made
    elif getattr(args, "remote", False):
        remote_options(args).endpoint_list()
    if args.command not in ("fetch", "run", "demo"):
        require_root(Layout(args.root))
    return catalog, sources


def _dispatch(args) -> int:
    catalog, sources = _check_before_writing(args)
    layout = Layout(args.root) if args.root is not None else None  # demo: a temporary root of its own
    return args.run(args, layout, catalog, sources)


def entry() -> None:
    """Console script. After Ctrl-C, exit without waiting for download threads blocked in a read
    (their partial files are in staging and resume next time; the run lock is already released)."""
    from .run import process_ends_after_run

    process_ends_after_run()
    code = main()
    # Skip interpreter teardown (a few hundred ms of module finalisation on a rerun that is otherwise
    # nearly free): the run has already saved its cache, closed its log and released the root.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
