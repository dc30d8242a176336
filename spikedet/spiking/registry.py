"""Name → class registries for the parts a conversion recipe names in its YAML: neurons and schedules.

A new method is one module that registers its parts and one YAML that names them::

    @register_neuron("my_if")
    class MyIFNeuron(IFNeuron): ...

Registering a name twice is an error, so one method cannot silently replace another's part.
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of classes: ``registry.register(name)`` decorates one, ``registry.get(name)`` finds it
    (an unknown name lists the known ones)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered ({self._entries[name]!r})")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} '{name}'; choose from {', '.join(sorted(self._entries))}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(sorted(self._entries))

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())
