"""Issue 21 item 8: one error policy. Every command, on a root whose lock is truncated, whose
checksum file is garbage, or whose stats JSON is truncated: no traceback, one line, the right exit
code, and a command that fails writes nothing into datasets/. Item 22.5: usage errors are their own
class under the one base (exit 2)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from persian_data import errors
from persian_data.cli import main
from persian_data.integrity import LockFileError, read_lock
from persian_data.layout import Layout


def corrupt(root: Path, what: str) -> None:
    layout = Layout(root)
    if what == "lock":
        layout.lock_file.write_bytes(layout.lock_file.read_bytes()[:100])
    elif what == "checksums":
        layout.checksums_file.write_bytes(b"garbage\x00\xff\xfe not a checksum line\n" * 5)
    else:
        for stats in (layout.chat_stats(), root / "datasets/speech/commonvoice_fa/manifests/stats.json"):
            stats.write_bytes(stats.read_bytes()[:40])


def datasets_state(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "datasets").rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, hub) -> Path:
    root = tmp_path_factory.mktemp("prepared")
    assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "text,commonvoice"]) == 0
    assert main(["prepare", "all", "--root", str(root)]) == 0
    return root


# Every command on a root (serve-tts would serve it, demo makes its own root: tested elsewhere).
# Expected exit code per corruption: 1 where the command needs the broken record (or judges it),
# 0 where it does not read it or writes it again from the data (fetch re-records checksums,
# prepare re-makes its stats). The root holds no voice, so tts-export always stops on that, clearly.
COMMANDS = {
    #                              lock  checksums stats
    "fetch":                      (1,    0,        1),
    "run":                        (1,    0,        0),
    "prepare all":                (1,    0,        0),
    "verify":                     (1,    1,        1),
    "status":                     (1,    0,        1),
    "card --no-synth":            (1,    1,        1),
    "eval-stt --leakage":         (0,    0,        0),
    "tts-export":                 (1,    1,        1),
    "synth --list-voices":        (0,    0,        0),
}


@pytest.mark.parametrize("what", ["lock", "checksums", "stats"])
def test_every_command_on_a_damaged_record_fails_in_one_line(prepared, hub, tmp_path, capsys, what):
    column = ["lock", "checksums", "stats"].index(what)
    for command, codes in COMMANDS.items():
        root = tmp_path / command.split()[0]
        shutil.copytree(prepared, root)
        corrupt(root, what)
        before = datasets_state(root)
        argv = command.split() + ["--root", str(root)]
        if argv[0] in ("fetch", "run", "prepare", "verify", "status"):
            argv += ["--only", "text,commonvoice"]  # the sources this root holds
        if argv[0] in ("fetch", "run"):
            argv += ["--endpoint", hub.endpoint]
        capsys.readouterr()
        code = main(argv)  # an exception escaping here is the traceback a user would see
        err = capsys.readouterr().err
        assert code == codes[column], (command, what, err[-2000:])
        assert "Traceback" not in err, (command, what)
        errors_shown = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors_shown) <= 1, (command, what, errors_shown)
        if code:
            assert errors_shown or "FAILED:" in err or "status: not all is well" in err, (command, what, err[-2000:])
            assert datasets_state(root) == before, (command, what)


def test_a_truncated_lock_says_how_to_repair_it_and_that_works(prepared, hub, tmp_path, capsys):
    root = tmp_path / "root"
    shutil.copytree(prepared, root)
    corrupt(root, "lock")
    with pytest.raises(LockFileError):
        read_lock(Layout(root).lock_file)
    fetch = ["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "text,commonvoice"]
    assert main(fetch) == 1
    err = capsys.readouterr().err
    assert "delete it and run `persian-data fetch`" in err
    Layout(root).lock_file.unlink()
    hub.requests.clear()
    assert main(fetch) == 0
    assert not [r for r in hub.requests.entries() if "/resolve/" in r.path]  # files in place: checked, not fetched
    assert main(["verify", "--root", str(root), "--only", "text,commonvoice"]) == 0


def test_every_user_facing_error_derives_from_the_one_base():
    from persian_data.catalog import UnknownSourceError

    assert issubclass(LockFileError, errors.PersianDataError)
    assert issubclass(UnknownSourceError, errors.UsageError) and errors.UsageError.exit_code == 2
    assert issubclass(errors.EndpointSettingError, errors.UsageError)


@pytest.mark.parametrize("argv, words", [
    (["prepare", "text", "--valid-fraction", "1.5"], "--valid-fraction must be between 0 and 1"),
    (["prepare", "text", "--min-answer-chars", "-1"], "--min-answer-chars"),
    (["fetch", "--workers", "0"], "--workers"),
    (["fetch", "--timeout", "0"], "--timeout"),
    (["verify", "--only", "nonsense"], "unknown source 'nonsense'"),
])
def test_bad_options_are_usage_errors(prepared, capsys, argv, words):
    with pytest.raises(SystemExit) as stopped:
        raise SystemExit(main(argv + ["--root", str(prepared)]))
    assert stopped.value.code == 2
    assert words in capsys.readouterr().err
