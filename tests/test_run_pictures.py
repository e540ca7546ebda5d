"""Pictures of a run, end to end: ``--show-dir`` panels, the run report with its worst and best
images, resumed runs, the reproduce index page, and the choice of examples across ranks."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from PIL import Image

import clip_surgery_seg.registry  # noqa: F401
from clip_surgery_seg.datasets.synthetic import write_synthetic
from clip_surgery_seg.datasets.transforms import encode_label, read_image_rgb, read_label
from clip_surgery_seg.engine.observers import Example, ExampleKeeper, choose_examples
from clip_surgery_seg.segmentors.segmentor import CLIPSurgerySegmentor
from clip_surgery_seg.visualization import IGNORE_COLOR, render_panel
from conftest import REPO, eval_args
from mmseg.registry import MODELS
from test_html_report import Page, _chromium, _links, _load_in_chromium, _local_target, _PROBE, _table_rows

NUM_IMAGES = 10
K = 150  # ADE20K


@MODELS.register_module(force=True)
class NoisyOracle(CLIPSurgerySegmentor):
    """Predicts the label map with a share of its pixels moved to the next class; the share depends
    on the image (so images differ in mIoU), and the same image always gets the same prediction."""

    def predict(self, inputs, data_samples=None):
        for sample in data_samples:
            gt = sample.gt_sem_seg.data.clone()
            seed = int(gt.to(torch.int64).sum()) % 100_003
            generator = torch.Generator().manual_seed(seed)
            share = 0.05 + 0.6 * torch.rand((), generator=generator).item()
            wrong = torch.rand(gt.shape, generator=generator) < share
            pred = torch.where(wrong, (gt + 1) % self.num_classes, gt)
            pred[gt == 255] = 0
            sample.pred_sem_seg = PixelData(data=pred.to(gt.device))
        return data_samples


@pytest.fixture(scope="module")
def ade_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ade")
    write_synthetic("ade20k", root, num_images=NUM_IMAGES, image_size=(96, 128), seed=5)
    return root


def _pairs(root: Path):
    """(key, image path, encoded label) of every synthetic ADE image, sorted."""
    folder = root / "ADEChallengeData2016"
    for image in sorted((folder / "images" / "validation").glob("*.jpg")):
        label = folder / "annotations" / "validation" / f"{image.stem}.png"
        yield image.stem, image, encode_label(read_label(str(label)), True)


def naive_image_miou(pred: np.ndarray, label: np.ndarray, k: int = K) -> float:
    """Per-class IoU over the labelled pixels, averaged over the classes in the label or the prediction."""
    valid = label != 255
    ious = []
    for c in range(k):
        union = np.count_nonzero(((pred == c) | (label == c)) & valid)
        if union:
            ious.append(np.count_nonzero((pred == c) & (label == c) & valid) / union)
    return 100 * float(np.mean(ious)) if ious else float("nan")


def _oracle_args(root, work, *flags, options=()):
    return eval_args("ade20k", root, work, *flags, options=["model.type=NoisyOracle", *options])


def _mious(root: Path, preds: Path) -> Dict[str, float]:
    return {key: naive_image_miou(np.asarray(Image.open(preds / f"{key}.png")), label)
            for key, _, label in _pairs(root)}


# --- --show-dir -------------------------------------------------------------------------------------

def test_show_dir_writes_a_panel_per_image_in_the_dataset_palette(run_eval, ade_root, tmp_path):
    import mmseg.datasets

    show, preds = tmp_path / "show", tmp_path / "preds"
    code, _, err = run_eval(_oracle_args(ade_root, tmp_path / "w", "--show-dir", show, "--save-preds", preds))
    assert code == 0, err
    assert sorted(p.stem for p in show.iterdir()) == [key for key, _, _ in _pairs(ade_root)]
    ade_palette = np.asarray(mmseg.datasets.ADE20KDataset.METAINFO["palette"], dtype=np.uint8)
    lines = (REPO / "configs" / "classnames" / "ade20k.txt").read_text().splitlines()
    names = [line.split(",")[0].strip() for line in lines]
    for key, image_path, label in _pairs(ade_root):
        panel = np.asarray(Image.open(show / f"{key}.png"))
        pred = np.asarray(Image.open(preds / f"{key}.png"))
        image = read_image_rgb(str(image_path))
        expected = render_panel(image, label, pred, ade_palette, names, title="x")
        assert panel.shape == expected.pixels.shape  # the layout of a panel of this image and these classes
        for tile in ("image", "ground truth", "prediction", "errors", "legend"):
            assert np.array_equal(expected.boxes[tile].of(panel), expected.boxes[tile].of(expected.pixels)), (key, tile)
        # the ground-truth and prediction tiles are mmseg's ADE20K palette, ignored pixels grey
        truth = expected.boxes["ground truth"].of(panel)
        colours = np.where((label == 255)[..., None], np.array(IGNORE_COLOR, np.uint8),
                           ade_palette[np.minimum(label, K - 1)])
        assert np.array_equal(truth, colours)
        # the prediction in the palette, but where a class name is written on its region
        shown, want = expected.boxes["prediction"].of(panel).copy(), ade_palette[pred].copy()
        origin = expected.boxes["prediction"]
        for name, box in expected.boxes.items():
            if name.startswith("prediction/label/"):
                for array in (shown, want):
                    array[box.top - origin.top:box.top - origin.top + box.height,
                          box.left - origin.left:box.left - origin.left + box.width] = 0
        assert np.array_equal(shown, want)
        # the title: the image's name and its own mIoU, in percent
        titled = render_panel(image, label, pred, ade_palette, names,
                              title=f"{key}   mIoU {naive_image_miou(pred, label):.2f}%")
        assert np.array_equal(titled.boxes["title"].of(panel), titled.boxes["title"].of(titled.pixels)), key
        # errors: red exactly where a labelled pixel is predicted wrong
        errors = expected.boxes["errors"].of(panel)
        red = np.all(errors == (255, 0, 0), axis=-1)
        assert np.array_equal(red, (pred != label) & (label != 255))


def test_panel_titles_give_the_images_miou_in_percent():
    from clip_surgery_seg.engine.observers import _title

    counts = np.zeros((3, 4), dtype=np.int64)  # label 0: 3 right, 1 predicted as 1; label 1: 2 right
    counts[0, 0], counts[0, 1], counts[1, 1] = 3, 1, 2
    assert _title("img_7", counts) == "img_7   mIoU 70.83%"  # (3/4 + 2/3) / 2
    assert _title("img_8", np.zeros((3, 4), dtype=np.int64)) == "img_8   (no labelled pixel)"


def test_show_dir_must_be_writable(run_eval, ade_root, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = run_eval(_oracle_args(ade_root, tmp_path / "w", "--show-dir", blocker / "show"))
    assert code == 1 and err.count("error:") == 1 and "--show-dir" in err
    assert not (tmp_path / "w" / "metrics.json").exists()


# --- the run report ---------------------------------------------------------------------------------

def _section_captions(page: Page) -> Dict[str, List[str]]:
    text = page.text
    worst, best = text.index("Worst images"), text.index("Best images")
    captions = [(i, t) for i, t in enumerate(text) if " \u2014 mIoU " in t]
    return {"worst": [t for i, t in captions if worst < i < best], "best": [t for i, t in captions if i > best]}


def test_report_after_eval_shows_the_worst_and_best_images(run_eval, ade_root, tmp_path):
    work, preds = tmp_path / "w", tmp_path / "preds"
    code, out, err = run_eval(_oracle_args(ade_root, work, "--save-preds", preds))
    assert code == 0, err
    report = work / "report.html"
    assert f"report: {report}" in out
    assert report.stat().st_mtime >= (work / "metrics.json").stat().st_mtime
    page = Page(report.read_text(encoding="utf-8"))
    for url in page.urls():
        if not url.startswith("#"):
            assert _local_target(report, url).is_file(), url
    images = [a["src"] for tag, a in page.tags if tag == "img"]
    assert len(images) == 2 + 8  # two charts, four worst and four best panels

    # the worst and best: the lowest and highest per-image mIoU, computed here from the saved predictions
    mious = _mious(ade_root, preds)
    ranked = sorted(mious, key=lambda key: (mious[key], key))
    captions = _section_captions(page)
    assert captions["worst"] == [f"{key} \u2014 mIoU {mious[key]:.2f}" for key in ranked[:4]]
    assert captions["best"] == [f"{key} \u2014 mIoU {mious[key]:.2f}" for key in ranked[::-1][:4]]
    # each shown panel is that image's panel
    listing = json.loads((work / "examples" / "examples.json").read_text())
    assert listing["created"] == json.loads((work / "metrics.json").read_text())["created"]
    for entry in listing["examples"]:
        panel = np.asarray(Image.open(work / "examples" / entry["panel"]))
        copy = np.asarray(Image.open(work / "report_files" / entry["panel"]))
        assert np.array_equal(panel, copy)
        pred = np.asarray(Image.open(preds / f"{entry['name']}.png"))
        label = dict((key, lab) for key, _, lab in _pairs(ade_root))[entry["name"]]
        expected = render_panel(read_image_rgb(entry["image"]), label, pred, _ade_palette(), None, title="x")
        assert np.array_equal(expected.boxes["prediction"].of(panel), expected.boxes["prediction"].of(expected.pixels))
    # the confusion matrix beside metrics.json is the run's
    confusion = np.load(work / "confusion.npy")
    results = json.loads((work / "metrics.json").read_text())
    assert confusion.shape == (K, K + 1) and confusion.dtype == np.int64
    assert [int(confusion[i, i]) for i in range(K)] == [r["intersect"] for r in results["per_class"]]

    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium at /usr/bin/chromium or on PATH (Debian: apt-get install chromium)")
    html = report.read_text(encoding="utf-8")
    probe = report.with_name("_probe.html")
    probe.write_text(html.replace("</body>", _PROBE), encoding="utf-8")
    body = _load_in_chromium(browser, probe, tmp_path / "profile")
    assert int(body["data-images"]) == 10 and json.loads(body["data-broken"]) == []


def _ade_palette():
    from clip_surgery_seg.visualization import palette_for

    return palette_for(K, "ADE20KDataset")


def test_a_report_that_fails_keeps_the_results(run_eval, ade_root, tmp_path, monkeypatch):
    import clip_surgery_seg.engine.runner as runner
    import clip_surgery_seg.reporting.html_report as html_report

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    # the engine's example panels fail: metrics.json and the report (without examples) are still written
    monkeypatch.setattr(runner, "write_examples", broken)
    code, _, err = run_eval(_oracle_args(ade_root, tmp_path / "a"))
    assert code == 0, err
    assert "example panels were not written (RuntimeError: drawing failed); metrics.json is complete" in err
    assert (tmp_path / "a" / "metrics.json").is_file() and (tmp_path / "a" / "report.html").is_file()
    assert "Worst images" not in (tmp_path / "a" / "report.html").read_text()
    # the page itself fails: the run succeeds with its results, and says so in one line
    monkeypatch.setattr(html_report, "write_run_report", broken)
    code, out, err = run_eval(_oracle_args(ade_root, tmp_path / "b"))
    assert code == 0, err
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["complete"] is True
    assert not (tmp_path / "b" / "report.html").exists() and "report:" not in out
    assert "warning: report not written (RuntimeError: drawing failed)" in err


# --- resume -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_resume_writes_the_missing_pictures_and_the_same_report(run_eval, ade_root, tmp_path):
    straight, preds0 = tmp_path / "straight", tmp_path / "preds0"
    assert run_eval(_oracle_args(ade_root, straight, "--save-preds", preds0))[0] == 0

    work, show, preds = tmp_path / "w", tmp_path / "show", tmp_path / "preds"
    code, _, err = run_eval(_oracle_args(ade_root, work, "--limit", "6", "--show-dir", show, "--save-preds", preds))
    assert code == 0, err
    keys = [key for key, _, _ in _pairs(ade_root)]
    # as if the run had stopped before the writer caught up: some pictures are missing
    (show / f"{keys[0]}.png").unlink()
    (show / f"{keys[3]}.png").unlink()
    (preds / f"{keys[4]}.png").unlink()
    flags = _oracle_args(ade_root, work, "--show-dir", show, "--save-preds", preds)
    at = flags.index("--cfg-options")
    code, _, err = run_eval(flags[:at] + ["--resume"] + flags[at:])
    assert code == 0, err
    results = json.loads((work / "metrics.json").read_text())
    assert results["timing"]["resumed_images"] == 3  # 6 done, of which 3 lacked a picture
    assert sorted(p.stem for p in show.iterdir()) == keys
    assert sorted(p.stem for p in preds.iterdir()) == keys
    # the report is the uninterrupted run's: examples chosen among all images, restored ones too
    ours = json.loads((work / "examples" / "examples.json").read_text())["examples"]
    theirs = json.loads((straight / "examples" / "examples.json").read_text())["examples"]
    assert [(e["kind"], e["name"]) for e in ours] == [(e["kind"], e["name"]) for e in theirs]
    for a, b in zip(ours, theirs):
        assert a["miou"] == pytest.approx(b["miou"], abs=1e-12)
        assert (work / "examples" / a["panel"]).read_bytes() == (straight / "examples" / b["panel"]).read_bytes()
    assert json.loads((straight / "metrics.json").read_text())["per_class"] == results["per_class"]


# --- reproduce ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_reproduce_writes_one_page_for_the_run(monkeypatch, synthetic_root, tmp_path, capsys):
    from clip_surgery_seg.cli.reproduce import main as reproduce_main

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CLIP_SURGERY_SEG_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    fast = eval_args("ade20k", synthetic_root, tmp_path / "unused")[5:]  # --model ... --cfg-options ...
    code = reproduce_main(["--methods", "clip_surgery", "--datasets", "ade20k", "cityscapes", "context59",
                           "--data-root", str(synthetic_root), "--out", str(run), "--history", "none", *fast])
    assert code == 0, capsys.readouterr()
    index = run / "report.html"
    html = index.read_text(encoding="utf-8")
    page = Page(html)
    # the paper's order, each dataset's own report, each complete: in the table and in the list of runs
    expected = [run / "clip_surgery" / name / "report.html" for name in ("pascal_context59", "cityscapes", "ade20k")]
    assert [_local_target(index, href) for href in _links(page, "ours")] == expected
    links = [_local_target(index, href) for href in _links(page, "report")]
    assert links == expected
    mious = []
    for report in links:
        sub = Page(report.read_text(encoding="utf-8"))
        for url in sub.urls():
            if not url.startswith("#"):
                assert _local_target(report, url).is_file(), (report, url)
        mious.append(json.loads((report.parent / "metrics.json").read_text())["summary"]["mIoU"])
        assert f"{mious[-1]:.2f}" in page.text
    # one row, CLIP Surgery's: its average over its three datasets, with the random weights it ran with
    header, row = _table_rows(html)[:2]
    assert row[0] == "CLIP Surgery" and row[2] == "tiny-vit.json / random weights"
    assert row[-1].startswith(f"{sum(mious) / 3:.2f} / ") and row[-1].endswith(f"3 of {len(header) - 4} datasets")


def test_index_lists_nested_runs(tmp_path, synthetic_root, run_eval):
    """A run folder with one more level (<dataset>/<method>/metrics.json) is indexed as well."""
    from clip_surgery_seg.reporting.html_report import write_run_index

    for method in ("a", "b"):
        assert run_eval(eval_args("cityscapes", synthetic_root, tmp_path / "run" / "cityscapes" / method))[0] == 0
        (tmp_path / "run" / "cityscapes" / method / "report.html").unlink()  # written again by the index
    index = write_run_index(tmp_path / "run")
    page = Page(index.read_text(encoding="utf-8"))
    links = [_local_target(index, href) for href in _links(page, "report")]
    assert links == [tmp_path / "run" / "cityscapes" / m / "report.html" for m in ("a", "b")]
    assert all(link.is_file() for link in links)
    assert "Cityscapes / a" in page.text and "Cityscapes / b" in page.text


# --- the choice of examples ------------------------------------------------------------------------------

class _Sample:
    def __init__(self, label: np.ndarray, pred: np.ndarray, path: str) -> None:
        self.gt_sem_seg = PixelData(data=torch.from_numpy(label)[None])
        self.pred_sem_seg = PixelData(data=torch.from_numpy(pred)[None])
        self.metainfo = {"img_path": path}


@pytest.mark.parametrize("seed,n,k,ranks", [(0, 40, 4, 1), (1, 40, 4, 3), (2, 7, 4, 2), (3, 25, 2, 4), (4, 3, 4, 2)])
def test_examples_across_ranks_equal_a_plain_sort(seed, n, k, ranks):
    """Each rank keeps its k worst and k best; the union's choice is the run's, whatever the sharding.
    Ties (equal mIoU) and images without a labelled pixel (no mIoU) included."""
    from clip_surgery_seg.evaluation.metric import confusion_matrix

    rng = np.random.default_rng(seed)
    keys = [f"img{i:03d}" for i in rng.permutation(n)]
    mious: Dict[str, float] = {}
    keepers = [ExampleKeeper(num_classes=3, k=k) for _ in range(ranks)]
    for i, key in enumerate(keys):
        label = rng.integers(0, 3, (4, 5)).astype(np.uint8)
        if i % 9 == 4:
            label[:] = 255  # nothing labelled: never an example
        pred = np.where(rng.random((4, 5)) < rng.choice([0.0, 0.3, 0.5]), (label + 1) % 3, label).astype(np.uint8)
        counts = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(label), 3).numpy()
        mious[key] = naive_image_miou(pred, label, 3)
        keepers[rng.integers(ranks)].on_image(key, _Sample(label, pred, f"/x/{key}.jpg"), counts, None)
    for keeper in keepers:
        assert len(keeper.examples) <= 2 * k  # arrays only for the kept images
        for example in keeper.examples.values():
            assert example.label is not None
    candidates = [Example(e.key, e.img_path, e.miou) for keeper in keepers for e in keeper.candidates()]
    worst, best = choose_examples(candidates, k)
    ranked = sorted((key for key in keys if not math.isnan(mious[key])), key=lambda key: (mious[key], key))
    assert [e.key for e in worst] == ranked[:k]
    assert [e.key for e in best] == ranked[k:][::-1][:k]
    for example in worst + best:
        assert example.miou == pytest.approx(mious[example.key], abs=1e-9)


def test_save_preds_refuses_class_indices_that_do_not_fit_in_a_byte(tmp_path: Path) -> None:
    from mmengine.config import Config

    from clip_surgery_seg.datasets.classnames import ClassNames
    from clip_surgery_seg.engine.runner import EvalOptions, build_observers
    from clip_surgery_seg.errors import ConfigError

    opts = EvalOptions(config="unused.py", save_preds=str(tmp_path / "preds"), report_examples=0)
    fits = ClassNames.from_lines([f"class {i}" for i in range(256)])
    assert len(build_observers(opts, Config({}), fits)) == 1
    too_many = ClassNames.from_lines([f"class {i}" for i in range(257)])
    with pytest.raises(ConfigError, match="257 classes"):
        build_observers(opts, Config({}), too_many)
    assert not (tmp_path / "preds").exists()
