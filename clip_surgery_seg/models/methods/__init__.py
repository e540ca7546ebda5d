"""Training-free image-token methods on a frozen CLIP, one per module, built by name.

``build_method({"type": "sclip"})`` or ``build_method("naclip")``; :data:`METHODS` lists them in
publication order. Every module of this package is imported here, and registers its method; so
are the modules installed plug-ins declare (``registry.ENTRY_POINT_GROUP``).
"""
from .base import ImageTokenMethod, PosEmbed, TextContext
from .registry import ENTRY_POINT_GROUP, METHODS, MethodSpec, build_method, register_method
from .registry import discover as _discover

_discover(__name__, __path__)

__all__ = ["ImageTokenMethod", "PosEmbed", "TextContext", "METHODS", "MethodSpec", "build_method", "register_method",
           "ENTRY_POINT_GROUP"]
