"""A method, a protocol and a dataset are each added in one place, as a new contributor would.

Each test works in a copy of the repository (or beside it, for a method plug-in), adds the new
piece there, and runs the tools as a user would, in a fresh process: nothing else is edited.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, TINY_VIT

pytestmark = pytest.mark.slow  # each test runs the tools as fresh processes

SMALL = ["--model", str(TINY_VIT), "--pretrained", "none", "--quiet", "--cfg-options", "test_dataloader.num_workers=0",
         "protocol.short_side=64", "protocol.crop_size=32", "protocol.stride=32"]

KKCLIP = textwrap.dedent('''
    """KK-CLIP: key-key attention with the residual kept (a newcomer's method, one file)."""
    import torch.nn.functional as F

    from clip_surgery_seg.models.methods import ImageTokenMethod, register_method
    from clip_surgery_seg.models.methods.base import (attention_out, block_qkv, mlp_residual, vit_project,
                                                      vit_stream)


    @register_method
    class KKCLIP(ImageTokenMethod):
        name = "kkclip"
        label = "KK-CLIP"
        default_templates = "imagenet_80"

        def __init__(self, temperature: float = 1.0, pos_interp=None):
            super().__init__(pos_interp)
            self.temperature = float(temperature)

        def params(self):
            return {"temperature": self.temperature, **super().params()}

        def vit_tokens(self, visual, images, pos_embed):
            x, _ = vit_stream(visual, images, pos_embed, skip_last=1)
            block = visual.transformer.resblocks[-1]
            _, k, v = block_qkv(block, x)
            attn = F.scaled_dot_product_attention(k / self.temperature, k, v)
            return vit_project(visual, mlp_residual(block, x + attention_out(block, attn)))
''')


def _run(args, cwd: Path, env_extra=None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def clone(tmp_path) -> Path:
    """The repository as a contributor's clone holds it (the package, configs, tools, published numbers)."""
    root = tmp_path / "clone"
    root.mkdir()
    for name in ("clip_surgery_seg", "configs", "tools"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "_packaged"))
    (root / "results").mkdir()
    shutil.copy2(REPO / "results" / "paper.csv", root / "results" / "paper.csv")
    shutil.copy2(REPO / "setup.cfg", root / "setup.cfg")
    return root


def _env(root: Path, tmp_path: Path, pythonpath: str = "") -> dict:
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(root), pythonpath) if p),
            "CLIP_SURGERY_SEG_CACHE": str(tmp_path / "cache")}


def test_a_method_plugin_is_one_file_and_every_tool_finds_it(tmp_path, synthetic_root):
    """A method in its own package, declared under the entry-point group: eval (--method and the
    configs/<method>/<dataset>.py name) and reproduce use it with its label, templates and defaults."""
    plugin = tmp_path / "plugin"
    (plugin / "kkclip_plugin").mkdir(parents=True)
    (plugin / "kkclip_plugin" / "__init__.py").write_text(KKCLIP)
    info = plugin / "kkclip_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kkclip-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[clip_surgery_seg.methods]\nkkclip = kkclip_plugin\n")
    env = _env(REPO, tmp_path, str(plugin))

    done = _run(["tools/eval.py", "configs/kkclip/ade20k.py", "--data-root", synthetic_root, "--work-dir",
                 tmp_path / "eval", *SMALL, "model.method.temperature=2.0"], REPO, env)
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert results["method"] == {"name": "kkclip", "params": {"temperature": 2.0, "pos_interp": "bicubic_offset"},
                                 "feature_surgery": "none", "similarity_normalize": "none", "postprocess": None}
    assert results["text"]["templates"] == "imagenet_80"

    run = tmp_path / "run"
    done = _run(["tools/reproduce.py", "--methods", "kkclip", "sclip", "--datasets", "ade20k", "--data-root",
                 synthetic_root, "--out", run, "--history", "none", *SMALL], REPO, env)
    assert done.returncode == 0, done.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["datasets"]["ade20k"]["methods"]) == {"kkclip", "sclip"}
    assert summary["datasets"]["ade20k"]["model_loads"] == 1
    assert any(line.startswith("| KK-CLIP |") for line in (run / "table.md").read_text().splitlines())

    # without the plug-in installed, the name is unknown: one line, with the known ones
    done = _run(["tools/eval.py", "configs/ade20k.py", "--method", "kkclip", *SMALL], REPO, _env(REPO, tmp_path))
    assert done.returncode == 1 and done.stderr.strip().startswith("error: unknown method 'kkclip'")


def test_a_protocol_is_one_file(tmp_path, clone, synthetic_root):
    (clone / "configs" / "_base_" / "protocols" / "mine.py").write_text(
        "defaults = dict(short_side=96, crop_size=64, stride=48)\n"
        "datasets = dict(ade20k=dict(short_side=80))\n")
    env = _env(clone, tmp_path)
    args = ["--data-root", synthetic_root, "--model", TINY_VIT, "--pretrained", "none", "--quiet", "--protocol",
            "mine", "--cfg-options", "test_dataloader.num_workers=0"]
    for dataset, short_side in (("ade20k", 80), ("cityscapes", 96)):
        done = _run(["tools/eval.py", dataset, "--work-dir", tmp_path / dataset, *args], clone, env)
        assert done.returncode == 0, done.stderr
        protocol = json.loads((tmp_path / dataset / "metrics.json").read_text())["protocol"]
        assert protocol["name"] == "mine" and protocol["short_side"] == short_side and protocol["crop_size"] == 64
        assert protocol["overridden"] == []
    done = _run(["tools/reproduce.py", "--protocol", "mine", "--methods", "vanilla", "--datasets", "ade20k",
                 "--data-root", synthetic_root, "--out", tmp_path / "run", "--history", "none", "--model", TINY_VIT,
                 "--pretrained", "none", "--quiet"], clone, env)
    assert done.returncode == 0, done.stderr
    assert "protocol `mine`" in (tmp_path / "run" / "table.md").read_text()


LOVEDA_ENTRY = '''
    DatasetInfo("loveda", "LoveDA", "val", 1669, (), 7,
                SyntheticSpec((64, 64), lambda i: f"{3514 + i}", blocks(range(0, 8))), aliases=("love_da",)),
'''
LOVEDA_CONFIG = '''# LoveDA, val (1669 images). PNG 0 = no-data -> ignore; 1..7 -> 0..6.
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/pipeline.py']
dataset_name = 'loveda'
data_subdir = 'loveDA'
protocol = dict(name='sclip')
test_dataloader = dict(
    dataset=dict(type='LoveDADataset', data_root='data/' + data_subdir,
                 data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
                 img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=True))
'''


def test_a_dataset_is_one_catalogue_entry_its_class_names_and_its_config(tmp_path, clone):
    catalog = clone / "clip_surgery_seg" / "datasets" / "catalog.py"
    text = catalog.read_text()
    end = text.index("\n)}", text.index("CATALOG: Dict[str, DatasetInfo]"))
    catalog.write_text(text[:end] + LOVEDA_ENTRY.rstrip() + text[end:])
    (clone / "configs" / "classnames" / "loveda.txt").write_text(
        "background\nbuilding\nroad\nwater\nbarren\nforest\nagricultural\n")
    (clone / "configs" / "loveda.py").write_text(LOVEDA_CONFIG)
    env = _env(clone, tmp_path)
    data = tmp_path / "data"

    done = _run(["tools/make_synthetic_data.py", "loveda", "--root", data, "--num-images", "3"], clone, env)
    assert done.returncode == 0, done.stderr
    assert len(list((data / "loveDA" / "img_dir" / "val").glob("*.png"))) == 3
    done = _run(["tools/check_data.py", "loveda", "--root", data], clone, env)
    assert done.stdout.startswith("loveda: 3 image/label pairs"), done.stdout + done.stderr
    # no recipe to download it: one line that says how to prepare it by hand, no traceback
    done = _run(["tools/prepare_data.py", "loveda", "--root", tmp_path / "empty"], clone, env)
    assert done.returncode == 1 and "Traceback" not in done.stderr and "KeyError" not in done.stderr
    assert "loveda cannot be prepared automatically" in done.stderr and len(done.stderr.strip().splitlines()) == 1

    done = _run(["tools/eval.py", "love_da", "--data-root", data, "--work-dir", tmp_path / "w", "--show-dir",
                 tmp_path / "panels", *SMALL], clone, env)
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "w" / "metrics.json").read_text())
    assert results["dataset"]["name"] == "loveda" and len(results["per_class"]) == 7
    assert len(list((tmp_path / "panels").glob("*.png"))) == 3
    done = _run(["tools/reproduce.py", "--methods", "vanilla", "clip_surgery", "--datasets", "loveda", "--data-root",
                 data, "--out", tmp_path / "run", "--history", "none", *SMALL], clone, env)
    assert done.returncode == 0, done.stderr
    header = (tmp_path / "run" / "table.md").read_text().splitlines()[2]
    assert "LoveDA |" in header and header.index("LoveDA") < header.index("average")  # its column
