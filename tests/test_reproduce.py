"""tools/reproduce.py end to end on synthetic datasets with the tiny random ViT."""
from __future__ import annotations

import json

import pytest
from clip_surgery_seg.reporting.history import read_history
from clip_surgery_seg.cli.compare import main as compare_main
from clip_surgery_seg.cli.report import main as report_main
from clip_surgery_seg.cli.reproduce import main as reproduce_main
from clip_surgery_seg import protocols
from clip_surgery_seg.models.methods import METHODS
from conftest import CITYSCAPES_IMAGES, REPO, TINY_VIT
from test_html_report import Page, _table_rows

FAST = ["--model", str(TINY_VIT), "--pretrained", "none", "--quiet", "--cfg-options",
        "test_dataloader.num_workers=0", "protocol.short_side=112", "protocol.crop_size=64", "protocol.stride=32"]


@pytest.fixture
def in_repo(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CLIP_SURGERY_SEG_CACHE", str(tmp_path / "cache"))


def test_protocols_come_from_the_configs():
    """A protocol is one file; every catalogue dataset gets complete, checked settings from it, and it
    lists only datasets the catalogue knows."""
    from clip_surgery_seg.datasets.catalog import DATASETS

    folder = REPO / "configs" / "_base_" / "protocols"
    assert protocols.available() == sorted(p.stem for p in folder.glob("*.py"))
    assert protocols.DEFAULT_PROTOCOL in protocols.available()
    for name in protocols.available():
        assert set(protocols.listed_datasets(name)) <= set(DATASETS)
        for dataset in DATASETS:
            values = protocols.values(name, dataset)
            assert values["name"] == name and set(values) == set(protocols.ProtocolSettings.keys())


def test_reproduce_runs_what_has_data_and_reports_the_rest(in_repo, synthetic_root, tmp_path, capsys):
    # a data root holding only Cityscapes: Context-59 is missing
    root = tmp_path / "data"
    root.mkdir()
    (root / "cityscapes").symlink_to(synthetic_root / "cityscapes")
    run, history = tmp_path / "run", tmp_path / "history.csv"
    code = reproduce_main(["--methods", "clip_surgery", "sclip", "--datasets", "cityscapes", "context59",
                           "--data-root", str(root), "--out", str(run), "--history", str(history), "--record-any-run",
                           *FAST])
    out = capsys.readouterr().out
    assert code == 3, out

    summary = json.loads((run / "summary.json").read_text())
    assert summary["protocol"] == "sclip" and summary["exit_code"] == 3 and summary["finished"]
    assert summary["methods"] == [m for m in METHODS if m in ("sclip", "clip_surgery")]  # publication order
    assert list(summary["datasets"]) == ["pascal_context59", "cityscapes"]  # the catalogue's order
    missing, ran = summary["datasets"]["pascal_context59"], summary["datasets"]["cityscapes"]
    # missing data is reported once for the dataset, not per method
    assert missing["status"] == "missing_data" and "VOCdevkit/VOC2010 does not exist" in missing["reason"]
    assert "\n" not in missing["reason"] and missing["methods"] == {}
    assert out.count("pascal_context59: MISSING DATA") == 1
    assert ran["status"] == "ran" and ran["model_loads"] == 1  # one CLIP served both methods
    for method in ("sclip", "clip_surgery"):
        entry = ran["methods"][method]
        assert entry["status"] == "ran" and entry["recorded"] is True and entry["num_images"] == CITYSCAPES_IMAGES
        assert entry["config"] == f"configs/{method}/cityscapes.py"
        metrics = json.loads((run / method / "cityscapes" / "metrics.json").read_text())
        assert metrics["dataset"]["name"] == "cityscapes" and metrics["protocol"]["name"] == "sclip"
        assert metrics["method"]["name"] == method and metrics["protocol"]["crop_size"] == 64
        assert metrics["text"]["templates"] == {"sclip": "imagenet_80", "clip_surgery": "clip_surgery_85"}[method]
        assert metrics["model"]["name"] == str(TINY_VIT) and entry["mIoU"] == metrics["summary"]["mIoU"]
        assert f"cityscapes, {method}: mIoU {entry['mIoU']:.2f}" in out
    assert not (run / "sclip" / "pascal_context59" / "metrics.json").exists()

    table = (run / "table.md").read_text()
    assert table.startswith("mIoU (%) of each method on each dataset, protocol `sclip`")
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
             for line in table.splitlines() if line.startswith("| ") and "---" not in line}
    header = lines["method"]
    city = header.index("Cityscapes")
    for method, label in (("sclip", "SCLIP"), ("clip_surgery", "CLIP Surgery")):
        miou = ran["methods"][method]["mIoU"]
        # FAST overrides the protocol's sizes: the row says so (it is not protocol sclip's)
        assert lines[label][1:3] == ["sclip (crop_size=64, short_side=112, stride=32 overridden)",
                                     "tiny-vit.json / random weights"]
        assert lines[label][city].startswith(f"{miou:.2f} (")  # a note: only a few of 500 images
        assert lines[label][-1].startswith(f"{miou:.2f} / ") and lines[label][-1].endswith(f"(1 of {len(header) - 4})")
    assert "31.4* [" in lines["CLIP Surgery"][city]  # the paper's number, settings not published
    assert f"{CITYSCAPES_IMAGES} of 500 images" in table
    assert "pascal_context59: missing data: data folder" in table
    assert (run / "table.csv").is_file() and (run / "table.png").read_bytes()[:4] == b"\x89PNG"

    # the run's page shows the same table, each of our numbers marked as not over the full split and
    # linking to its run's report, and says which dataset did not run and why
    html = (run / "report.html").read_text(encoding="utf-8")
    rows = {row[0]: row for row in _table_rows(html)}
    column = rows["method"].index("Cityscapes")
    for method, label in (("sclip", "SCLIP"), ("clip_surgery", "CLIP Surgery")):
        miou = ran["methods"][method]["mIoU"]
        cell = rows[label][column]
        assert cell.startswith(f"{miou:.2f} / ") and cell.endswith(f"partial {CITYSCAPES_IMAGES} of 500 images")
        assert rows[label][1:3] == lines[label][1:3]
        assert f'<a class="ours" href="{method}/cityscapes/report.html">{miou:.2f}</a>' in html
    assert " / 31.4* [" in rows["CLIP Surgery"][column]
    text = Page(html).text
    assert "PASCAL Context-59" in text and any(t.startswith("missing data: data folder") for t in text)

    frame = read_history(history)
    order = summary["methods"]
    assert list(frame["dataset"]) == ["cityscapes"] * 2 and list(frame["method"]) == order
    assert list(frame["mIoU"]) == [ran["methods"][m]["mIoU"] for m in order]

    # report.py rebuilds the same table from the run folder, and from the history
    assert report_main([str(run)]) == 0
    rebuilt = capsys.readouterr().out
    assert [line for line in table.splitlines() if line.startswith("| SCLIP")][0] in rebuilt
    assert report_main([str(history), "--format", "csv"]) == 0
    assert (run / "table.csv").read_text() == capsys.readouterr().out
    # the history's only rows are this run's, which are never their own baseline
    assert compare_main([str(run), str(history)]) == 2
    assert "no history row matches" in capsys.readouterr().err
    # against itself: no regression, each method against its own
    assert compare_main([str(run), str(run)]) == 0
    assert "== cityscapes (method sclip, protocol sclip)" in capsys.readouterr().out


