"""Typed errors. Each says what failed, where, and why; none ever carries a token.

Every error a user can meet derives from `PersianDataError`: the CLI catches that one base and
prints it as one line (exit code `exit_code`). Code that is not user-facing (a reader's internal
signal, a worker's reject) raises its own small exceptions and turns them into one of these."""

from __future__ import annotations


class PersianDataError(Exception):
    """Base class: the CLI prints these as one clear line and exits non-zero."""

    exit_code = 1


class UsageError(PersianDataError):
    """The command line (or a setting) asks for something that cannot be: a bad value, a root that
    does not exist. Raised before anything is written; exit 2, like argparse's own errors."""

    exit_code = 2


class UnknownSourceError(UsageError):
    """`--only` names a source or group that does not exist."""


class NothingToDoError(PersianDataError):
    """The command has nothing to work on in this root (e.g. `prepare` where nothing is fetched)."""


class PlanError(PersianDataError):
    """The Hub could not tell us what to fetch (missing repo, missing revision, bad listing)."""


class EndpointSettingError(UsageError, PlanError):
    """An endpoint URL or endpoint token setting that cannot be used (not http(s), token for an
    endpoint that is not listed). A usage error (exit 2), caught before the root is touched."""


class HostilePathError(PlanError):
    """A remote file name that would escape the layout (`..`, absolute, backslash)."""


class DiskSpaceError(PersianDataError):
    """Not enough free space for the plan; raised before any byte is written."""


class DownloadError(PersianDataError):
    """A file could not be downloaded and verified within its tries."""


class IntegrityError(DownloadError):
    """Downloaded bytes do not match the Hub's hash."""


class LockFileError(PersianDataError):
    """checksums/persian-data.lock.json cannot be read (not JSON, truncated, unknown format)."""


class RunLockedError(PersianDataError):
    """Another run holds the root."""


class ExtraMissingError(PersianDataError):
    """An optional dependency group (extra) is not installed."""


class SourcesConfigError(PersianDataError):
    """A declared corpus (persian-data.toml or --sources FILE) is wrong: named by file, corpus and
    field, before any byte is downloaded."""

    exit_code = 2


class EngineError(PersianDataError):
    """The engine that runs the prepare stages' units of work failed: the Ray cluster cannot be
    reached, or a unit kept failing after its retries (its node died too often)."""


class ClusterRootError(EngineError):
    """A Ray node cannot see the root the driver works on (no shared filesystem at that path), or
    runs other persian-data code than the driver. Refused before any output is placed; exit 2."""

    exit_code = 2
