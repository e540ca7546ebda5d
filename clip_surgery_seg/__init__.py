"""clip-surgery-seg: the reference harness for training-free CLIP Surgery segmentation."""
from . import mmcv_compat

__version__ = "0.1.0"

# mmseg imports mmcv.ops at import time; on mmcv-lite a pure stand-in must be in place first.
mmcv_compat.install()
