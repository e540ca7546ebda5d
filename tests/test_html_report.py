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
        "protocol": {"name": "sclip", "short_side": 336, "crop_size": 224, "stride": 112, "templates": "t&t"},
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
    hrefs = [attrs["href"] for tag, attrs in page.tags if tag == "a"]
    assert [_local_target(index, h) for h in hrefs] == [b, a]  # the paper's order: Cityscapes before ADE
    text = page.text
    assert "run <1>" in text and "missing data: <no folder>" in text and "COCO-Stuff-171" in text
    miou = make_results()["summary"]["mIoU"]
    assert f"{miou:.2f}" in text
    assert any("Mean mIoU over 2 datasets" in t for t in text)
    with pytest.raises(ReportingError, match="does not exist"):
        write_index_report(tmp_path, [IndexEntry("ade20k", tmp_path / "nope.html", None)])


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
