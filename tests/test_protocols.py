"""Each named protocol is its harness: every value pinned to the harness's own file, the decode and
the resize checked against mmcv's own transforms, SCLIP's area threshold, whole-image windows and the
peers' padding rules against naive re-statements."""
from __future__ import annotations

import glob

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clip_surgery_seg import protocols
from clip_surgery_seg.datasets.catalog import CATALOG, DATASETS
from clip_surgery_seg.datasets.classnames import load_classnames
from conftest import MMSEG_SAMPLES, REPO

# Every value below was read in the harness's released files (docs/protocol.md has the table):
#   SCLIP   github.com/wangf3014/SCLIP      configs/cfg_<dataset>.py @57fa9aa, clip_segmentor.py @d84d4ab
#   ClearCLIP github.com/mc-lan/ClearCLIP  configs/cfg_<dataset>.py @fd05ce4, clearclip_segmentor.py @afe06b8
#   NACLIP  github.com/sinahmr/NACLIP      configs/cfg_<dataset>.py and naclip.py @defb7c9 (v2)
# Keys: short side S of Resize(scale=(2048, S)), window (slide_crop, slide_stride; None: slide_crop=0,
# the whole image), logit_scale, prob_thd (0.0 -> None), area_thd.
HARNESS = {
    "sclip": {  # clip_segmentor.py defaults: logit_scale=40, slide 224/112, prob_thd=0, area_thd=None
        "voc21": (336, (224, 112), 65.0, 0.1, 0.1),             # cfg_voc21.py
        "pascal_context60": (336, (224, 112), 50.0, 0.1, None),  # cfg_context60.py
        "coco_object": (336, (224, 112), 50.0, 0.1, None),       # cfg_coco_object.py
        "voc20": (336, (224, 112), 40.0, None, None),            # cfg_voc20.py
        "pascal_context59": (336, (224, 112), 40.0, None, None),  # cfg_context59.py
        "coco_stuff171": (448, (224, 112), 40.0, None, None),    # cfg_coco_stuff164k.py
        "cityscapes": (560, (224, 112), 40.0, None, None),       # cfg_city_scapes.py
        "ade20k": (336, (224, 112), 40.0, None, None),           # cfg_ade20k.py
    },
    "clearclip": {  # clearclip_segmentor.py defaults: logit_scale=50, slide 448/224, prob_thd=0
        "voc21": (448, (448, 224), 50.0, 0.5, None),             # cfg_voc21.py
        "pascal_context60": (448, (448, 224), 50.0, 0.15, None),  # cfg_context60.py
        "coco_object": (448, (448, 224), 50.0, 0.4, None),       # cfg_coco_object.py
        "voc20": (448, (448, 224), 50.0, None, None),            # cfg_voc20.py
        "pascal_context59": (448, (448, 224), 50.0, None, None),  # cfg_context59.py
        "coco_stuff171": (448, (448, 224), 50.0, None, None),    # not stored: a third-party copy says 448
        "cityscapes": (448, (224, 224), 50.0, None, None),       # cfg_city_scapes.py: slide_crop=224
        "ade20k": (448, (448, 224), 50.0, None, None),           # not stored: a third-party copy says 448
    },
    "naclip": {  # naclip.py (v2) defaults: logit_scale=40, slide 224/112, prob_thd=0; no area_thd
        "voc21": (336, None, 40.0, 0.1, None),                   # cfg_voc21.py: slide_crop=0
        "pascal_context60": (336, (224, 112), 40.0, 0.1, None),  # cfg_context60.py
        "coco_object": (336, (224, 112), 40.0, 0.1, None),       # cfg_coco_object.py
        "voc20": (336, None, 40.0, None, None),                  # cfg_voc20.py: slide_crop=0
        "pascal_context59": (336, (224, 112), 40.0, None, None),  # cfg_context59.py
        "coco_stuff171": (336, (224, 112), 40.0, None, None),    # cfg_coco_stuff164k.py: 336 in v2
        "cityscapes": (560, (224, 112), 40.0, None, None),       # cfg_city_scapes.py
        "ade20k": (336, (224, 112), 40.0, None, None),           # cfg_ade20k.py
    },
}
# how each harness brings a window whose side is not a multiple of the patch to the encoder
PADDING = {"sclip": "stretch", "naclip": "stretch", "clearclip": "centre"}


