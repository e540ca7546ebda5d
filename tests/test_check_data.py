"""tools/check_data.py on good synthetic splits and on deliberately broken copies of them."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clip_surgery_seg.datasets.synthetic import write_synthetic

REPO = Path(__file__).resolve().parents[1]
SIZE = (24, 32)


def _tool(name: str = "check_data"):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(capsys, *argv):
    code = _tool().main([str(a) for a in argv] + ["--workers", "1"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def good_ade(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("good")
    write_synthetic("ade20k", root, num_images=6, image_size=SIZE)
    return root


@pytest.fixture
def ade(good_ade, tmp_path) -> Path:
    """A fresh copy of a good 6-image ADE20K split, to break."""
    shutil.copytree(good_ade, tmp_path / "data")
    return tmp_path / "data"


def _ade_image(root: Path, k: int) -> Path:
    return root / "ADEChallengeData2016" / "images" / "validation" / f"ADE_val_{k:08d}.jpg"


def _ade_label(root: Path, k: int) -> Path:
    return root / "ADEChallengeData2016" / "annotations" / "validation" / f"ADE_val_{k:08d}.png"


def test_a_good_split_passes(capsys, ade):
    code, out, err = _run(capsys, "ade20k", "--root", ade, "--expected-images", 6)
    assert code == 0, out + err
    assert "ade20k: 6 image/label pairs" in out and "OK" in out


def test_the_config_count_is_the_default(capsys, ade):
    code, out, _ = _run(capsys, "ade20k", "--root", ade)
    assert code == 1
    assert "found 6 images, the ade20k split has 2000" in out


BREAKAGES = {
    "image without its label": (lambda r: _ade_label(r, 2).unlink(), "ADE_val_00000002"),
    "label without its image": (lambda r: _ade_image(r, 3).unlink(), "ADE_val_00000003"),
    "differs from its image": (
        lambda r: Image.fromarray(np.ones((SIZE[0] + 1, SIZE[1]), np.uint8)).save(_ade_label(r, 4)),
        "ADE_val_00000004.png"),
    "outside [0, 150)": (
        lambda r: Image.fromarray(np.full(SIZE, 200, np.uint8)).save(_ade_label(r, 5)),
        "ADE_val_00000005.png"),
    "unreadable or truncated image": (
        lambda r: _ade_image(r, 1).write_bytes(_ade_image(r, 1).read_bytes()[:300]),
        "ADE_val_00000001.jpg"),
    "unreadable or truncated label": (lambda r: _ade_label(r, 6).write_bytes(b"\x89PNG\r\n\x1a\n"),
                                      "ADE_val_00000006.png"),
    "image mode I;16": (
        lambda r: Image.fromarray(np.ones(SIZE, np.uint16) * 300).save(_ade_label(r, 6)),
        "ADE_val_00000006.png"),
}


@pytest.mark.parametrize("problem", sorted(BREAKAGES))
def test_each_problem_is_caught_and_names_the_file(capsys, ade, problem):
    breaks, named = BREAKAGES[problem]
    breaks(ade)
    quick = problem in ("image without its label", "label without its image")
    argv = ["ade20k", "--root", ade, "--expected-images", 5 if problem == "label without its image" else 6]
    code, out, _ = _run(capsys, *argv)
    assert code == 1, out
    assert problem in out and named in out and "FAILED" in out
    if quick:  # pairing is part of the cheap check too
        code, out, _ = _run(capsys, *argv, "--quick")
        assert code == 1 and named in out


def test_a_wrong_count_is_caught(capsys, ade):
    code, out, _ = _run(capsys, "ade20k", "--root", ade, "--expected-images", 7)
    assert code == 1 and "found 6 images, the ade20k split has 7" in out


def test_many_problems_list_the_first_few_then_a_count(capsys, ade):
    for k in range(1, 7):
        _ade_label(ade, k).unlink()
    Image.fromarray(np.zeros(SIZE, np.uint8)).save(_ade_label(ade, 1))
    code, out, _ = _run(capsys, "ade20k", "--root", ade, "--expected-images", 6, "--show", 2)
    assert code == 1
    assert "image without its label: 5" in out and "... and 3 more" in out
    assert out.count("no label") == 2


def test_a_missing_folder_is_one_line_naming_it(capsys, tmp_path):
    code, out, err = _run(capsys, "coco_stuff171", "--root", tmp_path)
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert str(tmp_path / "coco_stuff164k") in err and "tools/prepare_data.py coco_stuff171" in err


def test_context_split_list_entries_without_files_are_caught(capsys, tmp_path):
    folder = write_synthetic("pascal_context59", tmp_path, num_images=3, image_size=SIZE)
    split = folder / "ImageSets" / "SegmentationContext" / "val.txt"
    split.write_text(split.read_text() + "2010_999999\n")
    code, out, _ = _run(capsys, "pascal_context59", "--root", tmp_path, "--expected-images", 3)
    assert code == 1 and "label without its image: 1" in out and "2010_999999" in out
    split.unlink()
    code, _, err = _run(capsys, "pascal_context59", "--root", tmp_path, "--expected-images", 3)
    assert code == 1 and "split list" in err and "val.txt" in err


def test_context_label_above_59_after_the_encoding_is_caught(capsys, tmp_path):
    folder = write_synthetic("pascal_context59", tmp_path, num_images=2, image_size=SIZE)
    label = sorted((folder / "SegmentationClassContext").glob("*.png"))[0]
    Image.fromarray(np.full(SIZE, 60, np.uint8)).save(label)  # 60 -> 59 after reduce-zero-label
    code, out, _ = _run(capsys, "pascal_context59", "--root", tmp_path, "--expected-images", 2)
    assert code == 1 and "values 59 are outside [0, 59)" in out and label.name in out


def test_make_synthetic_data_writes_every_layout_and_check_data_accepts_each(capsys, tmp_path):
    from clip_surgery_seg.datasets.catalog import DATASETS

    # all eight into one root: the datasets that share files rewrite them consistently
    assert _tool("make_synthetic_data").main([*DATASETS, "--root", str(tmp_path), "--num-images", "2",
                                              "--size", *map(str, SIZE)]) == 0
    capsys.readouterr()
    for name in DATASETS:
        code, out, err = _run(capsys, name, "--root", tmp_path, "--expected-images", 2)
        assert code == 0, out + err


@pytest.mark.parametrize("name", ["voc21", "voc20", "pascal_context60", "coco_object"])
def test_each_layout_sharing_files_passes(capsys, tmp_path, name):
    write_synthetic(name, tmp_path, num_images=3, image_size=SIZE)
    code, out, err = _run(capsys, name, "--root", tmp_path, "--expected-images", 3)
    assert code == 0, out + err
    assert f"{name}: 3 image/label pairs" in out and "OK" in out


@pytest.mark.parametrize("name, bad, message", [
    ("voc21", 21, "values 21 are outside [0, 21)"),
    ("voc20", 21, "values 20 are outside [0, 20)"),       # after 0 -> ignore, v -> v - 1
    ("coco_object", 81, "values 81 are outside [0, 81)"),
])
def test_a_label_value_beyond_the_classes_is_caught(capsys, tmp_path, name, bad, message):
    from clip_surgery_seg.datasets.catalog import CATALOG

    write_synthetic(name, tmp_path, num_images=2, image_size=SIZE)
    layout = CATALOG[name].layout(tmp_path)
    label = layout.label_path(layout.list_pairs()[0][0])
    with Image.open(label) as image:
        values = np.array(image)
        palette = image.getpalette() if image.mode == "P" else None
    values[0, 0] = bad
    replacement = Image.fromarray(values)
    if palette:
        replacement.putpalette(palette)  # a palette PNG still, as VOC's are
    replacement.save(label)
    code, out, _ = _run(capsys, name, "--root", tmp_path, "--expected-images", 2)
    assert code == 1 and message in out and label.name in out


def test_cityscapes_with_the_real_frame_passes(capsys, tmp_path, mmseg_samples):
    write_synthetic("cityscapes", tmp_path, num_images=2, image_size=SIZE,
                    cityscapes_frame=mmseg_samples / "pseudo_cityscapes_dataset")
    code, out, err = _run(capsys, "cityscapes", "--root", tmp_path, "--expected-images", 3)
    assert code == 0, out + err
    assert "3 image/label pairs" in out


def test_runs_as_a_script_from_the_repository_root(tmp_path):
    write_synthetic("ade20k", tmp_path, num_images=2, image_size=SIZE)
    result = subprocess.run([sys.executable, "tools/check_data.py", "ade20k", "--root", str(tmp_path),
                             "--expected-images", "2"], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ade20k: 2 image/label pairs" in result.stdout
