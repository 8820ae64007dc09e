"""One exception tree for panen (after rioxarray's ``RioXarrayError`` family).

``PanenError`` is the root. The CLI maps :class:`ConfigError`, :class:`InputError` and
:class:`DataQualityError` to exit code 2 and prints every listed problem; anything else is
an internal failure (exit code 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


#: Control characters shown as escapes when a problem is printed (a hostile file's text
#: in a message must not move the cursor or clear the screen).
_TERMINAL_SAFE = {c: f"\\x{c:02x}" for c in (*range(0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0))}


@dataclass(frozen=True)
class Problem:
    """One located problem in a config or input file.

    Parameters
    ----------
    message
        What is wrong, in words a user can act on.
    file
        The file the problem is in, if any.
    row
        1-based data row (header excluded) for tables, or line for YAML, if known.
    line
        1-based text line of a table file as a text editor numbers it (the header is
        line 1; blank lines and line breaks inside quoted values count), if known.
    column
        Column name (tables), if known.
    key
        Dotted key path (configs, e.g. ``products[0].phases[1].exit``); ``row`` is then
        the YAML line.
    """

    message: str
    file: str | Path | None = None
    row: int | None = None
    column: str | None = None
    key: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.line is not None:
            where.append(f"line {self.line}" + (f" (row {self.row})" if self.row is not None else ""))
        elif self.row is not None:
            where.append(f"{'line' if self.key else 'row'} {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.key:
            where.append(self.key)
        prefix = ", ".join(where)
        text = f"{prefix}: {self.message}" if prefix else self.message
        return text.translate(_TERMINAL_SAFE)  # file content never drives the terminal (escape sequences)


class PanenError(Exception):
    """Root of all panen errors."""


class _ProblemsError(PanenError):
    """An error that carries a list of located problems (all reported at once)."""

    def __init__(self, problems: list[Problem] | Problem | str, *, file: str | Path | None = None,
                 row: int | None = None, column: str | None = None, line: int | None = None) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems, file=file, row=row, column=column, line=line)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def file(self) -> str | Path | None:
        return self.problems[0].file if self.problems else None

    @property
    def row(self) -> int | None:
        return self.problems[0].row if self.problems else None

    @property
    def column(self) -> str | None:
        return self.problems[0].column if self.problems else None

    @property
    def line(self) -> int | None:
        return self.problems[0].line if self.problems else None


class ConfigError(_ProblemsError):
    """A run config or product term sheet is invalid (exit code 2)."""


class InputError(_ProblemsError):
    """An input file is missing, unreadable or malformed (exit code 2); names file, row, column."""


class DataQualityError(_ProblemsError):
    """Input data is readable but unusable for the requested computation (exit code 2)."""


class PluginError(PanenError):
    """A trigger plugin could not be found or is broken."""


class StoreError(_ProblemsError):
    """The settlement store cannot be opened or used as asked: a bad URL or path, a database
    that is not a panen store or was written by a newer panen, a batch that contradicts it."""


class StoreConflict(StoreError):
    """Another process recorded a batch for the season after this batch's difference was
    computed: compute the difference again (nothing was recorded)."""
