"""Reading one declared corpus's table of `persian-data.toml`, field by field.

Every problem is a `SourcesConfigError` of one line naming the file, the corpus and the field:
`persian-data.toml: [corpora.my_asr] text: column 'transcript' ...`. The shape modules read their
own fields through `Fields` (`from_config`), so a shape's settings are spelled in one place.
"""

from __future__ import annotations

from typing import Any

from ..errors import SourcesConfigError
from ..source import DEFAULT_SPLIT_NAMES, SpeechPolicy


class Fields:
    """A corpus's table; each accessor marks its field as known, `unknown()` lists the rest."""

    def __init__(self, table: dict[str, Any], where: str, key: str) -> None:
        self.table, self.where, self.key = table, where, key
        self.read: set[str] = set()

    def error(self, field: str, problem: str) -> SourcesConfigError:
        return SourcesConfigError(f"{self.where}: [corpora.{self.key}] {field}: {problem}")

    def _get(self, field: str, required: bool, default: Any) -> Any:
        self.read.add(field)
        if field not in self.table:
            if required:
                raise self.error(field, "missing (required for this shape)")
            return default
        return self.table[field]

    def text(self, field: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self._get(field, required, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self.error(field, f"must be a non-empty string, not {value!r}")
        return value

    def texts(self, field: str, default: tuple[str, ...] | None = None) -> tuple[str, ...] | None:
        value = self._get(field, False, default)
        if value is None or isinstance(value, tuple):
            return value
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise self.error(field, f"must be a string or a non-empty list of strings, not {value!r}")
        return tuple(value)

    def flag(self, field: str, default: bool) -> bool:
        value = self._get(field, False, default)
        if not isinstance(value, bool):
            raise self.error(field, f"must be true or false, not {value!r}")
        return value

    def where_in_row(self, field: str, default: int | str | None = None, *,
                     required: bool = False) -> int | str | None:
        """A row part's place: a key (object rows) or a 0-based position (list rows)."""
        value = self._get(field, required, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "" or \
                (isinstance(value, int) and value < 0):
            raise self.error(field, f"must be a key (string) or a position (0, 1, ...), not {value!r}")
        return value

    def names(self, field: str) -> tuple[str | None, ...]:
        """Column names in order; "" marks a column that is not kept."""
        value = self._get(field, False, ())
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise self.error(field, f"must be a list of column names (\"\" for a column not kept), not {value!r}")
        return tuple(v or None for v in value)

    def renames(self, field: str, default: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        value = self._get(field, False, None)
        if value is None:
            return default
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and v
                                                  for k, v in value.items()):
            raise self.error(field, f"must be a table of source split = published split, not {value!r}")
        return tuple(value.items())

    def unknown(self) -> list[str]:
        return [field for field in self.table if field not in self.read]


def speech_policy(fields: Fields, key=lambda column: column):
    """The declared corpus's speaker/gender/age/accent columns and split renames; `key(column)` is
    the manifest key a source column is written under."""
    roles = {role: fields.text(role) for role in ("speaker", "gender", "age", "accent")}
    return SpeechPolicy(**{role: key(column) if column else None for role, column in roles.items()},
                        split_names=fields.renames("split_names", DEFAULT_SPLIT_NAMES))


def policy_columns(fields: Fields) -> dict[str, str]:
    """The source columns the declaration names for speaker/gender/age/accent (already read)."""
    return {role: fields.table[role] for role in ("speaker", "gender", "age", "accent") if fields.table.get(role)}
