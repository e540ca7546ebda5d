"""The datasets of the field's full table: catalogue vs class-name files and configs, COCO-Object
labels, VOC palette PNGs, VOC20 and Context-60 encodings, and the background threshold.

Oracles are re-stated here independently of the modules under test: COCO's own 1-based category
ids of the 80 annotated things, the VOC colour map generated bit by bit, and the peers' background
rule (SCLIP's ``postprocess_result``) written out in numpy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from clip_surgery_seg import protocols
from clip_surgery_seg.engine.runner import EvalOptions
from PIL import Image

from clip_surgery_seg.data_prep.convert import convert_coco_object_file
from clip_surgery_seg.datasets.catalog import CATALOG, DATASETS
from clip_surgery_seg.datasets.classnames import load_classnames
from clip_surgery_seg.datasets.encodings import COCO_OBJECT_ID_TO_LABEL, coco_object_labels, encode_label, voc_palette
from clip_surgery_seg.datasets.transforms import read_label
from clip_surgery_seg.errors import ConversionError

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


def _expected_coco_object(value: int) -> int:
    """Independent statement of the COCO-Object label of one stuffthingmap value."""
    coco_id = value + 1
    things = [cid for cid, _ in COCO_THINGS]
    if coco_id in things:
        return things.index(coco_id) + 1
    if value in STUFF_VALUES or value == 255:  # stuff and unlabeled: background, as the field's converter
        return 0
    if coco_id in COCO_UNANNOTATED:
        return 255
    raise KeyError(value)


def _config(name: str) -> Config:
    return Config.fromfile(str(REPO / "configs" / f"{name}.py"))


BACKGROUND = ("voc21", "pascal_context60", "coco_object")


# --------------------------------------------------------------------------- catalogue and configs

def test_the_catalogue_is_in_the_fields_table_order():
    """The tables' order: the datasets that score a background class first, then the others."""
    scored = [CATALOG[n].config.is_file() and _config(n).model.background_index is not None for n in DATASETS]
    assert scored == sorted(scored, reverse=True) and any(scored)


@pytest.mark.parametrize("name", DATASETS)
def test_each_dataset_has_its_class_count_configs_and_protocols(name):
    info = CATALOG[name]
    names = load_classnames(info.classnames)
    assert names.num_classes == info.num_classes
    cfg = _config(name)
    experiment = EvalOptions(config=f"configs/{name}.py").resolve()
    assert cfg.dataset_name == name and experiment.classnames.endswith(f"classnames/sclip/{name}.txt")  # its protocol's
    for protocol in protocols.available():
        settings = protocols.values(protocol, name)
        assert settings["name"] == protocol
        # a threshold exactly where the dataset scores a background class, with the harness's scale
        assert (settings["prob_threshold"] is not None) == (name in BACKGROUND)
        assert settings["logit_scale"] is not None and settings["logit_scale"] > 0
        if name in BACKGROUND:
            assert 0 < settings["prob_threshold"] < 1 and settings["logit_scale"] > 0


@pytest.mark.parametrize("name", DATASETS)
def test_background_is_the_first_line_where_the_config_scores_one(name):
    names = load_classnames(CATALOG[name].classnames)
    background_index = _config(name).model.background_index
    if name in BACKGROUND:
        assert background_index == 0 and names.classes[0] == "background"
        rows = [r for r, k in zip(names.rows, names.row_class) if k == 0]
        assert len(rows) > 1 or name == "pascal_context60"  # synonyms, except where they would be classes
    else:
        assert background_index is None and "background" not in names.rows


def test_shared_files_are_read_through_one_layout():
    for a, b in (("voc21", "voc20"), ("pascal_context60", "pascal_context59"), ("coco_object", "coco_stuff171")):
        la, lb = CATALOG[a].layout("data"), CATALOG[b].layout("data")
        assert la.img_dir == lb.img_dir and la.img_suffix == lb.img_suffix
        assert CATALOG[a].archives == CATALOG[b].archives and CATALOG[a].expected_images == CATALOG[b].expected_images
    assert CATALOG["voc21"].layout("data").seg_dir == CATALOG["voc20"].layout("data").seg_dir


# --------------------------------------------------------------------------- COCO-Object

def test_the_oracle_covers_every_stuffthingmap_value_once():
    assert len(COCO_THINGS) == 80 and len(COCO_UNANNOTATED) == 11
    assert sorted([cid for cid, _ in COCO_THINGS] + list(COCO_UNANNOTATED)) == list(range(1, 92))
    assert sorted(COCO_OBJECT_ID_TO_LABEL) == list(range(182)) + [255]


@pytest.mark.parametrize("shape", [(1, 183), (3, 183), (183, 2)])
def test_coco_object_labels_of_every_value(shape):
    values = np.array(list(range(182)) + [255], dtype=np.uint8)
    grid = np.resize(np.random.default_rng(shape[0]).permutation(values), shape)
    got = coco_object_labels(grid)
    assert got.dtype == np.uint8 and got.shape == shape
    expected = np.vectorize(_expected_coco_object)(grid)
    assert np.array_equal(got, expected)


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


def test_the_voc_palette_is_the_devkit_colour_map():
    cmap = _voc_colormap()
    assert cmap[0].tolist() == [0, 0, 0] and cmap[1].tolist() == [128, 0, 0]
    assert cmap[15].tolist() == [192, 128, 128] and cmap[255].tolist() == [224, 224, 192]
    assert np.array_equal(voc_palette(), cmap)


def test_a_voc_palette_png_decodes_to_class_indices_not_colours(tmp_path):
    cmap = _voc_colormap()
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


def test_synthetic_voc_labels_are_palette_pngs_like_the_released_ones(tmp_path):
    from clip_surgery_seg.datasets.synthetic import write_synthetic

    folder = write_synthetic("voc21", tmp_path, num_images=2, image_size=(30, 40))
    for png in sorted((folder / "SegmentationClass").glob("*.png")):
        with Image.open(png) as image:
            assert image.mode == "P"
            palette = np.asarray(image.getpalette(), dtype=np.uint8).reshape(-1, 3)
            indices = np.asarray(image)
        assert np.array_equal(palette[:256], _voc_colormap())
        assert np.array_equal(read_label(str(png)), indices) and set(np.unique(indices)) <= set(range(21)) | {255}


def test_voc20_reads_the_voc21_files_with_background_ignored():
    voc21 = np.array([[0, 1, 15, 20, 255]], dtype=np.uint8)
    expected_voc20 = [[255, 0, 14, 19, 255]]  # background and boundary ignored, classes shift by one
    reduce21 = _config("voc21").test_dataloader.dataset.reduce_zero_label
    reduce20 = _config("voc20").test_dataloader.dataset.reduce_zero_label
    assert reduce21 is False and reduce20 is True
    assert encode_label(voc21, reduce21).tolist() == voc21.tolist()
    assert encode_label(voc21, reduce20).tolist() == expected_voc20


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
    context = np.array([[0, 1, 59]], dtype=np.uint8)
    assert _config("pascal_context60").test_dataloader.dataset.reduce_zero_label is False  # PNG 0 is class 0
    assert encode_label(context, False).tolist() == [[0, 1, 59]]
    assert encode_label(context, _config("pascal_context59").test_dataloader.dataset.reduce_zero_label).tolist() \
        == [[255, 0, 58]]
