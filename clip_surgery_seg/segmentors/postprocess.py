"""Post-processing that some training-free methods apply to their class logits.

A post-processing step is a registered component, built from the segmentor's
``postprocess=dict(type=name, **params)`` (or a name) by :func:`build_postprocess`; ``None`` (the
default) applies none. The segmentor calls it on each image's class logits at the original image
size, where NACLIP's code applies PAMR (docs/methods.md).
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..named import build_named

# the eight neighbours in the order of the released PAMR kernels (row-major, centre left out)
_NEIGHBOURS: Tuple[Tuple[int, int], ...] = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _shifted(x: torch.Tensor, dilation: int, offsets: Sequence[Tuple[int, int]]) -> List[torch.Tensor]:
    """For each offset (dy, dx): ``x`` read at (y + dy*dilation, x + dx*dilation), coordinates clamped
    to the border (replicate padding). x (B, C, H, W) -> list of (B, C, H, W)."""
    h, w = x.shape[-2:]
    d = dilation
    padded = F.pad(x, [d, d, d, d], mode="replicate")
    return [padded[:, :, d + dy * d:d + dy * d + h, d + dx * d:d + dx * d + w] for dy, dx in offsets]


def pamr_affinity(image: torch.Tensor, dilations: Sequence[int] = (8, 16)) -> torch.Tensor:
    """PAMR's pixel-adaptive affinities between every pixel and its dilated neighbours.

    For each dilation ``d`` the neighbours are the 8 pixels at offsets ``d * (dy, dx)``,
    ``dy, dx in {-1, 0, 1}``, clamped to the border. Per image channel ``c``, with ``sigma_c`` the
    (unbiased) standard deviation of the 9 values around each pixel over all dilations (the centre
    counted once per dilation), the affinity logit is ``-|I_c(p) - I_c(n)| / (1e-8 + 0.1 sigma_c(p))``;
    the logits are averaged over channels and soft-maxed over the neighbours.

    Args:
        image: (B, C, H, W) the (normalised) image.
        dilations: neighbourhood dilations.

    Returns:
        (B, 1, P, H, W) weights summing to 1 over the P = 8 * len(dilations) neighbours.
    """
    if not dilations or any(int(d) < 1 for d in dilations):
        raise ValueError(f"PAMR dilations must be positive integers, got {tuple(dilations)}")
    image = image.float()
    around = torch.stack([v for d in dilations for v in _shifted(image, d, ((0, 0),) + _NEIGHBOURS)], dim=2)
    sigma = around.std(dim=2, keepdim=True)  # (B, C, 1, H, W)
    neighbours = torch.stack([v for d in dilations for v in _shifted(image, d, _NEIGHBOURS)], dim=2)
    logits = -(image[:, :, None] - neighbours).abs() / (1e-8 + 0.1 * sigma)
    return logits.mean(dim=1, keepdim=True).softmax(dim=2)


def pamr(image: torch.Tensor, masks: torch.Tensor, num_iter: int = 10,
         dilations: Sequence[int] = (8, 16)) -> torch.Tensor:
    """Pixel-adaptive mask refinement (Araslanov & Roth, CVPR 2020) as NACLIP's and SCLIP's code
    apply it to the class logits.

    ``masks`` is resized to the image (bilinear, ``align_corners=True``); then, ``num_iter`` times,
    every pixel's scores become the affinity-weighted sum of its neighbours' scores
    (:func:`pamr_affinity`; the pixel itself is not one of its neighbours). Those codes call it on
    the logits at the original image size, with the normalised image resized (bilinear) to that size,
    before the softmax; NACLIP by default with 10 iterations and dilations (8, 16).

    Args:
        image: (B, C, H, W) the normalised image guiding the refinement.
        masks: (B, K, h, w) class scores (any resolution).
        num_iter: refinement steps (0 only resizes).
        dilations: neighbourhood dilations.

    Returns:
        (B, K, H, W) float32 refined scores.
    """
    if image.dim() != 4 or masks.dim() != 4 or image.shape[0] != masks.shape[0]:
        raise ValueError(f"expected image (B, C, H, W) and masks (B, K, h, w), got {tuple(image.shape)} "
                         f"and {tuple(masks.shape)}")
    if num_iter < 0:
        raise ValueError(f"PAMR num_iter must be >= 0, got {num_iter}")
    weights = pamr_affinity(image, dilations)[:, 0]  # (B, P, H, W)
    masks = F.interpolate(masks.float(), size=image.shape[-2:], mode="bilinear", align_corners=True)
    for _ in range(num_iter):
        # one neighbour at a time: (B, K, H, W) memory instead of the released code's (B, K, P, H, W)
        shifted = (v for d in dilations for v in _shifted(masks, d, _NEIGHBOURS))
        out = torch.zeros_like(masks)
        for p, neighbour in enumerate(shifted):
            out.addcmul_(neighbour, weights[:, p:p + 1])
        masks = out
    return masks


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
        if isinstance(num_iter, bool) or not isinstance(num_iter, int) or num_iter < 0:
            raise ConfigError(f"pamr num_iter must be an int >= 0, got {num_iter!r}")
        if (isinstance(dilations, (str, bytes)) or not isinstance(dilations, Sequence) or not dilations
                or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dilations)):
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
