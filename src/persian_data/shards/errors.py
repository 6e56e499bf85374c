"""Errors of `persian-data shards`. Bad input (a flag, an unknown or unprepared corpus) exits with 2;
a layout whose audio no longer matches its manifest exits with 1."""

from __future__ import annotations

from ..errors import PersianDataError


class ShardsInputError(PersianDataError):
    """The command cannot run as asked: the message says what, where, why and what to do."""

    exit_code = 2


class ShardsDataError(PersianDataError):
    """The prepared corpus does not hold what its manifest says (a clip missing or changed)."""
