"""Shared fixtures: tiny random CLIPs from open_clip model configs, and the shared real inputs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import clip_surgery_seg  # noqa: F401  (mmseg on mmcv-lite needs its shim first)

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).resolve().parent / "assets"
TINY_VIT = ASSETS / "tiny-vit.json"
TINY_RN = ASSETS / "tiny-rn.json"
# the shared real-format inputs: ../shared/fixtures beside the checkout, or CSS_SHARED_FIXTURES; tests that
# need them skip with a reason when neither is there
SHARED_FIXTURES = Path(os.environ.get("CSS_SHARED_FIXTURES") or REPO.parent / "shared" / "fixtures")
MMSEG_SAMPLES = SHARED_FIXTURES / "mmseg_samples"
REAL_FRAME = MMSEG_SAMPLES / "pseudo_cityscapes_dataset"
# the synthetic Cityscapes split also holds the real shared frame, when the fixtures are there
CITYSCAPES_IMAGES = 4 if REAL_FRAME.is_dir() else 3


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def tiny_vit():
    from clip_surgery_seg.models import build_clip

    return build_clip(str(TINY_VIT))


@pytest.fixture(scope="session")
def tiny_rn():
    from clip_surgery_seg.models import build_clip

    return build_clip(str(TINY_RN))


@pytest.fixture(scope="session")
def mmseg_samples() -> Path:
    if not MMSEG_SAMPLES.is_dir():
        pytest.skip(f"shared fixtures not found at {MMSEG_SAMPLES} (set CSS_SHARED_FIXTURES)")
    return MMSEG_SAMPLES


# datasets that read the same files get the same size (the later one rewrites the shared files)
SMALL_SIZE = {"voc21": (60, 80), "voc20": (60, 80), "pascal_context60": (75, 100), "pascal_context59": (75, 100),
              "coco_object": (120, 160), "coco_stuff171": (120, 160), "cityscapes": (64, 128),
              "ade20k": (96, 128)}


def _catalogue():
    from clip_surgery_seg.datasets.catalog import DATASETS as names

    return names


# every catalogue dataset, in the catalogue's (the tables') order
DATASETS = _catalogue()


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """Every dataset, 3 small images each (Cityscapes also holds the real shared frame)."""
    from clip_surgery_seg.datasets.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("data")
    for i, name in enumerate(DATASETS):
        write_synthetic(name, root, num_images=3, image_size=SMALL_SIZE.get(name, (64, 96)), seed=i,
                        cityscapes_frame=REAL_FRAME if REAL_FRAME.is_dir() else None)
    return root


def eval_args(config: str, data_root: Path, work_dir: Path, *flags, options=()) -> list:
    """tools/eval.py arguments for a quick CPU run with the tiny random ViT; ``options`` are
    extra ``--cfg-options``."""
    return [f"configs/{config}.py", "--data-root", str(data_root), "--work-dir", str(work_dir),
            "--model", str(TINY_VIT), "--pretrained", "none", "--quiet", *map(str, flags),
            "--cfg-options", "test_dataloader.num_workers=0", "protocol.short_side=112",
            "protocol.crop_size=64", "protocol.stride=32", *options]


@pytest.fixture
def run_eval(monkeypatch, tmp_path):
    """Call tools/eval.py's main() in this process; returns (exit code, stdout, stderr)."""
    from clip_surgery_seg.cli.eval import main

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CLIP_SURGERY_SEG_CACHE", str(tmp_path / "cache"))

    def run(args, capsys=None):
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
        return code, out.getvalue(), err.getvalue()

    return run
