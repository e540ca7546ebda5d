"""A newcomer's first commands: every tool names itself as it was run, the habits of mmseg and SCLIP
get one line naming the equivalent here (or just work), config names forgive case and typos, and
--cfg-options given twice keeps both."""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import runpy
import sys

import pytest
import torch

from clip_surgery_seg.datasets.synthetic import write_synthetic
from conftest import REPO, TINY_VIT, eval_args

# tool module -> (checkout script, installed command)
TOOLS = {
    "eval": ("tools/eval.py", "css-eval"),
    "demo": ("tools/demo.py", "css-demo"),
    "reproduce": ("tools/reproduce.py", "css-reproduce"),
    "report": ("tools/report.py", "css-report"),
    "compare": ("tools/compare.py", "css-compare"),
    "history": ("tools/history.py", "css-history"),
    "prepare_data": ("tools/prepare_data.py", "css-prepare-data"),
    "check_data": ("tools/check_data.py", "css-check-data"),
    "make_synthetic": ("tools/make_synthetic_data.py", "css-make-synthetic-data"),
}
# one template instead of 85: the runs here are about the command line, not the text
FEW_TEMPLATES = "model.templates=['a photo of a {}.']"


@pytest.fixture
def ade_root(tmp_path):
    root = tmp_path / "data"
    write_synthetic("ade20k", root, num_images=2, image_size=(64, 96), seed=1)
    return root


