"""Label encodings of the datasets: the official id tables and the maps from stored values to classes.

* Cityscapes: ``*_gtFine_labelIds.png`` ids 0..33 -> trainIds 0..18 (255 = ignore), the official
  table of cityscapesScripts' ``labels.py``.
* COCO-Stuff-171: stuffthingmap ids (0-based COCO ids 0..181, 255 unlabeled) -> 0..170, dropping the
  11 thing ids that have no annotations (mmseg's ``coco_stuff164k.py`` converter's table).
* COCO-Object: the same stuffthingmaps -> 0 = background (every stuff id, and 255 unlabeled) and
  1..80 for the 80 annotated thing ids in COCO id order (the table of the field's
  ``convert_coco_object.py``).
* PASCAL Context-59: the 459-class ``LabelMap`` -> 0 = background (every class outside the 59) and
  1..59 in mmseg's PascalContextDataset59 order.
* PASCAL VOC 2012: ``SegmentationClass/*.png`` are palette PNGs whose stored index is the label
  (0 = background, 1..20, 255 = boundary and difficult); no table, only the palette they carry.
* ``reduce_zero_label`` (ADE20K, Context-59, VOC20): stored 0 -> ignore, v -> v - 1.
"""
from __future__ import annotations

from typing import Dict, Mapping, Tuple

import numpy as np

from ..errors import ConversionError

IGNORE = 255
_INVALID = -1

# Cityscapes (id, name, trainId) for ids 0..33, from cityscapesScripts helpers/labels.py. The label
# 'license plate' has id -1: it is never drawn into *_labelIds.png, so it cannot appear here.
CITYSCAPES_LABELS: Tuple[Tuple[int, str, int], ...] = (
    (0, "unlabeled", 255), (1, "ego vehicle", 255), (2, "rectification border", 255),
    (3, "out of roi", 255), (4, "static", 255), (5, "dynamic", 255), (6, "ground", 255),
    (7, "road", 0), (8, "sidewalk", 1), (9, "parking", 255), (10, "rail track", 255),
    (11, "building", 2), (12, "wall", 3), (13, "fence", 4), (14, "guard rail", 255),
    (15, "bridge", 255), (16, "tunnel", 255), (17, "pole", 5), (18, "polegroup", 255),
    (19, "traffic light", 6), (20, "traffic sign", 7), (21, "vegetation", 8), (22, "terrain", 9),
    (23, "sky", 10), (24, "person", 11), (25, "rider", 12), (26, "car", 13), (27, "truck", 14),
    (28, "bus", 15), (29, "caravan", 255), (30, "trailer", 255), (31, "train", 16),
    (32, "motorcycle", 17), (33, "bicycle", 18),
)
# labelId -> trainId of the 19 evaluated classes; every other id 0..33 becomes 255.
CITYSCAPES_ID_TO_TRAINID: Dict[int, int] = {i: t for i, _, t in CITYSCAPES_LABELS if t != IGNORE}

# COCO thing ids (0-based, as in the stuffthingmaps) without any annotation in COCO: street sign,
# hat, shoe, eye glasses, plate, mirror, window, desk, door, blender, hair brush (COCO-Stuff README).
COCO_STUFF_UNUSED_IDS: Tuple[int, ...] = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
COCO_STUFF_NUM_IDS = 182  # 0..181: 91 thing ids and 91 stuff ids
# 0-based COCO-Stuff id -> train id 0..170, in order, skipping the unused ids.
COCO_STUFF_ID_TO_TRAINID: Dict[int, int] = {
    cid: train for train, cid in enumerate(i for i in range(COCO_STUFF_NUM_IDS)
                                           if i not in COCO_STUFF_UNUSED_IDS)}

# COCO-Object: 0 = background, then the 80 thing ids that have annotations, in COCO id order (label =
# position + 1). Every stuff id and 255 (unlabeled) are background, as in the converter all published
# COCO-Object numbers used (GroupViT's convert_coco_object.py, copied by SCLIP, ClearCLIP, NACLIP,
# ProxyCLIP); the 11 unannotated thing ids never occur and become 255 (the converter would leave
# their raw value, which aliases another class).
COCO_THING_IDS = range(0, 91)  # 0-based ids of COCO's 91 thing categories (1..91 in COCO)
COCO_OBJECT_THING_IDS: Tuple[int, ...] = tuple(i for i in COCO_THING_IDS if i not in COCO_STUFF_UNUSED_IDS)
COCO_OBJECT_ID_TO_LABEL: Dict[int, int] = {
    **{cid: 0 for cid in range(len(COCO_THING_IDS), COCO_STUFF_NUM_IDS)},  # stuff ids 91..181
    **{cid: IGNORE for cid in COCO_STUFF_UNUSED_IDS},
    **{cid: label for label, cid in enumerate(COCO_OBJECT_THING_IDS, start=1)},
    IGNORE: 0,  # unlabeled
}

