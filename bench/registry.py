"""The method registry: built-in and third-party methods, both found through entry points.

Built-in methods are declared in the ``rtrbench.methods`` entry-point group of
pyproject.toml exactly as a third-party package declares its own, so there is one
mechanism and no import-time global state. A plugin that fails to import is reported
by name instead of breaking every other method.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

from rtrbench.errors import ConfigError
from rtrbench.methods.base import Method

ENTRY_POINT_GROUP = "rtrbench.methods"


@dataclass(frozen=True)
class Discovered:
    methods: dict[str, type[Method]]
    broken: dict[str, str]  # entry-point name -> one-line reason


@cache  # entry points do not change within a process; a sweep asks for methods many times
def discover() -> Discovered:
    methods: dict[str, type[Method]] = {}
    broken: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
            _check_method_class(cls, ep.name)
        except Exception as exc:  # a broken plugin must not hide the others
            broken[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
            continue
        methods[ep.name] = cls
    return Discovered(dict(sorted(methods.items())), broken)


def get_method(name: str) -> type[Method]:
    found = discover()
    if name in found.methods:
        return found.methods[name]
    if name in found.broken:
        raise ConfigError(f"method '{name}' failed to load: {found.broken[name]}")
    raise ConfigError(f"unknown method '{name}'; registered: {', '.join(found.methods)}")


def _check_method_class(cls: object, name: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"{cls!r} is not a subclass of rtrbench.methods.Method")
    if getattr(cls, "name", None) != name:
        raise TypeError(f"class name attribute {getattr(cls, 'name', None)!r} differs from entry point '{name}'")
    if not getattr(cls, "description", ""):
        raise TypeError(f"{cls.__name__} has no description")
