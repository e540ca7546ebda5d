"""The history file: what gets in, concurrent appends, selections, and tools/history.py."""
from __future__ import annotations

import json
import math
import multiprocessing
from pathlib import Path

import pandas as pd
import pytest
from clip_surgery_seg.reporting.history import (HISTORY_COLUMNS, HistoryError, append_history, history_row,
                                                parse_selection, per_class_iou, read_history, select_rows)
from clip_surgery_seg.cli.history import main as history_main
from conftest import eval_args
from test_report import fake_results


def test_a_row_per_result_with_per_class_iou(tmp_path):
    path = tmp_path / "history.csv"
    results = fake_results(dataset="cityscapes", per_class={"road": 90.5, "wall": float("nan"), "sky": 0.0},
                           miou=45.25, commit="0123abcd" * 5, wall_s=33.3)
    assert append_history(path, results) is True
    assert path.read_text().splitlines()[0] == ",".join(HISTORY_COLUMNS)
    frame = read_history(path)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["dataset"] == "cityscapes" and row["protocol"] == "sclip" and row["mIoU"] == 45.25
    assert row["time"] == pd.Timestamp("2025-01-02T03:04:05Z") and row["wall_s"] == 33.3
    assert row["code_version"] == "0123abcd0123" and row["git_commit"] == "0123abcd" * 5
    assert row["model"] == "ViT-B-16" and row["pretrained"] == "openai" and row["num_images"] == 500
    assert row["config_hash"] == "c0ffee" * 10
    iou = per_class_iou(row)
    assert iou["road"] == 90.5 and iou["sky"] == 0.0 and math.isnan(iou["wall"])
    assert json.loads(row["per_class_iou"])["wall"] is None  # NaN is stored as JSON null


def test_commits_that_look_like_numbers_stay_text(tmp_path):
    path = tmp_path / "history.csv"
    append_history(path, fake_results(commit="1234567e12" + "0" * 30, config_hash="00012"))
    row = read_history(path).iloc[0]
    assert row["git_commit"] == "1234567e12" + "0" * 30 and row["config_hash"] == "00012"


@pytest.mark.parametrize("change, reason", [({"limit": 5}, "--limit 5 smoke run"),
                                            ({"skipped": ["a.jpg"]}, "partial (1 files skipped)")])
def test_smoke_and_partial_runs_are_not_recorded(tmp_path, caplog, change, reason):
    path = tmp_path / "history.csv"
    with caplog.at_level("WARNING", logger="clip_surgery_seg"):
        assert append_history(path, fake_results(**change)) is False
    assert not path.exists()
    assert reason in caplog.text


def test_not_a_results_dict_is_an_error(tmp_path):
    with pytest.raises(HistoryError, match="not a clip-surgery-seg results dict"):
        append_history(tmp_path / "history.csv", {"schema": "other"})


def _append_many(path: str, writer: int, count: int, go) -> None:
    go.wait()
    for i in range(count):
        append_history(path, fake_results(config_hash=f"w{writer}-{i:04d}", miou=float(i),
                                          created=f"2025-01-01T00:{i // 60:02d}:{i % 60:02d}+00:00"))


def test_concurrent_appends_lose_nothing(tmp_path):
    path = tmp_path / "history.csv"
    count = 200
    # fork: the children share this process's imports, and flock sees them as separate processes
    context = multiprocessing.get_context("fork")
    go = context.Event()
    writers = [context.Process(target=_append_many, args=(str(path), w, count, go)) for w in (1, 2)]
    for process in writers:
        process.start()
    go.set()
    for process in writers:
        process.join(timeout=120)
        assert process.exitcode == 0
    lines = path.read_text().splitlines()
    assert lines.count(",".join(HISTORY_COLUMNS)) == 1 and len(lines) == 1 + 2 * count
    frame = read_history(path)
    assert sorted(frame["config_hash"]) == sorted(f"w{w}-{i:04d}" for w in (1, 2) for i in range(count))
    assert frame["mIoU"].notna().all() and frame["per_class_iou"].map(lambda t: len(json.loads(t))).eq(3).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv", "history.csv.lock"]  # no temp files


def test_files_from_before_the_method_column(tmp_path, capsys):
    """Rows written before methods were recorded are CLIP Surgery's; appending keeps them."""
    path = tmp_path / "history.csv"
    old = [c for c in HISTORY_COLUMNS if c not in ("method", "postprocess")]
    row = dict(history_row(fake_results(miou=11.0, created="2024-12-01T00:00:00+00:00")))
    path.write_text(",".join(old) + "\n" + ",".join(_csv_cell(row[c]) for c in old) + "\n")
    frame = read_history(path)
    assert list(frame["method"]) == ["clip_surgery"] and list(frame["postprocess"]) == [""]
    append_history(path, fake_results(miou=12.0, method="sclip"))
    frame = read_history(path)
    assert path.read_text().splitlines()[0] == ",".join(HISTORY_COLUMNS)
    assert list(frame["method"]) == ["clip_surgery", "sclip"] and list(frame["mIoU"]) == [11.0, 12.0]
    rows = select_rows(frame, parse_selection("h.csv:method=clip_surgery"))
    assert [r["mIoU"] for r in rows] == [11.0]
    assert history_main(["--history", str(path), "--method", "clip_surgery", "--format", "csv"]) == 0
    assert list(pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))["mIoU"]) == [11.0]


