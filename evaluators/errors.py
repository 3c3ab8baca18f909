"""Errors the evaluators raise for bad data: a missing folder, a corrupt file, a wrong scale.

They subclass :class:`space.errors.SrnasError`, so the CLI prints them as one line and exits 2.
"""

from __future__ import annotations

from pathlib import Path

from space.errors import SrnasError


class DataError(SrnasError):
    """``where`` (a file, folder or field) breaks ``rule``; ``value`` is what it was."""

    def __init__(self, where: str | Path, rule: str, value: object) -> None:
        self.where = str(where)
        self.rule = rule
        self.value = value
        message = f"{self.where}: {rule} (got {value!r})"
        # The CLI promises one line; a decoder's message or a path may carry line breaks.
        super().__init__(message.replace("\r", " ").replace("\n", " "))
