"""Dataset layouts, strict loading, checks, class names and synthetic stand-ins (SPEC §7)."""
from .classnames import ClassNames, ClassNamesError, load_classnames
from .layout import DATA_README, DataLayoutError, DatasetLayout

#: The datasets of the paper's table; each has ``configs/<name>.py`` and ``configs/classnames/<name>.txt``.
DATASETS = ("ade20k", "coco_stuff171", "cityscapes", "pascal_context59")

__all__ = ["DATASETS", "ClassNames", "ClassNamesError", "load_classnames", "DATA_README", "DataLayoutError",
           "DatasetLayout"]
