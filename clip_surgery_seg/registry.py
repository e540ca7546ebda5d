"""Register this project's components, and mmseg's, in mmseg's registries (import for effect)."""
from mmseg.utils import register_all_modules as _register_mmseg

_register_mmseg(init_default_scope=True)

from .datasets import mmseg_types, transforms  # noqa: E402,F401
from .evaluation import metric  # noqa: E402,F401
from .segmentors import data_preprocessor, segmentor  # noqa: E402,F401
