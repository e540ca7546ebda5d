"""tools/report.py, the methods x datasets table and results/paper.csv, on fabricated results files."""
from __future__ import annotations

import io
from decimal import ROUND_HALF_UP, Decimal
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
from clip_surgery_seg.reporting.paper import PAPER_COLUMNS, load_paper, methods_table, published_for, published_mean
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
                 postprocess: Optional[str] = None, overridden: Optional[Dict[str, object]] = None,
                 weights_sha256: Optional[str] = None, seed: Optional[int] = None,
                 model_config_sha256: Optional[str] = None) -> dict:
    """A results dict in the ``metrics.json`` schema, with the numbers a test chooses (``method=None``:
    a version-1 file from before methods were recorded; ``overridden``: protocol settings set to other
    values than the protocol's, recorded as overridden)."""
    per_class = dict(CLASSES if per_class is None else per_class)
    values = [v for v in per_class.values() if not math.isnan(v)]
    if miou is None:
        miou = round(sum(values) / len(values), 2)
    expected = EXPECTED_IMAGES.get(dataset, 100)
    settings = {"name": protocol, "short_side": 336, "crop_size": 224, "stride": 112, **(overridden or {})}
    sections = {"protocol": {**settings, "overridden": sorted(overridden or {})},
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
        "model": {"name": model, "pretrained": pretrained, "sha256": weights_sha256, "seed": seed, "quick_gelu": None,
                  **({"config_sha256": model_config_sha256, "precision": "fp32"} if method is not None else {})},
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
    assert set(paper["protocol"]) <= set(available_protocols()) | {"unpublished", "not stated"}
    assert set(paper["model"]) <= {"ViT-B/16", "ViT-L/14"} and (paper["weights"] == "openai").all()
    assert paper["mIoU"].between(0, 100).all() and (paper["source"] != "").all() and (paper["settings"] != "").all()
    # one number per method, dataset, source and settings
    assert not paper.duplicated(["method", "dataset", "model", "source", "protocol", "postprocess"]).any()
    # the numbers this harness started from are kept
    surgery = paper[paper["method"] == "clip_surgery"].set_index("dataset")["mIoU"].to_dict()
    assert surgery == {"pascal_context59": 29.3, "pascal_context60": 29.3, "coco_stuff171": 21.9, "cityscapes": 31.4,
                       "ade20k": 12.9}
    # CLIP Surgery's own numbers were made under settings never published: no harness protocol claims them
    assert set(paper[paper["method"] == "clip_surgery"]["protocol"]) == {"unpublished"}
    # NACLIP's README numbers are its current configs' (protocol naclip), with PAMR
    readme = paper[paper["source"].str.startswith("NACLIP README") & (paper["protocol"] == "naclip")]
    assert len(readme) == 8 and set(readme["postprocess"]) == {"pamr"} and set(readme["verified"]) == {"yes"}
    clearclip_reported = paper[(paper["protocol"] == "clearclip") & (paper["method"] == "vanilla")]
    assert clearclip_reported.set_index("dataset")["mIoU"].to_dict() == {
        "voc20": 41.8, "pascal_context59": 9.2, "coco_stuff171": 4.4, "cityscapes": 5.5, "ade20k": 2.1}


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
        values, shown_numbers = [], []
        for column, dataset in README_DATASETS.items():
            published, same = published_for(paper, method, dataset, "sclip", step)
            if published is None:
                assert cells[column] == "–", (method, dataset)
                continue
            number, elsewhere, unverified = re.fullmatch(r"(\d+\.\d+)(\*?)(\??)", cells[column]).groups()
            assert float(number) == published.mIoU and number == published.text, (method, dataset)
            assert (elsewhere == "*") != same and (unverified == "?") != published.verified, (method, dataset)
            values.append(published.mIoU)
            shown_numbers.append(published)
        if not values:  # a method paper.csv has no number for yet
            assert cells["average"] == "–", method
            continue
        average = f"{published_mean(shown_numbers):.2f}" + ("" if len(values) == 8 else f" ({len(values)} of 8)")
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
        # the published mean as papers print it: exact on the printed decimals, rounded half up
        exact = sum(Decimal(row.cells[d].published.text) for d in have) / len(have)
        assert published == float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
        assert published == pytest.approx(sum(row.cells[d].published.mIoU for d in have) / len(have), abs=0.005)


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
    assert "Published numbers (results/paper.csv):" in out and "xmed-lab/CLIP_Surgery" in out
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


# --- same settings: protocol values, model and weights (issue 20) ---------------------------------------

OPENAI_VIT_B_16 = "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"


def test_a_run_with_overridden_protocol_settings_is_not_the_protocols(tmp_path, capsys):
    """Still named sclip, but short_side was overridden: a row of its own, its published numbers marked *."""
    from clip_surgery_seg.reporting.history import append_history

    plain = write_results(tmp_path / "plain", method="sclip", miou=16.0)
    over = write_results(tmp_path / "over", method="sclip", miou=17.5, overridden={"short_side": 448},
                         config_hash="ab" * 32, created="2025-03-01T00:00:00+00:00")
    assert report_main([str(plain), str(over)]) == 0
    out = capsys.readouterr().out
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in out.splitlines() if line.startswith("| SCLIP")]
    assert [c[:3] for c in cells] == [["SCLIP", "sclip", "ViT-B-16 / openai"],
                                      ["SCLIP", "sclip (short_side=448 overridden)", "ViT-B-16 / openai"]]
    ade = 3 + list(DATASETS).index("ade20k")
    assert re.fullmatch(r"16\.00 / 16\.45 \[[a-z]\]", cells[0][ade])
    assert re.fullmatch(r"17\.50 / 16\.45\* \[[a-z]\]", cells[1][ade])
    assert ("SCLIP (sclip (short_side=448 overridden), ViT-B-16 / openai): published numbers marked `*`: "
            "protocol sclip (short_side=448 overridden)") in out
    paper = load_paper()
    for specs in ([str(plain), str(over)], None):
        if specs is None:  # the same from the history, whose protocol_settings record "overridden"
            history = tmp_path / "history.csv"
            for path in (plain, over):
                append_history(history, json.loads(path.read_text()))
            specs = [f"{history}@-1", f"{history}@-2"]
        records = load_many(specs)
        assert sorted(r.overridden for r in records) == [(), ("short_side",)]
        table = methods_table(records, paper)
        rows = {row.protocol_label: row for row in table.rows}
        assert list(rows) == ["sclip", "sclip (short_side=448 overridden)"]
        plain_cell, over_cell = rows["sclip"].cells["ade20k"], rows["sclip (short_side=448 overridden)"].cells["ade20k"]
        assert (plain_cell.ours, plain_cell.published.mIoU, plain_cell.same_settings) == (16.0, 16.45, True)
        assert (over_cell.ours, over_cell.published.mIoU, over_cell.same_settings) == (17.5, 16.45, False)
        assert rows["sclip (short_side=448 overridden)"].differences == ["protocol sclip (short_side=448 overridden)"]
        assert rows["sclip"].differences == []
    assert published_for(paper, "sclip", "ade20k", "sclip", None, overridden=["short_side"])[1] is False
    assert report_main([str(plain), str(over), "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out), keep_default_na=False)
    assert list(table["overridden"]) == ["", "short_side=448"]
    assert list(table["ade20k published same settings"]) == [True, False]


@pytest.mark.parametrize("model, pretrained, sha256, same", [
    ("ViT-B-16", "openai", None, True),
    ("ViT-B/16", "openai", None, True),  # OpenAI's spelling, as paper.csv has it
    ("ViT-B-16", "/cache/ViT-B-16.pt", OPENAI_VIT_B_16, True),  # OpenAI's released file
    ("RN50", "openai", None, False),
    ("ViT-L-14", "openai", None, False),
    ("ViT-B-16", "laion2b_s34b_b88k", None, False),
    ("ViT-B-16", "/w/finetuned.pt", "ab" * 32, False),
    ("ViT-B-16", None, None, False),  # random weights
])
def test_published_numbers_are_for_openai_vit_b_16(tmp_path, model, pretrained, sha256, same):
    path = write_results(tmp_path / "r", method="sclip", model=model, pretrained=pretrained, weights_sha256=sha256,
                         miou=16.0)
    record = load_many([str(path)])[0]
    table = methods_table([record], load_paper())
    cell = table.rows[0].cells["ade20k"]
    assert cell.published.mIoU == 16.45 and cell.same_settings is same
    weights = {None: "random", "openai": "openai", "laion2b_s34b_b88k": "laion2b_s34b_b88k"}.get(
        pretrained, "openai" if sha256 == OPENAI_VIT_B_16 else f"file sha256 {str(sha256)[:12]}")
    assert table.rows[0].differences == ([] if same else
                                         [f"model {model} / {weights}, published for ViT-B/16 / openai"])
    assert published_for(load_paper(), "sclip", "ade20k", "sclip", None, model=model,
                         weights=record.weights)[1] is same