def _csv_cell(value) -> str:
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(["" if value is None else value])
    return buffer.getvalue()


def test_latest_row_per_dataset_and_method(tmp_path):
    path = tmp_path / "history.csv"
    for i, (method, miou, step) in enumerate([("sclip", 10.0, None), ("clip_surgery", 20.0, None),
                                               ("sclip", 11.0, "pamr"), ("naclip", 30.0, None)]):
        append_history(path, fake_results(method=method, miou=miou, postprocess=step,
                                          created=f"2025-01-0{i + 1}T00:00:00+00:00"))
    frame = read_history(path)
    assert list(frame["postprocess"]) == ["", "", "pamr", ""]
    assert {r["method"]: r["mIoU"] for r in select_rows(frame, parse_selection("h.csv"))} == {
        "sclip": 11.0, "clip_surgery": 20.0, "naclip": 30.0}
    assert [r["mIoU"] for r in select_rows(frame, parse_selection("h.csv:method=sclip@-2"))] == [10.0]


def test_rows_of_another_version_are_kept(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("time,dataset,protocol,mIoU,old_column\n2024-12-01T00:00:00+00:00,ade20k,sclip,11.5,x\n")
    append_history(path, fake_results(miou=12.0))
    frame = read_history(path)
    assert list(frame["mIoU"]) == [11.5, 12.0] and list(frame["old_column"].fillna("")) == ["x", ""]
    assert "per_class_iou" in frame.columns
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(HistoryError, match="not a clip-surgery-seg history file"):
        append_history(tmp_path / "other.csv", fake_results())


def _history(tmp_path: Path) -> Path:
    path = tmp_path / "history.csv"
    rows = [("ade20k", "sclip", 10.0, "aaaa"), ("cityscapes", "sclip", 30.0, "aaaa"), ("ade20k", "sclip", 11.0, "bbbb"),
            ("ade20k", "clearclip", 13.0, "bbbb"), ("ade20k", "sclip", 12.0, "cccc")]
    for i, (dataset, protocol, miou, commit) in enumerate(rows):
        append_history(path, fake_results(dataset=dataset, protocol=protocol, miou=miou, commit=commit * 10,
                                          created=f"2025-01-0{i + 1}T00:00:00+00:00"))
    return path


@pytest.mark.parametrize("spec, expected", [
    ("h.csv", {"ade20k": 12.0, "cityscapes": 30.0}),
    ("h.csv:ade20k", {"ade20k": 12.0}),
    ("h.csv:ade20k@-2", {"ade20k": 13.0}),
    ("h.csv:ade20k,protocol=sclip@-2", {"ade20k": 11.0}),
    ("h.csv@aaaa", {"ade20k": 10.0, "cityscapes": 30.0}),
    ("h.csv:protocol=clearclip", {"ade20k": 13.0}),
    ("h.csv:ade20k@-9", {}),
])
def test_selections(tmp_path, spec, expected):
    frame = read_history(_history(tmp_path))
    rows = select_rows(frame, parse_selection(spec))
    assert {r["dataset"]: r["mIoU"] for r in rows} == expected


@pytest.mark.parametrize("spec, message", [("h.csv@latest-1", "must be latest, -N"), ("h.csv@-0", "@-0"),
                                           ("h.csv:size=3", "unknown history column 'size'"),
                                           ("history", "not a history selection")])
def test_bad_selections(spec, message):
    with pytest.raises(HistoryError, match=message):
        parse_selection(spec)


def test_history_tool_table_filter_and_plot(tmp_path, capsys):
    path = _history(tmp_path)
    plot = tmp_path / "miou.png"
    assert history_main(["--history", str(path), "--dataset", "ade", "--protocol", "sclip", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:8] == ["time", "dataset", "method", "protocol", "postprocess", "mIoU", "aAcc", "mAcc"]
    # oldest first; time has 2 words, the empty postprocess none
    assert [line.split()[5] for line in out[1:]] == ["10.00", "11.00", "12.00"]
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert history_main(["--history", str(path), "--format", "csv", "--last", "2"]) == 0
    frame = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert list(frame["mIoU"]) == [13.0, 12.0] and "per_class_iou" not in frame.columns
    assert history_main(["--history", str(path), "--format", "md"]) == 0
    assert capsys.readouterr().out.count("\n") == 2 + 5


def test_history_tool_errors(tmp_path, capsys):
    path = _history(tmp_path)
    assert history_main(["--history", str(path), "--dataset", "cityscape"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: unknown dataset 'cityscape'; did you mean cityscapes?")
    assert history_main(["--history", str(path), "--protocol", "nope"]) == 2
    assert "protocols: clearclip, sclip" in capsys.readouterr().err
    assert history_main(["--history", str(tmp_path / "none.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_eval_records_full_runs_only(run_eval, synthetic_root, tmp_path):
    history = tmp_path / "history.csv"
    code, _, err = run_eval(eval_args("cityscapes", synthetic_root, tmp_path / "w1", "--history", history,
                                      "--record-any-run"))
    assert code == 0, err
    code, _, err = run_eval(eval_args("cityscapes", synthetic_root, tmp_path / "w2", "--history", history,
                                      "--limit", "1", "--record-any-run"))
    assert code == 0, err
    frame = read_history(history)
    assert len(frame) == 1
    results = json.loads((tmp_path / "w1" / "metrics.json").read_text())
    row = frame.iloc[0]
    assert row["mIoU"] == results["summary"]["mIoU"] and row["num_images"] == results["dataset"]["num_images"]
    assert row["config_hash"] == results["config_hash"] and row["protocol"] == "sclip"
    assert per_class_iou(row) == pytest.approx({r["class"]: r["IoU"] for r in results["per_class"]}, nan_ok=True)


def test_runs_that_do_not_measure_the_benchmark_stay_out_by_default(run_eval, synthetic_root, tmp_path):
    # random weights on a few synthetic images: a complete run, but not the benchmark
    history = tmp_path / "history.csv"
    code, _, err = run_eval(eval_args("cityscapes", synthetic_root, tmp_path / "w", "--history", history))
    assert code == 0, err
    assert not history.exists()
    assert "not recorded in the history" in err and "random weights" in err and "--record-any-run" in err
    real = fake_results(dataset="cityscapes", num_images=3)  # real weights, 3 of 500 images
    assert append_history(history, real) is False and not history.exists()
    assert append_history(history, real, any_run=True) is True


def test_plot_draws_one_line_per_kind_of_result(tmp_path, capsys):
    """A PAMR and a PAMR-less run, two models or weights, or overridden protocol settings are never
    one line (issue 20); each line's label names its kind."""
    from clip_surgery_seg.reporting import plots

    path = tmp_path / "history.csv"
    kinds = [dict(method="naclip"), dict(method="naclip", postprocess="pamr"), dict(method="naclip", model="RN50"),
             dict(method="naclip", pretrained="laion2b_s34b_b88k"),
             dict(method="naclip", overridden={"short_side": 448}),
             dict(method="naclip", protocol="clearclip")]
    for i, kind in enumerate(kinds * 2):  # two runs of each kind, interleaved
        append_history(path, fake_results(miou=10.0 + i, created=f"2025-01-{i + 1:02d}T00:00:00+00:00", **kind))
    frame = read_history(path)
    plot = tmp_path / "miou.png"
    labels = plots.plot_history(frame, plot)
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert labels == sorted([
        "ade20k/naclip/clearclip/ViT-B-16/openai", "ade20k/naclip/sclip/RN50/openai",
        "ade20k/naclip/sclip/ViT-B-16/laion2b_s34b_b88k", "ade20k/naclip/sclip/ViT-B-16/openai",
        "ade20k/naclip/sclip[short_side=448]/ViT-B-16/openai", "ade20k/naclip+pamr/sclip/ViT-B-16/openai"])
    lines = plots.history_lines(frame)
    assert {label: list(group["mIoU"]) for label, group in lines} == {
        "ade20k/naclip/clearclip/ViT-B-16/openai": [15.0, 21.0],
        "ade20k/naclip/sclip/RN50/openai": [12.0, 18.0],
        "ade20k/naclip/sclip/ViT-B-16/laion2b_s34b_b88k": [13.0, 19.0],
        "ade20k/naclip/sclip/ViT-B-16/openai": [10.0, 16.0],
        "ade20k/naclip/sclip[short_side=448]/ViT-B-16/openai": [14.0, 20.0],
        "ade20k/naclip+pamr/sclip/ViT-B-16/openai": [11.0, 17.0]}
    assert [label for label, _ in lines] == labels
    assert history_main(["--history", str(path), "--plot", str(plot)]) == 0


def test_damaged_protocol_settings_make_a_damaged_row(tmp_path, caplog):
    """protocol_settings decides what a row is a result of: a cell that is not a JSON object (or whose
    overridden is not a list of names) makes the row damaged, never a baseline."""
    path = tmp_path / "history.csv"
    append_history(path, fake_results(miou=11.0, created="2025-01-01T00:00:00+00:00"))
    for i, bad in enumerate(("[1]", '{"overridden": "short_side"}', "{not json")):
        row = history_row(fake_results(miou=20.0 + i, created=f"2025-01-0{i + 2}T00:00:00+00:00"))
        row["protocol_settings"] = bad
        with path.open("a") as f:
            f.write(",".join(_csv_cell(row[c]) for c in HISTORY_COLUMNS) + "\n")
    with caplog.at_level("WARNING", logger="clip_surgery_seg"):
        frame = read_history(path)
    assert list(frame["mIoU"]) == [11.0]
    assert [line for line, _ in frame.attrs["damaged"]] == [3, 4, 5]
    assert caplog.text.count("protocol_settings is not a JSON object") == 3
