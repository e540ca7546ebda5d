"""Where a run writes its own files: ``--save-preds`` and ``--show-dir`` never land on the data, on
each other or in the work dir's managed folders; images of one name in two subfolders keep two
files; and a full disk under the progress journal is one line, then ``--resume`` gives the
uninterrupted run's numbers."""
from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import oracle_segmentor  # noqa: F401  (registers OracleSegmentor)
from clip_surgery_seg.datasets.synthetic import write_synthetic
from clip_surgery_seg.datasets.transforms import encode_label, read_label
from conftest import REPO, eval_args

ADE = "ADEChallengeData2016"


@pytest.fixture
def ade_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_synthetic("ade20k", root, num_images=3, image_size=(48, 64), seed=3)
    return root


def _images(root: Path) -> Path:
    return root / ADE / "images" / "validation"


def _labels(root: Path) -> Path:
    return root / ADE / "annotations" / "validation"


def _snapshot(folder: Path) -> dict:
    """Every file below ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(run_eval, args) -> str:
    """The run's one error line (exit 1, no traceback, nothing on stdout)."""
    code, out, err = run_eval(args)
    assert code == 1, (code, err)
    assert "Traceback" not in err and out == "", err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# --- 1. never onto the dataset -----------------------------------------------------------------------

@pytest.mark.parametrize("option", ["--save-preds", "--show-dir"])
@pytest.mark.parametrize("where, relation", [
    (lambda root: _labels(root), lambda root: "is the dataset's label folder"),
    (lambda root: _images(root), lambda root: "is the dataset's image folder"),
    (lambda root: root / ADE / "preds", lambda root: f"is inside the dataset's folder {root / ADE}"),
    (lambda root: _labels(root) / "preds", lambda root: f"is inside the dataset's label folder {_labels(root)}"),
    (lambda root: root, lambda root: f"holds the dataset's image folder {_images(root)}"),
], ids=["label-folder", "image-folder", "in-dataset-folder", "in-label-folder", "holds-the-data"])
def test_outputs_aimed_at_the_data_are_refused_before_anything_is_written(run_eval, ade_root, tmp_path, option,
                                                                          where, relation):
    before = _snapshot(ade_root)
    out, work = where(ade_root), tmp_path / "w"
    line = _refused(run_eval, eval_args("ade20k", ade_root, work, option, out))
    suggestion = work / ("preds" if option == "--save-preds" else "show")
    assert line == (f"error: {option} {out} {relation(ade_root)}: its files would mix with the dataset's and could "
                    f"replace them; choose a folder outside the data, e.g. {option} {suggestion}")
    assert _snapshot(ade_root) == before  # no label replaced, no folder made in the data
    assert not work.exists()  # refused before the work dir (its log, its lock) was made


def test_a_symlink_to_the_label_folder_is_the_label_folder(run_eval, ade_root, tmp_path):
    link = tmp_path / "looks-elsewhere"
    link.symlink_to(_labels(ade_root))
    before = _snapshot(ade_root)
    line = _refused(run_eval, eval_args("ade20k", ade_root, tmp_path / "w", "--save-preds", link))
    assert line.startswith(f"error: --save-preds {link} is the dataset's label folder: ")
    assert _snapshot(ade_root) == before


# --- 2. predictions and panels apart -------------------------------------------------------------------

@pytest.mark.parametrize("show, relation", [
    ("preds", "is the same folder as --save-preds {preds}"),
    ("preds/panels", "is inside --save-preds {preds}"),
    ("", "holds --save-preds {preds}"),
])
def test_predictions_and_panels_in_one_folder_are_refused(run_eval, ade_root, tmp_path, show, relation):
    preds, work = tmp_path / "out" / "preds", tmp_path / "w"
    show_dir = tmp_path / "out" / show
    line = _refused(run_eval, eval_args("ade20k", ade_root, work, "--save-preds", preds, "--show-dir", show_dir))
    assert line == (f"error: --show-dir {show_dir} {relation.format(preds=preds)}: panels would replace "
                    f"predictions of the same name; give them two separate folders, e.g. --save-preds {work / 'preds'} "
                    f"--show-dir {work / 'show'}")
    assert not (tmp_path / "out").exists() and not work.exists()


# --- 3. not in the work dir's own folders ----------------------------------------------------------------

