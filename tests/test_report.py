"""tools/report.py and the paper table, on fabricated results files."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, Optional, Sequence

import pandas as pd
import pytest

from clip_surgery_seg.engine.results import SCHEMA
from clip_surgery_seg import resources
from clip_surgery_seg.cli import EXIT_USAGE
from clip_surgery_seg.cli.report import main as report_main
from clip_surgery_seg.reporting.paper import load_paper, paper_table
from clip_surgery_seg.reporting.records import load_many

EXPECTED_IMAGES = {"ade20k": 2000, "coco_stuff171": 5000, "cityscapes": 500, "pascal_context59": 5104}
CLASSES = {"wall": 40.0, "floor": 20.0, "sky": 30.0}


def fake_results(dataset: str = "ade20k", miou: Optional[float] = None, per_class: Optional[Dict[str, float]] = None,
                 protocol: str = "sclip", created: str = "2025-01-02T03:04:05+00:00", model: str = "ViT-B-16",
                 pretrained: Optional[str] = "openai", commit: str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
                 config_hash: str = "c0ffee" * 10, num_images: Optional[int] = None, limit: Optional[int] = None,
                 skipped: Sequence[str] = (), wall_s: float = 12.5) -> dict:
    """A results dict in the ``metrics.json`` schema, with the numbers a test chooses."""
    per_class = dict(CLASSES if per_class is None else per_class)
    values = [v for v in per_class.values() if not math.isnan(v)]
    if miou is None:
        miou = round(sum(values) / len(values), 2)
    expected = EXPECTED_IMAGES.get(dataset, 100)
    return {
        "schema": SCHEMA, "created": created, "complete": True, "partial": bool(skipped),
        "dataset": {"name": dataset, "type": "X", "data_root": "/data", "expected_images": expected,
                    "num_images": expected if num_images is None else num_images,
                    "num_classes": len(per_class), "limit": limit},
        "summary": {"aAcc": 70.0, "mIoU": miou, "mAcc": 50.0},
        "per_class": [{"class": c, "IoU": v, "Acc": v, "intersect": 1, "union": 2, "pred_area": 1, "label_area": 1}
                      for c, v in per_class.items()],
        "protocol": {"name": protocol, "short_side": 336, "crop_size": 224, "stride": 112},
        "model": {"name": model, "pretrained": pretrained, "sha256": None, "seed": None, "quick_gelu": None},
        "config": {}, "config_file": f"configs/{dataset}.py", "config_hash": config_hash,
        "code": {"version": "0.1.0", "git_commit": commit, "git_dirty": False},
        "environment": {"device": "cpu: test"},
        "timing": {"wall_s": wall_s, "images_per_s": 1.0},
        "skipped": [{"image": s, "reason": "bad"} for s in skipped],
    }


def write_results(folder: Path, **kwargs) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "metrics.json"
    path.write_text(json.dumps(fake_results(**kwargs), allow_nan=True))
    return path


OURS = {"pascal_context59": 30.12, "coco_stuff171": 20.0, "cityscapes": 31.4, "ade20k": 13.55}


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A reproduce-style run folder with all four datasets."""
    run = tmp_path / "run"
    for name, miou in OURS.items():
        write_results(run / name, dataset=name, miou=miou)
    return run


def test_paper_csv_holds_the_published_numbers():
    paper = pd.read_csv(resources.paper_csv())
    surgery = paper[paper["method"] == "CLIP Surgery"].set_index("dataset")["mIoU"].to_dict()
    assert surgery == {"pascal_context59": 29.3, "coco_stuff171": 21.9, "cityscapes": 31.4, "ade20k": 12.9}
    clip = paper[paper["method"] == "CLIP"].set_index("dataset")["mIoU"].to_dict()
    assert clip == {"pascal_context59": 9.2, "coco_stuff171": 4.4, "cityscapes": 5.5, "ade20k": 2.1}
    maskclip = paper[paper["method"] == "MaskCLIP"].set_index("dataset")["mIoU"].to_dict()
    assert maskclip == {"pascal_context59": 26.4, "coco_stuff171": 16.4, "cityscapes": 12.6, "ade20k": 9.8}
    assert paper["source"].notna().all() and paper["protocol"].notna().all()
    assert (paper["model"] == "ViT-B/16").all() and (paper["weights"] == "openai").all()


# the catalogue's order: the four datasets with a background class (not evaluated here) come first
NOT_EVALUATED = ["PASCAL VOC21", "PASCAL Context-60", "COCO-Object", "PASCAL VOC20"]


