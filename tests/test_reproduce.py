"""tools/reproduce.py end to end on synthetic datasets with the tiny random ViT."""
from __future__ import annotations

import json

import pytest
from clip_surgery_seg.reporting.history import read_history
from clip_surgery_seg.cli.compare import main as compare_main
from clip_surgery_seg.cli.report import main as report_main
from clip_surgery_seg.cli.reproduce import main as reproduce_main
from clip_surgery_seg.engine.config import available_protocols, protocol_file
from conftest import CITYSCAPES_IMAGES, REPO, TINY_VIT

FAST = ["--model", str(TINY_VIT), "--pretrained", "none", "--quiet", "--cfg-options",
        "test_dataloader.num_workers=0", "protocol.short_side=112", "protocol.crop_size=64", "protocol.stride=32"]


@pytest.fixture
def in_repo(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CLIP_SURGERY_SEG_CACHE", str(tmp_path / "cache"))


def test_protocols_come_from_the_configs():
    assert available_protocols() == ["clearclip", "sclip"]
    protocols = REPO / "configs" / "_base_" / "protocols"
    assert protocol_file("clearclip", "ade20k") == protocols / "clearclip" / "ade20k.py"
    from clip_surgery_seg.datasets.catalog import DATASETS

    for name in available_protocols():  # every protocol has settings for every catalogue dataset
        assert {p.stem for p in (protocols / name).glob("*.py")} == set(DATASETS)


def test_reproduce_runs_what_has_data_and_reports_the_rest(in_repo, synthetic_root, tmp_path, capsys):
    # a data root holding only Cityscapes: Context-59 is missing
    root = tmp_path / "data"
    root.mkdir()
    (root / "cityscapes").symlink_to(synthetic_root / "cityscapes")
    run, history = tmp_path / "run", tmp_path / "history.csv"
    code = reproduce_main(["--datasets", "cityscapes", "context59", "--data-root", str(root), "--out", str(run),
                           "--history", str(history), "--record-any-run", *FAST])
    out = capsys.readouterr().out
    assert code == 3, out

    summary = json.loads((run / "summary.json").read_text())
    assert summary["protocol"] == "sclip" and summary["exit_code"] == 3 and summary["finished"]
    assert list(summary["datasets"]) == ["pascal_context59", "cityscapes"]  # the paper's order
    missing, ran = summary["datasets"]["pascal_context59"], summary["datasets"]["cityscapes"]
    assert missing["status"] == "missing_data" and "VOCdevkit/VOC2010 does not exist" in missing["reason"]
    assert "\n" not in missing["reason"]
    assert ran["status"] == "ran" and ran["recorded"] is True and ran["num_images"] == CITYSCAPES_IMAGES

    metrics = json.loads((run / "cityscapes" / "metrics.json").read_text())
    assert metrics["dataset"]["name"] == "cityscapes" and metrics["protocol"]["name"] == "sclip"
    assert metrics["model"]["name"] == str(TINY_VIT) and metrics["protocol"]["crop_size"] == 64
    assert not (run / "pascal_context59" / "metrics.json").exists()

    table = (run / "table.md").read_text()
    miou = metrics["summary"]["mIoU"]
    city = next(line for line in table.splitlines() if line.startswith("| Cityscapes"))
    cells = [c.strip() for c in city.split("|")[1:-1]]
    assert cells[:5] == ["Cityscapes", f"{miou:.2f}", "31.4", f"{miou - 31.4:+.2f}", "sclip"]
    assert cells[5] == "tiny-vit.json / random weights" and cells[7] == f"{CITYSCAPES_IMAGES} of 500 images"
    assert "pascal_context59: missing data: data folder" in table
    assert (run / "table.csv").is_file() and (run / "table.png").read_bytes()[:4] == b"\x89PNG"
    assert "cityscapes: mIoU" in out and "PASCAL_CONTEXT59" not in out and "pascal_context59: MISSING DATA" in out

    frame = read_history(history)
    assert list(frame["dataset"]) == ["cityscapes"] and frame["mIoU"].iloc[0] == miou

    # report.py rebuilds the same table from the run folder
    assert report_main([str(run)]) == 0
    assert city in capsys.readouterr().out
    # the history's only row is this run itself, which is never its own baseline
    assert compare_main([str(run), str(history)]) == 2
    assert "no history row matches" in capsys.readouterr().err
    # against itself: no regression
    assert compare_main([str(run), str(run)]) == 0


def test_failures_exit_1_and_smoke_runs_stay_out_of_history(in_repo, synthetic_root, tmp_path, capsys):
    history = tmp_path / "history.csv"
    code = reproduce_main(["--datasets", "cityscapes", "--data-root", str(synthetic_root), "--out",
                           str(tmp_path / "bad"), "--history", str(history), *FAST,
                           "--pretrained", str(tmp_path / "no-such-weights.pt")])
    assert code == 1
    summary = json.loads((tmp_path / "bad" / "summary.json").read_text())
    assert summary["datasets"]["cityscapes"]["status"] == "failed"
    assert "no-such-weights.pt" in summary["datasets"]["cityscapes"]["reason"]
    code = reproduce_main(["--datasets", "cityscapes", "--protocol", "clearclip", "--data-root",
                           str(synthetic_root), "--out", str(tmp_path / "smoke"), "--history", str(history),
                           "--limit", "1", *FAST])
    assert code == 0
    summary = json.loads((tmp_path / "smoke" / "summary.json").read_text())
    assert summary["protocol"] == "clearclip" and summary["datasets"]["cityscapes"]["recorded"] is False
    smoke = json.loads((tmp_path / "smoke" / "cityscapes" / "metrics.json").read_text())
    assert smoke["protocol"]["name"] == "clearclip" and smoke["dataset"]["limit"] == 1
    assert not history.exists()
    capsys.readouterr()


@pytest.mark.parametrize("args, message", [
    (["--datasets", "cityscape"], "error: unknown dataset 'cityscape'; did you mean cityscapes?"),
    (["--protocol", "clearclp"], "error: unknown protocol 'clearclp'; did you mean clearclip?"),
    (["--limit", "0"], "error: --limit must be a positive number of images"),
])
def test_bad_arguments_exit_2(in_repo, tmp_path, capsys, args, message):
    assert reproduce_main(args + ["--out", str(tmp_path / "run"), "--history", "none"]) == 2
    assert capsys.readouterr().err.strip().startswith(message)