@pytest.mark.parametrize("option", ["--save-preds", "--show-dir"])
@pytest.mark.parametrize("sub", ["examples", "progress", "logs", "report_files", "examples/mine"])
def test_outputs_inside_the_work_dirs_managed_folders_are_refused(run_eval, ade_root, tmp_path, option, sub):
    work = tmp_path / "w"
    managed = sub.split("/")[0]
    line = _refused(run_eval, eval_args("ade20k", ade_root, work, option, work / sub))
    suggestion = work / ("preds" if option == "--save-preds" else "show")
    assert line == (f"error: {option} {work / sub} would write into {work / managed}, which the run rewrites (it "
                    f"deletes and replaces files there); choose another folder, e.g. {option} {suggestion}")
    assert not work.exists()


@pytest.mark.parametrize("option", ["--save-preds", "--show-dir"])
def test_outputs_in_the_work_dir_itself_or_around_it_are_refused(run_eval, ade_root, tmp_path, option):
    work = tmp_path / "runs" / "w"
    suggestion = work / ("preds" if option == "--save-preds" else "show")
    line = _refused(run_eval, eval_args("ade20k", ade_root, work, option, work))
    assert line == (f"error: {option} {work} is the work dir: its files would mix with the run's own; choose "
                    f"another folder, e.g. {option} {suggestion}")
    line = _refused(run_eval, eval_args("ade20k", ade_root, work, option, tmp_path / "runs"))
    assert line == (f"error: {option} {tmp_path / 'runs'} holds the work dir {work}: its files would mix with the "
                    f"run's own; choose another folder, e.g. {option} {suggestion}")
    assert not work.exists()


def test_a_subfolder_of_the_work_dir_is_a_fine_place(run_eval, ade_root, tmp_path):
    work = tmp_path / "w"
    code, _, err = run_eval(eval_args("ade20k", ade_root, work, "--save-preds", work / "preds",
                                      "--show-dir", work / "show"))
    assert code == 0, err
    keys = sorted(p.stem for p in _images(ade_root).glob("*.jpg"))
    assert sorted(p.stem for p in (work / "preds").iterdir()) == keys
    assert sorted(p.stem for p in (work / "show").iterdir()) == keys


def test_the_examples_writer_deletes_only_its_own_stale_panels(run_eval, ade_root, tmp_path):
    work = tmp_path / "w"
    (work / "examples").mkdir(parents=True)
    mine = work / "examples" / "mine.png"
    Image.new("RGB", (4, 4)).save(mine)
    stale = work / "examples" / "worst_09.png"  # from an earlier run that showed more examples
    stale.write_bytes(mine.read_bytes())
    code, _, err = run_eval(eval_args("ade20k", ade_root, work))
    assert code == 0, err
    listed = json.loads((work / "examples" / "examples.json").read_text())["examples"]
    assert len(listed) == 3
    assert mine.is_file() and not stale.exists()
    assert sorted(p.name for p in (work / "examples").glob("*.png")) == sorted(
        ["mine.png"] + [e["panel"] for e in listed])


# --- 4. one file per image, named by its key ------------------------------------------------------------

@pytest.fixture
def two_cities(tmp_path: Path) -> Path:
    """An ADE-like split of three images whose names repeat in two subfolders: a/x, b/x and b/y."""
    source = tmp_path / "source"
    write_synthetic("ade20k", source, num_images=3, image_size=(48, 64), seed=4)
    root = tmp_path / "cities"
    images = sorted(_images(source).glob("*.jpg"))
    for image, key in zip(images, ["a/x", "b/x", "b/y"]):
        for src, dst, suffix in ((image, _images(root), ".jpg"), (_labels(source) / f"{image.stem}.png",
                                                                  _labels(root), ".png")):
            target = dst / f"{key}{suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())
    return root


def _label(root: Path, key: str) -> np.ndarray:
    """What the oracle predicts for ``key``: its label, reduced (0 -> ignored), ignored pixels as 0."""
    label = encode_label(read_label(str(_labels(root) / f"{key}.png")), True)
    return np.where(label == 255, 0, label).astype(np.uint8)


