"""The one error type every srnas package raises for user mistakes.

The CLI turns a :class:`SrnasError` into one line on stderr and exit code 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations


class SrnasError(ValueError):
    """A user-facing error with a one-line message naming the field, the rule and the value."""


class ConfigError(SrnasError):
    """An architecture config or search space that breaks a rule."""

    def __init__(self, field: str, rule: str, value: object) -> None:
        self.field = field
        self.rule = rule
        self.value = value
        super().__init__(f"{field}: {rule} (got {value!r})")
