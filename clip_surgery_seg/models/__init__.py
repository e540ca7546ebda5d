"""CLIP Surgery and the field's other training-free methods on open_clip: model loading, the image-token
methods, text embeddings, feature surgery."""
from .clip_loader import SharedCLIP, WeightsIdentity, build_clip, load_model_config, weights_identity
from .feature_surgery import FEATURE_SURGERY_MODES, feature_surgery
from .methods import METHODS, ImageTokenMethod, TextContext, build_method
from .surgery_clip import SurgeryCLIP
from .templates import TEMPLATE_SETS, resolve_templates

__all__ = [
    "build_clip", "SharedCLIP", "SurgeryCLIP", "feature_surgery", "FEATURE_SURGERY_MODES", "weights_identity",
    "WeightsIdentity", "load_model_config", "METHODS", "ImageTokenMethod", "TextContext", "build_method",
    "TEMPLATE_SETS", "resolve_templates",
]
