"""Post-processing that some training-free methods apply to their class logits.

A post-processing step is a registered component, built from the segmentor's
``postprocess=dict(type=name, **params)`` (or a name) by :func:`build_postprocess`; ``None`` (the
default) applies none. The segmentor calls it on each image's class logits at the original image
size, where NACLIP's code applies PAMR (docs/methods.md).
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, Mapping, Optional, Sequence, Type, Union

import torch

from ..errors import ConfigError
from ..models.pamr import pamr
from ..named import build_named, is_int

# --- post-processing as a config step -------------------------------------------------------------

class Postprocess:
    """One post-processing step: ``step(image (B, C, H, W), logits (B, R, H, W)) -> (B, R, H, W)``.

    ``image`` is the normalised image at the logits' size; ``logits`` are the per-row class scores
    (cosine similarities, before any softmax). Subclasses set :attr:`name` and implement
    :meth:`__call__` and :meth:`params`.
    """

    name: ClassVar[str] = ""

    def __call__(self, image: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def params(self) -> Dict[str, Any]:
        """The step's parameters, as its config dict takes them (without ``type``)."""
        return {}

    def config(self) -> Dict[str, Any]:
        """``{"type": name, **params}``: builds an equal step, and is what results record."""
        return {"type": self.name, **self.params()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"


POSTPROCESSORS: Dict[str, Type[Postprocess]] = {}


def register_postprocess(cls: Type[Postprocess]) -> Type[Postprocess]:
    """Class decorator: make ``cls`` buildable by its ``name``."""
    if not cls.name or cls.name in POSTPROCESSORS:
        raise ValueError(f"post-processing class {cls.__name__} needs a new, non-empty name (got {cls.name!r})")
    POSTPROCESSORS[cls.name] = cls
    return cls


@register_postprocess
class PAMR(Postprocess):
    """:func:`pamr` as a config step, ``dict(type='pamr', num_iter=10, dilations=(8, 16))``
    (NACLIP's default; SCLIP's code offers the same with the same dilations, off by default)."""

    name = "pamr"

    def __init__(self, num_iter: int = 10, dilations: Sequence[int] = (8, 16)) -> None:
        if not is_int(num_iter) or num_iter < 0:
            raise ConfigError(f"pamr num_iter must be an int >= 0, got {num_iter!r}")
        if (isinstance(dilations, (str, bytes)) or not isinstance(dilations, Sequence) or not dilations
                or any(not is_int(d) or d < 1 for d in dilations)):
            raise ConfigError(f"pamr dilations must be a list of positive ints such as [8, 16], got {dilations!r}")
        self.num_iter = num_iter
        self.dilations = tuple(dilations)

    def params(self) -> Dict[str, Any]:
        return {"num_iter": self.num_iter, "dilations": self.dilations}

    def __call__(self, image: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return pamr(image, logits, self.num_iter, self.dilations)


PostprocessSpec = Union[None, str, Mapping[str, Any], Postprocess]


def build_postprocess(spec: PostprocessSpec) -> Optional[Postprocess]:
    """A step from its name, a ``{"type": name, **params}`` dict or a step object; None for None.

    Raises:
        ConfigError: unknown name or parameter, or a value the step refuses.
    """
    if spec is None or isinstance(spec, Postprocess):
        return spec
    return build_named("postprocess", spec, POSTPROCESSORS, forms="None, a name or a dict with 'type'",
                       example="postprocess=dict(type='pamr')")


def postprocess_config(spec: Any) -> Optional[Dict[str, Any]]:
    """The step's full dict (its defaults filled in) from a name, a dict or a config's ConfigDict;
    None for None. Raises as :func:`build_postprocess`."""
    step = build_postprocess(spec.to_dict() if hasattr(spec, "to_dict") else spec)
    return None if step is None else step.config()
