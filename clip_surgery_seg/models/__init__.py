"""CLIP Surgery on open_clip: model loading, the surgery forward, text embeddings, feature surgery."""
from .clip_loader import WeightsIdentity, build_clip, load_model_config, weights_identity
from .feature_surgery import FEATURE_SURGERY_MODES, feature_surgery
from .surgery_clip import SurgeryCLIP
from .templates import TEMPLATE_SETS, resolve_templates

__all__ = [
    "build_clip", "SurgeryCLIP", "feature_surgery", "FEATURE_SURGERY_MODES", "weights_identity",
    "WeightsIdentity", "load_model_config",
    "TEMPLATE_SETS", "resolve_templates",
]
