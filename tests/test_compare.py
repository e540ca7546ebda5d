"""tools/compare.py: what moved, exit codes, refusals, and history selections as baselines."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clip_surgery_seg.reporting.history import append_history
from clip_surgery_seg.cli.compare import main as compare_main
from clip_surgery_seg.reporting.compare import compare_records
from clip_surgery_seg.reporting.records import load_records
from conftest import REPO
from test_report import fake_results, write_results

BASE_CLASSES = {"wall": 40.0, "floor": 20.0, "sky": 30.0, "tree": 10.0}


def row(out, first):
    """The cells of the first table line that starts with ``first``."""
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [first])


def run(capsys, *args):
    code = compare_main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_equal_results_exit_0(tmp_path, capsys):
    new = write_results(tmp_path / "new", per_class=BASE_CLASSES)
    base = write_results(tmp_path / "base", per_class=BASE_CLASSES)
    code, out, _ = run(capsys, new, base)
    assert code == 0
    assert row(out, "mIoU") == ["mIoU", "25.00", "25.00", "+0.00"]
    assert "no class moved more than 1 IoU" in out and out.rstrip().endswith("on ade20k")


def test_miou_drop_past_tolerance_exits_1(tmp_path, capsys):
    base = write_results(tmp_path / "base", per_class=BASE_CLASSES, miou=25.0)
    new = write_results(tmp_path / "new", per_class=BASE_CLASSES, miou=24.8)
    code, out, _ = run(capsys, new, base)
    assert code == 1
    assert " ".join(row(out, "mIoU")) == "mIoU 25.00 24.80 -0.20 REGRESSION (tolerance 0.1)"
    assert "REGRESSION ade20k: mIoU -0.20" in out
    assert run(capsys, new, base, "--tolerance", "0.25")[0] == 0


def test_drop_equal_to_the_tolerance_passes(tmp_path, capsys):
    # 29.3 - 29.2 is 0.10000000000000142 in floating point: not "more than" 0.1
    base = write_results(tmp_path / "base", miou=29.3)
    new = write_results(tmp_path / "new", miou=29.2)
    assert run(capsys, new, base)[0] == 0


def test_class_drop_names_the_class(tmp_path, capsys):
    moved = dict(BASE_CLASSES, wall=37.5, sky=32.0, tree=9.5)  # wall drops 2.5, sky gains 2.0, tree within 1.0
    base = write_results(tmp_path / "base", per_class=BASE_CLASSES, miou=25.0)
    new = write_results(tmp_path / "new", per_class=moved, miou=25.0)
    code, out, _ = run(capsys, new, base)
    assert code == 1
    table = out[out.index("classes that moved"):].splitlines()
    assert table[0] == "classes that moved more than 1 IoU (drops first):"
    assert table[3].split() == ["wall", "40.00", "37.50", "-2.50", "REGRESSION"]
    assert table[4].split() == ["sky", "30.00", "32.00", "+2.00"]
    assert not any(line.startswith("tree") for line in table)
    assert "REGRESSION ade20k: class IoU dropped: wall (-2.50)" in out
    assert run(capsys, new, base, "--per-class-tolerance", "3")[0] == 0


def test_classes_with_undefined_iou_are_not_compared(tmp_path):
    # a class absent from the labels: IoU undefined (NaN) in one run, 0 in the other
    base = write_results(tmp_path / "b", per_class=dict(BASE_CLASSES, rare=float("nan")), miou=25.0)
    new = write_results(tmp_path / "n", per_class=dict(BASE_CLASSES, rare=0.0), miou=25.0)
    result = compare_records(load_records(str(new))[0], load_records(str(base))[0])
    assert result.moved_classes == [] and not result.regressions


def test_mismatched_protocol_is_refused_unless_forced(tmp_path, capsys):
    base = write_results(tmp_path / "base", protocol="sclip")
    new = write_results(tmp_path / "new", protocol="clearclip")
    code, out, err = run(capsys, new, base)
    assert code == 2 and out == ""
    assert err.strip() == ("error: refusing to compare: the baseline of ade20k is of another kind: protocol (NEW "
                           "clearclip, BASELINE sclip); numbers of different kinds are not comparable (pass --force "
                           "to compare anyway)")
    code, out, err = run(capsys, new, base, "--force")
    assert code == 0 and err.strip() == ("warning: forced: ade20k compared with a baseline of another kind: protocol "
                                         "(NEW clearclip, BASELINE sclip)")
    assert out.rstrip().endswith("on ade20k (forced: 1 baseline(s) of another kind, see the warnings)")


def test_mismatched_datasets_are_refused_unless_forced(tmp_path, capsys):
    base = write_results(tmp_path / "base", dataset="cityscapes")
    new = write_results(tmp_path / "new", dataset="ade20k")
    code, _, err = run(capsys, new, base)
    assert code == 2 and "datasets differ: only in NEW: ade20k; only in BASELINE: cityscapes" in err
    assert run(capsys, new, base, "--force")[0] == 0


def test_run_folders_compare_per_dataset(tmp_path, capsys):
    for name in ("ade20k", "cityscapes"):
        write_results(tmp_path / "base" / name, dataset=name, miou=20.0)
    write_results(tmp_path / "new" / "ade20k", dataset="ade20k", miou=20.0)
    write_results(tmp_path / "new" / "cityscapes", dataset="cityscapes", miou=19.0)
    code, out, _ = run(capsys, tmp_path / "new", tmp_path / "base")
    assert code == 1 and "== cityscapes" in out and "== ade20k" in out
    assert "REGRESSION cityscapes: mIoU -1.00" in out and "REGRESSION ade20k" not in out
    # a dataset missing from NEW is a mismatch, not a silent pass
    write_results(tmp_path / "base" / "pascal_context59", dataset="pascal_context59")
    code, _, err = run(capsys, tmp_path / "new", tmp_path / "base")
    assert code == 2 and "only in BASELINE: pascal_context59" in err


def _history(tmp_path, runs):
    """A history with one ade20k row per (time, mIoU, commit, protocol)."""
    path = tmp_path / "history.csv"
    for i, (miou, commit, protocol) in enumerate(runs):
        classes = dict(BASE_CLASSES, wall=40.0 - i / 2)
        append_history(path, fake_results(miou=miou, commit=commit, protocol=protocol, per_class=classes,
                                          created=f"2025-01-0{i + 1}T00:00:00+00:00"))
    return path


def test_history_selections_as_baseline(tmp_path, capsys):
    history = _history(tmp_path, [(25.0, "aaaa1111" * 5, "sclip"), (26.0, "bbbb2222" * 5, "sclip"),
                                  (30.0, "cccc3333" * 5, "clearclip")])
    new = write_results(tmp_path / "new", miou=25.95, per_class=dict(BASE_CLASSES, wall=38.6),
                        created="2025-01-09T00:00:00+00:00")
    # latest of NEW's protocol (sclip): the 26.0 row; wall 39.5 -> 38.6 is within 1.0
    code, out, _ = run(capsys, new, f"{history}:ade20k@latest")
    assert code == 0 and row(out, "mIoU") == ["mIoU", "26.00", "25.95", "-0.05"]
    assert f"baseline: {history}:ade20k@latest [ade20k]  [2025-01-02, bbbb2222bbbb]" in out
    # @-2: the one before, 25.0; per-class IoU comes from the history too (wall 40.0 -> 38.6)
    code, out, _ = run(capsys, new, f"{history}@-2")
    assert code == 1 and row(out, "mIoU") == ["mIoU", "25.00", "25.95", "+0.95"]
    assert "REGRESSION ade20k: class IoU dropped: wall (-1.40)" in out
    # a commit prefix
    code, out, _ = run(capsys, new, f"{history}@bbbb2222")
    assert code == 0 and row(out, "mIoU")[1] == "26.00"
    # an explicit protocol filter is honoured, and then refused as a mismatch
    code, _, err = run(capsys, new, f"{history}:protocol=clearclip")
    assert code == 2 and "of another kind: protocol (NEW sclip, BASELINE clearclip)" in err
    code, _, err = run(capsys, new, f"{history}@-9")
    assert code == 2 and "no history row matches" in err


def test_history_latest_is_never_new_itself(tmp_path, capsys):
    history = _history(tmp_path, [(25.0, "aaaa1111" * 5, "sclip")])
    results = fake_results(miou=20.0, created="2025-03-01T00:00:00+00:00")
    append_history(history, results)  # as reproduce.py does after a run
    new = tmp_path / "new" / "metrics.json"
    new.parent.mkdir()
    new.write_text(json.dumps(results))
    code, out, _ = run(capsys, new, history)
    assert code == 1 and row(out, "mIoU") == ["mIoU", "25.00", "20.00", "-5.00", "REGRESSION", "(tolerance", "0.1)"]


def test_bad_selection_and_missing_files(tmp_path, capsys):
    history = _history(tmp_path, [(25.0, "aaaa1111" * 5, "sclip")])
    new = write_results(tmp_path / "new")
    code, _, err = run(capsys, new, f"{history}@yesterday")
    assert code == 2 and "must be latest, -N (e.g. -2) or a git commit prefix" in err
    code, _, err = run(capsys, new, f"{history}:colour=red")
    assert code == 2 and "unknown history column 'colour'" in err
    code, _, err = run(capsys, new, tmp_path / "missing.json")
    assert code == 2 and err.strip() == f"error: {tmp_path / 'missing.json'} does not exist"
    code, _, err = run(capsys, new, tmp_path / "nohistory.csv")
    assert code == 2 and "history file" in err and "does not exist" in err


@pytest.mark.slow
def test_exit_code_as_a_ci_sees_it(tmp_path):
    base = write_results(tmp_path / "base", miou=25.0)
    new = write_results(tmp_path / "new", miou=24.0)
    proc = subprocess.run([sys.executable, "tools/compare.py", str(new), str(base)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "REGRESSION ade20k: mIoU -1.00" in proc.stdout


def test_methods_are_compared_like_with_like(tmp_path, capsys):
    """Each method's result is paired with the same method's baseline; another method is a mismatch."""
    for side, sclip in (("base", 20.0), ("new", 19.0)):
        write_results(tmp_path / side / "clip_surgery" / "ade20k", miou=25.0, method="clip_surgery")
        write_results(tmp_path / side / "sclip" / "ade20k", miou=sclip, method="sclip", config_hash="5c" * 32)
    code, out, _ = run(capsys, tmp_path / "new", tmp_path / "base")
    assert code == 1 and "== ade20k (protocol sclip)" in out and "== ade20k (method sclip, protocol sclip)" in out
    assert "REGRESSION ade20k (sclip): mIoU -1.00" in out and "REGRESSION ade20k:" not in out
    # a result of one method against another's is refused unless forced
    code, _, err = run(capsys, tmp_path / "new" / "sclip" / "ade20k", tmp_path / "base" / "clip_surgery" / "ade20k")
    assert code == 2 and "methods differ: only in NEW: ade20k (sclip); only in BASELINE: ade20k" in err
    code, out, _ = run(capsys, tmp_path / "new" / "sclip" / "ade20k", tmp_path / "base" / "clip_surgery" / "ade20k",
                       "--force")
    assert code == 1 and "note: forced: comparing ade20k (sclip) with ade20k" in out
    # a history baseline is picked of NEW's method
    history = tmp_path / "history.csv"
    append_history(history, fake_results(miou=19.5, method="sclip", created="2025-01-01T00:00:00+00:00"))
    append_history(history, fake_results(miou=30.0, method="clip_surgery", created="2025-01-02T00:00:00+00:00"))
    code, out, _ = run(capsys, tmp_path / "new" / "sclip" / "ade20k", history)
    assert code == 1 and row(out, "mIoU") == ["mIoU", "19.50", "19.00", "-0.50", "REGRESSION", "(tolerance", "0.1)"]


# --- like with like (issue 20) -----------------------------------------------------------------------

OPENAI_VIT_B_16 = "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"


def _rows(path, runs):
    """History rows of ade20k, one per ``dict`` of fake_results arguments, a day apart (oldest first)."""
    for i, kwargs in enumerate(runs):
        assert append_history(path, fake_results(created=f"2025-01-{i + 1:02d}T00:00:00+00:00", **kwargs),
                              any_run=True)
    return path


def test_history_baseline_has_the_same_post_processing(tmp_path, capsys):
    """NACLIP + PAMR two points below its own kind fails, though a newer PAMR-less row is lower."""
    history = _rows(tmp_path / "history.csv", [dict(method="naclip", postprocess="pamr", miou=21.0),
                                                dict(method="naclip", miou=17.0)])
    new = write_results(tmp_path / "new", method="naclip", postprocess="pamr", miou=19.0,
                        created="2025-02-01T00:00:00+00:00")
    code, out, _ = run(capsys, new, history)
    assert code == 1 and row(out, "mIoU")[:4] == ["mIoU", "21.00", "19.00", "-2.00"]
    assert "REGRESSION ade20k (naclip): mIoU -2.00" in out
    # the plain run is compared with the plain row, not with the PAMR one
    plain = write_results(tmp_path / "plain", method="naclip", miou=17.0, created="2025-02-01T00:00:00+00:00")
    code, out, _ = run(capsys, plain, history)
    assert code == 0 and row(out, "mIoU")[:4] == ["mIoU", "17.00", "17.00", "+0.00"]
    # no row of NEW's kind: refused, naming what the nearest row differs in
    only_plain = _rows(tmp_path / "plain.csv", [dict(method="naclip", miou=17.0)])
    code, out, err = run(capsys, new, only_plain)
    assert code == 2 and out == ""
    assert err.strip() == (f"error: no history row of ade20k/naclip+pamr/sclip/ViT-B-16/openai in {only_plain} "
                           "(other than NEW itself); the nearest (2025-01-01, ade20k/naclip/sclip/ViT-B-16/openai) "
                           "differs in postprocess (NEW pamr, nearest none)")


def test_history_baseline_has_the_same_model_and_weights(tmp_path, capsys):
    """A 5-point ViT-B-16 drop is a regression, though the newest row is RN50's (or other weights')."""
    history = _rows(tmp_path / "history.csv", [
        dict(miou=25.0),                                                    # the baseline
        dict(miou=10.0, model="RN50"),                                      # another model
        dict(miou=12.0, pretrained="laion2b_s34b_b88k"),                   # another tag
        dict(miou=13.0, pretrained="/w/other.pt", weights_sha256="ab" * 32),  # a file of other weights
        dict(miou=14.0, pretrained=None, seed=0),                           # random weights
        dict(miou=15.0, model="cfg/vit.json", model_config_sha256="cd" * 32)])  # a model config file
    new = write_results(tmp_path / "new", miou=20.0, created="2025-02-01T00:00:00+00:00")
    code, out, _ = run(capsys, new, history)
    assert code == 1 and row(out, "mIoU")[:4] == ["mIoU", "25.00", "20.00", "-5.00"]
    assert "REGRESSION ade20k: mIoU -5.00" in out
    # each other kind finds its own row: a file by its sha256 (wherever it lies), random weights as such
    for kwargs, baseline in ((dict(model="RN50"), "10.00"), (dict(pretrained="laion2b_s34b_b88k"), "12.00"),
                             (dict(pretrained="/elsewhere/renamed.pt", weights_sha256="ab" * 32), "13.00"),
                             (dict(pretrained=None, seed=0), "14.00"),
                             (dict(model="other/place/vit.json", model_config_sha256="cd" * 32), "15.00")):
        other = write_results(tmp_path / "o", miou=30.0, created="2025-02-01T00:00:00+00:00", **kwargs)
        code, out, _ = run(capsys, other, history)
        assert code == 0 and row(out, "mIoU")[1] == baseline, kwargs
    # a model config of other content is another model, even under the same file name
    other = write_results(tmp_path / "o", miou=30.0, model="cfg/vit.json", model_config_sha256="ef" * 32)
    code, _, err = run(capsys, other, history)
    assert code == 2 and "differs in model config (NEW efefefefefef, nearest cdcdcdcdcdcd)" in err
    # OpenAI's released ViT-B/16 file is the tag openai: the same weights
    local = write_results(tmp_path / "o", miou=25.0, pretrained="/cache/ViT-B-16.pt", weights_sha256=OPENAI_VIT_B_16,
                          created="2025-02-01T00:00:00+00:00")
    code, out, _ = run(capsys, local, history)
    assert code == 0 and row(out, "mIoU")[1] == "25.00"


def test_history_baseline_has_the_same_overridden_protocol_settings(tmp_path, capsys):
    history = _rows(tmp_path / "history.csv", [dict(miou=25.0, overridden={"short_side": 448}), dict(miou=20.0)])
    new = write_results(tmp_path / "new", miou=24.0, overridden={"short_side": 448},
                        created="2025-02-01T00:00:00+00:00")
    code, out, _ = run(capsys, new, history)
    assert code == 1 and row(out, "mIoU")[:4] == ["mIoU", "25.00", "24.00", "-1.00"]
    other = write_results(tmp_path / "o", miou=24.0, overridden={"short_side": 512})
    code, _, err = run(capsys, other, history)
    # the nearest: one difference each, the newer of the two
    assert code == 2 and err.strip().endswith("the nearest (2025-01-02, ade20k/clip_surgery/sclip/ViT-B-16/openai) "
                                              "differs in overridden protocol settings (NEW short_side=512, nearest "
                                              "none)")
    code, _, err = run(capsys, other, f"{history}@-2")
    assert code == 2 and "of ade20k/clip_surgery/sclip[short_side=512]/ViT-B-16/openai" in err


def test_an_explicit_baseline_of_another_kind_is_refused_unless_forced(tmp_path, capsys):
    """Files, or a selection whose filter names another model: refused naming the difference; with
    --force compared, with a warning line."""
    new = write_results(tmp_path / "new", miou=20.0)
    base = write_results(tmp_path / "base", miou=10.0, model="RN50")
    code, out, err = run(capsys, new, base)
    assert code == 2 and out == ""
    assert err.strip() == ("error: refusing to compare: the baseline of ade20k is of another kind: model (NEW "
                           "ViT-B-16, BASELINE RN50); numbers of different kinds are not comparable (pass --force "
                           "to compare anyway)")
    code, out, err = run(capsys, new, base, "--force")
    assert code == 0 and err.strip() == ("warning: forced: ade20k compared with a baseline of another kind: model "
                                         "(NEW ViT-B-16, BASELINE RN50)")
    history = _rows(tmp_path / "history.csv", [dict(miou=25.0), dict(miou=10.0, model="RN50")])
    # a filter on a part of the kind is the user's choice: this selection means the RN50 row
    code, _, err = run(capsys, new, f"{history}:model=RN50")
    assert code == 2 and "of another kind: model (NEW ViT-B-16, BASELINE RN50)" in err
    code, out, err = run(capsys, new, f"{history}:model=RN50", "--force")
    assert code == 0 and row(out, "mIoU")[1] == "10.00" and err.startswith("warning: forced: ade20k compared")
    # selections that keep the kind keep working: @-2 is the one before among NEW's kind
    history = _rows(tmp_path / "h2.csv", [dict(miou=24.0), dict(miou=25.0), dict(miou=10.0, model="RN50")])
    code, out, _ = run(capsys, new, f"{history}:ade20k@-2")
    assert code == 1 and row(out, "mIoU")[1] == "24.00"
    code, out, _ = run(capsys, new, f"{history}:method=clip_surgery")
    assert code == 1 and row(out, "mIoU")[1] == "25.00"


def test_forced_run_folder_leaves_out_results_without_a_baseline_of_their_kind(tmp_path, capsys):
    for name, step in (("ade20k", "pamr"), ("cityscapes", None)):
        write_results(tmp_path / "run" / "naclip" / name, dataset=name, method="naclip", postprocess=step,
                      miou=20.0, created="2025-02-01T00:00:00+00:00")
    history = tmp_path / "history.csv"
    for i, name in enumerate(("ade20k", "cityscapes")):
        append_history(history, fake_results(dataset=name, method="naclip", miou=20.0,
                                             created=f"2025-01-0{i + 1}T00:00:00+00:00"))
    code, _, err = run(capsys, tmp_path / "run", history)
    assert code == 2 and "no history row of ade20k/naclip+pamr/sclip/ViT-B-16/openai" in err
    code, out, _ = run(capsys, tmp_path / "run", history, "--force")
    assert code == 0 and "note: forced: left out: no history row of ade20k/naclip+pamr" in out
    assert "== cityscapes" in out and "== ade20k" not in out


@pytest.mark.parametrize("option, value", [("--tolerance", "nan"), ("--tolerance", "inf"), ("--tolerance", "-inf"),
                                           ("--tolerance", "1e999"), ("--tolerance", "-0.5"),
                                           ("--per-class-tolerance", "nan"), ("--per-class-tolerance", "inf"),
                                           ("--per-class-tolerance", "-1"), ("--tolerance", "ten")])
def test_tolerances_must_be_finite_and_not_negative(tmp_path, capsys, option, value):
    """A NaN tolerance let a 20-point drop pass: no drop is "more than" NaN."""
    base = write_results(tmp_path / "base", per_class=BASE_CLASSES, miou=45.0)
    new = write_results(tmp_path / "new", per_class=dict(BASE_CLASSES, wall=20.0), miou=25.0)
    with pytest.raises(SystemExit) as exit_info:
        compare_main([str(new), str(base), f"{option}={value}"])  # (= so that -inf is a value)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.splitlines()[-1].startswith(f"error: argument {option}: expected a "
                                           f"{'' if value == 'ten' else 'finite '}number of points >= 0, "
                                           f"got {value!r}")
    assert len(err.strip().splitlines()) == 1  # one line, no usage dump
    with pytest.raises(ValueError, match="finite number of points >= 0"):
        compare_records(load_records(str(new))[0], load_records(str(base))[0], **(
            {"tolerance": float("nan")} if option == "--tolerance" else {"class_tolerance": float("nan")}))
    assert run(capsys, new, base, option, "0")[0] == 1  # a finite tolerance: the drop is a regression


def test_older_rows_and_v1_files_are_unknown_not_different(tmp_path, capsys):
    """History rows from before the protocol_settings and model_config_sha256 columns, and v1 results
    files, still load and compare: what they did not record agrees with anything."""
    from test_history import _csv_cell
    from clip_surgery_seg.reporting.history import HISTORY_COLUMNS, history_row

    history = tmp_path / "history.csv"
    old_columns = [c for c in HISTORY_COLUMNS if c not in ("method_params", "protocol_settings", "templates",
                                                          "precision", "model_config_sha256")]
    old = history_row(fake_results(miou=25.0, model="cfg/vit.json", created="2025-01-01T00:00:00+00:00"))
    history.write_text(",".join(old_columns) + "\n" + ",".join(_csv_cell(old[c]) for c in old_columns) + "\n")
    # a newer row that recorded its settings: none overridden, which is known to differ from NEW's
    append_history(history, fake_results(miou=30.0, model="cfg/vit.json", model_config_sha256="cd" * 32,
                                         created="2025-01-02T00:00:00+00:00"))
    new = write_results(tmp_path / "new", miou=24.0, overridden={"short_side": 448}, model="cfg/vit.json",
                        model_config_sha256="cd" * 32, created="2025-02-01T00:00:00+00:00")
    records = load_records(f"{history}:ade20k@-2")
    assert records[0].overridden is None and records[0].model_config_sha256 is None  # the old row: unknown
    assert records[0].kind.differences(load_records(str(new))[0].kind) == []
    assert load_records(f"{history}:ade20k")[0].overridden == ()  # the new row: known, none
    code, out, _ = run(capsys, new, history)
    assert code == 1 and row(out, "mIoU")[:4] == ["mIoU", "25.00", "24.00", "-1.00"]
    # a v1 results file: overridden settings and the model config's content are unknown
    v1 = write_results(tmp_path / "v1", miou=25.0, method=None)
    record = load_records(str(v1))[0]
    assert record.overridden is None and record.model_config_sha256 is None
    newer = write_results(tmp_path / "n2", miou=24.0, overridden={"short_side": 448})
    assert record.kind.differences(load_records(str(newer))[0].kind) == []
    code, out, _ = run(capsys, newer, v1)
    assert code == 1 and row(out, "mIoU")[:4] == ["mIoU", "25.00", "24.00", "-1.00"]
