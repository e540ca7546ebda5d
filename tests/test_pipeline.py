"""tools/eval.py end to end on synthetic datasets in the real layouts, with a tiny random CLIP."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import oracle_segmentor  # noqa: F401  (registers OracleSegmentor)
from conftest import CITYSCAPES_IMAGES, DATASETS, REAL_FRAME, REPO, TINY_VIT, eval_args


def _classes(name):
    return (REPO / "configs" / "classnames" / f"{name}.txt").read_text().splitlines()


@pytest.mark.parametrize("name", DATASETS)
def test_eval_writes_complete_results(run_eval, synthetic_root, tmp_path, name):
    work = tmp_path / "work"
    code, out, err = run_eval(eval_args(name, synthetic_root, work, "--save-preds", tmp_path / "preds"))
    assert code == 0, err
    results = json.loads((work / "metrics.json").read_text())
    k = len(_classes(name))
    n = CITYSCAPES_IMAGES if name == "cityscapes" else 3
    assert results["complete"] and not results["partial"]
    assert results["dataset"]["name"] == name and results["dataset"]["num_images"] == n
    assert len(results["per_class"]) == k == results["dataset"]["num_classes"]
    # the dataset's own class names, whatever the protocol's file calls them
    assert [r["class"] for r in results["per_class"]] == [c.split(",")[0] for c in _classes(name)]
    assert 0 <= results["summary"]["mIoU"] <= 100
    assert results["model"]["name"] == str(TINY_VIT) and results["model"]["seed"] == 0
    assert results["protocol"]["name"] == "sclip" and results["protocol"]["crop_size"] == 64
    assert results["protocol"]["overridden"] == ["short_side", "crop_size", "stride"]  # eval_args' small windows
    assert results["config"]["model"]["method"]["depth"] == 6 and results["config_hash"]
    assert results["method"]["name"] == "clip_surgery" and results["method"]["params"] == {
        "depth": 6, "new_path_attention": "vv", "resnet_norm": False, "pos_interp": "bilinear"}
    assert results["text"]["templates"] == "clip_surgery_85"
    assert results["text"]["classnames"] == f"configs/classnames/sclip/{name}.txt"  # the protocol's words
    assert results["model"]["config_sha256"] and results["model"]["precision"] == "fp32"
    # the sections do not repeat each other: a word means one thing
    assert "method" not in results["protocol"] and "templates" not in results["method"]
    background = name in ("voc21", "pascal_context60", "coco_object")
    assert results["dataset"]["background_index"] == (0 if background else None)
    assert (results["protocol"]["prob_threshold"] is not None) == background  # SCLIP's threshold where it had one
    assert results["protocol"]["logit_scale"] == {"voc21": 65.0, "pascal_context60": 50.0, "coco_object": 50.0}.get(
        name, 40.0)  # SCLIP's configs/cfg_<dataset>.py, else its segmentor's default
    assert results["code"]["version"] and "torch" in results["environment"]["packages"]
    assert results["timing"]["images_per_s"] > 0
    assert f"{name}: mIoU" in out
    assert len(list((tmp_path / "preds").rglob("*.png"))) == n  # Cityscapes' in a folder per city


def test_saved_predictions_have_original_size(run_eval, synthetic_root, tmp_path):
    if not REAL_FRAME.is_dir():
        pytest.skip(f"shared fixtures not found at {REAL_FRAME} (set CSS_SHARED_FIXTURES)")
    code, _, err = run_eval(eval_args("cityscapes", synthetic_root, tmp_path / "w", "--save-preds", tmp_path / "p"))
    assert code == 0, err
    real = tmp_path / "p" / "frankfurt" / "frankfurt_000000_000294.png"  # named by the image's key
    image = Image.open(real)
    assert image.mode == "L" and image.size == (256, 128)  # the shared real frame is 256x128
    assert np.asarray(image).max() < 19
    synthetic = Image.open(tmp_path / "p" / "lindau" / "lindau_000001_000019.png")
    assert synthetic.size == (128, 64)


@pytest.mark.parametrize("name", DATASETS)
def test_oracle_scores_exactly_100_and_ignores_ignored_pixels(run_eval, synthetic_root, tmp_path, name):
    # the oracle predicts class 0 on ignored pixels: counted, they would cost class 0 precision
    code, out, err = run_eval(eval_args(name, synthetic_root, tmp_path / "w", options=["model.type=OracleSegmentor"]))
    assert code == 0, err
    results = json.loads((tmp_path / "w" / "metrics.json").read_text())
    assert results["summary"] == {"aAcc": 100.0, "mIoU": 100.0, "mAcc": 100.0}
    present = [r for r in results["per_class"] if r["label_area"]]
    assert present and all(r["IoU"] == 100.0 and r["pred_area"] == r["label_area"] for r in present)
    labels = _encoded_labels(synthetic_root, name)
    assert sum(r["label_area"] for r in results["per_class"]) == sum(int((l != 255).sum()) for l in labels)


def _encoded_labels(root, name):
    from clip_surgery_seg.datasets.transforms import encode_label, read_label

    pattern = {"ade20k": "ADEChallengeData2016/annotations/validation/*.png",
               "coco_stuff171": "coco_stuff164k/annotations/val2017/*_labelTrainIds.png",
               "coco_object": "coco_stuff164k/annotations/val2017/*_instanceTrainIds.png",
               "cityscapes": "cityscapes/gtFine/val/*/*_labelTrainIds.png",
               "pascal_context59": "VOCdevkit/VOC2010/SegmentationClassContext/*.png",
               "pascal_context60": "VOCdevkit/VOC2010/SegmentationClassContext/*.png",
               "voc21": "VOCdevkit/VOC2012/SegmentationClass/*.png",
               "voc20": "VOCdevkit/VOC2012/SegmentationClass/*.png"}[name]
    reduce = name in ("ade20k", "pascal_context59", "voc20")
    return [encode_label(read_label(str(p)), reduce) for p in sorted(root.glob(pattern))]


def test_limit_takes_the_first_images(run_eval, synthetic_root, tmp_path):
    code, _, err = run_eval(eval_args("ade20k", synthetic_root, tmp_path / "w", "--limit", "2",
                                      "--save-preds", tmp_path / "p"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["ADE_val_00000001.png", "ADE_val_00000002.png"]
    assert json.loads((tmp_path / "w" / "metrics.json").read_text())["dataset"]["num_images"] == 2


def test_text_embeddings_are_cached(run_eval, synthetic_root, tmp_path, monkeypatch):
    from clip_surgery_seg.models import SurgeryCLIP

    calls = []
    original = SurgeryCLIP.encode_text
    monkeypatch.setattr(SurgeryCLIP, "encode_text", lambda self, *a, **k: calls.append(a) or original(self, *a, **k))
    for run in range(2):
        code, _, err = run_eval(eval_args("cityscapes", synthetic_root, tmp_path / f"w{run}"))
        assert code == 0, err
    assert len(calls) == 1  # the second run read the cache
    first = json.loads((tmp_path / "w0" / "metrics.json").read_text())
    second = json.loads((tmp_path / "w1" / "metrics.json").read_text())
    assert first["per_class"] == second["per_class"]  # same numbers, cached or not
    code, _, err = run_eval(eval_args("cityscapes", synthetic_root, tmp_path / "w2", options=["model.templates=imagenet_80"]))
    assert code == 0, err
    assert len(calls) == 2  # other templates: another cache entry


def test_synonyms_take_the_max_over_rows(tmp_path):
    import clip_surgery_seg.registry  # noqa: F401
    from mmseg.registry import MODELS

    names = tmp_path / "classes.txt"
    names.write_text("road, street\nsky\ncar, automobile, vehicle\n")
    model = MODELS.build(dict(type="CLIPSurgerySegmentor", clip=dict(name=str(TINY_VIT)), classnames=str(names),
                              text_cache_dir=str(tmp_path / "cache")))
    assert model.classes.rows == ("road", "street", "sky", "car", "automobile", "vehicle")
    logits = torch.randn(6, 5, 7)
    merged = model.class_logits(logits)
    assert torch.equal(merged[0], logits[0:2].amax(0)) and torch.equal(merged[1], logits[2])
    assert torch.equal(merged[2], logits[3:6].amax(0))


def test_prob_threshold_sets_background(tmp_path):
    import clip_surgery_seg.registry  # noqa: F401
    from mmseg.registry import MODELS

    model = MODELS.build(dict(type="CLIPSurgerySegmentor", clip=dict(name=str(TINY_VIT)), classnames=["bg", "a", "b"],
                              protocol=dict(prob_threshold=0.6, logit_scale=1.0), background_index=0))
    logits = torch.tensor([[0.0, 0.0], [5.0, 0.1], [0.0, 0.0]])[:, :, None]  # (K=3, 2, 1)
    assert model.labels_from_logits(logits)[:, 0].tolist() == [1, 0]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_distributed_equals_single_process(synthetic_root, tmp_path):
    env = dict(os.environ, CLIP_SURGERY_SEG_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO))
    single = eval_args("cityscapes", synthetic_root, tmp_path / "single")
    subprocess.run([sys.executable, "tools/eval.py", *single], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=300)
    multi = eval_args("cityscapes", synthetic_root, tmp_path / "multi", "--launcher", "pytorch",
                      "--save-preds", tmp_path / "preds", "--show-dir", tmp_path / "show")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                             "--master-port", str(_free_port()), "tools/eval.py", *multi], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    one = json.loads((tmp_path / "single" / "metrics.json").read_text())
    two = json.loads((tmp_path / "multi" / "metrics.json").read_text())
    assert two["environment"]["world_size"] == 2
    assert one["per_class"] == two["per_class"] and one["summary"] == two["summary"]
    assert one["dataset"]["num_images"] == two["dataset"]["num_images"] == CITYSCAPES_IMAGES
    assert len(list((tmp_path / "preds").rglob("*.png"))) == CITYSCAPES_IMAGES
    assert len(list((tmp_path / "show").rglob("*.png"))) == CITYSCAPES_IMAGES  # each rank wrote its images' panels
    # the report's examples are chosen over both ranks' images: the single process's choice
    examples = [json.loads((tmp_path / run / "examples" / "examples.json").read_text())["examples"]
                for run in ("single", "multi")]
    single, multi = ([(e["kind"], e["name"], e["miou"]) for e in run] for run in examples)
    assert single == multi
    assert (tmp_path / "multi" / "report.html").is_file()
    assert len(list((tmp_path / "multi" / "progress").glob("rank*.sqlite"))) == 2


@pytest.mark.slow  # three runs, two of them encoding 19 x 85 prompts
def test_text_encoding_shows_progress_unless_quiet(run_eval, synthetic_root, tmp_path, monkeypatch):
    """The first run of a model encodes every class with every template: a bar on stderr says how far it
    is (minutes on a CPU for ADE20K with ViT-B/16); --quiet shows none; a cached run has nothing to show."""
    from clip_surgery_seg.datasets.classnames import load_classnames
    from clip_surgery_seg.models.templates import resolve_templates

    prompts = len(load_classnames(str(REPO / "configs" / "classnames" / "cityscapes.txt")).rows) * len(
        resolve_templates("clip_surgery_85"))
    monkeypatch.setenv("CLIP_SURGERY_SEG_CACHE", str(tmp_path / "quiet"))
    code, _, err = run_eval(eval_args("cityscapes", synthetic_root, tmp_path / "w0"))
    assert code == 0, err
    assert "encoding text" not in err and "prompts" not in err, err
    monkeypatch.setenv("CLIP_SURGERY_SEG_CACHE", str(tmp_path / "loud"))
    loud = [a for a in eval_args("cityscapes", synthetic_root, tmp_path / "w1") if a != "--quiet"]
    code, _, err = run_eval(loud)
    assert code == 0, err
    bars = [part for part in err.replace("\r", "\n").splitlines() if part.startswith("encoding text")]
    assert bars and f"{prompts}/{prompts}" in bars[-1] and "prompts" in bars[-1], err[:2000]
    again = list(loud)
    again[again.index("--work-dir") + 1] = str(tmp_path / "w2")
    code, _, err = run_eval(again)
    assert code == 0 and not any(p.startswith("encoding text") for p in err.replace("\r", "\n").splitlines())