@pytest.mark.slow
def test_one_model_load_gives_the_numbers_of_separate_runs(in_repo, synthetic_root, tmp_path, capsys):
    """The shared CLIP changes nothing: each method's numbers equal a tools/eval.py run of its config."""
    from clip_surgery_seg.cli.eval import main as eval_main

    run = tmp_path / "run"
    assert reproduce_main(["--datasets", "cityscapes", "--data-root", str(synthetic_root), "--out", str(run),
                           "--history", "none", *FAST]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["methods"] == list(METHODS)
    assert summary["datasets"]["cityscapes"]["model_loads"] == 1
    for method in ("maskclip", "naclip"):
        alone = tmp_path / method
        args = ["configs/cityscapes.py", "--method", method, "--data-root", str(synthetic_root), "--work-dir",
                str(alone), *FAST]
        assert eval_main(args) == 0
        ours = json.loads((run / method / "cityscapes" / "metrics.json").read_text())
        theirs = json.loads((alone / "metrics.json").read_text())
        assert ours["per_class"] == theirs["per_class"] and ours["config_hash"] == theirs["config_hash"]
    capsys.readouterr()


def test_failures_exit_1_and_smoke_runs_stay_out_of_history(in_repo, synthetic_root, tmp_path, capsys):
    history = tmp_path / "history.csv"
    code = reproduce_main(["--methods", "sclip", "--datasets", "cityscapes", "--data-root", str(synthetic_root),
                           "--out", str(tmp_path / "bad"), "--history", str(history), *FAST,
                           "--pretrained", str(tmp_path / "no-such-weights.pt")])
    assert code == 1
    summary = json.loads((tmp_path / "bad" / "summary.json").read_text())
    assert summary["datasets"]["cityscapes"]["status"] == "failed"
    assert summary["datasets"]["cityscapes"]["methods"]["sclip"]["status"] == "failed"
    assert "no-such-weights.pt" in summary["datasets"]["cityscapes"]["methods"]["sclip"]["reason"]
    assert "cityscapes, sclip: failed:" in (tmp_path / "bad" / "table.md").read_text()
    code = reproduce_main(["--methods", "clip_surgery", "--datasets", "cityscapes", "--protocol", "clearclip",
                           "--data-root", str(synthetic_root), "--out", str(tmp_path / "smoke"), "--history",
                           str(history), "--limit", "1", *FAST])
    assert code == 0
    summary = json.loads((tmp_path / "smoke" / "summary.json").read_text())
    assert summary["protocol"] == "clearclip"
    assert summary["datasets"]["cityscapes"]["methods"]["clip_surgery"]["recorded"] is False
    smoke = json.loads((tmp_path / "smoke" / "clip_surgery" / "cityscapes" / "metrics.json").read_text())
    assert smoke["protocol"]["name"] == "clearclip" and smoke["dataset"]["limit"] == 1
    assert not history.exists()
    capsys.readouterr()


@pytest.mark.parametrize("args, message", [
    (["--datasets", "cityscape"], "error: unknown dataset 'cityscape'; did you mean cityscapes?"),
    (["--protocol", "clearclp"], "error: unknown protocol 'clearclp'; did you mean clearclip?"),
    (["--limit", "0"], "error: --limit must be a positive number of images"),
    (["--methods", "sclip", "naclp"], "error: unknown method 'naclp'; did you mean naclip"),
])
def test_bad_arguments_exit_2(in_repo, tmp_path, capsys, args, message):
    assert reproduce_main(args + ["--out", str(tmp_path / "run"), "--history", "none"]) == 2
    assert capsys.readouterr().err.strip().startswith(message)


@pytest.mark.slow
def test_native_protocol_runs_each_method_under_its_own(in_repo, synthetic_root, tmp_path, capsys):
    """--protocol native: NACLIP under naclip with PAMR (its README's numbers), SCLIP under sclip, CLIP
    Surgery (settings never published) under the default; NACLIP's VOC21 cell then sits beside the
    published number of the same settings."""
    from clip_surgery_seg.reporting.paper import load_paper, published_for

    run = tmp_path / "run"
    small = ["--model", str(TINY_VIT), "--pretrained", "none", "--quiet", "--cfg-options",
             "test_dataloader.num_workers=0"]
    assert reproduce_main(["--protocol", "native", "--methods", "naclip", "sclip", "clip_surgery", "--datasets",
                           "voc21", "--data-root", str(synthetic_root), "--out", str(run), "--history", "none",
                           *small]) == 0
    summary = json.loads((run / "summary.json").read_text())
    runs = summary["datasets"]["voc21"]["methods"]
    assert summary["protocol"] == "native"
    assert {m: r["protocol"] for m, r in runs.items()} == {"naclip": "naclip", "sclip": "sclip", "clip_surgery": "sclip"}
    naclip = json.loads((run / "naclip" / "voc21" / "metrics.json").read_text())
    assert naclip["protocol"]["name"] == "naclip" and naclip["protocol"]["crop_size"] is None  # the whole image
    assert naclip["method"]["postprocess"] == {"type": "pamr", "num_iter": 10, "dilations": [8, 16]}
    assert naclip["protocol"]["overridden"] == []
    sclip = json.loads((run / "sclip" / "voc21" / "metrics.json").read_text())
    assert sclip["method"]["postprocess"] is None and sclip["protocol"]["area_threshold"] == 0.1
    published, _ = published_for(load_paper(), "naclip", "voc21", "naclip", "pamr")
    assert published.text == "64.07" and published.protocol == "naclip"
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.split("|")[1:-1]]
                                          for line in (run / "table.md").read_text().splitlines()
                                          if line.startswith("| ") and "---" not in line)}
    assert rows["NACLIP + PAMR"][1] == "naclip" and rows["SCLIP"][1] == "sclip" and rows["CLIP Surgery"][1] == "sclip"
    capsys.readouterr()


