"""Files from the root, safely: only under datasets/, evals/ and card/, never outside the root.

A request path is refused (404, the same answer as a file that does not exist, so nothing about
the disk leaks) when it is absolute, holds `..`, `.` or an empty segment, a backslash or a NUL,
starts with anything but `datasets`, `evals` or `card`, or names something that is not a regular
file; it is refused (403) when its real path, every symlink resolved, lies outside the real path
of the served folder it names (a symlink pointing out of the root, or from datasets/ to logs/).
Nothing is ever written.

Audio is sent by Starlette's FileResponse, which answers HTTP Range requests (206, what `<audio>`
uses to seek), with the content types browsers expect: audio/mpeg for MP3, audio/wav for WAV.
Everything that is not a known media or text type goes out as application/octet-stream with
`nosniff`, and HTML is sent as plain text unless it is the data card (our own page).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

ALLOWED_TOP = frozenset({"datasets", "evals", "card"})
CONTENT_TYPES = {
    ".mp3": "audio/mpeg", ".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".opus": "audio/ogg",
    ".png": "image/png", ".svg": "image/svg+xml", ".json": "application/json; charset=utf-8",
    ".jsonl": "application/x-ndjson; charset=utf-8", ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8", ".tsv": "text/tab-separated-values; charset=utf-8",
}
CARD_HTML = ("card", "card.html")


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def resolve(root: Path, relative: str) -> Path:
    """The file `relative` names under `root`, or Refused(404 / 403)."""
    if not relative or "\x00" in relative or "\\" in relative or relative.startswith("/"):
        raise Refused(404, "not a root-relative path")
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise Refused(404, "path segments must be names")
    if parts[0] not in ALLOWED_TOP:
        raise Refused(404, f"only {', '.join(sorted(ALLOWED_TOP))} are served")
    # The boundary is the served folder's own real path: a root whose datasets/ is a symlink to a big
    # disk still works, while a link inside it to anywhere else (/etc, ~, another folder) is refused.
    real_top = Path(os.path.realpath(root / parts[0]))
    real = Path(os.path.realpath(root.joinpath(*parts)))
    if real_top not in real.parents:
        raise Refused(403, "a symlink leads out of the served folder")
    try:
        mode = os.stat(real).st_mode
    except OSError:
        raise Refused(404, "no such file") from None
    if not stat.S_ISREG(mode):
        raise Refused(404, "not a regular file")
    return real


def content_type(path: Path, relative: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".html":
        return "text/html; charset=utf-8" if tuple(relative.split("/")) == CARD_HTML else "text/plain; charset=utf-8"
    return CONTENT_TYPES.get(suffix, "application/octet-stream")
