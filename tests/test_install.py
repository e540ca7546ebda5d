"""A plain install works on its own: ``pip install .`` (no extras) brings everything the tools import,
mmcv-lite included; the wheel carries every module, the configs and the published numbers, and the
console tools run from a folder outside the repository.

No network: the install is real (pip resolves the wheel's requirements, no ``--no-deps``) into a fresh
virtual environment that sees this environment's packages through a ``.pth`` file, except mmcv and
this package; pip finds only the built wheel and a wheel of the installed mmcv-lite (``--no-index``).
A requirement the wheel forgets is then missing when a tool runs."""
from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from clip_surgery_seg.models.methods import METHODS
from conftest import REPO, TINY_VIT

NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "work_dirs", "data", "results", "*.egg-info",
                                    "__pycache__", "_packaged", ".pytest_cache")
pytestmark = pytest.mark.slow  # a wheel build, a virtual environment, pip and the tools as processes

# what the fresh environment must get from the install itself, not from this one
NOT_SHARED = ("mmcv", "mmcv_lite-", "mmcv-", "clip_surgery_seg", "__editable__", "__pycache__")


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _wheel_of_installed(name: str, folder: Path) -> Path:
    """A wheel of an installed pure-Python distribution, from its files (an offline stand-in for the
    index); RECORD is written anew, pip's own files (INSTALLER, ...) are left out."""
    dist = importlib.metadata.distribution(name)
    site = Path(dist.locate_file(""))
    info = next(f for f in dist.files if f.name == "METADATA").parent.as_posix()
    wheel = folder / f"{info[:-len('.dist-info')]}-py3-none-any.whl"
    records = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as out:
        for file in dist.files:
            path = file.as_posix()
            if "__pycache__" in path or path.endswith(".pyc") or path.startswith("..") or Path(path).name in (
                    "RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
                continue
            data = (site / path).read_bytes()
            out.writestr(path, data)
            records.append(f"{path},{_record_hash(data)},{len(data)}")
        out.writestr(f"{info}/RECORD", "\n".join(records + [f"{info}/RECORD,,"]) + "\n")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> SimpleNamespace:
    """``pip install clip-surgery-seg`` from the wheel built of a copy of the source tree: ``bin`` (the
    console commands), ``package`` (the installed package), ``wheel``."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "src"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    (source / "results").mkdir()
    shutil.copy2(REPO / "results" / "paper.csv", source / "results" / "paper.csv")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels = tmp / "wheels"
    subprocess.run([*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(wheels)],
                   check=True, capture_output=True, timeout=300)
    _wheel_of_installed("mmcv-lite", wheels)
    # this environment's packages, except mmcv and this package, for the new environment to see
    shared = tmp / "shared"
    shared.mkdir()
    here = Path(sysconfig.get_paths()["purelib"])
    for entry in here.iterdir():
        if not entry.name.startswith(NOT_SHARED) and entry.suffix != ".pth":
            (shared / entry.name).symlink_to(entry)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True,
                   timeout=300)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    (purelib / "shared-packages.pth").write_text(f"{shared}\n")
    install = subprocess.run([*pip, "--python", str(python), "install", "--no-index", "--find-links", str(wheels),
                              "clip-surgery-seg"], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    return SimpleNamespace(bin=venv / "bin", package=purelib / "clip_surgery_seg", purelib=purelib,
                           wheel=next(wheels.glob("clip_surgery_seg-*.whl")))


def _tool(site: SimpleNamespace, name: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(CLIP_SURGERY_SEG_CACHE=str(cwd / "cache"))
    return subprocess.run([str(site.bin / name), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_a_plain_install_brings_mmcv_lite(installed, tmp_path):
    """mmseg cannot be imported without an mmcv; mmcv-lite is a requirement of its own, not an extra."""
    run = _tool(installed, "css-check-data", "ade20k", "--root", tmp_path / "nothing", "--quick", cwd=tmp_path)
    assert run.returncode == 1 and "No module named" not in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith("error: ") and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert (installed.purelib / "mmcv" / "__init__.py").is_file()  # installed into the new environment
    with zipfile.ZipFile(installed.wheel) as wheel:
        metadata = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    lite = [r for r in requires if r.replace(" ", "").startswith("mmcv-lite") and "extra" not in r]
    assert lite and "<2.2.0" in lite[0] and ">=2.0.0rc4" in lite[0], requires
    assert any(r.replace(" ", "").startswith("mmcv<2.2.0") and 'extra=="full"' in r.replace(" ", "")
               for r in requires), requires


def test_the_wheel_holds_every_package_and_the_shipped_files(installed):
    package = installed.package
    for sub in ("models", "datasets", "evaluation", "segmentors", "engine", "reporting", "cli", "data_prep"):
        assert (package / sub / "__init__.py").is_file(), sub
    assert (package / "_packaged" / "configs" / "ade20k.py").is_file()
    assert (package / "_packaged" / "configs" / "classnames" / "ade20k.txt").is_file()
    assert (package / "_packaged" / "configs" / "classnames" / "sclip" / "ade20k.txt").is_file()
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
    shipped = installed.package / "_packaged" / "configs"
    assert Path(results["config"]["model"]["classnames"]).resolve() == (shipped / "classnames" / "sclip" / "ade20k.txt").resolve()
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
    # one row per method, whichever there are
    assert index.count('<a class="ours" href=') == len(METHODS) == index.count('<a class="report" href=')
    # (the fast settings above override the protocol's: the row says so)
    assert "<td>CLIP Surgery</td><td>clearclip (crop_size=32, short_side=64, stride=16 overridden)</td>" in index
    # the demo finds its default model config and the dataset's class names in the package
    image = next((work / "data").rglob("*.jpg"))
    run = _tool(installed, "css-demo", image, "--dataset", "ade20k", "--show-classes", "wall", "--out", "demo",
                "--model", TINY_VIT, "--pretrained", "none", "--device", "cpu", "--quiet", cwd=work)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (work / "demo" / "none" / "heatmaps" / "000_wall.png").is_file()
    assert not (work / "configs").exists()


def test_installed_commands_name_themselves(installed, tmp_path):
    """Usage, examples and hints say css-eval, css-prepare-data, ...: python tools/*.py is not there."""
    run = _tool(installed, "css-eval", "--help", cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.startswith("usage: css-eval ")
    assert "tools/" not in run.stdout and "css-eval configs/ade20k.py --protocol clearclip" in run.stdout
    run = _tool(installed, "css-eval", "ade20k", "--data-root", "nowhere", "--pretrained", "none", cwd=tmp_path)
    assert run.returncode == 1 and "`css-prepare-data ade20k`" in run.stderr and "tools/" not in run.stderr, run.stderr
    assert not (tmp_path / "work_dirs" / "ade20k" / "metrics.json").exists()
