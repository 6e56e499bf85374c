"""What every benchmark here does before it times a command: run the package as an install runs it."""

from __future__ import annotations

import os
from pathlib import Path


def as_installed() -> None:
    """Time commands as an installed package runs them: its modules read from bytecode. pip
    compiles a package when it installs it, and Python caches what it compiles on first import;
    but a shell with PYTHONDONTWRITEBYTECODE=1 (as ours was) never writes that cache, and every
    command start and every worker process (Ray's included) compiles ~45 of our modules from
    source again: ~60 ms each time, measured with cProfile. So: the package compiled once here,
    and the cache allowed for the commands and the clusters this benchmark starts."""
    import compileall

    import persian_data

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(Path(persian_data.__file__).parent, quiet=1)
