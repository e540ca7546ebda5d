"""Dataset layouts, strict loading, checks, class names and synthetic stand-ins (SPEC §7)."""
from .classnames import ClassNames, ClassNamesError, load_classnames
from .layout import DATA_README, DataLayoutError, DatasetLayout

__all__ = ["ClassNames", "ClassNamesError", "load_classnames", "DATA_README", "DataLayoutError",
           "DatasetLayout"]
