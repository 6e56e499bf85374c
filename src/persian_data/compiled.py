"""The package's optional C extension, `persian_data._speedups` (setup.py builds it where a C
compiler and Python's headers are), or None where it was not built: each user then runs the Python
form of what it would have done in C."""

from __future__ import annotations


def _load():
    try:
        from . import _speedups
    except ImportError:  # pragma: no cover - an install without the extension
        return None
    return _speedups


SPEEDUPS = _load()
