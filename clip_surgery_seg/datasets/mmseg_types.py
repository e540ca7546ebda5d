"""mmseg dataset types for the two benchmarks mmseg does not define, under the names the field's
harnesses (SCLIP, ClearCLIP, NACLIP, ProxyCLIP) give them.

The harness never builds a dataset object (the engine lists the images from the layout); a config's
``type`` says what the data is -- in the results, and for mmseg's own tools. The class names that
are scored come from ``configs/classnames/<name>.txt``; ``METAINFO`` here only follows mmseg's.
"""
from __future__ import annotations

from mmseg.datasets import BaseSegDataset, COCOStuffDataset, PascalVOCDataset
from mmseg.registry import DATASETS


@DATASETS.register_module()
class PascalVOC20Dataset(PascalVOCDataset):
    """PASCAL VOC 2012 without background: its label PNGs read with ``reduce_zero_label=True``."""

    METAINFO = dict(classes=PascalVOCDataset.METAINFO["classes"][1:],
                    palette=PascalVOCDataset.METAINFO["palette"][1:])


@DATASETS.register_module()
class COCOObjectDataset(BaseSegDataset):
    """COCO-Object: background, then COCO's 80 thing classes (the first 80 of COCO-Stuff-171)."""

    METAINFO = dict(classes=("background",) + COCOStuffDataset.METAINFO["classes"][:80],
                    palette=[[0, 0, 0]] + COCOStuffDataset.METAINFO["palette"][:80])

    def __init__(self, img_suffix: str = ".jpg", seg_map_suffix: str = "_instanceTrainIds.png", **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
