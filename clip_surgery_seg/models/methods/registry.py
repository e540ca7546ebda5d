"""Methods by name: ``build_method({"type": name, **params})``, and how methods are found.

A method is one module: a :class:`~.base.ImageTokenMethod` subclass decorated with
:func:`register_method`. The modules of this package are imported when it is (no list to extend),
and so are the modules that installed distributions declare under the entry-point group
``clip_surgery_seg.methods`` (``[project.entry-points."clip_surgery_seg.methods"] my_method =
"my_package.my_method"``): a method outside this repository is installed, not copied in.
"""
from __future__ import annotations

import importlib
import logging
import pkgutil
from importlib import metadata
from typing import Any, Dict, Mapping, Type, TypeVar, Union

from ...named import build_named
from .base import ImageTokenMethod

logger = logging.getLogger("clip_surgery_seg")

ENTRY_POINT_GROUP = "clip_surgery_seg.methods"

#: name -> class, in the tables' order: by the method's paper (its arXiv number, i.e. publication
#: order), methods without one last by name. Filled by :func:`register_method`.
METHODS: Dict[str, Type[ImageTokenMethod]] = {}

M = TypeVar("M", bound=Type[ImageTokenMethod])

MethodSpec = Union[str, Mapping[str, Any], ImageTokenMethod]


def _order(cls: Type[ImageTokenMethod]) -> tuple:
    return (not cls.arxiv, cls.arxiv, cls.name)


def register_method(cls: M) -> M:
    """Class decorator: make ``cls`` buildable by its ``name`` (and listed in publication order)."""
    if not cls.name or (cls.name in METHODS and METHODS[cls.name] is not cls):
        raise ValueError(f"method class {cls.__name__} needs a new, non-empty name (got {cls.name!r})")
    METHODS[cls.name] = cls
    ordered = sorted(METHODS.values(), key=_order)
    METHODS.clear()
    METHODS.update((c.name, c) for c in ordered)
    return cls


def discover(package: str, path) -> None:
    """Import every module of ``package`` (registering its methods), then the entry points'.

    A plug-in that fails to import is said in a warning naming it; the others still load.
    """
    for info in pkgutil.iter_modules(path):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as err:  # noqa: BLE001 - a broken plug-in must not take the harness down
            logger.warning("warning: method plug-in %s (%s) not loaded: %s: %s", entry.name, entry.value,
                           type(err).__name__, err)


def build_method(spec: MethodSpec) -> ImageTokenMethod:
    """A method from its name, a ``{"type": name, **params}`` dict, or a method object (returned as is).

    Raises:
        ConfigError: unknown method name, unknown parameter or a value the method refuses.
    """
    if isinstance(spec, ImageTokenMethod):
        return spec
    return build_named("method", spec, METHODS, forms="a name, a dict with 'type' or a method object",
                       example="method=dict(type='sclip')")