@pytest.mark.parametrize("name", sorted(HARNESS))
def test_each_protocol_is_its_harness(name):
    for dataset, (short, window, scale, prob, area) in HARNESS[name].items():
        values = protocols.values(name, dataset)
        crop = None if window is None else window[0]
        assert values["short_side"] == short and values["max_long_side"] == 2048, (name, dataset)
        assert values["crop_size"] == crop and (window is None or values["stride"] == window[1]), (name, dataset)
        assert (values["logit_scale"], values["prob_threshold"], values["area_threshold"]) == (scale, prob, area), \
            (name, dataset)
        assert values["resize"] == "mmseg" and values["padding"] == PADDING[name]
        # the harness's class-name file (its cls_<dataset>.txt), one line per class of the dataset
        path = protocols.classnames_file(values["classnames"], dataset)
        assert path is not None and load_classnames(path).num_classes == CATALOG[dataset].num_classes


def test_every_catalogue_dataset_has_a_value_for_each_setting_of_each_protocol():
    for name in protocols.available():
        for dataset in DATASETS:
            assert set(protocols.values(name, dataset)) == set(protocols.ProtocolSettings.keys())


def test_class_name_files_keep_the_harnesses_words_and_synonym_order():
    sclip = REPO / "configs" / "classnames" / "sclip"
    background = ("sky, wall, tree, wood, grass, road, sea, river, mountain, sands, desk, bed, building, cloud, "
                  "lamp, door, window, wardrobe, ceiling, shelf, curtain, stair, floor, hill, rail, fence")
    voc21 = (sclip / "voc21.txt").read_text().splitlines()
    assert voc21[0] == background and voc21[15].startswith("person, person in shirt, person in jeans")
    assert voc21[20] == "television monitor, tv monitor, monitor, television, screen"
    object_ = (sclip / "coco_object.txt").read_text().splitlines()
    assert object_[0] == background and object_[1].endswith(", person in jacket, body")
    # "bed" is a background synonym and a class in SCLIP's COCO-Object file: kept, as its harness scores it
    names = load_classnames(sclip / "coco_object.txt")
    assert names.rows.count("bed") == 2
    clearclip = load_classnames(REPO / "configs" / "classnames" / "clearclip" / "voc21.txt")
    assert clearclip.classes[0] == "background" and not clearclip.has_synonyms  # 21 plain names
    assert load_classnames(sclip / "cityscapes.txt").classes[6:8] == ("trafficlight", "trafficsign")


def test_results_name_classes_as_the_dataset_does_whatever_the_protocols_words(tmp_path):
    from clip_surgery_seg.engine.runner import EvalOptions

    experiment = EvalOptions(config="configs/voc21.py").resolve()
    assert experiment.classnames.endswith("configs/classnames/sclip/voc21.txt")
    names = experiment.class_names()
    assert names.classes[0] == "background" and names.rows[0] == "sky"  # SCLIP's words, the dataset's names
    assert names.rows == load_classnames(experiment.classnames).rows
    own = EvalOptions(config="configs/voc21.py", cfg_options={"model.classnames": str(tmp_path / "x.txt")})
    (tmp_path / "x.txt").write_text("\n".join(f"c{i}" for i in range(21)) + "\n")
    assert own.resolve().classnames == str(tmp_path / "x.txt")  # a config's own file wins


# --------------------------------------------------------------------------- decode and resize

def _image_files():
    files = sorted(glob.glob(str(MMSEG_SAMPLES / "**" / "*.jpg"), recursive=True))
    files += sorted(glob.glob(str(MMSEG_SAMPLES / "**" / "*.png"), recursive=True))
    return [f for f in files if "gtFine" not in f]


def _own_files(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(0, 9, size=(75, 101, 3)), axis=1).astype(np.uint8)
    paths = []
    for suffix, kwargs in ((".jpg", dict(quality=90)), (".png", {})):
        path = tmp_path / f"image{suffix}"
        Image.fromarray(smooth).save(path, **kwargs)
        paths.append(str(path))
    grey = tmp_path / "grey.png"
    Image.fromarray(smooth[..., 0]).save(grey)
    return paths + [str(grey)]


def test_decoded_images_are_the_bytes_of_mmcvs_load_image_from_file(tmp_path):
    """The peers read images with mmcv's LoadImageFromFile (OpenCV, BGR); ours are the same bytes in RGB."""
    from mmcv.transforms import LoadImageFromFile

    from clip_surgery_seg.datasets.transforms import read_image_rgb

    files = _own_files(tmp_path) + (_image_files() if MMSEG_SAMPLES.is_dir() else [])
    assert any(f.endswith(".jpg") for f in files) and any(f.endswith(".png") for f in files)
    for path in files:
        theirs = LoadImageFromFile()(dict(img_path=path))["img"][..., ::-1]
        ours = read_image_rgb(path)
        assert ours.dtype == np.uint8 and np.array_equal(ours, theirs), path


