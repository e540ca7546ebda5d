"""Methods by name: ``build_method({"type": name, **params})``."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Type, TypeVar, Union

from ...named import build_named
from .base import ImageTokenMethod

METHODS: Dict[str, Type[ImageTokenMethod]] = {}

M = TypeVar("M", bound=Type[ImageTokenMethod])

MethodSpec = Union[str, Mapping[str, Any], ImageTokenMethod]


def register_method(cls: M) -> M:
    """Class decorator: make ``cls`` buildable by its ``name``."""
    if not cls.name or cls.name in METHODS:
        raise ValueError(f"method class {cls.__name__} needs a new, non-empty name (got {cls.name!r})")
    METHODS[cls.name] = cls
    return cls


def build_method(spec: MethodSpec) -> ImageTokenMethod:
    """A method from its name, a ``{"type": name, **params}`` dict, or a method object (returned as is).

    Raises:
        ConfigError: unknown method name, unknown parameter or a value the method refuses.
    """
    if isinstance(spec, ImageTokenMethod):
        return spec
    return build_named("method", spec, METHODS, forms="a name, a dict with 'type' or a method object",
                       example="method=dict(type='sclip')")
