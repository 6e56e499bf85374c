"""The corpora this tool knows: the specification's five, the shapes a user may declare, and the
local hub's replica of each of the five.

Adding a corpus of a known shape needs no line here (declare it in `persian-data.toml`); a built-in
corpus is one module in this package and one line in `BUILTIN`; a new shape is one module (its
reader and `from_config`) and one line in `SHAPES`.
"""

from __future__ import annotations

from typing import Callable

from . import chat_json, chat_jsonl, commonvoice, fleurs, kamtera_vits, persian_conversation, speech_parquet, \
    speech_tsv_tar
from ..source import Source

# The specification's five, in its order. Their keys, folders and count keys are binding.
BUILTIN: tuple[Source, ...] = (
    persian_conversation.SOURCE,
    commonvoice.SOURCE,
    fleurs.SOURCE,
    *kamtera_vits.SOURCES,
)

# Shape name -> the module that reads it and builds its reader from a declaration (`from_config`).
SHAPES = {
    speech_parquet.SHAPE: speech_parquet,
    speech_tsv_tar.SHAPE: speech_tsv_tar,
    chat_json.SHAPE: chat_json,
    chat_jsonl.SHAPE: chat_jsonl,
}

# Source key -> the builder of its replica for the local hub: (scale, key=, voice_assets=) -> files.
REPLICAS: dict[str, Callable[..., dict[str, bytes]]] = {
    persian_conversation.SOURCE.key: persian_conversation.replica_files,
    commonvoice.SOURCE.key: commonvoice.replica_files,
    fleurs.SOURCE.key: fleurs.replica_files,
    **{source.key: kamtera_vits.replica_files for source in kamtera_vits.SOURCES},
}