def test_an_exif_orientation_is_not_applied_so_pixels_stay_with_their_label(tmp_path):
    """The peers' decode rotates a JPEG by its EXIF tag, away from its label map (stored pixels);
    the harness keeps the stored pixels for every orientation, and is the peers' bytes where no tag
    rotates."""
    from mmcv.transforms import LoadImageFromFile
    from PIL import Image

    from clip_surgery_seg.datasets.transforms import read_image_rgb

    source = _own_files(tmp_path)[0]
    for orientation in (1, 3, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"exif{orientation}.jpg"
        Image.open(source).save(path, exif=exif.tobytes(), quality=95)
        stored = np.asarray(Image.open(path).convert("RGB"))  # Pillow does not apply the tag
        assert np.array_equal(read_image_rgb(str(path)), stored), orientation
        theirs = LoadImageFromFile()(dict(img_path=str(path)))["img"][..., ::-1]
        assert np.array_equal(theirs, stored) == (orientation == 1), orientation


@pytest.mark.parametrize("short_side", [336, 448, 560])
def test_the_resize_is_mmsegs_resize_transform_on_the_decoded_image(tmp_path, short_side):
    """resize='mmseg': exactly the pixels of mmcv's Resize(scale=(2048, S), keep_ratio=True), batch of two."""
    from mmcv.transforms import LoadImageFromFile, Resize

    from clip_surgery_seg.segmentors.data_preprocessor import CLIP_MEAN, CLIP_STD, CLIPSegDataPreProcessor

    files = _own_files(tmp_path)[:2]
    pre = CLIPSegDataPreProcessor(test_scale=(2048, short_side), resize="mmseg")
    batch = [torch.from_numpy(LoadImageFromFile()(dict(img_path=f))["img"][..., ::-1].copy()).permute(2, 0, 1)
             for f in files]
    ours = pre({"inputs": batch, "data_samples": None})["inputs"]
    for path, image in zip(files, ours):
        resized = Resize(scale=(2048, short_side), keep_ratio=True)(LoadImageFromFile()(dict(img_path=path)))["img"]
        expected = (torch.from_numpy(resized[..., ::-1].copy()).permute(2, 0, 1).float()
                    - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
        assert image.shape == expected.shape and min(image.shape[-2:]) == short_side
        assert torch.equal(image, expected)
    device = CLIPSegDataPreProcessor(test_scale=(2048, short_side), resize="device")
    assert [tuple(i.shape[-2:]) for i in device({"inputs": batch, "data_samples": None})["inputs"]] == \
        [tuple(b.shape[-2:]) for b in batch]  # "device": the segmentor resizes


# --------------------------------------------------------------------------- SCLIP's area threshold

def _sclip_postprocess(row_logits, row_class, scale, prob_thd, area_thd):
    """SCLIP's postprocess_result for one image, re-stated in numpy: softmax over all rows, max over a
    class's rows, then (area_thd) classes >= 1 with at most area_thd of the non-background argmax
    pixels are zeroed, argmax again, and pixels below prob_thd -> 0."""
    z = row_logits.astype(np.float64) * scale
    p = np.exp(z - z.max(axis=0))
    p /= p.sum(axis=0)
    k = row_class.max() + 1
    probs = np.stack([p[row_class == c].max(axis=0) for c in range(k)])
    if area_thd is not None:
        pred = probs.argmax(axis=0)
        counts = [(pred == c).sum() for c in range(k)]
        total = sum(counts[1:])
        for c in range(1, k):
            if not counts[c] > area_thd * total:
                probs[c] = 0
    pred = probs.argmax(axis=0)
    if prob_thd is not None:
        pred[probs.max(axis=0) < prob_thd] = 0
    return pred


@pytest.mark.parametrize("shape, area, prob", [((9, 13), 0.1, 0.1), ((32, 24), 0.25, None), ((7, 40), 0.1, 0.3)])
def test_area_threshold_is_sclips(tmp_path, shape, area, prob):
    import clip_surgery_seg.registry  # noqa: F401
    from mmseg.registry import MODELS

    from conftest import TINY_VIT

    classes = ["background, sky, wall", "cat", "dog, puppy", "car", "tree"]
    row_class = np.array([0, 0, 0, 1, 2, 2, 3, 4])
    model = MODELS.build(dict(type="CLIPSurgerySegmentor", clip=dict(name=str(TINY_VIT)), classnames=classes,
                              templates=["a {}."], text_cache_dir=str(tmp_path), background_index=0,
                              protocol=dict(prob_threshold=prob, area_threshold=area, logit_scale=20.0)))
    rng = np.random.default_rng(sum(shape))
    suppressed = 0
    for _ in range(6):
        logits = rng.normal(0, 0.1, size=(8, *shape)).astype(np.float32)
        logits[6, : shape[0] // 6] += 0.4  # a class on a small strip, which the threshold suppresses
        expected = _sclip_postprocess(logits, row_class, 20.0, prob, area)
        got = model.labels_from_logits(torch.from_numpy(logits)).numpy()
        assert np.array_equal(got, expected)
        without = _sclip_postprocess(logits, row_class, 20.0, prob, None)
        suppressed += int((without != expected).sum())
    assert suppressed > 0  # the threshold changed pixels: the comparison tested something


# --------------------------------------------------------------------------- whole image and padding

def _patch_maps(windows: torch.Tensor, patch: int = 16, k: int = 3) -> torch.Tensor:
    """A stand-in encoder: (B, 3, h, w) with h, w multiples of the patch -> (B, K, h/p, w/p) patch
    means mixed into K channels (deterministic, position dependent)."""
    pooled = F.avg_pool2d(windows, patch)
    mix = torch.arange(3 * k, dtype=torch.float32).view(k, 3) / 7.0 - 0.5
    return torch.einsum("kc,bchw->bkhw", mix, pooled) + pooled.mean(dim=1, keepdim=True) ** 2


def _naive(image: torch.Tensor, crop, stride: int, padding: str, patch: int = 16) -> torch.Tensor:
    """The peers' loops: windows (the last aligned to the border), each brought to a multiple of the
    patch (SCLIP/NACLIP: its whole patches, maps stretched back over it; ClearCLIP: centred zero
    padding, maps cut back), the window logits summed and divided by the count."""
    _, h, w = image.shape
    crop_h, crop_w = (h, w) if crop is None else (crop, crop)
    rows = max(h - crop_h + stride - 1, 0) // stride + 1
    cols = max(w - crop_w + stride - 1, 0) // stride + 1
    canvas, count = torch.zeros(3, h, w), torch.zeros(1, h, w)
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * stride + crop_h, h), min(c * stride + crop_w, w)
            y1, x1 = max(y2 - crop_h, 0), max(x2 - crop_w, 0)
            window = image[:, y1:y2, x1:x2]
            wh, ww = window.shape[-2:]
            if padding == "stretch":
                maps = _patch_maps(window[None, :, : wh // patch * patch, : ww // patch * patch])
                logits = F.interpolate(maps, size=(wh, ww), mode="bilinear", align_corners=False)[0]
            else:
                lr = patch - ww % patch if ww % patch else 0
                tb = patch - wh % patch if wh % patch else 0
                left, top = lr // 2, tb // 2
                padded = F.pad(window, (left, lr - left, top, tb - top))
                maps = _patch_maps(padded[None])
                logits = F.interpolate(maps, size=padded.shape[-2:], mode="bilinear", align_corners=False)[0]
                logits = logits[:, top:top + wh, left:left + ww]
            canvas[:, y1:y2, x1:x2] += logits
            count[:, y1:y2, x1:x2] += 1
    return canvas / count


@pytest.mark.parametrize("crop, stride, padding", [(None, 112, "stretch"), (None, 112, "centre"),
                                                   (100, 60, "stretch"), (100, 60, "centre"), (224, 112, "stretch")])
def test_windows_and_padding_are_the_peers(crop, stride, padding):
    from clip_surgery_seg.segmentors.sliding import WindowBatcher, slide_logits

    torch.manual_seed(0)
    images = [torch.randn(3, 131, 203), torch.randn(3, 96, 250), torch.randn(3, 336, 505)]
    ours = slide_logits(images, _patch_maps, crop, stride, WindowBatcher(3), (16, 16), padding=padding)
    for image, canvas in zip(images, ours):
        expected = _naive(image, crop, stride, padding)
        assert canvas.shape[1:] == expected.shape
        torch.testing.assert_close(canvas[0], expected, atol=1e-5, rtol=1e-5)
