"""The package's one C extension, optional: `persian_data._speedups`, the hot loops of the chat stage
(the rules' batch pass, the answer rule, the PII rule's spans, the normalizer's whitespace and
punctuation spacing, the words of the near-duplicate signatures, the title rule) and the shard
writers' per-sample loop and JSON documents. Each has a Python form that stays the reference and
runs where the extension could not be built (no C compiler). Everything else is in pyproject.toml."""

from setuptools import Extension, setup

SOURCES = ["module.c", "facts.c", "answers.c", "pii.c", "spacing.c", "words.c", "titles.c", "tarcopy.c", "jsonout.c", "shardplan.c", "manifestline.c", "planmath.c"]

setup(ext_modules=[Extension("persian_data._speedups", [f"src/speedups/{name}" for name in SOURCES],
                             depends=["src/speedups/speedups.h"], include_dirs=["src/speedups"],
                             optional=True, extra_compile_args=["-O3"])])
