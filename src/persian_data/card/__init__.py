"""`persian-data card`: one page, with plots, that says what is in a root and how it was made.

collect.py reads every figure from the root's records; plots.py draws them (matplotlib);
persian_text.py makes Persian draw shaped and right to left; render.py writes CARD.md and the
self-contained card.html; build.py puts the card together and writes it under card/ (outside
datasets/, so counts and checksums do not change). Needs the `card` extra (matplotlib, pyyaml,
arabic-reshaper, python-bidi).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ExtraMissingError

log = logging.getLogger("persian_data.card")


def make_card(root: Path | str, *, synthesize: bool = True, sources=None) -> Path:
    """Write card/CARD.md, card/card.html and card/*.png for `root`; return the CARD.md path.
    `sources`: every source the root knows (default: the five and its persian-data.toml's)."""
    try:
        from .build import make_card as build
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] in ("matplotlib", "yaml", "arabic_reshaper", "bidi"):
            raise ExtraMissingError(f"card: {exc.name} is missing; the card needs the `card` extra: "
                                    f"pip install \"persian-data[card]\"") from None
        raise
    return build(root, synthesize=synthesize, sources=sources)


def card_after_run(root: Path | str, sources=None) -> Path | None:
    """The card at the end of `run`: a failure is logged (to the console) and never raised, so it
    cannot change the gates' verdict. It logs to the console only: the download log must keep
    ending with the specification's summary block."""
    import sys

    card_log = logging.getLogger("persian_data.card")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    card_log.addHandler(handler)
    card_log.propagate = False
    try:
        # The voices are not loaded here (seconds of torch on every run); spectrograms drawn by
        # an earlier `persian-data card` are reused.
        return make_card(root, synthesize=False, sources=sources)
    except ExtraMissingError as exc:
        card_log.warning("%s; the run wrote no card (its verdict does not depend on it)", exc)
        return None
    except Exception as exc:
        card_log.error("card: not written (%s: %s); the gates' verdict stands. `persian-data card --root %s` "
                       "retries it", type(exc).__name__, exc, root)
        return None
    finally:
        card_log.removeHandler(handler)
        card_log.propagate = True
