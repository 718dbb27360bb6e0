"""One registry idiom for every plug-in point of spu-sim (topologies, engines, problem kinds, optimisers,
experiments, training models and data sets).

    TOPOLOGIES = Registry("a topology", "circuit.topology")
    TOPOLOGIES.register("opamp", OpampTopology())     # where the thing is defined
    TOPOLOGIES.add(OpampTopology())                   # the same, under the item's own ``name``
    TOPOLOGIES.get("opamp")                           # or ConfigError naming the field and the choices
    TOPOLOGIES.names()                                # ("opamp", ...) in registration order

``get`` of an unknown name raises ``ConfigError`` (a ``BadInputError``: CLI exit 2) with one line:

    circuit.topology: 'opamp_x' is not a topology; choose one of: opamp, opamp_sc, rlc

A registration happens in the module that defines the thing, in a package its users import anyway; nothing
is imported only to register it. A later registration of a name replaces the earlier one (a test may register
its own topology, engine or problem kind from tests/ with the same calls).
"""

from __future__ import annotations

import reprlib
from typing import Generic, Iterator, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named items of one kind.

    Args:
        noun: what one item is, with its article ("a topology", "an engine"), for the error text.
        field: the config key (dotted path) whose value names an item, for the error text.
    """

    def __init__(self, noun: str, field: str) -> None:
        self.noun = noun
        self.field = field
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Add ``item`` under ``name`` (a later registration of the same name replaces it); returns ``item``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.noun} needs a non-empty name (got {name!r})")
        self._items[name] = item
        return item

    def add(self, item: T) -> T:
        """Register ``item`` under its own ``name`` attribute; returns it, so it also decorates a class:
        ``@ENGINES.add`` above ``class LinearEngine: name = "linear"``."""
        return self.register(getattr(item, "name", ""), item)

    def get(self, name: object, field: str | None = None) -> T:
        """The item of that name, or ConfigError naming ``field`` (default: the registry's) and the choices."""
        if not isinstance(name, str) or name not in self._items:
            raise ConfigError(self.unknown(name, field))
        return self._items[name]

    __getitem__ = get

    def unknown(self, name: object, field: str | None = None) -> str:
        """The one-line message for a name that is not registered; ``field=""`` leaves the field path out (for a
        pydantic validator, whose error carries the path itself)."""
        what = self.noun.split(" ", 1)[-1]
        head = f"{self.field if field is None else field}: " if (field is None or field) else ""
        return (f"{head}{reprlib.repr(name)} is not {self.noun}; choose one of: "
                f"{', '.join(self._items) or f'(no {what} registered)'}")

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._items.items()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._items

    def __len__(self) -> int:
        return len(self._items)
