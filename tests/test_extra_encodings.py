"""The four extra datasets: COCO-Object labels, VOC palette PNGs, class-name files, low-confidence
background.

Oracles are re-stated here independently of the module under test: COCO's own 1-based category
ids of the 80 annotated things, the VOC colour map generated bit by bit, and the peers'
background rule written out in numpy.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from clip_surgery_seg.errors import ConversionError
from clip_surgery_seg.data_prep.extra_encodings import (COCO_OBJECT_ID_TO_LABEL, EXTRA_ENCODINGS,
                                                        coco_object_labels, convert_coco_object_file)
from clip_surgery_seg.datasets.classnames import load_classnames
from clip_surgery_seg.datasets.encodings import encode_label
from clip_surgery_seg.datasets.transforms import read_label

REPO = Path(__file__).resolve().parents[1]
CLASSNAMES = REPO / "configs" / "classnames"

# COCO's 80 annotated thing categories as (COCO category id, name), from instances_*.json. The
# stuffthingmaps store id - 1. Ids 12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91 have no annotations.
COCO_THINGS = (
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"), (6, "bus"),
    (7, "train"), (8, "truck"), (9, "boat"), (10, "traffic light"), (11, "fire hydrant"),
    (13, "stop sign"), (14, "parking meter"), (15, "bench"), (16, "bird"), (17, "cat"), (18, "dog"),
    (19, "horse"), (20, "sheep"), (21, "cow"), (22, "elephant"), (23, "bear"), (24, "zebra"),
    (25, "giraffe"), (27, "backpack"), (28, "umbrella"), (31, "handbag"), (32, "tie"),
    (33, "suitcase"), (34, "frisbee"), (35, "skis"), (36, "snowboard"), (37, "sports ball"),
    (38, "kite"), (39, "baseball bat"), (40, "baseball glove"), (41, "skateboard"), (42, "surfboard"),
    (43, "tennis racket"), (44, "bottle"), (46, "wine glass"), (47, "cup"), (48, "fork"),
    (49, "knife"), (50, "spoon"), (51, "bowl"), (52, "banana"), (53, "apple"), (54, "sandwich"),
    (55, "orange"), (56, "broccoli"), (57, "carrot"), (58, "hot dog"), (59, "pizza"), (60, "donut"),
    (61, "cake"), (62, "chair"), (63, "couch"), (64, "potted plant"), (65, "bed"),
    (67, "dining table"), (70, "toilet"), (72, "tv"), (73, "laptop"), (74, "mouse"), (75, "remote"),
    (76, "keyboard"), (77, "cell phone"), (78, "microwave"), (79, "oven"), (80, "toaster"),
    (81, "sink"), (82, "refrigerator"), (84, "book"), (85, "clock"), (86, "vase"), (87, "scissors"),
    (88, "teddy bear"), (89, "hair drier"), (90, "toothbrush"),
)
COCO_UNANNOTATED = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91)  # 1-based COCO ids
STUFF_VALUES = range(91, 182)  # stuffthingmap values of COCO-Stuff's 91 stuff classes (ids 92..182)


def _first_names(dataset: str):
    return list(load_classnames(CLASSNAMES / f"{dataset}.txt").classes)


def _expected_coco_object(value: int, unlabeled_as_background: bool = True) -> int:
    """Independent statement of the COCO-Object label of one stuffthingmap value."""
    coco_id = value + 1
    things = [cid for cid, _ in COCO_THINGS]
    if coco_id in things:
        return things.index(coco_id) + 1
    if value in STUFF_VALUES:
        return 0
    if coco_id in COCO_UNANNOTATED:
        return 255
    if value == 255:
        return 0 if unlabeled_as_background else 255
    raise KeyError(value)


# --------------------------------------------------------------------------- COCO-Object

def test_the_oracle_covers_every_stuffthingmap_value_once():
    assert len(COCO_THINGS) == 80 and len(COCO_UNANNOTATED) == 11
    assert sorted([cid for cid, _ in COCO_THINGS] + list(COCO_UNANNOTATED)) == list(range(1, 92))
    assert sorted(COCO_OBJECT_ID_TO_LABEL) == list(range(182)) + [255]


@pytest.mark.parametrize("unlabeled_as_background", [True, False])
def test_coco_object_labels_of_every_value(unlabeled_as_background):
    values = np.array(list(range(182)) + [255], dtype=np.uint8).reshape(1, -1)
    got = coco_object_labels(np.tile(values, (3, 1)), unlabeled_as_background=unlabeled_as_background)
    assert got.dtype == np.uint8 and got.shape == (3, 183)
    expected = [_expected_coco_object(int(v), unlabeled_as_background) for v in values[0]]
    assert got[0].tolist() == expected and (got == got[0]).all()


def test_every_stuff_id_is_background_and_every_thing_its_index():
    for value in STUFF_VALUES:
        assert COCO_OBJECT_ID_TO_LABEL[value] == 0
    for index, (coco_id, _) in enumerate(COCO_THINGS, start=1):
        assert COCO_OBJECT_ID_TO_LABEL[coco_id - 1] == index
    for coco_id in COCO_UNANNOTATED:
        assert COCO_OBJECT_ID_TO_LABEL[coco_id - 1] == 255
    assert COCO_OBJECT_ID_TO_LABEL[255] == 0  # unlabeled -> background, as the peers' converter


def test_values_a_stuffthingmap_cannot_hold_are_an_error():
    for bad in (182, 200, 254):
        with pytest.raises(ConversionError, match=str(bad)):
            coco_object_labels(np.array([[0, bad]], dtype=np.uint8), what="x.png")


def test_convert_coco_object_file_round_trip(tmp_path):
    src = tmp_path / "000000000139.png"
    values = np.array([[0, 90, 91, 181], [255, 64, 0, 120]], dtype=np.uint8)  # 90: hair brush
    Image.fromarray(values).save(src)
    dst = tmp_path / "000000000139_instanceTrainIds.png"
    convert_coco_object_file(src, dst)
    with Image.open(dst) as image:
        assert image.mode == "L"
        out = np.asarray(image)
    assert out.tolist() == [[1, 255, 0, 0], [0, 60, 1, 0]]  # 64 = COCO id 65 (bed), the 60th thing


def test_coco_object_classnames_are_background_then_the_80_things_in_label_order():
    names = _first_names("coco_object")
    assert names[0] == "background"
    assert names[1:] == [name for _, name in COCO_THINGS]
    assert names[1:] == _first_names("coco_stuff171")[:80]  # same spelling as COCO-Stuff-171


# --------------------------------------------------------------------------- VOC

def _voc_colormap(n: int = 256) -> np.ndarray:
    """The PASCAL VOC devkit colour map: the bits of the index spread over R, G, B."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def test_a_voc_palette_png_decodes_to_class_indices_not_colours(tmp_path):
    cmap = _voc_colormap()
    assert cmap[0].tolist() == [0, 0, 0] and cmap[1].tolist() == [128, 0, 0]
    assert cmap[15].tolist() == [192, 128, 128] and cmap[255].tolist() == [224, 224, 192]
    indices = np.array([list(range(0, 11)) + [255], list(range(11, 21)) + [255, 0]], dtype=np.uint8)
    path = tmp_path / "2007_000033.png"
    image = Image.frombytes("P", indices.shape[::-1], indices.tobytes())
    image.putpalette(cmap.reshape(-1).tolist())
    image.save(path)

    with Image.open(path) as saved:
        assert saved.mode == "P"
        colours = np.asarray(saved.convert("RGB"))
    assert colours[0, 1].tolist() == [128, 0, 0]  # it is a colour image when shown...
    label = read_label(str(path))
    assert label.dtype == np.uint8 and label.ndim == 2
    assert np.array_equal(label, indices)          # ...and its stored indices are the labels