# The 59 PASCAL Context classes as (id in the 459-class labels.txt, name there), sorted by id. Their
# position + 1 is the class value in SegmentationClassContext (0 = background). This is the order of
# mmseg's PascalContextDataset59 (its converter's ``_mapping`` array, sorted) and of
# configs/classnames/pascal_context59.txt.
CONTEXT59_CLASSES: Tuple[Tuple[int, str], ...] = (
    (2, 'aeroplane'), (9, 'bag'), (18, 'bed'), (19, 'bedclothes'), (22, 'bench'), (23, 'bicycle'),
    (25, 'bird'), (31, 'boat'), (33, 'book'), (34, 'bottle'), (44, 'building'), (45, 'bus'),
    (46, 'cabinet'), (59, 'car'), (65, 'cat'), (68, 'ceiling'), (72, 'chair'), (80, 'cloth'),
    (85, 'computer'), (98, 'cow'), (104, 'cup'), (105, 'curtain'), (113, 'dog'), (115, 'door'),
    (144, 'fence'), (158, 'floor'), (159, 'flower'), (162, 'food'), (187, 'grass'),
    (189, 'ground'), (207, 'horse'), (220, 'keyboard'), (232, 'light'), (258, 'motorbike'),
    (259, 'mountain'), (260, 'mouse'), (284, 'person'), (295, 'plate'), (296, 'platform'),
    (308, 'pottedplant'), (324, 'road'), (326, 'rock'), (347, 'sheep'), (349, 'shelves'),
    (354, 'sidewalk'), (355, 'sign'), (360, 'sky'), (366, 'snow'), (368, 'sofa'), (397, 'table'),
    (415, 'track'), (416, 'train'), (420, 'tree'), (424, 'truck'), (427, 'tvmonitor'),
    (440, 'wall'), (445, 'water'), (454, 'window'), (458, 'wood'),
)
CONTEXT_NUM_FULL_CLASSES = 459  # LabelMap values 1..459 (0 is tolerated as unlabeled)
CONTEXT_FULL_TO_59: Dict[int, int] = {full: k + 1 for k, (full, _) in enumerate(CONTEXT59_CLASSES)}


def _lut(mapping: Mapping[int, int], size: int, default: int = _INVALID) -> np.ndarray:
    table = np.full(size, default, dtype=np.int32)
    for source, target in mapping.items():
        table[source] = target
    return table


_CITYSCAPES_LUT = _lut({i: t for i, _, t in CITYSCAPES_LABELS}, 256)
_COCO_STUFF_LUT = _lut({**{i: IGNORE for i in COCO_STUFF_UNUSED_IDS}, **COCO_STUFF_ID_TO_TRAINID,
                        IGNORE: IGNORE}, 256)
_COCO_OBJECT_LUT = _lut(COCO_OBJECT_ID_TO_LABEL, 256)
_CONTEXT_LUT = _lut(CONTEXT_FULL_TO_59, CONTEXT_NUM_FULL_CLASSES + 1, default=0)


def apply_lut(values: np.ndarray, lut: np.ndarray, what: str, valid: str) -> np.ndarray:
    """Map ``values`` through ``lut`` to uint8; values the table does not define are an error."""
    values = np.asarray(values)
    if values.size and (values.min() < 0 or values.max() >= len(lut)):
        bad = np.unique(values[(values < 0) | (values >= len(lut))])
        raise ConversionError(f"{what}: values {', '.join(map(str, bad[:8]))} are not {valid}; is this "
                              "the right file?")
    out = lut[values]
    invalid = out == _INVALID
    if invalid.any():
        bad = np.unique(values[invalid])
        raise ConversionError(f"{what}: values {', '.join(map(str, bad[:8]))} are not {valid}; is this "
                              "the right file?")
    return out.astype(np.uint8)


def cityscapes_train_ids(label_ids: np.ndarray, what: str = "label map") -> np.ndarray:
    return apply_lut(label_ids, _CITYSCAPES_LUT, what, "Cityscapes label ids 0..33")


def coco_stuff_train_ids(coco_ids: np.ndarray, what: str = "label map") -> np.ndarray:
    return apply_lut(coco_ids, _COCO_STUFF_LUT, what,
                     "COCO-Stuff stuffthingmap ids 0..181 or 255 (unlabeled)")


def coco_object_labels(coco_ids: np.ndarray, what: str = "label map") -> np.ndarray:
    """A COCO-Stuff stuffthingmap (uint8) as COCO-Object labels 0..80 (uint8)."""
    return apply_lut(coco_ids, _COCO_OBJECT_LUT, what,
                     "COCO-Stuff stuffthingmap ids 0..181 or 255 (unlabeled)")


def context59_from_full(label_map: np.ndarray, what: str = "LabelMap") -> np.ndarray:
    return apply_lut(label_map, _CONTEXT_LUT, what, "PASCAL Context full-label ids 0..459")


def voc_palette() -> np.ndarray:
    """(256, 3) uint8: the palette the released VOC label PNGs carry (the devkit's colour map).

    Index ``i`` gets the bits of ``i`` spread over R, G and B, most significant first: 0 black,
    1 (128, 0, 0), ..., 255 (224, 224, 192). Only the index is the label; the colour is for viewing.
    """
    index = np.arange(256)
    palette = np.zeros((256, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
    return palette.astype(np.uint8)


def encode_label(label: np.ndarray, reduce_zero_label: bool, ignore_index: int = 255) -> np.ndarray:
    """Dataset encoding (docs/datasets.md): with ``reduce_zero_label`` 0 -> ignore and v -> v - 1."""
    if not reduce_zero_label:
        return label
    out = label.astype(np.int16) - 1
    out[label == 0] = ignore_index
    out[label == ignore_index] = ignore_index
    return out.astype(np.uint8)
