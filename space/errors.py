"""The one error family every srnas package raises for user mistakes and expected failures.

Every error names a ``field`` (a library argument or config field, e.g. ``storage`` or
``kernel_size``), the ``rule`` it breaks and the ``value`` it got. Library code names its own
arguments; the CLI maps a field to the flag a user typed (``storage`` -> ``--storage``) with
:meth:`SrnasError.renamed`, prints one line and exits 2. Anything that is not an
``SrnasError`` is a bug and keeps its traceback.

The errors pickle with their fields intact (Ray ships them between processes).
"""

from __future__ import annotations

from typing import Any

_NO_VALUE: Any = type("_NoValue", (), {"__repr__": lambda self: "<no value>"})()


def one_line(text: str) -> str:
    """The CLI promises one line: a decoder's message or a path may carry line breaks."""
    return " ".join(text.replace("\r", "\n").split("\n")).strip()


class SrnasError(ValueError):
    """``field: rule (got value)`` -- one line naming the field, the rule and the value.

    ``value`` may be left out where there is nothing to show (e.g. a missing argument).
    """

    def __init__(self, field: str, rule: str, value: object = _NO_VALUE) -> None:
        self.field = str(field)
        self.rule = str(rule)
        self.value = value
        super().__init__(self.message())

    def message(self, field: str | None = None) -> str:
        shown = "" if self.value is _NO_VALUE else f" (got {self.value!r})"
        return one_line(f"{field or self.field}: {self.rule}{shown}")

    def __str__(self) -> str:
        return self.message()

    def renamed(self, field: str) -> str:
        """The message with ``field`` shown instead (the CLI shows flags, not arguments)."""
        return self.message(field)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.field, self.rule, self.value, self.__dict__))


def _rebuild(cls: type[SrnasError], field: str, rule: str, value: object,
             state: dict[str, Any]) -> SrnasError:
    error = SrnasError.__new__(cls)
    SrnasError.__init__(error, field, rule, value)
    error.__dict__.update(state)
    return error


class ConfigError(SrnasError):
    """An architecture config, search space or search setting that breaks a rule."""


class DataError(SrnasError):
    """A training or validation folder, image file or scale that breaks a rule."""


class DeviceError(SrnasError):
    """A device name that does not exist on this machine."""


class StorageError(SrnasError):
    """A study storage URL that cannot be used (its password is masked before it gets here)."""


class StudyError(SrnasError):
    """A study that does not exist, holds no usable trial, or was measured otherwise."""


class TrainingError(SrnasError):
    """A training run that cannot go on (e.g. a non-finite loss); carries ``reason`` and
    ``step``. The search records it as a failed trial, not as a user mistake."""

    def __init__(self, reason: str, step: int) -> None:
        super().__init__("training", f"{reason} at step {step}")
        self.reason = reason
        self.step = step


class LockTimeout(SrnasError, TimeoutError):
    """A device lock not acquired in time (another process holds the device)."""


def find_cause(error: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...],
               ) -> BaseException | None:
    """``error`` itself or the first exception of ``kinds`` along its cause/context chain
    (libraries re-raise: torch's exporter a failed write, Tune a searcher's storage error)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


__all__ = [
    "ConfigError",
    "DataError",
    "DeviceError",
    "LockTimeout",
    "SrnasError",
    "StorageError",
    "StudyError",
    "TrainingError",
    "find_cause",
    "one_line",
]
