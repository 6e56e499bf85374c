"""The subcommands, one module per group: each adds its parsers (argparse only, so building the
command line imports nothing heavy) and sets, per parser, the function that runs it (`run`, which
imports its feature when it runs). `persian_data.cli` assembles them and handles errors.

- data.py: fetch, run, prepare, verify (the pipeline); status.py: status;
- voices.py: synth, serve-tts, tts-export; evaluate.py: eval-stt; card.py: card;
  train.py: train-stt; explore.py: explore; shards.py: shards;
  demo.py: demo;
- common.py: the flags several commands share, and the one-line report of an outcome.

A handler is `run(args, layout, catalog, sources) -> exit code`.
"""
