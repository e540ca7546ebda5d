"""The four benchmark datasets: their names, the paper's order and labels, and name resolution."""
from __future__ import annotations

import difflib
from typing import Dict, Iterable, List

from ..errors import ReportingError

# the order of the paper's Table 6 (ADE20K came with its later version)
PAPER_ORDER = ("pascal_context59", "coco_stuff171", "cityscapes", "ade20k")
LABELS: Dict[str, str] = {"pascal_context59": "PASCAL Context-59", "coco_stuff171": "COCO-Stuff-171",
                          "cityscapes": "Cityscapes", "ade20k": "ADE20K-150"}
# short names people type; each maps to the config's dataset_name
ALIASES: Dict[str, str] = {
    "ade": "ade20k", "ade150": "ade20k", "ade20k150": "ade20k",
    "coco_stuff": "coco_stuff171", "cocostuff": "coco_stuff171", "coco": "coco_stuff171",
    "cocostuff171": "coco_stuff171", "city": "cityscapes",
    "context": "pascal_context59", "context59": "pascal_context59", "pascal_context": "pascal_context59",
    "pc59": "pascal_context59", "pascalcontext59": "pascal_context59",
}


def label(name: str) -> str:
    """The paper's name for a dataset (the name itself for one the paper does not report)."""
    return LABELS.get(name, name)


def paper_rank(name: str) -> int:
    """Sort key: the paper's datasets in its order, then any others."""
    return PAPER_ORDER.index(name) if name in PAPER_ORDER else len(PAPER_ORDER)


def resolve_dataset(name: str, known: Iterable[str] = PAPER_ORDER) -> str:
    """A dataset name as the configs spell it; an unknown one raises with a suggestion."""
    known = list(known)
    key = name.strip().lower().replace("-", "_")
    if key in known:
        return key
    if ALIASES.get(key.replace("_", "")) in known:
        return ALIASES[key.replace("_", "")]
    if ALIASES.get(key) in known:
        return ALIASES[key]
    close = difflib.get_close_matches(key, known + list(ALIASES), n=1, cutoff=0.5)
    hint = f"; did you mean {ALIASES.get(close[0], close[0])}?" if close else ""
    raise ReportingError(f"unknown dataset {name!r}{hint} (datasets: {', '.join(known)})")


def resolve_datasets(names: Iterable[str], known: Iterable[str] = PAPER_ORDER) -> List[str]:
    """Several names resolved, duplicates dropped, in the paper's order."""
    resolved = {resolve_dataset(n, known) for n in names}
    return sorted(resolved, key=lambda n: (paper_rank(n), n))
