"""User-facing errors: one clear message naming the file and line, no traceback by default."""

from __future__ import annotations

from pathlib import Path


class XtremeDistilError(Exception):
    """An error caused by the user's input or environment, reported without a traceback.

    ``path`` and ``line`` (1-based) locate the problem when it comes from a file.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            where += ": "
        return where + self.message


class DataError(XtremeDistilError):
    """Malformed or inconsistent data files."""


class ConfigError(XtremeDistilError):
    """An invalid configuration: unknown key, bad value, missing file."""