def test_images_of_one_name_in_two_subfolders_get_a_file_each(run_eval, two_cities, tmp_path):
    work, preds, show = tmp_path / "w", tmp_path / "preds", tmp_path / "show"
    oracle = ["model.type=OracleSegmentor"]
    args = eval_args("ade20k", two_cities, work, "--save-preds", preds, "--show-dir", show, options=oracle)
    code, _, err = run_eval(args)
    assert code == 0, err
    keys = ["a/x", "b/x", "b/y"]
    assert sorted(str(p.relative_to(preds)) for p in preds.rglob("*.png")) == [f"{k}.png" for k in keys]
    assert sorted(str(p.relative_to(show)) for p in show.rglob("*.png")) == [f"{k}.png" for k in keys]
    for key in keys:  # each file holds its own image's prediction, not the other one's
        assert np.array_equal(np.asarray(Image.open(preds / f"{key}.png")), _label(two_cities, key)), key
    assert not np.array_equal(_label(two_cities, "a/x"), _label(two_cities, "b/x"))
    panels = {key: (show / f"{key}.png").read_bytes() for key in keys}

    # a run stopped before its writers caught up: a resume evaluates again exactly the images whose
    # file is missing, under the same names
    _unfinish(work)
    (preds / "b" / "x.png").unlink()
    (show / "a" / "x.png").unlink()
    at = args.index("--cfg-options")
    code, _, err = run_eval(args[:at] + ["--resume"] + args[at:])
    assert code == 0, err
    assert json.loads((work / "metrics.json").read_text())["timing"]["resumed_images"] == 1  # b/y only
    assert np.array_equal(np.asarray(Image.open(preds / "b" / "x.png")), _label(two_cities, "b/x"))
    assert {key: (show / f"{key}.png").read_bytes() for key in keys} == panels


def _unfinish(work: Path) -> None:
    """Make a finished run's progress look like that of a run stopped after its last image."""
    import sqlite3

    with sqlite3.connect(work / "progress" / "rank0.sqlite") as conn:
        conn.execute("DELETE FROM meta WHERE key = 'finished'")
    conn.close()


@pytest.mark.parametrize("key", ["../x", "/abs/x", "a/../../x", ""])
def test_a_key_that_leaves_the_output_folder_is_refused(key):
    from clip_surgery_seg.engine.observers import output_name
    from clip_surgery_seg.errors import DataLayoutError

    with pytest.raises(DataLayoutError, match="not a path inside the image folder"):
        output_name(key)
    assert output_name("a/x") == Path("a") / "x.png" and output_name("x.y") == Path("x.y.png")


# --- 5. a full disk under the progress journal -----------------------------------------------------------

FILE_LIMIT = 60 * 1024  # `ulimit -f 60`: the journal's write-ahead log outgrows it after an image or two


def _limit_file_size() -> None:
    # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG, as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


@pytest.mark.slow  # a subprocess (its own imports) and two runs in-process: ~15 s
def test_a_full_disk_under_the_progress_journal_is_one_line_and_resume_gives_the_same_numbers(run_eval, tmp_path):
    root = tmp_path / "data"
    write_synthetic("ade20k", root, num_images=6, image_size=(48, 64), seed=6)
    code, _, err = run_eval(eval_args("ade20k", root, tmp_path / "straight"))
    assert code == 0, err

    work = tmp_path / "w"
    args = eval_args("ade20k", root, work)
    env = dict(os.environ, CLIP_SURGERY_SEG_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "tools/eval.py", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size)
    journal = work / "progress" / "rank0.sqlite"
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == (f"error: cannot write the progress journal {journal} (disk I/O error; the file-size limit "
                         f"is {FILE_LIMIT // 1024}.0 KiB); free disk space or fix the permissions of {journal.parent}, "
                         "then continue the run with --resume"), proc.stderr
    assert sum(line.startswith("error:") for line in lines) == 1
    assert not (work / "metrics.json").exists()

    # space freed: the resume restores what was committed and gives the uninterrupted run's numbers
    code, _, err = run_eval(args[:args.index("--cfg-options")] + ["--resume"] + args[args.index("--cfg-options"):])
    assert code == 0, err
    resumed = json.loads((work / "metrics.json").read_text())
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert 1 <= resumed["timing"]["resumed_images"] < 6, "the limit must stop the run after an image or more"
    assert resumed["per_class"] == straight["per_class"] and resumed["summary"] == straight["summary"]
    assert resumed["dataset"]["num_images"] == 6


def test_a_run_log_on_a_full_disk_never_turns_the_error_into_a_traceback(capsys):
    from clip_surgery_seg.engine.session import RunLogHandler, _to_file

    handler = RunLogHandler("/dev/full")  # every write fails with ENOSPC
    logger = logging.getLogger("clip_surgery_seg.test_full_log")
    logger.addHandler(handler)
    try:
        logger.warning("a line the log cannot take")
        logger.warning("another one")
        _to_file(handler, "error: the run's own error line")
    finally:
        logger.removeHandler(handler)
        handler.close()
    err = capsys.readouterr().err
    assert "Logging error" not in err and "Traceback" not in err
    # said once, on the console: the run goes on, its log is incomplete
    assert err.strip().splitlines() == ["warning: cannot write the run log /dev/full (No space left on device); "
                                        "the rest of this run is not in it"]
