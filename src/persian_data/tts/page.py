"""The voices page: type Persian, pick a voice, a speed and a format, hear it. Shared by serve-tts and explore.

serve-tts shows it at `/` (its API beside it); `persian-data explore` shows the same panel in its
Voices section, with the API mounted under `/tts/`. Server-rendered (Jinja2, autoescaped), one
small script, one stylesheet, shipped in the package (`web/`): no CDN, no build step, readable
offline. The script posts to the OpenAI-compatible `v1/audio/speech` relative to `api_base`.

Pages go out with a Content-Security-Policy that allows only this server's own scripts, styles and
media (plus `blob:` audio): text from a dataset or a user can never run as script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from .encode import FORMATS
from .pieces import MAX_SPEED, MIN_SPEED

WEB_DIR = Path(__file__).with_name("web")
ASSETS_URL = "/assets/tts"  # where serve-tts mounts WEB_DIR; explore mounts it at the same path
CSP = ("default-src 'self'; img-src 'self' data:; media-src 'self' blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
PAGE_FORMATS = ("wav", "mp3", "opus", "flac")  # what a browser's <audio> plays


def template_environment(extra_dirs: Iterable[Path] = ()):
    """Jinja2 with autoescaping, looking in `extra_dirs` first, then in the voices page's own folder."""
    import jinja2

    loader = jinja2.FileSystemLoader([*map(str, extra_dirs), str(WEB_DIR)])
    return jinja2.Environment(loader=loader, autoescape=jinja2.select_autoescape(["html"]),
                              trim_blocks=True, lstrip_blocks=True)


def panel_context(voices: list[dict[str, Any]], *, api_base: str, unavailable: str | None = None) -> dict[str, Any]:
    """What voices_panel.html needs. voices: name, sample_rate, runtime, precision, default."""
    return {"voices": voices, "api_base": api_base, "unavailable": unavailable, "formats": PAGE_FORMATS,
            "all_formats": tuple(FORMATS), "min_speed": MIN_SPEED, "max_speed": MAX_SPEED,
            "assets": ASSETS_URL}
