"""Training-free image-token methods on a frozen CLIP, one per module, built by name.

``build_method({"type": "sclip"})`` or ``build_method("naclip")``; see :data:`METHODS`.
"""
from .base import ImageTokenMethod, PosEmbed
from .registry import METHODS, MethodSpec, build_method, register_method

# importing a method module registers it; the registry's order is the field's usual order of these
# methods in tables (by publication, CLIP Surgery -- this harness's subject -- last), and what
# tools/reproduce.py runs by default
from .vanilla import Vanilla  # noqa: E402
from .maskclip import MaskCLIP  # noqa: E402
from .sclip import SCLIP  # noqa: E402
from .clearclip import ClearCLIP  # noqa: E402
from .naclip import NACLIP  # noqa: E402
from .clip_surgery import ClipSurgery  # noqa: E402

__all__ = [
    "ImageTokenMethod", "PosEmbed", "METHODS", "MethodSpec", "build_method", "register_method",
    "Vanilla", "ClipSurgery", "MaskCLIP", "SCLIP", "ClearCLIP", "NACLIP",
]
