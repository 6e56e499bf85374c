"""Everything specific to one corpus, one module per corpus (lhotse's recipes are the model).

- `source.py`: what a corpus is to the rest of the tool (`Source`, `SpeechPolicy`, `ChatPolicy`);
- the specification's five: `persian_conversation.py` (text), `commonvoice.py`, `fleurs.py`,
  `kamtera_vits.py` (both voices): catalog entry, policies, card titles, local hub replica;
- the shapes they are read in, usable by any corpus: `speech_parquet.py`, `speech_tsv_tar.py`
  (with `speech_clips.py`, `speech_formats.py`), `chat_json.py`, `chat_jsonl.py`;
- `declared.py`: corpora a user declares in `persian-data.toml` (or `--sources FILE`);
- `registry.py`: the list of all of them.
"""