def test_voc20_reads_the_voc21_files_with_background_ignored():
    voc21 = np.array([[0, 1, 15, 20, 255]], dtype=np.uint8)
    expected_voc20 = [[255, 0, 14, 19, 255]]  # background and boundary ignored, classes shift by one
    assert EXTRA_ENCODINGS["voc21"].reduce_zero_label is False
    assert encode_label(voc21, EXTRA_ENCODINGS["voc21"].reduce_zero_label).tolist() == voc21.tolist()
    assert EXTRA_ENCODINGS["voc20"].reduce_zero_label is True
    assert encode_label(voc21, EXTRA_ENCODINGS["voc20"].reduce_zero_label).tolist() == expected_voc20


def test_voc_classnames_in_label_order():
    voc = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
           "dining table", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa",
           "train", "tv monitor"]
    assert _first_names("voc21") == ["background"] + voc
    assert _first_names("voc20") == voc
    lines21 = (CLASSNAMES / "voc21.txt").read_text().splitlines()
    assert (CLASSNAMES / "voc20.txt").read_text().splitlines() == lines21[1:]


# --------------------------------------------------------------------------- Context-60

def test_context60_is_background_then_the_context59_rows():
    lines60 = (CLASSNAMES / "pascal_context60.txt").read_text().splitlines()
    lines59 = (CLASSNAMES / "pascal_context59.txt").read_text().splitlines()
    assert lines60[0] == "background"
    assert lines60[1:] == lines59
    assert EXTRA_ENCODINGS["pascal_context60"].reduce_zero_label is False  # PNG 0 is class 0