def _call(main, args):
    """``main(args)`` in this process: (exit code, stdout, stderr); argparse's exits count as codes."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as stop:
            code = stop.code
    return code, out.getvalue(), err.getvalue()


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# --- item 3: the names tools print ------------------------------------------------------------------

@pytest.mark.parametrize("module", list(TOOLS))
def test_every_tool_names_itself_as_it_was_run(module, monkeypatch):
    script, command = TOOLS[module]
    main = importlib.import_module(f"clip_surgery_seg.cli.{module}").main
    monkeypatch.setattr(sys, "argv", [f"/opt/venv/bin/{command}"])
    code, out, _ = _call(main, ["--help"])
    assert code == 0
    assert out.startswith(f"usage: {command} ")
    assert "tools/" not in out and "python tools" not in out, out  # usage, description and examples alike
    monkeypatch.setattr(sys, "argv", [script])
    code, out, _ = _call(main, ["--help"])
    assert code == 0 and out.startswith(f"usage: python {script} ")


def test_hints_name_the_installed_commands(run_eval, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/css-eval"])
    code, _, err = run_eval(eval_args("ade20k", tmp_path / "nowhere", tmp_path / "w"))
    line = _one_error_line(err)
    assert code == 1 and "`css-prepare-data ade20k`" in line and "tools/" not in line, line
    monkeypatch.setattr(sys, "argv", ["tools/eval.py"])
    code, _, err = run_eval(eval_args("ade20k", tmp_path / "nowhere", tmp_path / "w"))
    assert "`python tools/prepare_data.py ade20k`" in _one_error_line(err)


def test_prepare_data_says_the_next_command_as_invoked(monkeypatch, tmp_path):
    import clip_surgery_seg.data_prep.prepare as prepare
    from clip_surgery_seg.cli.prepare_data import main

    import clip_surgery_seg.datasets.check as check

    def fake_prepare(name, root, *args, **kwargs):  # our own download step, replaced: no network in tests
        write_synthetic(name, root, num_images=2, image_size=(32, 48), seed=0)

    real_check = check.check_dataset
    monkeypatch.setattr(prepare, "prepare", fake_prepare)
    monkeypatch.setattr(check, "check_dataset", lambda *a, **k: real_check(*a, **k, expected_images=2))
    monkeypatch.setattr(sys, "argv", ["/usr/bin/css-prepare-data"])
    code, out, _ = _call(main, ["ade20k", "--root", tmp_path / "d", "--force"])
    assert code == 0 and f"next: css-check-data ade20k --root {tmp_path / 'd'}" in out, out


# --- item 4: mmseg's and SCLIP's habits -------------------------------------------------------------

@pytest.mark.parametrize("extra, fragments", [
    (["--out", "results.pkl"], ["--out", "metrics are written to <work-dir>/metrics.json", "--work-dir"]),
    (["--launcher", "slurm"], ["--launcher slurm", "torchrun", "--launcher pytorch"]),
    (["--launcher", "mpi"], ["--launcher mpi", "torchrun"]),
    (["--tta"], ["--tta", "no test-time augmentation"]),
    (["--aug-test"], ["no test-time augmentation"]),
    (["--show"], ["--show-dir"]),
    (["--eval", "mIoU"], ["--eval", "always computed"]),
    (["--gpu-id", "1"], ["--device cuda:N"]),
    (["work_dirs/iter_80000.pth"], ["CHECKPOINT", "--pretrained work_dirs/iter_80000.pth"]),
    (["--cfg-options", "model.slide_crop=224"], ["model.slide_crop", "protocol.crop_size=224"]),
    (["--cfg-options", "model.slide_stride=112"], ["protocol.stride=112"]),
    (["--cfg-options", "model.prob_thd=0.1"], ["model.prob_thd", "protocol.prob_threshold=0.1"]),
    (["--cfg-options", "model.logit_scale=50"], ["protocol.logit_scale=50"]),
    (["--cfg-options", "model.area_thd=0.1"], ["model.area_thd", "no equivalent"]),
    (["--cfg-options", "model.pamr_steps=10"], ["model.postprocess=pamr", "model.postprocess.num_iter=10"]),
    (["--cfg-options", "model.name_path=./configs/cls_voc21.txt"], ["model.classnames"]),
    (["--cfg-options", "model.test_cfg.crop_size=[224,224]"], ["protocol.crop_size"]),
    (["--no-such-flag"], ["--no-such-flag"]),
])
def test_habits_of_other_harnesses_get_one_line(run_eval, tmp_path, ade_root, extra, fragments):
    from clip_surgery_seg.cli.eval import main

    args = ["configs/ade20k.py", "--data-root", ade_root, "--work-dir", tmp_path / "w", *extra]
    code, out, err = _call(main, args)  # in the repository (run_eval's folder); argparse's exits count
    line = _one_error_line(err)
    assert code in (1, 2) and out == ""
    for fragment in fragments:
        assert fragment in line, line
    assert len(line) < 300, line
    assert not (tmp_path / "w").exists()


def test_local_rank_and_device_index_are_accepted(run_eval, tmp_path, ade_root):
    from clip_surgery_seg.cli.eval import build_parser, main

    for flags in (["--local_rank", "3"], ["--local-rank=3"], ["--local_rank=3"]):
        assert build_parser().parse_args(["ade20k", *flags]).local_rank == 3
    code, _, err = run_eval(eval_args("ade20k", ade_root, tmp_path / "w", "--limit", "1", "--local_rank", "0",
                                      options=[FEW_TEMPLATES]))
    assert code == 0, err
    assert json.loads((tmp_path / "w" / "metrics.json").read_text())["dataset"]["num_images"] == 1
    args = build_parser().parse_args(["ade20k", "--device", "cuda:0"])
    assert args.device == "cuda:0"
    code, _, err = _call(main, ["ade20k", "--device", "cuda:x"])
    assert code == 2 and "--device" in _one_error_line(err) and "cuda:N" in err
    if not torch.cuda.is_available():  # one line, not a usage dump
        code, _, err = run_eval(eval_args("ade20k", ade_root, tmp_path / "w2", "--device", "cuda:0"))
        assert code == 1 and "--device cuda:0" in _one_error_line(err)
    else:
        code, _, err = run_eval(eval_args("ade20k", ade_root, tmp_path / "w2", "--device", "cuda:0", "--limit", "1",
                                          options=[FEW_TEMPLATES]))
        assert code == 0, err
        assert json.loads((tmp_path / "w2" / "metrics.json").read_text())["environment"]["device"].startswith("cuda")


def test_tools_test_py_is_eval_with_the_checkpoint_as_pretrained(monkeypatch, tmp_path, ade_root):
    from clip_surgery_seg.models import build_clip

    model, _ = build_clip(str(TINY_VIT), seed=4)
    checkpoint = tmp_path / "iter_80000.pth"
    torch.save(model.state_dict(), checkpoint)
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CLIP_SURGERY_SEG_CACHE", str(tmp_path / "cache"))
    args = eval_args("ade20k", ade_root, tmp_path / "w", "--limit", "1", options=[FEW_TEMPLATES])
    at = args.index("--pretrained")
    del args[at:at + 2]
    monkeypatch.setattr(sys, "argv", ["tools/test.py", args[0], str(checkpoint), *args[1:]])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as stop:
        runpy.run_path(str(REPO / "tools" / "test.py"), run_name="__main__")
    assert stop.value.code == 0, err.getvalue()
    note = err.getvalue().splitlines()[0]
    assert "tools/test.py is mmseg's name" in note and f"--pretrained {checkpoint}" in note, note
    results = json.loads((tmp_path / "w" / "metrics.json").read_text())
    assert results["model"]["pretrained"] == str(checkpoint) and results["model"]["sha256"]


@pytest.mark.parametrize("name, expected", [
    ("ADE20K", ("ade20k.py", None)), ("configs/ADE20K.py", ("ade20k.py", None)), ("ADE20K.py", ("ade20k.py", None)),
    ("SCLIP/ade20k", ("ade20k.py", "sclip")), ("configs/SCLIP/ADE20K.py", ("ade20k.py", "sclip")),
    ("Cityscapes", ("cityscapes.py", None)),
])
def test_config_names_in_any_case_resolve(name, expected):
    from clip_surgery_seg.engine.experiment import locate_config

    path, method = locate_config(name)
    assert (path.name, method) == expected and path.is_file()


@pytest.mark.parametrize("name, hint", [
    ("ade2k", "did you mean ade20k"),
    ("configs/ade2k.py", "did you mean configs/ade20k.py"),
    ("sclip/ade2k", "did you mean sclip/ade20k"),
    ("configs/sclp/ade20k.py", "did you mean configs/sclip/ade20k.py"),
    ("cityscape", "did you mean cityscapes"),
])
def test_config_name_typos_get_did_you_mean(name, hint):
    from clip_surgery_seg.engine.experiment import locate_config
    from clip_surgery_seg.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        locate_config(name)
    assert f"config file {name} does not exist" in str(err.value) and hint in str(err.value), str(err.value)


# --- item 7: --cfg-options twice -----------------------------------------------------------------------

@pytest.mark.parametrize("module", ["eval", "reproduce", "demo"])
def test_cfg_options_given_twice_keep_both(module):
    build_parser = importlib.import_module(f"clip_surgery_seg.cli.{module}").build_parser
    first = ["photo.jpg"] if module == "demo" else ["ade20k"] if module == "eval" else []
    args = build_parser().parse_args([*first, "--cfg-options", "a=1", "b=2", "--cfg-options", "c=3"])
    assert args.cfg_options == ["a=1", "b=2", "c=3"]
