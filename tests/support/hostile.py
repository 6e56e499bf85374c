"""Hostile files the tests add to the replicas (the demo's replicas carry none): two damaged chat files
and FLEURS tar members that try to escape the folder they are extracted into.

Both are made from the real builders' own pieces (`persian_data.corpora`), so they look like the rest
of the replica, and are deterministic: the same calls give byte-identical files.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from persian_data.corpora import fleurs
from persian_data.corpora import persian_conversation as text_corpus
from persian_data.localhub import replica_kit as kit

TEXT_HOSTILE_FILES = (
    "dadrah_dataset_extra_invalid_utf8.json",  # not LFS; invalid UTF-8 inside two strings
    "dadrah_dataset_extra_truncated.json",  # LFS; the JSON array is cut inside a string
)

# What each damaged chat file holds, and how a strict reader fails on it.
TEXT_HOSTILE: dict[str, dict[str, Any]] = {
    TEXT_HOSTILE_FILES[0]: {
        "lfs": False,
        "rows": 4,  # rows json.loads finds after bytes.decode("utf-8", "replace")
        "invalid_rows": 2,  # rows whose question holds the bad bytes (they decode to U+FFFD)
        "error": "UnicodeDecodeError",  # from a strict UTF-8 decode / json.loads(bytes)
    },
    TEXT_HOSTILE_FILES[1]: {
        "lfs": True,
        "complete_rows": 3,  # whole rows before the cut (an incremental parser can keep them)
        "error": "json.JSONDecodeError",
    },
}

# Tar members of FLEURS fa_ir dev.tar.gz that must never be extracted as they are.
FLEURS_HOSTILE: dict[str, dict[str, Any]] = {
    "path_traversal": {"split": "dev", "member": "../evil.wav", "what": "member escapes the extraction dir"},
    "absolute_path": {"split": "dev", "member": "/tmp/persian_data_evil.wav", "what": "absolute member name"},
    "symlink": {"split": "dev", "member": "dev/evil_link.wav", "target": "../../../../../../etc/passwd",
                "what": "symlink member pointing out of the tree (no TSV row names it)"},
}
FLEURS_HOSTILE_MEMBERS = tuple(h["member"] for h in FLEURS_HOSTILE.values())
FLEURS_HOSTILE_TAR = f"data/{fleurs.LANG}/audio/dev.tar.gz"


def damaged_text_files() -> dict[str, bytes]:
    """The two damaged chat files, by name."""
    r = kit.rng("text-hostile")
    good = [text_corpus.text_row(r) for _ in range(4)]
    raw = json.dumps(good, ensure_ascii=False).encode("utf-8")
    # Row 0: a lone 0xff byte; row 2: a UTF-8 lead byte (0xd9) followed by ASCII.
    for idx, bad in ((0, b"\xff"), (2, b"\xd9 ")):
        marker = json.dumps(good[idx][1], ensure_ascii=False).encode("utf-8")
        at = raw.index(marker) + 1 + len("سلام.".encode())
        raw = raw[:at] + bad + raw[at:]
    rows = [text_corpus.text_row(r) for _ in range(4)]
    # Cut halfway through the 4th row: 3 complete rows, then a broken one, no closing "]".
    cut = len(text_corpus.dump_rows(rows[:3])) - 1 + len(", ") + len(text_corpus.dump_rows(rows[3:])) // 2
    return {TEXT_HOSTILE_FILES[0]: raw, TEXT_HOSTILE_FILES[1]: text_corpus.dump_rows(rows)[:cut]}


def with_damaged_text_files(files: dict[str, bytes]) -> dict[str, bytes]:
    """The chat replica's files plus the damaged ones (the truncated one in Git LFS, as a big file is)."""
    out = {**files, **damaged_text_files()}
    lfs = "".join(kit.lfs_line(name) for name, info in TEXT_HOSTILE.items() if info["lfs"])
    out[".gitattributes"] = files[".gitattributes"] + lfs.encode()
    return out


def escaping_members() -> list[fleurs.TarMember]:
    evil = kit.encode(kit.synth_int16(1600, "evil"), fleurs.FLEURS_SAMPLE_RATE, "WAV")
    return [(FLEURS_HOSTILE["path_traversal"]["member"], evil, None),
            (FLEURS_HOSTILE["absolute_path"]["member"], evil, None),
            (FLEURS_HOSTILE["symlink"]["member"], None, FLEURS_HOSTILE["symlink"]["target"])]


def with_escaping_members(files: dict[str, bytes]) -> dict[str, bytes]:
    """The FLEURS replica's files with the escaping members appended to fa_ir's dev.tar.gz."""
    with tarfile.open(fileobj=io.BytesIO(files[FLEURS_HOSTILE_TAR]), mode="r:gz") as tar:
        members = [(m.name, tar.extractfile(m).read() if m.isfile() else None, m.linkname if m.issym() else None)
                   for m in tar.getmembers()]
    return {**files, FLEURS_HOSTILE_TAR: fleurs.tar_gz(members + escaping_members())}
