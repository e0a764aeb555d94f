"""A registry is a dict and two functions, as in Opacus' accountant registry.

Architectures, aggregation rules, algorithms and attacks each keep one, so the CLI's
choices and ``--help`` come from the registry and adding an entry needs no CLI edit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from privfed.errors import PrivfedError, closest

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, option: str | None = None) -> None:
        self.kind = kind
        self.option = option or f"--{kind}"
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        self.register(name)(obj)

    def get(self, name: str) -> T:
        if not isinstance(name, str):
            raise PrivfedError(f"{self.option} expects a name, got {name!r}; choose one of: {', '.join(self._entries)}")
        try:
            return self._entries[name]
        except KeyError:
            raise PrivfedError(
                f"unknown {self.kind} {name!r} for {self.option}{closest(name, self._entries)}; "
                f"choose one of: {', '.join(self._entries)}"
            ) from None

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
