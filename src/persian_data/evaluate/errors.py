"""Errors of `eval-stt`. Bad input (a hypotheses file, a flag, a missing manifest) exits with 2."""

from __future__ import annotations

from ..errors import PersianDataError


class EvalInputError(PersianDataError):
    """The input cannot be scored as given: the message says what, where and why."""

    exit_code = 2
