"""The package's one C extension, optional: `persian_data.textclean._facts` (the chat rules' batch
pass; textclean/batch.py uses its numpy form where the extension could not be built, e.g. with no
C compiler). Everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("persian_data.textclean._facts", ["src/persian_data/textclean/_facts.c"],
                             optional=True, extra_compile_args=["-O2"])])
