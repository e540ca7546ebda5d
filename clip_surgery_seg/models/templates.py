"""Prompt-template sets for text embeddings (docs/method.md §3)."""
from __future__ import annotations

from typing import Dict, Sequence, Tuple, Union

from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from ..errors import ConfigError, suggest

#: The 80 ImageNet templates of the CLIP paper, in the order of OpenAI's notebook.
IMAGENET_80: Tuple[str, ...] = tuple(template("{}") for template in OPENAI_IMAGENET_TEMPLATES)

#: CLIP Surgery's default: the 80 ImageNet templates plus five scene templates.
CLIP_SURGERY_85: Tuple[str, ...] = IMAGENET_80 + (
    "there is a {} in the scene.",
    "there is the {} in the scene.",
    "this is a {} in the scene.",
    "this is the {} in the scene.",
    "this is one {} in the scene.",
)

#: GEM's library: one template (``GEMWrapper.encode_text``), no ensemble.
A_PHOTO_OF_A: Tuple[str, ...] = ("a photo of a {}.",)

TEMPLATE_SETS: Dict[str, Tuple[str, ...]] = {
    "clip_surgery_85": CLIP_SURGERY_85,
    "imagenet_80": IMAGENET_80,
    "a_photo_of_a": A_PHOTO_OF_A,
}


def resolve_templates(templates: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    """A named set (``clip_surgery_85``, ``imagenet_80``, ``a_photo_of_a``) or a list of ``{}`` templates, validated."""
    if isinstance(templates, str):
        if templates not in TEMPLATE_SETS:
            raise ConfigError(f"unknown template set {templates!r}{suggest(templates, TEMPLATE_SETS)} (known sets: "
                              f"{', '.join(TEMPLATE_SETS)}, or give a list of '{{}}' templates)")
        return TEMPLATE_SETS[templates]
    templates = tuple(templates)
    if not templates:
        raise ConfigError("the template list is empty; give at least one template such as 'a photo of a {}.'")
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ConfigError(f"template {template!r} must be a string with exactly one '{{}}' "
                             "where the class name goes")
    return templates
