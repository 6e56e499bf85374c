"""Typed errors. Each says what failed, where, and why; none ever carries a token."""

from __future__ import annotations


class PersianDataError(Exception):
    """Base class: the CLI prints these as one clear line and exits non-zero."""

    exit_code = 1


class PlanError(PersianDataError):
    """The Hub could not tell us what to fetch (missing repo, missing revision, bad listing)."""


class HostilePathError(PlanError):
    """A remote file name that would escape the layout (`..`, absolute, backslash)."""


class DiskSpaceError(PersianDataError):
    """Not enough free space for the plan; raised before any byte is written."""


class DownloadError(PersianDataError):
    """A file could not be downloaded and verified within its tries."""


class IntegrityError(DownloadError):
    """Downloaded bytes do not match the Hub's hash."""


class RunLockedError(PersianDataError):
    """Another run holds the root."""


class ExtraMissingError(PersianDataError):
    """An optional dependency group (extra) is not installed."""


class SourcesConfigError(PersianDataError):
    """A declared corpus (persian-data.toml or --sources FILE) is wrong: named by file, corpus and
    field, before any byte is downloaded."""

    exit_code = 2
