"""Methods by name: ``build_method({"type": name, **params})``."""
from __future__ import annotations

import difflib
import inspect
from typing import Any, Dict, Mapping, Type, TypeVar, Union

from ...errors import ConfigError
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


def _hint(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=2, cutoff=0.5)
    return f"did you mean {' or '.join(close)}? " if close else ""


def build_method(spec: MethodSpec) -> ImageTokenMethod:
    """A method from its name, a ``{"type": name, **params}`` dict, or a method object (returned as is).

    Raises:
        ConfigError: unknown method name, unknown parameter or a value the method refuses.
    """
    if isinstance(spec, ImageTokenMethod):
        return spec
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"method must be a name, a dict with 'type' or a method object, not "
                          f"{type(spec).__name__}; e.g. method=dict(type='sclip')")
    params = dict(spec)
    name = params.pop("type", None)
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; {_hint(str(name), METHODS)}known methods: "
                          f"{', '.join(METHODS)}")
    cls = METHODS[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in params:
        if key not in accepted:
            raise ConfigError(f"method {name!r} has no parameter {key!r}; {_hint(key, accepted)}"
                              f"its parameters: {', '.join(accepted)}")
    return cls(**params)
