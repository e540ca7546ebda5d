"""Components built from a name or a ``{"type": name, **params}`` dict, their parameters checked.

Methods and post-processing steps are small classes kept in a plain ``{name: class}`` table; a
config names one as ``"sclip"`` or ``dict(type="pamr", num_iter=10)``. A misspelt name or parameter
is a one-line :class:`~clip_surgery_seg.errors.ConfigError` with the closest spelling.
"""
from __future__ import annotations

import inspect
from typing import Any, Mapping, Type, Union

from .errors import ConfigError, suggest


def build_named(kind: str, spec: Union[str, Mapping[str, Any]], table: Mapping[str, Type], *, forms: str,
                example: str) -> Any:
    """``table[name](**params)`` for ``spec`` = ``name`` or ``{"type": name, **params}``.

    Args:
        kind: what is built, for messages ("method", "postprocess").
        forms: the forms the caller accepts, and example a valid spec: both shown when ``spec`` is
            neither a name nor a dict.

    Raises:
        ConfigError: ``spec`` of another type, an unknown name or parameter, or a value the class refuses.
    """
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{kind} must be {forms}, not {type(spec).__name__}; e.g. {example}")
    params = dict(spec)
    name = params.pop("type", None)
    if name not in table:
        raise ConfigError(f"unknown {kind} {name!r}{suggest(str(name), table)} (known: {', '.join(table)})")
    cls = table[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in params:
        if key not in accepted:
            raise ConfigError(f"{kind} {name!r} has no parameter {key!r}{suggest(key, accepted)} "
                              f"(its parameters: {', '.join(accepted)})")
    return cls(**params)


def is_int(value: Any) -> bool:
    """An ``int`` and not a ``bool`` (``True`` is an ``int`` to ``isinstance``): a parameter check."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An ``int`` or ``float`` and not a ``bool``: a parameter check."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def open_clip_spelling(name: str) -> str:
    """A CLIP model name as open_clip spells it: OpenAI's ``ViT-B/16`` is ``ViT-B-16``,
    ``ViT-L/14@336px`` is ``ViT-L-14-336`` (the rewrite only; whether open_clip knows the name is
    the caller's to check). No import of open_clip: the reporting tools use it too."""
    return str(name).replace("/", "-").replace("@336px", "-336")
