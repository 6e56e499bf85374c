"""STT fine-tuning (`persian-data train-stt`): Whisper or a CTC model on the speech manifests, scored
by eval-stt, resumable. Needs the `train-stt` extra (torch, transformers, accelerate, soxr).

  corpora.py    the speech corpora of the root's catalog it uses: columns and split names from their policies
  options.py    the run's options, their checks, each model family's defaults
  selection.py  which clips: manifests, filters, leakage exclusion, --minutes; why each was left out
  fewshot.py    the seeded subset balanced by gender and speaker
  models.py     the model's family, processor (CTC: vocabulary from the transcripts), label limits, weights
  audio.py      one clip decoded (soundfile) and resampled (soxr)
  features.py   model inputs for a batch (Whisper's log-mel over the clips' own length)
  data.py       dataset, collators, the seeded length-grouped sampler
  metrics.py    eval-stt's normalized WER/CER on the eval split during training
  trainer.py    the transformers Trainer wired to the above
  runfolder.py  runs/stt/NAME: train.json, clips.jsonl, checkpoints, the lock
  card.py       the model card (README.md, model-index)
  command.py    the command
Only command.py, corpora.py, options.py, selection.py, fewshot.py, runfolder.py, card.py and errors.py
import without torch; the rest is imported once the extra is known to be there.
"""
