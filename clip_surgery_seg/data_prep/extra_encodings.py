"""Label encodings of the four datasets that come from data the harness already prepares.

Self-contained so the dataset catalogue can take it over (see ``docs/datasets-research.md``):

* ``voc21`` / ``voc20``: PASCAL VOC 2012 ``SegmentationClass/*.png`` are palette PNGs whose stored
  index is the label (0 = background, 1..20 = classes, 255 = boundary/difficult). No conversion:
  ``voc21`` reads them as they are (``reduce_zero_label=False``, 21 classes, 255 ignored); ``voc20``
  reads the same files with ``reduce_zero_label=True`` (0 -> 255, 1..20 -> 0..19).
* ``pascal_context60``: the ``SegmentationClassContext/*.png`` written for Context-59 (0 =
  background, 1..59) read with ``reduce_zero_label=False``: background is class 0 of 60.
* ``coco_object``: made from the COCO-Stuff-164k stuffthingmaps (0-based COCO ids 0..181, 255 =
  unlabeled) by :func:`coco_object_labels`: every stuff id -> 0 (background); the 80 annotated
  thing ids -> 1..80 in COCO id order; 255 -> 0 by default, as the released converter of the field
  does (GroupViT's ``convert_coco_object.py``, copied by SCLIP/NACLIP/ClearCLIP/ProxyCLIP); the 11
  thing ids without annotations (never present) -> 255; any other value is an error.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from ..datasets.encodings import COCO_STUFF_NUM_IDS, COCO_STUFF_UNUSED_IDS, IGNORE, _lut, apply_lut
from .convert import read_label_png, write_label_png

# --------------------------------------------------------------------------- COCO-Object

COCO_THING_ID_RANGE = range(0, 91)      # 0-based ids of COCO's 91 thing categories (1..91 in COCO)
COCO_STUFF_ID_RANGE = range(91, COCO_STUFF_NUM_IDS)  # 0-based ids of the 91 stuff classes (92..182)
COCO_OBJECT_BACKGROUND = 0
COCO_OBJECT_NUM_CLASSES = 81            # background + 80 things
COCO_OBJECT_SEG_SUFFIX = "_instanceTrainIds.png"  # the peers' file name, next to the stuffthingmaps

# The 80 thing ids that have annotations, in COCO id order; label = position + 1.
COCO_OBJECT_THING_IDS: Tuple[int, ...] = tuple(i for i in COCO_THING_ID_RANGE
                                               if i not in COCO_STUFF_UNUSED_IDS)


def coco_object_table(unlabeled_as_background: bool = True) -> Dict[int, int]:
    """stuffthingmap value -> COCO-Object label, for every value a stuffthingmap may hold.

    ``unlabeled_as_background=True`` (default) maps 255 (unlabeled) to background, as the peers'
    converter does and every published COCO-Object number used; ``False`` keeps it 255 (ignored).
    """
    table = {cid: label for label, cid in enumerate(COCO_OBJECT_THING_IDS, start=1)}
    table.update({cid: COCO_OBJECT_BACKGROUND for cid in COCO_STUFF_ID_RANGE})
    table.update({cid: IGNORE for cid in COCO_STUFF_UNUSED_IDS})  # never present in the maps
    table[IGNORE] = COCO_OBJECT_BACKGROUND if unlabeled_as_background else IGNORE
    return table


COCO_OBJECT_ID_TO_LABEL: Dict[int, int] = coco_object_table()
_COCO_OBJECT_LUTS = {flag: _lut(coco_object_table(flag), 256) for flag in (True, False)}


def coco_object_labels(coco_ids: np.ndarray, what: str = "label map",
                       unlabeled_as_background: bool = True) -> np.ndarray:
    """A COCO-Stuff stuffthingmap (uint8) as COCO-Object labels (uint8, 0..80, 255 only if asked)."""
    return apply_lut(coco_ids, _COCO_OBJECT_LUTS[bool(unlabeled_as_background)], what,
                     "COCO-Stuff stuffthingmap ids 0..181 or 255 (unlabeled)")


def convert_coco_object_file(src: Path, dst: Path) -> None:
    """``<id>.png`` stuffthingmap -> ``<id>_instanceTrainIds.png``, written atomically."""
    write_label_png(dst, coco_object_labels(read_label_png(src), str(src)))


# --------------------------------------------------------------------------- what each dataset reads

@dataclass(frozen=True)
class ExtraEncoding:
    """How the evaluation reads one of the four datasets (mmseg layout; SPEC §7 style)."""

    name: str
    num_classes: int                 # lines of configs/classnames/<name>.txt
    background_index: Optional[int]  # the class low-confidence pixels become; None: no background
    reduce_zero_label: bool
    data_subdir: str
    img_path: str
    seg_map_path: str
    seg_map_suffix: str
    ann_file: Optional[str]
    expected_images: int
    source: str                      # which prepared data it reads, or how it is made


EXTRA_ENCODINGS: Mapping[str, ExtraEncoding] = {e.name: e for e in (
    ExtraEncoding("voc21", 21, 0, False, "VOCdevkit/VOC2012", "JPEGImages", "SegmentationClass",
                  ".png", "ImageSets/Segmentation/val.txt", 1449,
                  "VOCtrainval_11-May-2012.tar as released (palette PNG indices)"),
    ExtraEncoding("voc20", 20, None, True, "VOCdevkit/VOC2012", "JPEGImages", "SegmentationClass",
                  ".png", "ImageSets/Segmentation/val.txt", 1449,
                  "the voc21 files; background pixels ignored"),
    ExtraEncoding("pascal_context60", 60, 0, False, "VOCdevkit/VOC2010", "JPEGImages",
                  "SegmentationClassContext", ".png", "ImageSets/SegmentationContext/val.txt", 5105,
                  "the pascal_context59 files; background counted as class 0"),
    ExtraEncoding("coco_object", 81, 0, False, "coco_stuff164k", "images/val2017",
                  "annotations/val2017", COCO_OBJECT_SEG_SUFFIX, None, 5000,
                  "coco_object_labels() of the coco_stuff171 source stuffthingmaps"),
)}
