"""One registry shape for every extension point (block types, presets, objectives, samplers,
schedulers): a name -> record table, filled by ``register`` at import time, read by name.

The shape is timm's ``register_model`` / BasicSR's ``ARCH_REGISTRY``. Public constants that
other code imports (``PRESET_NAMES``, ``BUDGET_KEYS``, ``SAMPLERS``, ...) are *live views* of a
registry: a name registered later (a plug-in, a test's toy) shows in them without re-importing.
Plain data, no torch: studies/ reads these tables too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar, overload

from srnas.space.errors import ConfigError

T = TypeVar("T")
V = TypeVar("V")


class Registry(Generic[T]):
    """Records of one kind, by name, in registration order.

    ``field`` names the setting a wrong name came from, so a lookup error has the project's one
    shape (``sampler: must be one of ['tpe', ...] (got 'x')``).
    """

    def __init__(self, kind: str, field: str, *, first: Sequence[str] = ()) -> None:
        self.kind, self.field = kind, field
        # Built-ins listed first whatever order their modules happened to be imported in.
        self._first = tuple(first)
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"{self.kind} name must be a non-empty string without '/', "
                             f"got {name!r}")
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def unregister(self, name: str) -> T:
        """Remove ``name`` (a test's toy, a plug-in being reloaded); its record is returned."""
        return self._items.pop(name)

    def get(self, name: object) -> T:
        try:
            return self._items[name]  # type: ignore[index]
        except (KeyError, TypeError):
            raise ConfigError(self.field, f"must be one of {list(self.names())}", name) from None

    def names(self) -> tuple[str, ...]:
        first = [n for n in self._first if n in self._items]
        return (*first, *(n for n in self._items if n not in first))

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._items
        except TypeError:  # an unhashable value (a list read from a file) is no name
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    # -- live views ----------------------------------------------------------------------
    def names_view(self, where: Callable[[T], bool] | None = None) -> NamesView:
        return NamesView(lambda: tuple(n for n, r in self.items() if where is None or where(r)))

    def mapping_view(self, value: Callable[[str, T], V],
                     where: Callable[[T], bool] | None = None) -> MappingView[V]:
        return MappingView(lambda: {n: value(n, r) for n, r in self.items()
                                    if where is None or where(r)})


class NamesView(Sequence[str]):
    """A tuple-like, read-only view of registered names, computed on every read."""

    def __init__(self, read: Callable[[], tuple[str, ...]]) -> None:
        self._read = read

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...
    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        return self._read()[index]

    def __len__(self) -> int:
        return len(self._read())

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    def __hash__(self) -> int:
        return hash(self._read())

    def __repr__(self) -> str:
        return repr(self._read())


class MappingView(Mapping[str, V]):
    """A dict-like, read-only view derived from a registry, computed on every read."""

    def __init__(self, read: Callable[[], dict[str, V]]) -> None:
        self._read = read

    def __getitem__(self, key: str) -> V:
        return self._read()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def __repr__(self) -> str:
        return repr(self._read())


__all__ = ["MappingView", "NamesView", "Registry"]
