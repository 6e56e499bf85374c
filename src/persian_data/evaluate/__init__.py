"""STT evaluation (`persian-data eval-stt`): Persian-aware corpus WER/CER on the speech manifests.

Scoring is separate from running models:
  references.py  a split's clips, read from its manifest (plain JSONL)
  hypotheses.py  hypotheses files (JSONL / NeMo pred_text / TSV) and their id checks
  textnorm.py    the evaluation normalizer (shared normalizer + scoring rules), with counters
  score.py       alignments, corpus counts, bootstrap interval, breakdowns, top errors
  leakage.py     train/test sentence and speaker overlap
  report.py      results.json, utterances.jsonl, report.md, the console line
  command.py     the command: score mode, run mode, leakage
  transcribe.py  run mode: a transformers ASR pipeline over the split's audio, resumable (eval extra)
Nothing here imports torch or transformers except transcribe.py. (The tests' tiny random Whisper /
CTC models are tests/support/tiny_asr.py.)
"""
