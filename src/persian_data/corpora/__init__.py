"""Everything specific to one corpus, one module per corpus (lhotse's recipes are the model).

- (`persian_data/source.py`, below everything: what a corpus is to the rest of the tool,
  `Source`, `SpeechPolicy`, `ChatPolicy`)
- the specification's five: `persian_conversation.py` (text), `commonvoice.py`, `fleurs.py`,
  `kamtera_vits.py` (both voices; `coqui_vits_run.py`: the training run's files in their replicas):
  catalog entry, policies, card titles, local hub replica;
- the shapes they are read in, usable by any corpus: `speech_parquet.py`, `speech_tsv_tar.py`
  (with `speech_clips.py`, `speech_formats.py`), `chat_json.py`, `chat_jsonl.py`;
- `declared.py` + `config.py`: corpora a user declares in `persian-data.toml` (or `--sources FILE`);
  `persian_data.preflight` checks them against their repos before anything is downloaded;
- `registry.py`: the list of all of them.
"""
