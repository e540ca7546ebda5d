"""tools/report.py, the methods x datasets table and results/paper.csv, on fabricated results files."""
from __future__ import annotations

import io
import itertools
import json
import math
import re
from pathlib import Path
from typing import Dict, Optional, Sequence

import pandas as pd
import pytest

from clip_surgery_seg import resources
from clip_surgery_seg.cli import EXIT_USAGE
from clip_surgery_seg.cli.report import main as report_main
from clip_surgery_seg.datasets.catalog import DATASETS, label
from clip_surgery_seg.protocols import available as available_protocols
from clip_surgery_seg.results import SCHEMA, SCHEMA_V1
from clip_surgery_seg.models.methods import METHODS
from clip_surgery_seg.reporting.paper import PAPER_COLUMNS, load_paper, methods_table, published_for
from clip_surgery_seg.reporting.records import load_many
from conftest import REPO

EXPECTED_IMAGES = {"ade20k": 2000, "coco_stuff171": 5000, "cityscapes": 500, "pascal_context59": 5104}
CLASSES = {"wall": 40.0, "floor": 20.0, "sky": 30.0}
# the field's eight benchmarks, as results/paper.csv and the configs name them
BENCHMARKS = DATASETS  # the catalogue's


def fake_results(dataset: str = "ade20k", miou: Optional[float] = None, per_class: Optional[Dict[str, float]] = None,
                 protocol: str = "sclip", created: str = "2025-01-02T03:04:05+00:00", model: str = "ViT-B-16",
                 pretrained: Optional[str] = "openai", commit: str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
                 config_hash: str = "c0ffee" * 10, num_images: Optional[int] = None, limit: Optional[int] = None,
                 skipped: Sequence[str] = (), wall_s: float = 12.5, method: Optional[str] = "clip_surgery",
                 postprocess: Optional[str] = None) -> dict:
    """A results dict in the ``metrics.json`` schema, with the numbers a test chooses (``method=None``:
    a version-1 file from before methods were recorded)."""
    per_class = dict(CLASSES if per_class is None else per_class)
    values = [v for v in per_class.values() if not math.isnan(v)]
    if miou is None:
        miou = round(sum(values) / len(values), 2)
    expected = EXPECTED_IMAGES.get(dataset, 100)
    settings = {"name": protocol, "short_side": 336, "crop_size": 224, "stride": 112}
    sections = {"protocol": {**settings, "overridden": []},
                "method": {"name": method, "params": {}, "postprocess": {"type": postprocess} if postprocess else None},
                "text": {"templates": "imagenet_80", "classnames": f"configs/classnames/{dataset}.txt"}}
    if method is None:  # v1: the protocol section held all there was
        sections = {"protocol": settings}
    return {
        "schema": SCHEMA if method is not None else SCHEMA_V1, "created": created, "complete": True,
        "partial": bool(skipped), **sections,
        "dataset": {"name": dataset, "type": "X", "data_root": "/data", "expected_images": expected,
                    "num_images": expected if num_images is None else num_images,
                    "num_classes": len(per_class), "limit": limit},
        "summary": {"aAcc": 70.0, "mIoU": miou, "mAcc": 50.0},
        "per_class": [{"class": c, "IoU": v, "Acc": v, "intersect": 1, "union": 2, "pred_area": 1, "label_area": 1}
                      for c, v in per_class.items()],
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


# --- results/paper.csv -------------------------------------------------------------------------------

def test_paper_csv_columns_and_values():
    paper = load_paper()
    assert resources.paper_csv().read_text().splitlines()[0] == ",".join(PAPER_COLUMNS)
    assert set(paper["method"]) <= set(METHODS) and set(paper["dataset"]) <= set(BENCHMARKS)
    assert set(paper["verified"]) <= {"yes", "no"} and set(paper["postprocess"]) <= {"none", "pamr"}
    assert set(paper["protocol"]) <= set(available_protocols()) | {"not published"}
    assert (paper["model"] == "ViT-B/16").all() and (paper["weights"] == "openai").all()
    assert paper["mIoU"].between(0, 100).all() and (paper["source"] != "").all() and (paper["settings"] != "").all()
    # one number per method, dataset, source and settings
    assert not paper.duplicated(["method", "dataset", "source", "protocol", "postprocess"]).any()
    # the numbers this harness started from are kept
    surgery = paper[paper["method"] == "clip_surgery"].set_index("dataset")["mIoU"].to_dict()
    assert surgery == {"pascal_context59": 29.3, "coco_stuff171": 21.9, "cityscapes": 31.4, "ade20k": 12.9}
    clearclip_reported = paper[(paper["protocol"] == "clearclip") & (paper["method"] == "vanilla")]
    assert clearclip_reported.set_index("dataset")["mIoU"].to_dict() == {
        "pascal_context59": 9.2, "coco_stuff171": 4.4, "cityscapes": 5.5, "ade20k": 2.1}


README_DATASETS = {"VOC21": "voc21", "Context-60": "pascal_context60", "Object": "coco_object", "VOC20": "voc20",
                   "Context-59": "pascal_context59", "Stuff": "coco_stuff171", "Cityscapes": "cityscapes",
                   "ADE20K": "ade20k"}


def _readme_table():
    """The README's published-numbers table: {(method, postprocess): {column: cell}}."""
    text = (REPO / "README.md").read_text()
    start = text.index("| published (ViT-B/16) |")
    lines = list(itertools.takewhile(lambda line: line.startswith("|"), text[start:].splitlines()))
    header = [c.strip() for c in lines[0].split("|")[1:-1]]
    rows = {}
    labels = {cls.label: name for name, cls in METHODS.items()}
    for line in lines[2:]:
        cells = [c.strip() for c in line.split("|")[1:-1]]
        name, _, step = cells[0].partition(" + ")
        rows[(labels[name], step.lower() or None)] = dict(zip(header[1:], cells[1:]))
    return header, rows


def test_readme_published_table_is_paper_csv():
    """Every cell of the README's table is what the harness shows beside a default (sclip, no
    post-processing) run: the number, `*` when published under other settings, `?` when unverified."""
    header, rows = _readme_table()
    assert header[1:] == list(README_DATASETS) + ["average"]
    paper = load_paper()
    assert {m for m, _ in rows} == set(METHODS)
    for (method, step), cells in rows.items():
        values = []
        for column, dataset in README_DATASETS.items():
            published, same = published_for(paper, method, dataset, "sclip", step)
            if published is None:
                assert cells[column] == "–", (method, dataset)
                continue
            number, elsewhere, unverified = re.fullmatch(r"(\d+\.\d+)(\*?)(\??)", cells[column]).groups()
            assert float(number) == published.mIoU and number == published.text, (method, dataset)
            assert (elsewhere == "*") != same and (unverified == "?") != published.verified, (method, dataset)
            values.append(published.mIoU)
        if not values:  # a method whose numbers were not found as text (ResCLIP)
            assert cells["average"] == "–", method
            continue
        average = f"{sum(values) / len(values):.2f}" + ("" if len(values) == 8 else f" ({len(values)} of 8)")
        assert cells["average"] == average, method
    # and every method x dataset number of paper.csv has its cell
    shown = {(m, d) for (m, _), cells in rows.items() for c, d in README_DATASETS.items() if cells[c] != "–"}
    assert set(zip(paper["method"], paper["dataset"])) <= shown


def _paper(tmp_path, rows):
    path = tmp_path / "paper.csv"
    lines = [",".join(PAPER_COLUMNS)]
    for method, dataset, miou, protocol, postprocess, verified in rows:
        lines.append(f"{dataset},{method},ViT-B/16,openai,{miou},{protocol},{postprocess},src {miou},"
                     f"table,settings,{verified},")
    path.write_text("\n".join(lines) + "\n")
    return load_paper(path)


def test_published_number_of_the_same_settings_first(tmp_path):
    paper = _paper(tmp_path, [("sclip", "ade20k", 10.0, "clearclip", "none", "yes"),
                              ("sclip", "ade20k", 11.0, "sclip", "none", "no"),
                              ("sclip", "ade20k", 12.0, "sclip", "none", "yes"),
                              ("sclip", "ade20k", 13.0, "sclip", "pamr", "yes"),
                              ("naclip", "ade20k", 20.0, "sclip", "pamr", "no"),
                              ("naclip", "ade20k", 21.0, "sclip", "pamr", "yes")])
    value = lambda *args: (published_for(paper, *args)[0].mIoU, published_for(paper, *args)[1])  # noqa: E731
    assert value("sclip", "ade20k", "sclip", None) == (12.0, True)  # verified before unverified
    assert value("sclip", "ade20k", "sclip", "pamr") == (13.0, True)
    assert value("sclip", "ade20k", "clearclip", "none") == (10.0, True)
    assert value("naclip", "ade20k", "sclip", None) == (21.0, False)  # elsewhere: verified first
    assert value("naclip", "ade20k", "clearclip", "pamr") == (21.0, False)
    assert published_for(paper, "vanilla", "ade20k", "sclip", None) == (None, False)


def test_bad_paper_files_are_one_line_errors(tmp_path, capsys):
    run = tmp_path / "run"
    write_results(run / "ade20k")
    (tmp_path / "few.csv").write_text("dataset,method,mIoU\nade20k,sclip,1\n")
    assert report_main([str(run), "--paper", str(tmp_path / "few.csv")]) == EXIT_USAGE
    assert "lacks the column(s) model, weights" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text(",".join(PAPER_COLUMNS) + "\nade20k,sclip,ViT-B/16,openai,high,sclip,none,s,t,"
                                      "x,yes,\n")
    assert report_main([str(run), "--paper", str(tmp_path / "bad.csv")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 2: mIoU 'high' is not a number" in err


# --- the methods x datasets table ----------------------------------------------------------------------

OURS = {("sclip", "pascal_context59"): 30.12, ("sclip", "cityscapes"): 31.4, ("clip_surgery", "pascal_context59"): 20.0,
        ("clip_surgery", "coco_stuff171"): 21.0, ("clip_surgery", "cityscapes"): 22.5, ("clip_surgery", "ade20k"): 13.55}


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A reproduce-style run folder: CLIP Surgery on all four datasets, SCLIP on two."""
    run = tmp_path / "run"
    for (method, name), miou in OURS.items():
        write_results(run / method / name, dataset=name, miou=miou, method=method)
    return run


def test_table_rows_cells_and_average(run_dir):
    paper = load_paper()
    table = methods_table(load_many([str(run_dir)]), paper)
    assert table.datasets[:len(DATASETS)] == list(DATASETS)
    assert [row.method for row in table.rows] == [m for m in METHODS if m in ("sclip", "clip_surgery")]
    for row in table.rows:
        assert row.protocol == "sclip" and row.model == "ViT-B-16 / openai" and row.postprocess is None
        have = [d for d in table.datasets if (row.method, d) in OURS]
        for dataset in table.datasets:
            cell = row.cells[dataset]
            ours = OURS.get((row.method, dataset))
            assert (math.isnan(cell.ours) if ours is None else cell.ours == ours)
            assert (cell.published, cell.same_settings) == published_for(paper, row.method, dataset, "sclip", None)
        ours, published, count = row.average(table.datasets)
        assert count == len(have) and ours == pytest.approx(sum(OURS[(row.method, d)] for d in have) / len(have))
        assert published == pytest.approx(sum(row.cells[d].published.mIoU for d in have) / len(have))


def test_markdown_table(run_dir, capsys):
    assert report_main([str(run_dir)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = [c.strip() for c in lines[0].split("|")[1:-1]]
    assert header == ["method", "protocol", "model"] + [label(d) for d in DATASETS] + ["average"]
    assert lines[1].startswith("|---") and "-:|" in lines[1]
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.split("|")[1:-1]] for line in lines[2:4])}
    paper = load_paper()
    surgery = rows["CLIP Surgery"]
    city = header.index(label("cityscapes"))
    published, same = published_for(paper, "clip_surgery", "cityscapes", "sclip", None)
    assert not same and re.fullmatch(rf"22\.50 / {re.escape(published.text)}\* \[[a-z]\]", surgery[city])
    sclip = rows["SCLIP"]
    published, same = published_for(paper, "sclip", "cityscapes", "sclip", None)
    assert same and re.fullmatch(rf"31\.40 / {re.escape(published.text)} \[[a-z]\]", sclip[city])
    assert sclip[header.index(label("ade20k"))].startswith("n/a / ")
    assert sclip[-1].endswith(f"(2 of {len(DATASETS)})")
    assert "Published numbers (results/paper.csv):" in out and "arXiv:2304.05653" in out
    assert "`*`: published under other settings" in out


def test_csv_table_and_plot(run_dir, tmp_path, capsys):
    plot = tmp_path / "bars.png"
    assert report_main([str(run_dir), "--format", "csv", "--plot", str(plot)]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out)).set_index("method")
    assert list(table.index) == [m for m in METHODS if m in ("sclip", "clip_surgery")]
    assert table.loc["sclip", "cityscapes"] == 31.4 and math.isnan(table.loc["sclip", "ade20k"])
    assert table.loc["clip_surgery", "ade20k published"] == 12.9
    assert not table.loc["clip_surgery", "ade20k published same settings"]
    assert table.loc["sclip", "average"] == round((30.12 + 31.4) / 2, 2) and table.loc["sclip", "average datasets"] == 2
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000


def test_rows_per_protocol_and_post_processing(tmp_path):
    runs = [("naclip", "sclip", None, 30.0), ("naclip", "sclip", "pamr", 31.0), ("naclip", "clearclip", None, 29.0)]
    paths = [write_results(tmp_path / f"r{i}", dataset="ade20k", method=m, protocol=p, postprocess=s, miou=v,
                           config_hash=f"{i}" * 64) for i, (m, p, s, v) in enumerate(runs)]
    table = methods_table(load_many([str(p) for p in paths]), load_paper())
    assert [(r.label, r.protocol, r.cells["ade20k"].ours) for r in table.rows] == [
        ("NACLIP", "clearclip", 29.0), ("NACLIP", "sclip", 30.0), ("NACLIP + PAMR", "sclip", 31.0)]
    paper = load_paper()
    for row in table.rows:
        assert (row.cells["ade20k"].published, row.cells["ade20k"].same_settings) == published_for(
            paper, "naclip", "ade20k", row.protocol, row.postprocess)


def test_newest_result_per_cell(tmp_path):
    old = write_results(tmp_path / "old", dataset="ade20k", miou=10.0, created="2025-01-01T00:00:00+00:00")
    new = write_results(tmp_path / "new", dataset="ade20k", miou=12.0, created="2025-02-01T00:00:00+00:00",
                        config_hash="beef" * 16)
    table = methods_table(load_many([str(old), str(new)]), load_paper())
    cell = table.rows[0].cells["ade20k"]
    assert len(table.rows) == 1 and cell.ours == 12.0 and cell.notes == ["newest of 2 results"]


def test_results_that_are_not_comparable_say_why(tmp_path, capsys):
    path = write_results(tmp_path / "a", dataset="cityscapes", miou=30.0, num_images=3, limit=3)
    assert methods_table(load_many([str(path)]), load_paper()).rows[0].cells["cityscapes"].notes == [
        "--limit 3", "3 of 500 images"]
    assert report_main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "30.00 (1) / " in out and "- (1) CLIP Surgery (sclip), Cityscapes: --limit 3; 3 of 500 images" in out


def test_files_from_before_methods_are_clip_surgery(tmp_path):
    path = write_results(tmp_path / "a", dataset="cityscapes", miou=30.0, method=None)
    assert load_many([str(path)])[0].method == "clip_surgery"


def test_same_result_from_file_and_history_counts_once(tmp_path):
    from clip_surgery_seg.reporting.history import append_history

    path = write_results(tmp_path / "a", dataset="cityscapes", miou=30.0)
    append_history(tmp_path / "history.csv", json.loads(path.read_text()))
    records = load_many([str(path), str(tmp_path / "history.csv")])
    assert len(records) == 1


def test_table_from_the_history(tmp_path, capsys):
    from clip_surgery_seg.reporting.history import append_history

    history = tmp_path / "history.csv"
    for i, ((method, name), miou) in enumerate(OURS.items()):
        append_history(history, fake_results(dataset=name, miou=miou, method=method,
                                             created=f"2025-01-01T00:00:{i:02d}+00:00"))
    assert report_main([str(history), "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out)).set_index("method")
    for (method, name), miou in OURS.items():
        assert table.loc[method, name] == miou
    assert report_main([f"{history}:method=sclip", "--format", "csv"]) == 0
    assert list(pd.read_csv(io.StringIO(capsys.readouterr().out))["method"]) == ["sclip"]


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
