"""Typed, immutable records for the container start path, without ``dataclasses``.

The start path (``isoinspect run``, ``isoinspect-runc create``, the forked child) imports
nothing but os, ctypes and a few C modules: ``import dataclasses`` costs ~18 ms here (it pulls
in inspect, re and enum), ``import enum`` ~3 ms, against a ~40 ms container start. So the
records that cross modules on that path (the init plan, the container state) subclass
``Frozen``: fields are declared once as class annotations with optional defaults, like a frozen
dataclass; unknown or missing fields are a TypeError at construction (not a KeyError inside a
forked child), and ``replace`` makes an updated copy. Off the start path use dataclasses.
"""

from __future__ import annotations

_MISSING = object()


class Frozen:
    """Base of immutable records: ``class Point(Frozen): x: int; y: int = 0``."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _defaults: dict = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        own = [name for name in cls.__dict__.get("__annotations__", {})
               if not name.startswith("_")]
        defaults = dict(cls._defaults)
        for name in own:
            if name in cls.__dict__:  # a default value (instances shadow the class attribute)
                defaults[name] = cls.__dict__[name]
        fields = tuple(cls._fields) + tuple(n for n in own if n not in cls._fields)
        cls._fields = fields
        cls._defaults = defaults

    def __init__(self, **values: object) -> None:
        store = getattr(self, "__dict__", None)
        for name in self._fields:
            value = values.pop(name, _MISSING)
            if value is _MISSING:
                value = self._defaults.get(name, _MISSING)
                if value is _MISSING:
                    raise TypeError(f"{type(self).__name__}: missing field {name!r}")
                if isinstance(value, (list, dict, set)):
                    value = type(value)(value)  # a fresh copy of a mutable default
            if store is not None:
                store[name] = value
            else:
                object.__setattr__(self, name, value)
        if values:
            raise TypeError(f"{type(self).__name__}: unknown field(s) {sorted(values)}")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: use replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def replace(self, **changes: object):
        """A copy with ``changes`` applied (unknown names are a TypeError)."""
        values = {name: getattr(self, name) for name in self._fields}
        values.update(changes)
        return type(self)(**values)

    def to_dict(self) -> dict:
        """Field values by name (nested records are left as they are)."""
        return {name: getattr(self, name) for name in self._fields}

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._fields)

    __hash__ = None  # fields may hold lists

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{type(self).__name__}({inner})"

    def __reduce__(self):  # pickle (the warm pool sends its plan to the zygote that way)
        return (_rebuild, (type(self), self.to_dict()))


def _rebuild(cls: type, values: dict) -> Frozen:
    return cls(**values)
