"""Bad input, interruption and resume: every failure is one clear line, and nothing is lost."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from clip_surgery_seg.datasets.synthetic import write_synthetic
from clip_surgery_seg.errors import UserError
from clip_surgery_seg.fileio import atomic_write_json
from clip_surgery_seg.segmentors.sliding import WindowBatcher
from conftest import REPO, TINY_VIT, eval_args

ADE = "ADEChallengeData2016"


@pytest.fixture
def ade_root(tmp_path):
    root = tmp_path / "data"
    write_synthetic("ade20k", root, num_images=3, image_size=(96, 128), seed=1)
    return root


def _image(root, i):
    return root / ADE / "images" / "validation" / f"ADE_val_{i:08d}.jpg"


def _label(root, i):
    return root / ADE / "annotations" / "validation" / f"ADE_val_{i:08d}.png"


def _fails(run_eval, args, *fragments):
    code, out, err = run_eval(args)
    assert code == 1, (code, err)
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _results(work):
    return json.loads((work / "metrics.json").read_text())


# --- data ---------------------------------------------------------------------------------------

def test_missing_data_root(run_eval, tmp_path):
    _fails(run_eval, eval_args("ade20k", tmp_path / "nowhere", tmp_path / "w"),
           f"data folder {tmp_path / 'nowhere' / ADE} does not exist", "python tools/prepare_data.py ade20k",
           "data/README.md")
    assert not (tmp_path / "w" / "metrics.json").exists()


def test_wrong_layout_no_images_or_no_labels(run_eval, tmp_path, ade_root):
    (tmp_path / "empty" / ADE / "images" / "validation").mkdir(parents=True)
    _fails(run_eval, eval_args("ade20k", tmp_path / "empty", tmp_path / "w"), "no images (*.jpg) found under",
           "images/validation/**/*.jpg")
    for i in (1, 2, 3):
        _label(ade_root, i).unlink()
    (ade_root / ADE / "annotations" / "validation").rmdir()
    _fails(run_eval, eval_args("ade20k", ade_root, tmp_path / "w"), "label folder", "does not exist",
           "3 images have no labels")


def test_image_without_label_and_skip_bad(run_eval, tmp_path, ade_root):
    _label(ade_root, 2).unlink()
    _fails(run_eval, eval_args("ade20k", ade_root, tmp_path / "w"), "1 unpaired files", str(_image(ade_root, 2)),
           "--skip-bad")
    code, _, err = run_eval(eval_args("ade20k", ade_root, tmp_path / "w", "--skip-bad"))
    assert code == 0, err
    results = _results(tmp_path / "w")
    assert results["partial"] and results["dataset"]["num_images"] == 2
    assert results["skipped"] == [{"image": "ADE_val_00000002",
                                   "reason": f"{_image(ade_root, 2)}: no label {_label(ade_root, 2)}"}]


def test_label_without_image(run_eval, tmp_path, ade_root):
    _image(ade_root, 3).unlink()
    _fails(run_eval, eval_args("ade20k", ade_root, tmp_path / "w"), str(_label(ade_root, 3)), "no image")


def test_truncated_image(run_eval, tmp_path, ade_root):
    data = _image(ade_root, 2).read_bytes()
    _image(ade_root, 2).write_bytes(data[: len(data) // 2])
    _fails(run_eval, eval_args("ade20k", ade_root, tmp_path / "w"), str(_image(ade_root, 2)),
           "unreadable or truncated image")
    assert not (tmp_path / "w" / "metrics.json").exists()  # no number before the bad sample is fixed
    code, _, err = run_eval(eval_args("ade20k", ade_root, tmp_path / "w2", "--skip-bad"))
    assert code == 0, err
    results = _results(tmp_path / "w2")
    assert results["partial"] and results["dataset"]["num_images"] == 2
    assert results["skipped"][0]["image"] == "ADE_val_00000002"


@pytest.mark.parametrize("damage, message", [
    ("garbage", "unreadable or truncated label map"),
    ("values", "label values 199, 200 are outside [0, 150)"),
    ("size", "label size 64x48 differs from its image"),
    ("16bit", "label map has image mode I;16"),
    ("rgb", "label map has image mode RGB"),
])
def test_bad_labels(run_eval, tmp_path, ade_root, damage, message):
    path = _label(ade_root, 1)
    if damage == "garbage":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    elif damage == "values":
        label = np.array(Image.open(path))
        label[:2, :2] = 200  # raw 200, 201 -> 199, 200 after reduce-zero-label
        label[2:4, :2] = 201
        Image.fromarray(label).save(path)
    elif damage == "size":
        Image.fromarray(np.ones((48, 64), np.uint8)).save(path)
    elif damage == "16bit":
        Image.fromarray(np.ones((96, 128), np.uint16) * 300).save(path)
    else:
        Image.fromarray(np.ones((96, 128, 3), np.uint8)).save(path)
    _fails(run_eval, eval_args("ade20k", ade_root, tmp_path / "w"), str(path), message)


# --- config, model, class names -------------------------------------------------------------------

def test_config_errors(run_eval, tmp_path, ade_root):
    args = eval_args("ade20k", ade_root, tmp_path / "w")
    _fails(run_eval, ["configs/ade2k.py"] + args[1:], "config file configs/ade2k.py does not exist",
           "did you mean configs/ade20k.py")
    _fails(run_eval, args + ["model.method.dept=4"], "unknown key 'dept' in model.method", "did you mean depth")
    _fails(run_eval, args + ["model.method.depth=deep"], "model.method.depth='deep'",
           "expected an int like 6, got a str")
    _fails(run_eval, args + ["model.method.type=sclp"], "unknown method 'sclp'", "did you mean sclip")
    _fails(run_eval, args + ["test_dataloader.dataset.type=ADE20kDataset"], "unknown dataset type 'ADE20kDataset'",
           "did you mean ADE20KDataset")
    _fails(run_eval, args + ["model.templates=clip_surgery_58"], "unknown template set 'clip_surgery_58'",
           "did you mean clip_surgery_85")
    _fails(run_eval, args + ["model.feature_surgery=weighed"], "feature_surgery must be one of", "'weighted'")


def test_config_file_with_unknown_model_option(run_eval, tmp_path, ade_root):
    config = tmp_path / "typo.py"
    config.write_text(f"_base_ = ['{REPO}/configs/ade20k.py']\nmodel = dict(method=dict(dept=4))\n")
    args = eval_args("ade20k", ade_root, tmp_path / "w")
    _fails(run_eval, [str(config)] + args[1:], "method 'clip_surgery' has no parameter 'dept'",
           "did you mean depth")


def test_model_errors(run_eval, tmp_path, ade_root):
    args = eval_args("ade20k", ade_root, tmp_path / "w")
    model_at = args.index("--model") + 1
    bad_name = list(args)
    bad_name[model_at] = "ViT-B-61"
    _fails(run_eval, bad_name, "unknown model name 'ViT-B-61'", "ViT-B-16")
    pretrained_at = args.index("--pretrained") + 1
    missing = list(args)
    missing[pretrained_at] = str(tmp_path / "weights.pt")
    _fails(run_eval, missing, f"weights file {tmp_path / 'weights.pt'} does not exist")
    (tmp_path / "weights.pt").write_text("not weights")
    _fails(run_eval, missing, f"weights file {tmp_path / 'weights.pt'} is not a readable CLIP checkpoint")


@pytest.mark.parametrize("text, message", [
    ("road\n\nsky\n", "line 2: empty class name"),
    ("road\nsky, sky\n", "line 2: 'sky' appears twice on the line"),
    ("road\nsky,\n", "line 2: empty class name"),
])
def test_bad_class_name_files(run_eval, tmp_path, ade_root, text, message):
    names = tmp_path / "classes.txt"
    names.write_text(text)
    _fails(run_eval, eval_args("ade20k", ade_root, tmp_path / "w", options=[f"model.classnames={names}"]),
           f"{names} {message}")


def test_window_batches_shrink_on_out_of_memory(caplog):
    calls = []

    def fn(batch):
        calls.append(len(batch))
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return batch * 2

    windows = torch.arange(7.0).view(7, 1)
    batcher = WindowBatcher(8)
    with caplog.at_level("WARNING"):
        out = torch.cat([o for _, o in batcher.run(windows, fn)])
        out2 = torch.cat([o for _, o in batcher.run(windows, fn)])
    assert torch.equal(out, windows * 2) and torch.equal(out2, windows * 2)
    assert calls[:3] == [7, 4, 2] and batcher.batch_size == 2
    assert sum("out of memory" in r.message for r in caplog.records) == 1  # said once

    def never_fits(batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(UserError, match="one window does not fit in GPU memory"):
        list(WindowBatcher(4).run(windows, never_fits))


# --- interruption and resume ----------------------------------------------------------------------

def _spawn(args, tmp_path):
    env = dict(os.environ, CLIP_SURGERY_SEG_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "tools/eval.py", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_rows(work, n, proc, timeout=120):
    db = work / "progress" / "rank0.sqlite"
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        if db.exists():
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                    if conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] >= n:
                        return
            except sqlite3.OperationalError:
                pass
        time.sleep(0.02)
    raise AssertionError("the run did not make progress")


@pytest.fixture
def many_images(tmp_path):
    root = tmp_path / "many"
    write_synthetic("ade20k", root, num_images=24, image_size=(96, 128), seed=2)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill", "interrupt"])
def test_interrupted_run_resumes_to_the_same_numbers(run_eval, tmp_path, many_images, how):
    code, _, err = run_eval(eval_args("ade20k", many_images, tmp_path / "straight"))
    assert code == 0, err
    work = tmp_path / "stopped"
    args = eval_args("ade20k", many_images, work, options=["model.window_batch_size=1"])
    proc = _spawn(args, tmp_path)
    _wait_for_rows(work, 3, proc)
    proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert not (work / "metrics.json").exists()
    if how == "interrupt":
        assert proc.returncode == 130
        assert "images done, progress saved in" in err and "--resume" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    # a fresh run must not silently replace the unfinished one
    _fails(run_eval, args, "holds an unfinished run", "--resume")
    code, _, err = run_eval(_with_flag(args, "--resume"))
    assert code == 0, err
    resumed, straight = _results(work), _results(tmp_path / "straight")
    assert resumed["timing"]["resumed_images"] >= 3
    assert resumed["per_class"] == straight["per_class"] and resumed["summary"] == straight["summary"]
    assert resumed["dataset"]["num_images"] == 24


def _with_flag(args, flag):
    at = args.index("--cfg-options")
    return args[:at] + [flag] + args[at:]


def test_resume_with_a_different_run_is_refused(run_eval, tmp_path, ade_root):
    work = tmp_path / "w"
    assert run_eval(eval_args("ade20k", ade_root, work))[0] == 0
    _fails(run_eval, _with_flag(eval_args("ade20k", ade_root, work, options=["model.method.depth=5"]), "--resume"),
           "cannot resume", "experiment.method.params.depth: 6 -> 5")
    other = tmp_path / "other"
    write_synthetic("ade20k", other, num_images=3, image_size=(96, 128), seed=1)
    _fails(run_eval, _with_flag(eval_args("ade20k", other, work), "--resume"), "cannot resume", "data_root")
    args = _with_flag(eval_args("ade20k", ade_root, work), "--resume")
    args[args.index("--pretrained") + 1] = str(tmp_path / "w.pt")
    from clip_surgery_seg.models import build_clip

    model, _ = build_clip(args[args.index("--model") + 1])
    torch.save(model.state_dict(), tmp_path / "w.pt")
    _fails(run_eval, args, "cannot resume", "experiment.model.sha256")


def test_resume_after_the_model_config_file_changed_is_refused(run_eval, tmp_path, ade_root):
    """A model is its content: the same model-config path holding another architecture is another run."""
    import json

    from conftest import TINY_VIT

    model = tmp_path / "model.json"
    model.write_text(TINY_VIT.read_text())
    args = eval_args("ade20k", ade_root, tmp_path / "w")
    args[args.index("--model") + 1] = str(model)
    assert run_eval(args)[0] == 0
    edited = json.loads(model.read_text())
    edited["vision_cfg"]["layers"] = edited["vision_cfg"]["layers"] - 1
    model.write_text(json.dumps(edited))
    _fails(run_eval, _with_flag(args, "--resume"), "cannot resume", "experiment.model.config_sha256")


def test_fresh_run_moves_old_results_aside(run_eval, tmp_path, ade_root):
    work = tmp_path / "w"
    assert run_eval(eval_args("ade20k", ade_root, work))[0] == 0
    first = _results(work)
    assert run_eval(eval_args("ade20k", ade_root, work))[0] == 0
    assert json.loads((work / "previous_metrics.json").read_text())["created"] == first["created"]


def test_interrupted_atomic_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    atomic_write_json(path, {"version": 1})

    def crash(src, dst):
        raise OSError("power cut between write and rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        atomic_write_json(path, {"version": 2, "padding": "x" * 100000})
    assert json.loads(path.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_two_runs_give_identical_numbers(run_eval, tmp_path, ade_root):
    for name in ("a", "b"):
        assert run_eval(eval_args("ade20k", ade_root, tmp_path / name))[0] == 0
    a, b = _results(tmp_path / "a"), _results(tmp_path / "b")
    assert a["per_class"] == b["per_class"] and a["summary"] == b["summary"]
    assert a["config_hash"] == b["config_hash"]


# --- never a silent wrong number: the engine's edges ----------------------------------------------

def test_a_dangling_symlink_image_is_an_error_or_a_listed_skip(run_eval, tmp_path, ade_root):
    # the layout lists it; it must be evaluated or reported, never silently left out of a complete run
    _image(ade_root, 2).unlink()
    _image(ade_root, 2).symlink_to(tmp_path / "gone.jpg")
    _fails(run_eval, eval_args("ade20k", ade_root, tmp_path / "w"), str(_image(ade_root, 2)), "missing",
           "--skip-bad")
    code, _, err = run_eval(eval_args("ade20k", ade_root, tmp_path / "w2", "--skip-bad"))
    assert code == 0, err
    results = _results(tmp_path / "w2")
    assert results["partial"] and [s["image"] for s in results["skipped"]] == ["ADE_val_00000002"]


def _interrupted(run_eval, tmp_path, root, work, options=()):
    """A run of 24 images stopped after some were committed."""
    args = eval_args("ade20k", root, work, options=["model.window_batch_size=1", *options])
    proc = _spawn(args, tmp_path)
    _wait_for_rows(work, 3, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return args


def test_resume_refuses_changed_class_names_and_changed_data(run_eval, tmp_path, many_images):
    names = tmp_path / "classes.txt"
    names.write_text((REPO / "configs" / "classnames" / "ade20k.txt").read_text())
    work = tmp_path / "w"
    args = _interrupted(run_eval, tmp_path, many_images, work, options=[f"model.classnames={names}"])
    names.write_text(names.read_text().replace("wall\n", "walls\n", 1))  # same path, other content
    _fails(run_eval, _with_flag(args, "--resume"), "cannot resume", "classnames_sha256")
    names.write_text((REPO / "configs" / "classnames" / "ade20k.txt").read_text())
    label = _label(many_images, 20)
    Image.fromarray(np.zeros((96, 128), np.uint8)).save(label)  # a data file changed under the resume
    _fails(run_eval, _with_flag(args, "--resume"), "cannot resume", "data_listing")


def test_two_runs_in_one_work_dir_are_refused(run_eval, tmp_path, ade_root):
    from clip_surgery_seg.fileio import file_lock

    work = tmp_path / "w"
    with file_lock(work / ".lock", wait=False, holder="pid 4242 on testhost: tools/eval.py configs/ade20k.py"):
        line = _fails(run_eval, eval_args("ade20k", ade_root, work), f"{work} is in use by another run",
                      "pid 4242 on testhost", "--work-dir")
    assert "pid 4242" in line and not (work / "metrics.json").exists()
    assert run_eval(eval_args("ade20k", ade_root, work))[0] == 0  # free again once the holder is gone


def test_non_finite_weights_are_an_error_not_a_number(run_eval, tmp_path, ade_root):
    from clip_surgery_seg.models import build_clip

    model, _ = build_clip(str(TINY_VIT))
    state = model.state_dict()
    state["visual.proj"][0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    args = eval_args("ade20k", ade_root, tmp_path / "w")
    args[args.index("--pretrained") + 1] = str(tmp_path / "nan.pt")
    _fails(run_eval, args, "non-finite similarities", "--precision fp32", "ADE_val_0000000")
    assert not (tmp_path / "w" / "metrics.json").exists()


def test_a_split_whose_labels_are_all_ignored_reports_no_number(run_eval, tmp_path, ade_root):
    for i in (1, 2, 3):  # ADE: 0 = other -> ignored
        Image.fromarray(np.zeros((96, 128), np.uint8)).save(_label(ade_root, i))
    _fails(run_eval, eval_args("ade20k", ade_root, tmp_path / "w"), "mIoU", "is not a number",
           "no labelled pixel")
    assert not (tmp_path / "w" / "metrics.json").exists()


def test_a_damaged_progress_file_is_one_line(run_eval, tmp_path, many_images):
    work = tmp_path / "w"
    args = _interrupted(run_eval, tmp_path, many_images, work)
    db = work / "progress" / "rank0.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE images SET counts = X'0102' WHERE rowid = (SELECT MIN(rowid) FROM images)")
    _fails(run_eval, _with_flag(args, "--resume"), "progress files", "are damaged", "delete that folder")


@pytest.mark.slow
def test_a_resumed_run_writes_every_prediction(run_eval, tmp_path, many_images):
    preds = tmp_path / "preds"
    work = tmp_path / "w"
    args = _with_flag(_interrupted(run_eval, tmp_path, many_images, work), "--save-preds")
    args.insert(args.index("--save-preds") + 1, str(preds))
    for png in preds.glob("*.png"):  # as if the first run died before writing its pictures
        png.unlink()
    code, _, err = run_eval(_with_flag(args, "--resume"))
    assert code == 0, err
    assert len(list(preds.glob("*.png"))) == 24
    assert _results(work)["dataset"]["num_images"] == 24


def test_outputs_are_checked_before_the_first_image(run_eval, tmp_path, ade_root):
    blocked = tmp_path / "file"
    blocked.write_text("a file where a folder should be")
    _fails(run_eval, eval_args("ade20k", ade_root, tmp_path / "w", "--save-preds", blocked / "preds"),
           "--save-preds", "is not writable")
    assert not (tmp_path / "w" / "progress").exists()  # refused before any image was evaluated
    _fails(run_eval, eval_args("ade20k", ade_root, blocked / "w"), "--work-dir", "is not writable")


@pytest.mark.parametrize("option, message", [
    ("protocol.short_side=0", "short_side must be an integer >= 1"),
    ("protocol.stride=500", "stride <= crop_size"),
    ("protocol.logit_scale=0", "logit_scale=0 must be a number > 0"),
    ("protocol.logit_scale=-5.0", "logit_scale=-5.0 must be a number > 0"),
    ("protocol.prob_threshold=1.5", "not a probability"),
])
def test_impossible_protocol_settings_are_one_line(run_eval, tmp_path, ade_root, option, message):
    _fails(run_eval, eval_args("ade20k", ade_root, tmp_path / "w", options=[option]), message)


def test_cuda_without_a_gpu_is_one_line(run_eval, tmp_path, ade_root):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    _fails(run_eval, eval_args("ade20k", ade_root, tmp_path / "w", "--device", "cuda"), "--device cuda",
           "--device cpu")


def test_unreachable_default_weights_are_one_line_with_the_offline_route(run_eval, tmp_path, ade_root, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as without network: nothing in the cache, no download
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    args = eval_args("ade20k", ade_root, tmp_path / "w")
    for flag in ("--model", "--pretrained"):
        at = args.index(flag)
        del args[at:at + 2]
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "metrics.json").write_text('{"last": "good"}')
    line = _fails(run_eval, args + ["--model", "ViT-B/16"], "cannot load the ViT-B-16 'openai' weights",
                  "HF_HUB_OFFLINE is set", "--pretrained FILE")
    assert json.loads((tmp_path / "w" / "metrics.json").read_text()) == {"last": "good"}  # nothing moved
    assert "Traceback" not in line and len(line) < 200


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released): connecting is refused at once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # three processes
def test_default_weights_without_network_are_one_short_line_within_seconds(tmp_path, ade_root):
    """The default run (ViT-B-16, 'openai') where the weights host cannot be reached: no retries, no
    library chatter, one line with the ways out. The hub's endpoint is a closed local port."""
    port = _closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"), XDG_CACHE_HOME=str(tmp_path),
               CLIP_SURGERY_SEG_CACHE=str(tmp_path / "cache"))
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "metrics.json").write_text('{"last": "good"}')
    command = [sys.executable, "tools/eval.py", "configs/ade20k.py", "--data-root", str(ade_root), "--work-dir",
               str(tmp_path / "w"), "--limit", "1", "--cfg-options", "test_dataloader.num_workers=0"]
    # the same start (imports, config, data check) failing at the weights for another reason: what the
    # process costs on this machine whatever the network, so that only the weights step is timed
    (tmp_path / "bad.pt").write_text("not weights")
    start = time.monotonic()
    baseline = subprocess.run(command + ["--pretrained", str(tmp_path / "bad.pt")], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
    startup = time.monotonic() - start
    assert baseline.returncode == 1 and "is not a readable CLIP checkpoint" in baseline.stderr, baseline.stderr
    start = time.monotonic()
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    took = time.monotonic() - start - startup
    assert run.returncode == 1, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], run.stderr
    assert not any("Retry" in line or "huggingface_hub" in line or "WARNING" in line for line in lines), run.stderr
    line = errors[0]
    assert len(line) < 200, (len(line), line)
    for fragment in ("cannot download the ViT-B-16 'openai' weights", "no network", f"127.0.0.1:{port}",
                     "--pretrained FILE", "HF_HUB_OFFLINE=1"):
        assert fragment in line, line
    assert took < 10, f"{took:.1f} s more than a run failing at once ({startup:.1f} s)"
    run = subprocess.run([sys.executable, "tools/eval.py", "configs/ade20k.py", "--data-root", str(ade_root),
                          "--work-dir", str(tmp_path / "w"), "--limit", "1", "--quiet"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and run.stderr.strip() == line, run.stderr  # --quiet: only the error line
    assert json.loads((tmp_path / "w" / "metrics.json").read_text()) == {"last": "good"}  # nothing moved


# --- the run's log -------------------------------------------------------------------------------------

def test_the_log_of_a_run_holds_its_table_and_summary_or_its_error(run_eval, tmp_path, ade_root):
    code, out, err = run_eval(eval_args("ade20k", ade_root, tmp_path / "ok"))
    assert code == 0, err
    logs = list((tmp_path / "ok" / "logs").glob("*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    summary = next(line for line in out.splitlines() if line.startswith("ade20k: mIoU"))
    assert summary in text and "wall " in text
    results = _results(tmp_path / "ok")
    for row in results["per_class"][:3] + results["per_class"][-3:]:  # the per-class table, first and last rows
        assert any(line.split()[:1] == [row["class"].split()[0]] and line.split()[-1] in (f"{row['Acc']:.2f}", "nan")
                   for line in text.splitlines()), row["class"]
    assert "error" not in text.lower()

    bad = tmp_path / "bad.pt"
    bad.write_text("not weights")
    args = eval_args("ade20k", ade_root, tmp_path / "bad")
    args[args.index("--pretrained") + 1] = str(bad)
    line = _fails(run_eval, args, f"weights file {bad} is not a readable CLIP checkpoint")
    logs = list((tmp_path / "bad" / "logs").glob("*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert line[len("error: "):] in text and "WeightsError" in text
    assert not (tmp_path / "bad" / "metrics.json").exists()


@pytest.mark.parametrize("config", ["nosuch", "ade2k", "configs/sclp/ade20k.py", "configs/ade20k.py.bak"])
def test_a_config_that_does_not_exist_leaves_no_folder(run_eval, tmp_path, ade_root, monkeypatch, config):
    monkeypatch.chdir(tmp_path)
    args = eval_args("ade20k", ade_root, tmp_path / "unused")
    at = args.index("--work-dir")
    del args[at:at + 2]
    line = _fails(run_eval, [config] + args[1:], f"config file {config} does not exist")
    assert len(line) < 300
    assert not (tmp_path / "work_dirs").exists()


def test_cfg_options_keep_spaces_and_config_is_an_option_too(run_eval, tmp_path, ade_root):
    args = eval_args("ade20k", ade_root, tmp_path / "w", options=['model.templates=["a photo of a {}."]'])
    args = ["--config", *args]
    code, _, err = run_eval(args)
    assert code == 0, err
    results = _results(tmp_path / "w")
    assert results["text"]["templates"] == ["a photo of a {}."]
    logs = list((tmp_path / "w" / "logs").glob("*.log"))
    assert len(logs) == 1 and "tools/eval.py --config" in logs[0].read_text()
    assert results["environment"]["num_workers"] <= (os.cpu_count() or 1)


def test_a_class_name_file_of_another_dataset_is_refused(run_eval, tmp_path, synthetic_root):
    ade_names = REPO / "configs" / "classnames" / "ade20k.txt"
    _fails(run_eval, eval_args("cityscapes", synthetic_root, tmp_path / "w", options=[f"model.classnames={ade_names}"]),
           f"class-name file {ade_names} has 150 classes, the cityscapes dataset has 19",
           "configs/classnames/cityscapes.txt")
