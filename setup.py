"""Build hook: ship the repository's configs and published numbers inside the package.

``pip install .`` (not editable) builds a wheel from ``clip_surgery_seg/`` only; the experiment
configs (``configs/``) and ``results/paper.csv`` live beside it, so that a checkout's
``python tools/eval.py configs/ade20k.py`` reads them where users edit them. The build copies them
into ``clip_surgery_seg/_packaged/`` of the wheel (as mmsegmentation copies its configs into
``mmseg/.mim``); ``clip_surgery_seg.resources`` finds either location.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = {"configs": "configs", "results/paper.csv": "results/paper.csv"}


class BuildWithResources(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "clip_surgery_seg" / "_packaged"
        for source, dest in SHIPPED.items():
            src, dst = HERE / source, target / dest
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)


setup(cmdclass={"build_py": BuildWithResources})