@pytest.mark.slow
def test_several_backbones_one_load_each_one_block_each(in_repo, synthetic_root, tmp_path, capsys):
    from conftest import ASSETS

    run = tmp_path / "run"
    p14 = ASSETS / "tiny-vit-p14.json"
    assert reproduce_main(["--models", str(TINY_VIT), str(p14), "--methods", "vanilla", "sclip", "--datasets",
                           "ade20k", "cityscapes", "--data-root", str(synthetic_root), "--out", str(run),
                           "--history", "none", "--pretrained", "none", "--quiet", "--cfg-options",
                           "test_dataloader.num_workers=0", "protocol.short_side=84", "protocol.crop_size=70",
                           "protocol.stride=35"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model_loads"] == {str(TINY_VIT): 1, str(p14): 1}  # one load per backbone, whole run
    assert set(summary["datasets"]["ade20k"]["methods"]) == {"tiny-vit/vanilla", "tiny-vit/sclip",
                                                           "tiny-vit-p14/vanilla", "tiny-vit-p14/sclip"}
    for key in summary["datasets"]["ade20k"]["methods"]:
        assert (run / key / "ade20k" / "metrics.json").is_file()
    table = (run / "table.md").read_text()
    assert table.count("### ") == 2 and "### tiny-vit.json / random weights" in table
    assert "### tiny-vit-p14.json / random weights" in table
    capsys.readouterr()
