"""Where a dataset's images and labels live, read from its mmseg dataset config (SPEC §7)."""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from ..errors import DataLayoutError

DATA_README = "data/README.md"



def _class_defaults(dataset_type: str) -> Dict[str, object]:
    from mmseg.registry import DATASETS

    import clip_surgery_seg.registry  # noqa: F401  (mmseg's modules registered)

    cls = DATASETS.get(dataset_type)
    if cls is None:
        raise DataLayoutError(f"unknown dataset type {dataset_type!r} in the config")
    defaults: Dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if klass is object:
            continue
        for name, param in inspect.signature(klass.__init__).parameters.items():
            if param.default is not inspect.Parameter.empty:
                defaults[name] = param.default
    return defaults


@dataclass(frozen=True)
class DatasetLayout:
    """The on-disk layout of one split.

    ``img_dir``/``seg_dir`` are absolute; image ``<dir>/<stem><img_suffix>`` pairs with label
    ``<seg_dir>/<stem><seg_suffix>`` (``stem`` may include subfolders, e.g. Cityscapes' cities).
    """

    dataset_type: str
    data_root: Path
    img_dir: Path
    seg_dir: Path
    img_suffix: str
    seg_suffix: str
    ann_file: Optional[Path]
    reduce_zero_label: bool
    ignore_index: int = 255

    @classmethod
    def from_config(cls, dataset_cfg: dict) -> "DatasetLayout":
        defaults = _class_defaults(dataset_cfg["type"])
        get = lambda key: dataset_cfg.get(key, defaults.get(key))  # noqa: E731
        root = Path(dataset_cfg.get("data_root") or "")
        prefix = dict(dataset_cfg.get("data_prefix") or {})
        ann_file = get("ann_file") or None
        return cls(
            dataset_type=dataset_cfg["type"],
            data_root=root,
            img_dir=root / prefix.get("img_path", ""),
            seg_dir=root / prefix.get("seg_map_path", ""),
            img_suffix=str(get("img_suffix")),
            seg_suffix=str(get("seg_map_suffix")),
            ann_file=root / ann_file if ann_file else None,
            reduce_zero_label=bool(get("reduce_zero_label")),
            ignore_index=int(get("ignore_index") or 255),
        )

    def describe(self) -> str:
        """The expected layout, one line."""
        ann = f", split list {self.ann_file}" if self.ann_file else ""
        return f"images {self.img_dir}/**/*{self.img_suffix}, labels {self.seg_dir}/**/*{self.seg_suffix}{ann}"

    def _scan(self, folder: Path, suffix: str) -> List[str]:
        stems = []
        for dirpath, _, files in os.walk(folder, followlinks=True):
            rel = os.path.relpath(dirpath, folder)
            for name in files:
                if name.endswith(suffix):
                    stem = name[: -len(suffix)]
                    stems.append(stem if rel == "." else os.path.join(rel, stem))
        return sorted(stems)

    def list_pairs(self) -> Tuple[List[str], List[str], List[str]]:
        """Scan the folders: (paired stems, images without a label, labels without an image).

        With an ``ann_file`` the stems it lists are the split; a listed stem whose image is missing
        is reported among the labels without an image, whether or not its label exists.
        """
        if self.ann_file is not None:
            wanted = [line.strip() for line in self.ann_file.read_text().splitlines() if line.strip()]
            images = set(s for s in wanted if (self.img_dir / f"{s}{self.img_suffix}").is_file())
            labels = set(s for s in wanted if (self.seg_dir / f"{s}{self.seg_suffix}").is_file())
            order = sorted(set(wanted))
        else:
            images = set(self._scan(self.img_dir, self.img_suffix))
            labels = set(self._scan(self.seg_dir, self.seg_suffix))
            order = sorted(images | labels)
        pairs = [s for s in order if s in images and s in labels]
        no_label = [s for s in order if s in images and s not in labels]
        no_image = [s for s in order if s not in images]
        return pairs, no_label, no_image

    def image_path(self, stem: str) -> Path:
        return self.img_dir / f"{stem}{self.img_suffix}"

    def label_path(self, stem: str) -> Path:
        return self.seg_dir / f"{stem}{self.seg_suffix}"
