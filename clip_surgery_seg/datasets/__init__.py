"""The benchmark datasets: the catalogue, their layouts and label encodings, strict loading, checks,
class names and synthetic stand-ins."""
from .catalog import CATALOG, DATASETS, DatasetInfo
from .classnames import ClassNames, load_classnames
from .layout import DATA_README, DatasetLayout

__all__ = ["CATALOG", "DATASETS", "DatasetInfo", "ClassNames", "load_classnames", "DATA_README", "DatasetLayout"]
