"""A non-editable install works on its own: the wheel carries every module, the configs and the
published numbers, and the console tools run from a folder outside the repository."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clip_surgery_seg.models.methods import METHODS
from conftest import REPO, TINY_VIT

NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "work_dirs", "data", "results", "*.egg-info",
                                    "__pycache__", "_packaged", ".pytest_cache")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package built as a wheel from a copy of the source tree and installed with --target."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "src"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    (source / "results").mkdir()
    shutil.copy2(REPO / "results" / "paper.csv", source / "results" / "paper.csv")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(tmp / "wheel")],
                   check=True, capture_output=True, timeout=300)
    wheel = next((tmp / "wheel").glob("clip_surgery_seg-*.whl"))
    site = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    return site


def _tool(site: Path, name: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(site), CLIP_SURGERY_SEG_CACHE=str(cwd / "cache"))
    return subprocess.run([str(site / "bin" / name), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_wheel_holds_every_package_and_the_shipped_files(installed):
    package = installed / "clip_surgery_seg"
    for sub in ("models", "datasets", "evaluation", "segmentors", "engine", "reporting", "cli", "data_prep"):
        assert (package / sub / "__init__.py").is_file(), sub
    assert (package / "_packaged" / "configs" / "ade20k.py").is_file()
    assert (package / "_packaged" / "configs" / "classnames" / "ade20k.txt").is_file()
    assert (package / "_packaged" / "configs" / "_base_" / "protocols" / "clearclip.py").is_file()
    assert (package / "_packaged" / "results" / "paper.csv").read_text() == (REPO / "results" / "paper.csv").read_text()
    for template in ("base.html", "macros.html", "run_report.html", "run_index.html"):  # the report pages' markup
        shipped = package / "reporting" / "templates" / template
        assert shipped.read_text() == (REPO / "clip_surgery_seg" / "reporting" / "templates" / template).read_text()


def test_installed_tools_evaluate_from_outside_the_repository(installed, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    made = _tool(installed, "css-make-synthetic-data", "ade20k", "--root", "data", "--num-images", "2", "--size",
                 "64", "96", cwd=work)
    assert made.returncode == 0, made.stderr
    fast = ["--model", TINY_VIT, "--pretrained", "none", "--quiet", "--cfg-options", "test_dataloader.num_workers=0",
            "protocol.short_side=64", "protocol.crop_size=32", "protocol.stride=16"]
    run = _tool(installed, "css-eval", "configs/ade20k.py", "--data-root", "data", *fast, cwd=work)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((work / "work_dirs" / "ade20k" / "metrics.json").read_text())
    assert results["dataset"]["num_images"] == 2 and results["protocol"]["name"] == "sclip"
    shipped = installed / "clip_surgery_seg" / "_packaged" / "configs"
    assert Path(results["config"]["model"]["classnames"]).resolve() == (shipped / "classnames" / "ade20k.txt").resolve()
    assert results["code"]["git_commit"] is None and results["code"]["version"]  # not a checkout
    # the same through a protocol and the reproduction tool, whose table needs the shipped paper.csv
    run = _tool(installed, "css-reproduce", "--datasets", "ade20k", "--protocol", "clearclip", "--data-root", "data",
                "--out", "run", "--history", "none", *fast, cwd=work)
    assert run.returncode == 0, run.stderr[-3000:]
    table = (work / "run" / "table.md").read_text()
    assert "ADE20K-150" in next(line for line in table.splitlines() if line.startswith("| method"))
    assert all(f"| {label} " in table for label in ("CLIP ", "SCLIP", "NACLIP", "CLIP Surgery"))
    # the pages are rendered from the installed package's templates: the run's report and the run's index
    assert "not written" not in run.stderr
    report = (work / "work_dirs" / "ade20k" / "report.html").read_text(encoding="utf-8")
    assert "<h2>Per-class IoU</h2>" in report and "<h2>Provenance</h2>" in report
    index = (work / "run" / "report.html").read_text(encoding="utf-8")
    methods = len(METHODS)  # every method ran
    assert index.count('<a class="ours" href=') == methods and index.count('<a class="report" href=') == methods
    assert "<td>CLIP Surgery</td><td>clearclip</td>" in index
    # the demo finds its default model config and the dataset's class names in the package
    image = next((work / "data").rglob("*.jpg"))
    run = _tool(installed, "css-demo", image, "--dataset", "ade20k", "--show-classes", "wall", "--out", "demo",
                "--model", TINY_VIT, "--pretrained", "none", "--device", "cpu", "--quiet", cwd=work)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (work / "demo" / "none" / "heatmaps" / "000_wall.png").is_file()
    assert not (work / "configs").exists()
