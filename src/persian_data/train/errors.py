"""Errors of `train-stt`. Bad input (a flag, a model that cannot be loaded, nothing left to train
on) is one line on stderr and exit 2, before anything is written."""

from __future__ import annotations

from ..errors import PersianDataError


class TrainInputError(PersianDataError):
    """The run cannot start as asked: the message says what, where, why and what to do."""

    exit_code = 2
