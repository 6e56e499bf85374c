"""The speech corpora a run uses, looked up in the root's catalog (the five's two and the corpora the
root declares in `persian-data.toml` / `--sources`), and what train-stt reads from each `Source`:
its speaker and gender columns and split names (`SpeechPolicy`), and the Hub facts the model card
names (repo id, title, license, URL, dataset config).

The corpora and splits are eval-stt's (`evaluate.references`), so train-stt, eval-stt and the
leakage report agree on which corpora and splits exist.
"""

from __future__ import annotations

from ..evaluate.references import ALL_SPLITS, EVAL_SPLITS, speech_sources
from ..source import Source
from .errors import TrainInputError

SPLITS: tuple[str, ...] = ALL_SPLITS  # the published split names manifests are written under
HELD_OUT_SPLITS: tuple[str, ...] = EVAL_SPLITS  # splits a model is scored on: never trained on by default
TEST_SPLIT = "test"


def parse_corpora(value: str, catalog) -> list[Source]:
    """`--corpus a,b`: the speech corpora of the root's catalog it names, in the order given."""
    found = {s.key: s for s in speech_sources(catalog)}
    names = list(dict.fromkeys(x.strip() for x in value.split(",") if x.strip()))
    if not names:
        raise TrainInputError(f"--corpus needs at least one speech corpus (known: {', '.join(found)})")
    for name in names:
        if name not in found:
            raise TrainInputError(f"--corpus: {name!r} is not a speech corpus of this root; known: "
                                  f"{', '.join(found)} (declare others in persian-data.toml or pass --sources)")
    return [found[name] for name in names]


def resolve(keys: list[str], catalog) -> list[Source]:
    """The sources of a run's corpus keys (checked by `parse_corpora` when the run was asked for)."""
    found = {s.key: s for s in speech_sources(catalog)}
    return [found[key] for key in keys]


def published_split(name: str, sources: list[Source], flag: str) -> str:
    """A split as the manifests name it: our names as they are, a source's own name through each
    corpus's SpeechPolicy (FLEURS' `dev` is published as `validation`)."""
    if name in SPLITS:
        return name
    renamed = {s.speech.published(name) for s in sources} & set(SPLITS)
    if len(renamed) == 1:
        return renamed.pop()
    raise TrainInputError(f"{flag}: {name!r} is not a split of {', '.join(s.key for s in sources)}; known: "
                          f"{', '.join(SPLITS)}")


def parse_splits(value: str, flag: str, sources: list[Source]) -> list[str]:
    names = [published_split(x.strip(), sources, flag) for x in value.split(",") if x.strip()]
    if not names:
        raise TrainInputError(f"{flag} needs at least one split ({', '.join(SPLITS)})")
    return list(dict.fromkeys(names))


def parse_eval_split(value: str, sources: list[Source]) -> str:
    split = published_split(value.strip(), sources, "--eval-split")
    if split not in HELD_OUT_SPLITS:
        raise TrainInputError(f"--eval-split must be one of {', '.join(HELD_OUT_SPLITS)}, not {value!r}")
    return split


def speaker_column(source: Source) -> str | None:
    return source.speech.speaker if source.speech else None


def gender_column(source: Source) -> str | None:
    return source.speech.gender if source.speech else None


def hub_dataset(source: Source) -> dict:
    """What train.json and the model card say about a corpus: its Hub id, title, license, URL and
    the dataset config its files are (FLEURS: fa_ir)."""
    return {"repo_id": source.repo_id, "title": source.title, "license": source.license, "url": source.url,
            "config": source.hub_config, "declared_in": source.declared_in}
