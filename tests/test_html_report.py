"""The one-page run report and the multi-dataset index: static, self-contained, escaped, and it
loads in a real browser with every image."""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
import torch
from PIL import Image

from clip_surgery_seg.results import SCHEMA
from clip_surgery_seg.errors import ReportingError
from clip_surgery_seg.evaluation.metric import image_miou, metrics_from_confusion
from clip_surgery_seg.reporting.html_report import (ASSETS_DIR, IndexEntry, ReportExample, row_normalized,
                                                    top_confusions, write_index_report, write_run_report)
from clip_surgery_seg.visualization import palette_for, render_panel

NAMES = ["wall", "<script>alert('x')</script>", "a & b", 'say "cheese" for $5 or $x^$', "never seen"]
# rows: label class; columns: predicted class, then "outside [0, K)". Class 4 never occurs (no IoU).
CONFUSION = np.array([
    [900, 50, 0, 30, 0, 20],
    [40, 300, 10, 0, 0, 0],
    [0, 200, 100, 0, 0, 0],
    [5, 0, 0, 600, 0, 0],
    [0, 0, 0, 0, 0, 0],
], dtype=np.int64)


def make_results(confusion: np.ndarray = CONFUSION, names=NAMES, dataset: str = "ade20k", partial: bool = True) -> dict:
    computed = metrics_from_confusion(torch.from_numpy(confusion), names)
    return {
        "schema": SCHEMA, "created": "2025-01-02T03:04:05+00:00", "complete": True, "partial": partial,
        "dataset": {"name": dataset, "type": "X<Dataset>", "data_root": "/data/<root>", "num_images": 7,
                    "expected_images": 9, "num_classes": len(names), "limit": None},
        **computed,
        "protocol": {"name": "sclip", "short_side": 336, "crop_size": 224, "stride": 112, "overridden": []},
        "method": {"name": "clip_surgery", "params": {"depth": 6}, "postprocess": None},
        "text": {"templates": "t&t", "classnames": "configs/classnames/ade20k.txt"},
        "model": {"name": "ViT-B-16", "pretrained": "openai", "sha256": "5ca1ab1e" * 8, "seed": None,
                  "quick_gelu": False},
        "config": {"model": {"type": "<Segmentor>", "crop_size": 224}},
        "config_file": "configs/a&b <test>.py", "config_hash": "c0ffee" * 10,
        "code": {"version": "0.1.0", "git_commit": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", "git_dirty": True},
        "environment": {"python": "3.11.2", "platform": "Linux-x86_64", "device": "cpu: test <cpu>",
                        "packages": {"torch": "2.5.0", "mmsegmentation": "1.2.2"}, "world_size": 1},
        "timing": {"wall_s": 12.5, "images_per_s": 0.56},
        "skipped": [{"image": "<img src=x onerror=alert(1)>.jpg", "reason": "truncated & unreadable"}] if partial else [],
    }


def make_examples(folder: Path, mious=(12.5, 80.0, 45.0, 95.5)) -> List[ReportExample]:
    rng = np.random.default_rng(0)
    palette = palette_for(len(NAMES), "X<Dataset>")
    examples = []
    for i, miou in enumerate(mious):
        image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        label = rng.integers(0, 4, (24, 32), dtype=np.uint8)
        pred = np.where(rng.random((24, 32)) < 0.3, 1, label).astype(np.uint8)
        panel = render_panel(image, label, pred, palette, NAMES, title=f"image {i}")
        path = folder / f"img #{i}?.png"  # characters a URL would misread: the report copies the file
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(panel.pixels).save(path)
        examples.append(ReportExample(name=f"img <{i}> & co", panel=path, miou=miou))
    return examples


class Page(HTMLParser):
    """Tags with their attributes, and the text, of one HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: List[Tuple[str, Dict[str, Optional[str]]]] = []
        self.text: List[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if data.strip():
            self.text.append(data.strip())

    def urls(self) -> List[str]:
        return [a[key] for tag, a in self.tags for key in ("src", "href") if a.get(key) is not None]


@pytest.fixture
def report(tmp_path) -> Path:
    return write_run_report(tmp_path / "run", make_results(), CONFUSION, make_examples(tmp_path / "show"))


def _local_target(page: Path, url: str) -> Path:
    parts = urlsplit(url)
    assert not parts.scheme and not parts.netloc, f"{url} is not a relative link"
    return page.parent / unquote(parts.path)


def test_report_parses_and_every_reference_exists(report):
    html = report.read_text(encoding="utf-8")
    page = Page(html)
    urls = page.urls()
    images = [a["src"] for tag, a in page.tags if tag == "img"]
    assert len(images) == 2 + 4  # the two charts and the four panels
    ids = {a["id"] for _, a in page.tags if a.get("id")}
    for url in urls:
        if url.startswith("#"):
            assert url[1:] in ids, url
            continue
        target = _local_target(report, url)
        assert target.is_file(), url
        assert target.resolve().is_relative_to(report.parent.resolve())  # nothing outside the folder
    for src in images:
        with Image.open(_local_target(report, src)) as image:
            image.verify()
    # static: no script, no external style sheet, nothing fetched from anywhere
    tags = {tag for tag, _ in page.tags}
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    assert not re.search(r"(https?:)?//[\w.-]+\.\w", " ".join(urls))
    assert "@import" not in html and "url(" not in html


def test_special_characters_are_escaped(report):
    html = report.read_text(encoding="utf-8")
    page = Page(html)
    assert "<script>" not in html and "<img src=x" not in html and "<Segmentor>" not in html
    assert not [attrs for _, attrs in page.tags if "onerror" in attrs]
    text = "\n".join(page.text)
    for name in NAMES[1:4]:  # the page shows the names as they are
        assert name in text
    assert "img <0> & co" in text and "configs/a&b <test>.py" in text
    assert "<img src=x onerror=alert(1)>.jpg" in text  # the skipped file's name, as text
    assert '"<Segmentor>"' in text  # the full config, escaped inside <pre>


def test_summary_table_order_and_confusions(report, tmp_path):
    results = make_results()
    page = Page(report.read_text(encoding="utf-8"))
    text = page.text
    assert f"{results['summary']['mIoU']:.2f}" in text and f"{results['summary']['aAcc']:.2f}" in text
    assert any("PARTIAL: 1 file skipped" in t for t in text)
    assert "of 9 expected" in text
    # per-class rows: worst first, the class without any pixel (no IoU) last
    ious = {row["class"]: row["IoU"] for row in results["per_class"]}
    expected = sorted(NAMES, key=lambda n: (math.isnan(ious[n]), 0 if math.isnan(ious[n]) else ious[n]))
    start = text.index("#")  # the table's header, after the chart
    shown = [t for t in text[start:] if t in NAMES]
    assert shown[:len(NAMES)] == expected
    assert expected[-1] == "never seen"
    # the largest confusion: "a & b" predicted as the script-named class, 200 of its 300 pixels
    assert top_confusions(CONFUSION, 3) == [(2, 1, 200), (0, 1, 50), (1, 0, 40)]
    section = text[text.index("The 20 largest confusions (by pixels)"):]
    assert section[1:9] == ["#", "label", "predicted as", "pixels", "of the label class", "of all labelled", "1",
                            "a & b"]
    assert "66.67%" in section[:16]  # 200 of the 300 "a & b" pixels
    assert any("(outside [0, 5))" in t for t in section)  # the last column has its own name
    csv = (report.parent / ASSETS_DIR / "confusion.csv").read_text()
    assert csv.splitlines()[1].endswith(",900,50,0,30,0,20")


def test_examples_worst_and_best(report, tmp_path):
    page = Page(report.read_text(encoding="utf-8"))
    text = page.text
    worst, best = text.index("Worst images"), text.index("Best images")
    captions = [(i, t) for i, t in enumerate(text) if t.startswith("img <")]
    # worst: lowest first; best: highest first; each with its own mIoU
    assert [t for _, t in captions] == ["img <0> & co \u2014 mIoU 12.50", "img <2> & co \u2014 mIoU 45.00",
                                        "img <3> & co \u2014 mIoU 95.50", "img <1> & co \u2014 mIoU 80.00"]
    assert worst < captions[0][0] < captions[1][0] < best < captions[2][0] < captions[3][0]
    assets = report.parent / ASSETS_DIR
    assert (assets / "worst_01.png").read_bytes() == (tmp_path / "show" / "img #0?.png").read_bytes()
    assert (assets / "best_01.png").read_bytes() == (tmp_path / "show" / "img #3?.png").read_bytes()
    # a second report with fewer examples leaves no stale panel behind
    write_run_report(report.parent, make_results(), CONFUSION, make_examples(tmp_path / "show2", (50.0,)))
    assert sorted(p.name for p in assets.glob("*_0*.png")) == ["worst_01.png"]


def test_provenance_is_on_the_page(report):
    text = "\n".join(Page(report.read_text(encoding="utf-8")).text)
    for value in ("5ca1ab1e" * 8, "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", "c0ffee" * 10, "cpu: test <cpu>",
                  "mmsegmentation", "1.2.2", "ViT-B-16", "openai", "sclip", "t&t", "3.11.2", "uncommitted changes"):
        assert value in text, value


@pytest.mark.parametrize("schema", ["v1", "v2"])
def test_method_and_provenance_from_either_layout(tmp_path, schema):
    """metrics.json v1 keeps the method inside "protocol"; v2 gives method, model and text sections
    of their own. The page names the method and shows every section the file has."""
    from clip_surgery_seg.results import SCHEMA_V1

    results = make_results(partial=False)
    method = {"type": "naclip", "gaussian_std": 5.0}
    postprocess = {"type": "pamr", "num_iter": 10}
    if schema == "v1":
        for section in ("method", "text"):
            del results[section]
        results["schema"] = SCHEMA_V1
        results["protocol"].update(method=method, postprocess=postprocess)
    else:
        results["method"] = {"name": "naclip", "params": {"gaussian_std": 5.0}, "postprocess": postprocess}
        results["text"] = {"templates": "imagenet_80", "classnames": "configs/classnames/x.txt",
                           "classnames_sha256": "7e47" * 16}
    page = Page(write_run_report(tmp_path, results, CONFUSION).read_text(encoding="utf-8"))
    text = page.text
    assert text[text.index("ADE20K-150: mIoU 65.72") + 1].startswith("NACLIP + PAMR \u00b7 protocol sclip")
    headings = text[text.index("Provenance") + 1:]
    # a v1 file is read in the current layout: its method and text get their sections too
    sections = ["Run", "Dataset", "Protocol", "Method", "Model and weights", "Text", "Code", "Environment",
                "Packages", "Timing (seconds)"]
    assert [h for h in headings if h in sections] == sections
    assert '{"type": "pamr", "num_iter": 10}' in text  # a nested value: compact JSON
    assert any("gaussian_std" in t for t in text)
    if schema == "v2":
        assert "7e47" * 16 in text


def test_report_without_examples_or_skips(tmp_path):
    square = CONFUSION[:, :5]  # a (K, K) matrix (no prediction outside the classes) is accepted
    page_path = write_run_report(tmp_path, make_results(square, partial=False), square)
    page = Page(page_path.read_text(encoding="utf-8"))
    assert "Examples" not in page.text and "complete, no file skipped" in page.text
    assert [a["src"] for tag, a in page.tags if tag == "img"] == [f"{ASSETS_DIR}/iou_per_class.png",
                                                                  f"{ASSETS_DIR}/confusion.png"]


def test_inputs_that_do_not_fit_are_refused(tmp_path):
    results = make_results()
    with pytest.raises(ReportingError, match=r"\(5, 6\)"):
        write_run_report(tmp_path, results, CONFUSION[:4])
    other = CONFUSION.copy()
    other[1, 1] += 1
    with pytest.raises(ReportingError, match="same run"):
        write_run_report(tmp_path, results, other)
    with pytest.raises(ReportingError, match="non-negative"):
        write_run_report(tmp_path, results, CONFUSION.astype(np.float64))
    with pytest.raises(ReportingError, match="per_class"):
        write_run_report(tmp_path, {k: v for k, v in results.items() if k != "per_class"}, CONFUSION)
    with pytest.raises(ReportingError, match="does not exist"):
        write_run_report(tmp_path, results, CONFUSION, [ReportExample("x", tmp_path / "none.png", 1.0)])
    assert not (tmp_path / "report.html").exists()


def test_helpers():
    shares = row_normalized(CONFUSION)
    np.testing.assert_allclose(shares[2], [0, 2 / 3, 1 / 3, 0, 0, 0])
    assert np.isnan(shares[4]).all()  # no labelled pixel: no row
    one_image = np.array([[3, 1, 0], [0, 0, 0]])  # class 1 predicted once, never labelled
    assert image_miou(one_image) == pytest.approx(100 * (3 / 4 + 0) / 2)
    assert math.isnan(image_miou(np.zeros((2, 3))))


def test_index_report(tmp_path):
    a = write_run_report(tmp_path / "ade20k", make_results(dataset="ade20k"), CONFUSION)
    results_b = make_results(dataset="cityscapes", partial=False)
    b = write_run_report(tmp_path / "cityscapes", results_b, CONFUSION)
    entries = [IndexEntry("ade20k", a, make_results(dataset="ade20k")), IndexEntry("cityscapes", b, results_b),
               IndexEntry("coco_stuff171", None, None, status="missing data: <no folder>")]
    index = write_index_report(tmp_path, entries, title="run <1>")
    page = Page(index.read_text(encoding="utf-8"))
    # the paper's order, Cityscapes before ADE: in the table's columns and in the list of runs below it
    assert [_local_target(index, h) for h in _links(page, "ours")] == [b, a]
    assert [_local_target(index, h) for h in _links(page, "report")] == [b, a]
    assert len(_links(page)) == 4
    text = page.text
    assert "run <1>" in text and "missing data: <no folder>" in text and "COCO-Stuff-171" in text
    miou = make_results()["summary"]["mIoU"]
    assert f"{miou:.2f}" in text
    assert not any("Mean mIoU" in t for t in text)  # one method's average is in its row, not over the page
    with pytest.raises(ReportingError, match="does not exist"):
        write_index_report(tmp_path, [IndexEntry("ade20k", tmp_path / "nope.html", None)])


def _links(page: Page, css: Optional[str] = None) -> List[str]:
    """The hrefs of the page's links (of class ``css`` only, when given), in order."""
    return [a["href"] for tag, a in page.tags if tag == "a" and (css is None or a.get("class") == css)]


# --- escaping and the template environment ---------------------------------------------------------

HOSTILE = '<script>alert(1)</script> "q" & co'


def test_data_from_results_is_escaped_wherever_it_goes(tmp_path):
    """A class name, a file name, a config value, a method name and a folder name holding markup,
    quotes and ampersands are text on both pages: escaped in the HTML, the same string when parsed."""
    names = ["wall", HOSTILE, "a & b", "c", "d"]
    results = make_results(names=names)
    results["protocol"]["templates"] = HOSTILE
    results["protocol"]["method"] = {"type": HOSTILE, "depth": 6}
    results["config"]["model"]["templates"] = [HOSTILE]
    results["dataset"]["data_root"] = HOSTILE
    results["skipped"] = [{"image": f"{HOSTILE}.jpg", "reason": HOSTILE}]
    examples = [ReportExample(name=HOSTILE, panel=e.panel, miou=e.miou) for e in make_examples(tmp_path / "show")]
    report = write_run_report(tmp_path / "run", results, CONFUSION, examples)
    index = write_index_report(tmp_path, [IndexEntry(f"ade20k/{HOSTILE}", report, results),
                                          IndexEntry("cityscapes", None, None, status=HOSTILE)], title=HOSTILE)
    for path, at_least in ((report, 10), (index, 3)):
        html = path.read_text(encoding="utf-8")
        assert "<script" not in html.lower()  # the pages have no script, and data brings none
        assert '"q"' not in html and " & co" not in html  # the quotes and the ampersand too
        quote = "(?:&#34;|&quot;)"
        escaped = re.findall(rf"&lt;script&gt;alert\(1\)&lt;/script&gt; {quote}q{quote} &amp; co", html)
        assert len(escaped) >= at_least
        page = Page(html)
        assert sum(HOSTILE in t for t in page.text) >= at_least  # and the reader sees the string itself
        assert {key for _, attrs in page.tags for key in attrs} <= {"lang", "charset", "name", "content", "id",
                                                                    "href", "src", "alt", "class", "style"}
    alts = [attrs["alt"] for tag, attrs in Page(report.read_text(encoding="utf-8")).tags if tag == "img"]
    assert alts[2:] == [HOSTILE] * 4  # an attribute value stays whole


def test_templates_escape_everything_and_refuse_missing_values():
    import jinja2

    from clip_surgery_seg.reporting import html_report

    env = html_report.template_environment()
    assert env.autoescape is True and env.undefined is jinja2.StrictUndefined
    assert env.from_string("{{ x }}").render(x='<b x="1">&') == "&lt;b x=&#34;1&#34;&gt;&amp;"
    with pytest.raises(jinja2.UndefinedError):  # a variable the code did not pass
        env.get_template("run_index.html").render(title="t", runs=[])
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("run_report.html").render(title="t")
    # nothing is ever marked safe: no |safe filter, no Markup, no autoescape switched off
    folder = Path(env.loader.get_source(env, "base.html")[1]).parent
    templates = sorted(folder.glob("*.html"))
    assert {p.name for p in templates} >= {"base.html", "run_report.html", "run_index.html"}
    for path in templates + [Path(html_report.__file__)]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\|\s*safe\b|Markup|autoescape\s+false", text), path


# --- the index page of a run folder: methods x datasets ----------------------------------------------

def _fake_run(run: Path, method: str, dataset: str, miou: float, partial: bool = False,
              pretrained: Optional[str] = "openai") -> Path:
    """``run/<method>/<dataset>/``: the metrics.json and confusion.npy of a run of ``method``."""
    folder = run / method / dataset
    folder.mkdir(parents=True)
    results = make_results(dataset=dataset, partial=partial)
    results["dataset"]["expected_images"] = results["dataset"]["num_images"]  # the whole split
    results["summary"]["mIoU"] = miou
    results["method"] = {"name": method, "params": {}, "postprocess": None}
    # a tag or random weights: no file, so no sha256 (a file's sha256 is the weights' identity)
    results["model"].update(pretrained=pretrained, sha256=None)
    (folder / "metrics.json").write_text(json.dumps(results))
    np.save(folder / "confusion.npy", CONFUSION)
    return folder


def test_run_index_compares_each_method_dataset_by_dataset(tmp_path):
    """3 methods x 2 datasets: one row per method with its two cells, ours beside the published
    number, each linking to its run's report; no mean across methods."""
    from clip_surgery_seg.reporting.html_report import write_run_index

    run = tmp_path / "run"
    methods, datasets = ("sclip", "naclip", "clip_surgery"), ("cityscapes", "ade20k")
    mious = {(m, d): 10.0 + 3 * i + j for i, m in enumerate(methods) for j, d in enumerate(datasets)}
    for (method, dataset), miou in mious.items():
        _fake_run(run, method, dataset, miou, partial=(method, dataset) == ("naclip", "ade20k"),
                  pretrained=None if method == "clip_surgery" else "openai")
    # an earlier run's result in the reused folder, for a method that failed this time: not shown
    _fake_run(run, "vanilla", "cityscapes", 77.7, partial=False, pretrained="openai")
    ran = {"status": "ran"}
    (run / "summary.json").write_text(json.dumps({"datasets": {
        "pascal_context59": {"status": "missing_data", "reason": "no VOCdevkit", "methods": {}},
        "cityscapes": {"status": "failed",
                       "methods": {"vanilla": {"status": "failed", "reason": "out of <memory>"},
                                   **{m: ran for m in methods}}},
        "ade20k": {"status": "ran", "methods": {m: ran for m in methods}}}}))
    index = write_run_index(run)
    html = index.read_text(encoding="utf-8")
    page = Page(html)
    text = page.text
    assert not any("over 6 datasets" in t or "Mean mIoU" in t for t in text)
    assert not any("77.70" in t for t in text)

    rows = _table_rows(html)
    header = rows[0]
    assert header[:3] == ["method", "protocol", "model / weights"] and header[-1] == "average"
    city, ade = header.index("Cityscapes"), header.index("ADE20K-150")
    # one row per method, the field's order
    from clip_surgery_seg.models.methods import METHODS

    assert [r[0] for r in rows[1:]] == [METHODS[m].label for m in METHODS if m in methods], rows
    by_label = {r[0]: r for r in rows[1:]}
    for method, label in zip(methods, ("SCLIP", "NACLIP", "CLIP Surgery")):
        row = by_label[label]
        assert row[1] == "sclip"
        assert row[city].startswith(f"{mious[method, 'cityscapes']:.2f} / ")
        assert row[ade].startswith(f"{mious[method, 'ade20k']:.2f} / ")
        assert row[-1].startswith(f"{(mious[method, 'cityscapes'] + mious[method, 'ade20k']) / 2:.2f} / ")
    # the published numbers of results/paper.csv: SCLIP on ADE20K under its own protocol (16.45, its
    # README), NACLIP's without PAMR (17.4*, settings not stated), CLIP Surgery's under settings it never published (12.9*)
    assert by_label["SCLIP"][ade].startswith("11.00 / 16.45 [")
    assert by_label["NACLIP"][ade].startswith("14.00 / 17.4* [")  # its paper did not state the settings
    assert by_label["CLIP Surgery"][ade].startswith("17.00 / 12.9* [")
    # the weights, and the partial result marked in its own cell only
    assert by_label["SCLIP"][2] == "ViT-B-16 / openai"
    assert by_label["CLIP Surgery"][2] == "ViT-B-16 / random weights"
    assert '<span class="badge warn">ViT-B-16 / random weights</span>' in html
    # random weights are not the published numbers' OpenAI weights: said under the table
    assert [t for t in text if "published numbers marked" in t] == [
        "CLIP Surgery (sclip, ViT-B-16 / random weights): published numbers marked *: model ViT-B-16 / random, "
        "published for ViT-B/16 / openai"]
    assert "partial" in by_label["NACLIP"][ade] and "1 files skipped" in by_label["NACLIP"][ade]
    assert sum("partial" in cell for r in rows[1:] for cell in r[3:]) == 1
    # footnotes name the sources
    assert any(t.startswith("SCLIP README, https://github.com/wangf3014/SCLIP") for t in text)
    # each of our numbers links to that run's own report, which exists
    order = [(m, d) for m in METHODS if m in methods for d in ("cityscapes", "ade20k")]
    assert [_local_target(index, h) for h in _links(page, "ours")] == [run / m / d / "report.html" for m, d in order]
    assert all((run / m / d / "report.html").is_file() for m, d in order)
    # below: every run, then what did not run (from summary.json) with the reason
    assert len(_links(page, "report")) == 6
    assert "missing data: no VOCdevkit" in text and "failed: out of <memory>" in text
    assert "Cityscapes / vanilla" not in text and "Cityscapes / CLIP" in text


def _table_rows(html: str) -> List[List[str]]:
    """The methods table's rows, each cell's text joined by spaces."""
    start = html.index('<section id="table">')
    section = html[start:html.index("</table>", start)]

    class Rows(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.rows: List[List[str]] = []

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th") and self.rows:
                self.rows[-1].append("")

        def handle_data(self, data):
            if self.rows and self.rows[-1] and data.strip():
                cell = self.rows[-1][-1]
                self.rows[-1][-1] = f"{cell} {data.strip()}".strip()

    parser = Rows()
    parser.feed(section)
    return parser.rows


# --- a real browser -------------------------------------------------------------------------------

def _chromium() -> Optional[str]:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


# A test-only copy of the page gets this script: after the load event it writes onto <body> how many
# images there are and which did not load (naturalWidth 0). The report itself has no script.
_PROBE = """<script>
window.addEventListener('load', function () {
  var broken = [];
  for (var i = 0; i < document.images.length; i++) {
    var img = document.images[i];
    if (!img.complete || img.naturalWidth === 0) broken.push(img.getAttribute('src'));
  }
  document.body.setAttribute('data-images', String(document.images.length));
  document.body.setAttribute('data-broken', JSON.stringify(broken));
});
</script></body>"""


def _load_in_chromium(browser: str, page: Path, profile: Path) -> Dict[str, str]:
    """The ``data-*`` attributes the probe set on <body>, from Chromium's DOM after the load event."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--dump-dom"]
    result = subprocess.run([browser, *flags, page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    body = next(attrs for tag, attrs in Page(result.stdout).tags if tag == "body")
    assert "data-images" in body, "the page's load event never fired:\n" + result.stdout[:2000]
    return body


def test_report_loads_in_chromium_with_every_image(report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium at /usr/bin/chromium or on PATH (Debian: apt-get install chromium)")
    html = report.read_text(encoding="utf-8")
    probe = report.with_name("_probe.html")  # beside the report: the same relative links
    probe.write_text(html.replace("</body>", _PROBE), encoding="utf-8")
    body = _load_in_chromium(browser, probe, tmp_path / "profile1")
    assert int(body["data-images"]) == html.count("<img ") == 6
    assert json.loads(body["data-broken"]) == []

    # the probe can fail: a copy with one image link broken is caught
    broken = html.replace(f"src=\"{ASSETS_DIR}/confusion.png\"", f"src=\"{ASSETS_DIR}/no-such-file.png\"")
    assert broken != html
    probe.write_text(broken.replace("</body>", _PROBE), encoding="utf-8")
    body = _load_in_chromium(browser, probe, tmp_path / "profile2")
    assert json.loads(body["data-broken"]) == [f"{ASSETS_DIR}/no-such-file.png"]
