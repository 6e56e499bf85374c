"""The speech corpora train-stt can use, and what it needs to know about each: the one place that
enumerates them (switch it to the corpus registry when there is one).

Everything here is read from eval-stt's manifest reader (`evaluate.references`) and the catalog,
so train-stt, eval-stt and the leakage report agree on which corpora and splits exist.
"""

from __future__ import annotations

from ..catalog import BY_KEY
from ..evaluate.references import ALL_SPLITS, CORPORA, EVAL_SPLITS
from .errors import TrainInputError

SPEECH_CORPORA: tuple[str, ...] = CORPORA
SPLITS: tuple[str, ...] = ALL_SPLITS
HELD_OUT_SPLITS: tuple[str, ...] = EVAL_SPLITS  # splits a model is scored on: never trained on by default
TEST_SPLIT = "test"
# The manifest column naming the speaker (Common Voice's pseudonymous client_id); FLEURS has none.
SPEAKER_COLUMN = {"commonvoice": "client_id"}
GENDER_COLUMN = "gender"


def parse_corpora(value: str) -> list[str]:
    names = [x.strip() for x in value.split(",") if x.strip()]
    if not names:
        raise TrainInputError("--corpus needs at least one corpus (e.g. commonvoice or commonvoice,fleurs)")
    for name in names:
        if name not in SPEECH_CORPORA:
            raise TrainInputError(f"--corpus: {name!r} is not a speech corpus; known: {', '.join(SPEECH_CORPORA)}")
    return list(dict.fromkeys(names))


def parse_splits(value: str, flag: str) -> list[str]:
    names = [x.strip() for x in value.split(",") if x.strip()]
    for name in names:
        if name not in SPLITS:
            raise TrainInputError(f"{flag}: {name!r} is not a split; known: {', '.join(SPLITS)}")
    if not names:
        raise TrainInputError(f"{flag} needs at least one split")
    return list(dict.fromkeys(names))


def speaker_column(corpus: str) -> str | None:
    return SPEAKER_COLUMN.get(corpus)


def hub_dataset(corpus: str) -> dict:
    """What the model card says about a corpus: its Hub id, title and license (from the catalog)."""
    source = BY_KEY[corpus]
    config = "fa_ir" if corpus == "fleurs" else None
    return {"id": source.repo_id, "title": source.title, "license": source.license, "config": config,
            "url": source.url}