# --------------------------------------------------------------------------- catalogue facts

@pytest.mark.parametrize("name", sorted(EXTRA_ENCODINGS))
def test_each_encoding_matches_its_classname_file(name):
    encoding = EXTRA_ENCODINGS[name]
    names = load_classnames(CLASSNAMES / f"{name}.txt")
    assert names.num_classes == encoding.num_classes
    if encoding.background_index is not None:
        assert names.classes[encoding.background_index] == "background"
    else:
        assert "background" not in names.rows


# --------------------------------------------------------------------------- low-confidence background

def _labels_from_logits(logits: torch.Tensor, logit_scale, prob_threshold, background_index):
    from clip_surgery_seg.segmentors.segmentor import CLIPSurgerySegmentor

    fake = SimpleNamespace(logit_scale=logit_scale, prob_threshold=prob_threshold,
                           background_index=background_index)
    return CLIPSurgerySegmentor.labels_from_logits(fake, logits)


def _peer_rule(logits: np.ndarray, logit_scale: float, prob_thd: float) -> np.ndarray:
    """The peers' rule (one row per class): softmax(scale * logits) over classes, argmax, and
    pixels whose top probability is below the threshold become class 0."""
    z = logits * logit_scale
    p = np.exp(z - z.max(axis=0))
    p /= p.sum(axis=0)
    pred = p.argmax(axis=0)
    pred[p.max(axis=0) < prob_thd] = 0
    return pred


def test_low_confidence_pixels_become_background_on_a_hand_made_map():
    # 3 classes (0 = background) on a 2x3 map: a confident class-2 pixel, a near tie, a clear
    # background, ... Probabilities at scale 10 are checked by hand below.
    logits = torch.tensor([
        [[0.10, 0.20, 0.30], [0.20, 0.20, 0.00]],   # background
        [[0.10, 0.25, 0.10], [0.21, 0.50, 0.00]],   # class 1
        [[0.40, 0.24, 0.10], [0.20, 0.10, 0.00]],   # class 2
    ])
    no_threshold = _labels_from_logits(logits, 10.0, None, None)
    assert no_threshold.tolist() == [[2, 1, 0], [1, 1, 0]]

    labels = _labels_from_logits(logits, 10.0, 0.5, 0)
    # (0,0): p = softmax(1, 1, 4) -> 0.91 kept; (0,1): softmax(2, 2.5, 2.4) top 0.38 -> background;
    # (1,0): softmax(2, 2.1, 2) top 0.36 -> background; (1,1): softmax(2, 5, 1) top 0.94 kept;
    # (1,2): all equal, top 1/3 -> background (and argmax already 0).
    assert labels.tolist() == [[2, 0, 0], [0, 1, 0]]
    assert labels.tolist() == _peer_rule(logits.numpy(), 10.0, 0.5).tolist()

    # a larger scale sharpens the softmax, so the same threshold keeps more pixels
    sharp = _labels_from_logits(logits, 100.0, 0.5, 0)
    assert sharp.tolist() == [[2, 1, 0], [1, 1, 0]] == _peer_rule(logits.numpy(), 100.0, 0.5).tolist()

    # threshold 0 never changes the argmax
    assert _labels_from_logits(logits, 10.0, 0.0, 0).tolist() == no_threshold.tolist()
