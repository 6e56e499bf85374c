"""What only the tests (and a few benchmarks) use: tiny random models, built from small configs.

The tests import it as `support.<module>` (pytest puts tests/ on sys.path, as for `conftest`); a
benchmark adds the repository's tests/ folder to sys.path first.
"""