def test_table_numbers_differences_and_paper_order(run_dir):
    table = paper_table(load_many([str(run_dir)]), load_paper())
    assert list(table["dataset"]) == NOT_EVALUATED + ["PASCAL Context-59", "COCO-Stuff-171", "Cityscapes",
                                                      "ADE20K-150"]
    assert set(table["notes"][:4]) == {"not evaluated"} and table["ours mIoU"][:4].isna().all()
    table = table[4:]
    assert list(table["ours mIoU"]) == [30.12, 20.0, 31.4, 13.55]
    assert list(table["paper mIoU"]) == [29.3, 21.9, 31.4, 12.9]
    assert list(table["difference"]) == [0.82, -1.9, 0.0, 0.65]
    assert set(table["protocol"]) == {"sclip"} and set(table["model"]) == {"ViT-B-16 / openai"}
    assert set(table["date"]) == {"2025-01-02"} and set(table["notes"]) == {""}


def test_markdown_table(run_dir, capsys):
    assert report_main([str(run_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("|")[1:-1] == [" dataset           ", " ours mIoU ", " paper mIoU ", " difference ",
                                         " protocol ", " model             ", " date       ", " notes         "]
    assert lines[1].startswith("|---") and "-:|" in lines[1]
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[6:10]]
    assert cells[0] == ["PASCAL Context-59", "30.12", "29.3", "+0.82", "sclip", "ViT-B-16 / openai", "2025-01-02", ""]
    assert cells[1][:4] == ["COCO-Stuff-171", "20.00", "21.9", "-1.90"]
    assert cells[2][:4] == ["Cityscapes", "31.40", "31.4", "+0.00"]
    assert cells[3][:4] == ["ADE20K-150", "13.55", "12.9", "+0.65"]
    assert "arXiv:2304.05653" in lines[-1]


def test_csv_table_and_plot(run_dir, tmp_path, capsys):
    plot = tmp_path / "bars.png"
    assert report_main([str(run_dir), "--format", "csv", "--plot", str(plot)]) == 0
    table = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert list(table.columns) == ["dataset", "ours mIoU", "paper mIoU", "difference", "protocol", "model", "date",
                                   "notes"]
    assert list(table["difference"][4:]) == [0.82, -1.9, 0.0, 0.65]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000


def test_baseline_columns(run_dir, capsys):
    assert report_main([str(run_dir), "--format", "csv", "--baselines"]) == 0
    table = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert list(table["CLIP (published)"][4:]) == [9.2, 4.4, 5.5, 2.1]
    assert list(table["MaskCLIP (published)"][4:]) == [26.4, 16.4, 12.6, 9.8]


def test_newest_result_per_dataset_unless_all(tmp_path, capsys):
    old = write_results(tmp_path / "old", dataset="ade20k", miou=10.0, created="2025-01-01T00:00:00+00:00")
    new = write_results(tmp_path / "new", dataset="ade20k", miou=12.0, created="2025-02-01T00:00:00+00:00",
                        config_hash="beef" * 16)
    table = paper_table(load_many([str(old), str(new)]), load_paper())
    row = table[table["dataset"] == "ADE20K-150"].iloc[0]
    assert row["ours mIoU"] == 12.0 and row["difference"] == -0.9 and row["notes"] == "newest of 2 results"
    everything = paper_table(load_many([str(old), str(new)]), load_paper(), all_results=True)
    assert list(everything[everything["dataset"] == "ADE20K-150"]["ours mIoU"]) == [12.0, 10.0]
    # datasets without results still show the paper's number
    missing = table[table["dataset"] == "Cityscapes"].iloc[0]
    assert math.isnan(missing["ours mIoU"]) and missing["paper mIoU"] == 31.4 and missing["notes"] == "not evaluated"
    assert report_main([str(old)]) == 0
    assert "| Cityscapes        |       n/a |       31.4 |        n/a |" in capsys.readouterr().out


def test_results_that_are_not_comparable_say_why(tmp_path):
    path = write_results(tmp_path / "a", dataset="cityscapes", miou=30.0, num_images=3, limit=3)
    row = paper_table(load_many([str(path)]), load_paper()).set_index("dataset").loc["Cityscapes"]
    assert row["notes"] == "--limit 3; 3 of 500 images"


def test_same_result_from_file_and_history_counts_once(tmp_path):
    from clip_surgery_seg.reporting.history import append_history

    path = write_results(tmp_path / "a", dataset="cityscapes", miou=30.0)
    append_history(tmp_path / "history.csv", json.loads(path.read_text()))
    records = load_many([str(path), str(tmp_path / "history.csv")])
    assert len(records) == 1


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    assert report_main([str(tmp_path / "nope")]) == EXIT_USAGE
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope'} does not exist"
    (tmp_path / "other.json").write_text('{"hello": 1}')
    assert report_main([str(tmp_path / "other.json")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error:") and "is not a clip-surgery-seg results file" in err and err.count("\n") == 1
    incomplete = fake_results()
    incomplete["complete"] = False
    (tmp_path / "inc.json").write_text(json.dumps(incomplete))
    assert report_main([str(tmp_path / "inc.json")]) == EXIT_USAGE
    assert "did not complete" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert report_main([str(tmp_path / "empty")]) == EXIT_USAGE
    assert "holds no metrics.json" in capsys.readouterr().err
