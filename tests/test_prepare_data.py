"""Downloads, safe extraction and the per-dataset recipes, against a local HTTP server (no network).

The server on 127.0.0.1 serves small archives built here in the real archives' structure; it can
cut a connection mid-file, honour or ignore Range requests, and records every request.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import re
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest
from PIL import Image

from clip_surgery_seg.errors import (ArchiveError, ChecksumError, ConversionError, DownloadError,
                                     MissingArchiveError, UnsafeArchiveError)
from clip_surgery_seg.data_prep.archives import extract
from clip_surgery_seg.datasets.encodings import (CONTEXT59_CLASSES, COCO_STUFF_ID_TO_TRAINID,
                                                cityscapes_train_ids)
from clip_surgery_seg.data_prep.download import Checksum, download
from clip_surgery_seg.data_prep.prepare import prepare
from clip_surgery_seg.datasets.catalog import ARCHIVES as SOURCES
from clip_surgery_seg.datasets.catalog import Archive as Source
from clip_surgery_seg.datasets.check import check_dataset
from clip_surgery_seg.datasets.synthetic import write_synthetic

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = bytes(np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8))


# --------------------------------------------------------------------------- local HTTP server

class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        srv = self.server
        srv.log.append((self.path, self.headers.get("Range")))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start, status = 0, 200
        wanted = self.headers.get("Range")
        if wanted and srv.honor_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        payload = body[start:]
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        cuts = srv.cuts.get(self.path)
        if cuts:  # send only this many bytes, then drop the connection
            self.wfile.write(payload[: cuts.pop(0)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: Dict[str, bytes] = {}
        self.cuts: Dict[str, List[int]] = {}
        self.honor_range = True
        self.log: List[Tuple[str, Optional[str]]] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def serve(self, name: str, body: bytes) -> str:
        self.files[f"/{name}"] = body
        return f"{self.base}/{name}"

    def requests_for(self, name: str) -> List[Optional[str]]:
        return [rng for path, rng in self.log if path == f"/{name}"]


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _sha256(data: bytes) -> Checksum:
    return Checksum("sha256", hashlib.sha256(data).hexdigest(), "test")


def _md5(data: bytes) -> Checksum:
    return Checksum("md5", hashlib.md5(data).hexdigest(), "test")


# --------------------------------------------------------------------------- downloads

def test_download_writes_the_file_and_verifies_every_checksum(server, tmp_path):
    url = server.serve("a.bin", PAYLOAD)
    dest = download(url, tmp_path / "a.bin", (_md5(PAYLOAD), _sha256(PAYLOAD)), progress=True)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "a.bin.part").exists()
    assert server.requests_for("a.bin") == [None]


def test_download_resumes_after_a_cut_connection(server, tmp_path):
    url = server.serve("a.bin", PAYLOAD)
    server.cuts["/a.bin"] = [70_000]
    dest = download(url, tmp_path / "a.bin", (_sha256(PAYLOAD),), backoff_s=0, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests_for("a.bin") == [None, "bytes=70000-"]


def test_download_resumes_a_partial_file_left_by_an_earlier_run(server, tmp_path):
    url = server.serve("a.bin", PAYLOAD)
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD[:123_456])
    download(url, tmp_path / "a.bin", (_sha256(PAYLOAD),), progress=False)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert server.requests_for("a.bin") == ["bytes=123456-"]


def test_download_completes_a_part_file_that_already_has_every_byte(server, tmp_path):
    url = server.serve("a.bin", PAYLOAD)
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD)  # interrupted between the last byte and the rename
    download(url, tmp_path / "a.bin", (_sha256(PAYLOAD),), progress=False)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert server.requests_for("a.bin") == [f"bytes={len(PAYLOAD)}-"]


def test_download_starts_over_when_the_server_ignores_range(server, tmp_path):
    url = server.serve("a.bin", PAYLOAD)
    server.honor_range = False
    (tmp_path / "a.bin.part").write_bytes(b"x" * 1000)  # must not stay in front of the real bytes
    download(url, tmp_path / "a.bin", (_sha256(PAYLOAD),), progress=False)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_checksum_mismatch_is_a_clear_error_and_removes_the_bad_file(server, tmp_path):
    url = server.serve("a.bin", PAYLOAD)
    wrong = Checksum("md5", "0" * 32, "somewhere")
    with pytest.raises(ChecksumError) as err:
        download(url, tmp_path / "a.bin", (wrong,), progress=False)
    message = str(err.value)
    assert url in message and "0" * 32 in message and hashlib.md5(PAYLOAD).hexdigest() in message
    assert "\n" not in message
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.bin.part").exists()


def test_a_download_cut_every_time_fails_clearly_and_keeps_the_bytes_for_later(server, tmp_path):
    url = server.serve("a.bin", PAYLOAD)
    server.cuts["/a.bin"] = [1000, 1000, 1000]
    with pytest.raises(DownloadError) as err:
        download(url, tmp_path / "a.bin", retries=2, backoff_s=0, progress=False)
    assert "failed 3 times" in str(err.value) and "re-run" in str(err.value) and url in str(err.value)
    assert (tmp_path / "a.bin.part").stat().st_size == 3000
    assert not (tmp_path / "a.bin").exists()
    # The next run continues from byte 3000.
    download(url, tmp_path / "a.bin", (_sha256(PAYLOAD),), progress=False)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert server.requests_for("a.bin")[-1] == "bytes=3000-"


def test_http_404_fails_at_once_with_the_url(server, tmp_path):
    url = f"{server.base}/missing.zip"
    with pytest.raises(DownloadError, match=r"missing\.zip: HTTP 404") as err:
        download(url, tmp_path / "missing.zip", retries=3, backoff_s=0, progress=False)
    assert not isinstance(err.value, ChecksumError)
    assert len(server.requests_for("missing.zip")) == 1


def test_an_existing_download_is_verified_not_fetched_again(server, tmp_path):
    url = server.serve("a.bin", PAYLOAD)
    (tmp_path / "a.bin").write_bytes(PAYLOAD)
    download(url, tmp_path / "a.bin", (_sha256(PAYLOAD),), progress=False)
    assert server.log == []
    (tmp_path / "a.bin").write_bytes(PAYLOAD[:-1])
    with pytest.raises(ChecksumError, match="delete it and re-run"):
        download(url, tmp_path / "a.bin", (_sha256(PAYLOAD),), progress=False)


# --------------------------------------------------------------------------- safe extraction

def _zip(members: Dict[str, bytes], symlinks: Dict[str, str] = {}) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name, target in symlinks.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            archive.writestr(info, target)
    return buffer.getvalue()


def _tar(members: Dict[str, bytes], links: Dict[str, Tuple[bytes, str]] = {}, mode: str = "w",
         fifo: Optional[str] = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, (kind, target) in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            archive.addfile(info)
        if fifo:
            info = tarfile.TarInfo(fifo)
            info.type = tarfile.FIFOTYPE
            archive.addfile(info)
    return buffer.getvalue()


UNSAFE_ARCHIVES = {
    "zip-dotdot": ("a.zip", lambda: _zip({"ok/a.txt": b"a", "ok/../../evil.txt": b"x"}), "'..'"),
    "zip-absolute": ("a.zip", lambda: _zip({"ok/a.txt": b"a", "/tmp/evil.txt": b"x"}), "absolute"),
    "zip-symlink-out": ("a.zip", lambda: _zip({"ok/a.txt": b"a"}, {"ok/link": "../../etc/passwd"}),
                        "outside"),
    "tar-dotdot": ("a.tar", lambda: _tar({"ok/a.txt": b"a", "../evil.txt": b"x"}), "'..'"),
    "tar-absolute": ("a.tar.gz", lambda: _tar({"ok/a.txt": b"a", "/etc/evil": b"x"}, mode="w:gz"),
                     "absolute"),
    "tar-symlink-out": ("a.tar", lambda: _tar({"ok/a.txt": b"a"}, {"ok/l": (tarfile.SYMTYPE, "../../x")}),
                        "outside"),
    "tar-symlink-absolute": ("a.tar", lambda: _tar({"ok/a.txt": b"a"}, {"ok/l": (tarfile.SYMTYPE, "/etc")}),
                             "absolute"),
    "tar-hardlink-out": ("a.tar", lambda: _tar({"ok/a.txt": b"a"}, {"ok/h": (tarfile.LNKTYPE, "../y")}),
                         "outside"),
    "tar-fifo": ("a.tar", lambda: _tar({"ok/a.txt": b"a"}, fifo="ok/pipe"), "special file"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE_ARCHIVES))
def test_an_unsafe_member_refuses_the_whole_archive(tmp_path, case):
    name, build, reason = UNSAFE_ARCHIVES[case]
    archive = tmp_path / name
    archive.write_bytes(build())
    dest = tmp_path / "out" / "inner"
    with pytest.raises(UnsafeArchiveError, match=reason) as err:
        extract(archive, dest)
    assert str(archive) in str(err.value)
    assert not dest.exists()  # checked before anything is written, the safe member included
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


def test_safe_links_become_copies_and_extraction_is_selective_and_idempotent(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar({"./top/a.txt": b"alpha", "top/skip/b.txt": b"beta"},
                             {"top/link.txt": (tarfile.SYMTYPE, "a.txt")}, mode="w:gz"))
    keep = lambda name: None if "/skip/" in name else f"out/{name}"  # noqa: E731
    first = extract(archive, tmp_path, keep)
    assert (first.written, first.skipped) == (2, 0)
    link = tmp_path / "out" / "top" / "link.txt"
    assert not link.is_symlink() and link.read_bytes() == b"alpha"
    assert not (tmp_path / "out" / "top" / "skip").exists()
    second = extract(archive, tmp_path, keep)
    assert (second.written, second.skipped) == (0, 2)
    (tmp_path / "out" / "top" / "a.txt").write_bytes(b"alp")  # e.g. damaged by hand: size differs
    third = extract(archive, tmp_path, keep)
    assert third.written == 1 and (tmp_path / "out" / "top" / "a.txt").read_bytes() == b"alpha"
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_extraction_stopped_by_a_damaged_member_resumes_cleanly(tmp_path):
    first, second = PAYLOAD[:1000], PAYLOAD[1000:3000]
    good = _zip({"x/1.bin": first, "x/2.bin": second})
    archive = tmp_path / "a.zip"
    archive.write_bytes(good.replace(second[100:120], bytes(20)))  # stored data: breaks 2.bin's CRC
    with pytest.raises(ArchiveError, match=r"'x/2\.bin' is damaged or truncated"):
        extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "x" / "1.bin").read_bytes() == first
    assert sorted(p.name for p in (tmp_path / "out" / "x").iterdir()) == ["1.bin"]  # no partial file
    archive.write_bytes(good)  # a good copy of the archive: the run completes, 1.bin is kept
    stats = extract(archive, tmp_path / "out")
    assert (stats.written, stats.skipped) == (1, 1)
    assert (tmp_path / "out" / "x" / "2.bin").read_bytes() == second


@pytest.mark.parametrize("name, body", [
    ("a.zip", _zip({"x/a.bin": PAYLOAD})),
    ("a.tar.gz", _tar({"x/a.bin": PAYLOAD}, mode="w:gz")),
])
def test_a_truncated_archive_is_a_clear_error(tmp_path, name, body):
    archive = tmp_path / name
    archive.write_bytes(body[: len(body) * 2 // 3])
    with pytest.raises(ArchiveError, match="download it again") as err:
        extract(archive, tmp_path / "out")
    assert str(archive) in str(err.value) and "\n" not in str(err.value)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


# --------------------------------------------------------------------------- the dataset recipes

def _zip_folder(folder: Path, arc_prefix: str = "", extra: Dict[str, bytes] = {}) -> bytes:
    members = {arc_prefix + p.relative_to(folder).as_posix(): p.read_bytes()
               for p in sorted(folder.rglob("*")) if p.is_file()}
    return _zip({**members, **extra})


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg_bytes(shape: Tuple[int, int], seed: int) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def _sources(server: _Server, archives: Dict[str, bytes]) -> Dict[str, Source]:
    """The official source list with these archives served locally, checksummed by sha256."""
    sources = dict(SOURCES)
    for name, body in archives.items():
        sources[name] = SOURCES[name].with_url(server.serve(name, body), (_sha256(body),))
    return sources


def _ade_zip(tmp_path: Path, n: int) -> bytes:
    write_synthetic("ade20k", tmp_path / "src", num_images=n, image_size=(24, 32))
    return _zip_folder(tmp_path / "src", extra={
        "ADEChallengeData2016/objectInfo150.txt": b"Idx\tRatio\tTrain\tVal\tName\n",
        "ADEChallengeData2016/images/training/ADE_train_00000001.jpg": _jpeg_bytes((24, 32), 1),
        "ADEChallengeData2016/annotations/training/ADE_train_00000001.png": _png_bytes(np.ones((24, 32))),
    })


def test_ade20k_is_downloaded_extracted_and_passes_the_check(server, tmp_path):
    body = _ade_zip(tmp_path, 3)
    sources = _sources(server, {"ADEChallengeData2016.zip": body})
    server.cuts["/ADEChallengeData2016.zip"] = [len(body) // 2]  # a cut connection on the way
    root = tmp_path / "data"
    folder = prepare("ade20k", root, sources=sources, progress=False, backoff_s=0)
    assert folder == root / "ADEChallengeData2016"
    assert server.requests_for("ADEChallengeData2016.zip") == [None, f"bytes={len(body) // 2}-"]
    report = check_dataset("ade20k", root, expected_images=3)
    assert report.ok, report.format()
    assert len(report.pairs) == 3 and (folder / "objectInfo150.txt").is_file()
    assert not (folder / "images" / "training").exists()  # only the validation split is extracted
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    prepare("ade20k", root, sources=sources, progress=False)  # again: nothing fetched or rewritten
    assert len(server.requests_for("ADEChallengeData2016.zip")) == 2
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before


def test_a_path_traversal_member_in_a_download_is_refused(server, tmp_path):
    body = _zip({"ADEChallengeData2016/images/validation/ADE_val_00000001.jpg": _jpeg_bytes((8, 8), 0),
                 "ADEChallengeData2016/../../../evil.sh": b"rm -rf ~"})
    sources = _sources(server, {"ADEChallengeData2016.zip": body})
    with pytest.raises(UnsafeArchiveError, match=r"evil\.sh"):
        prepare("ade20k", tmp_path / "data", sources=sources, progress=False)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [tmp_path / "data" / "downloads" / "ADEChallengeData2016.zip"]


def test_a_download_that_does_not_match_its_published_checksum_stops_preparation(server, tmp_path):
    body = _ade_zip(tmp_path, 1)
    sources = _sources(server, {"ADEChallengeData2016.zip": body})
    sources["ADEChallengeData2016.zip"] = sources["ADEChallengeData2016.zip"].with_url(
        f"{server.base}/ADEChallengeData2016.zip", (Checksum("sha1", "1" * 40, "a test"),))
    with pytest.raises(ChecksumError, match="published value is 1111"):
        prepare("ade20k", tmp_path / "data", sources=sources, progress=False)
    assert not (tmp_path / "data" / "ADEChallengeData2016").exists()


def test_coco_stuff_gets_val_images_and_converted_labels(server, tmp_path):
    rng = np.random.default_rng(3)
    stems = [f"{139 + 146 * i:012d}" for i in range(3)]
    raw_values = np.array(sorted(set(range(182)) | {255}))  # every id, the unused ones included
    raw = {s: rng.choice(raw_values, size=(20, 30)).astype(np.uint8) for s in stems}
    raw[stems[0]].ravel()[: len(raw_values)] = raw_values
    images = _zip({f"val2017/{s}.jpg": _jpeg_bytes((20, 30), i) for i, s in enumerate(stems)})
    maps = _zip({**{f"val2017/{s}.png": _png_bytes(raw[s]) for s in stems},
                 "train2017/000000000009.png": _png_bytes(np.zeros((20, 30)))})
    sources = _sources(server, {"val2017.zip": images, "stuffthingmaps_trainval2017.zip": maps})
    root = tmp_path / "data"
    folder = prepare("coco_stuff171", root, sources=sources, progress=False, workers=1)
    lut = np.full(256, 255)
    for cid, train in COCO_STUFF_ID_TO_TRAINID.items():
        lut[cid] = train
    for s in stems:
        converted = np.asarray(Image.open(folder / "annotations" / "val2017" / f"{s}_labelTrainIds.png"))
        assert np.array_equal(converted, lut[raw[s]])
    assert not (folder / "annotations" / "train2017").exists()
    report = check_dataset("coco_stuff171", root, expected_images=3)
    assert report.ok, report.format()


def _context_archives(val_ids: List[str], train_ids: List[str]) -> Tuple[bytes, bytes, Dict[str, np.ndarray]]:
    from scipy.io import savemat

    rng = np.random.default_rng(5)
    voc = {f"VOCdevkit/VOC2010/JPEGImages/{i}.jpg": _jpeg_bytes((24, 22), k)
           for k, i in enumerate(val_ids + train_ids)}
    voc["VOCdevkit/VOC2010/ImageSets/Main/val.txt"] = ("\n".join(val_ids) + "\n").encode()
    voc["VOCdevkit/VOC2010/ImageSets/Main/train.txt"] = ("\n".join(train_ids) + "\n").encode()
    voc["VOCdevkit/VOC2010/Annotations/x.xml"] = b"<annotation/>"
    full = {i: rng.integers(1, 460, size=(24, 22)).astype(np.uint16) for i in val_ids + train_ids}
    full[val_ids[0]].ravel()[:459] = np.arange(1, 460)  # every class of the 459
    ctx: Dict[str, bytes] = {}
    for i, label_map in full.items():
        buffer = io.BytesIO()
        savemat(buffer, {"LabelMap": label_map})
        ctx[f"trainval/{i}.mat"] = buffer.getvalue()
    names = dict(CONTEXT59_CLASSES)
    ctx["labels.txt"] = "".join(f"{i}: {names.get(i, f'thing{i}')}\n" for i in range(1, 460)).encode()
    return _tar(voc), _tar(ctx, mode="w:gz"), full


def test_pascal_context_gets_val_images_59_class_labels_and_the_split_list(server, tmp_path):
    val_ids, train_ids = ["2008_000002", "2008_000008", "2010_000001"], ["2008_000003"]
    voc, ctx, full = _context_archives(val_ids, train_ids)
    sources = _sources(server, {"VOCtrainval_03-May-2010.tar": voc, "trainval.tar.gz": ctx})
    root = tmp_path / "data"
    folder = prepare("pascal_context59", root, sources=sources, progress=False, workers=1)
    assert (folder / "ImageSets" / "SegmentationContext" / "val.txt").read_text().split() == val_ids
    assert sorted(p.stem for p in (folder / "JPEGImages").glob("*.jpg")) == val_ids
    assert sorted(p.stem for p in (folder / "SegmentationClassContext").glob("*.png")) == val_ids
    lut = np.zeros(460, dtype=np.uint8)
    for k, (i, _) in enumerate(CONTEXT59_CLASSES):
        lut[i] = k + 1
    for i in val_ids:
        label = np.asarray(Image.open(folder / "SegmentationClassContext" / f"{i}.png"))
        assert np.array_equal(label, lut[full[i]])
    report = check_dataset("pascal_context59", root, expected_images=3)
    assert report.ok, report.format()


def test_pascal_context_refuses_a_labels_txt_with_other_classes(server, tmp_path):
    from clip_surgery_seg.errors import ConversionError

    voc, _, _ = _context_archives(["2008_000002"], [])
    ctx = _tar({"trainval/2008_000002.mat": b"", "labels.txt": b"1: accordion\n2: airplane\n"}, mode="w:gz")
    sources = _sources(server, {"VOCtrainval_03-May-2010.tar": voc, "trainval.tar.gz": ctx})
    with pytest.raises(ConversionError, match=r"2='airplane' \(expected 'aeroplane'\)"):
        prepare("pascal_context59", tmp_path / "data", sources=sources, progress=False)
    assert not (tmp_path / "data" / "VOCdevkit" / "VOC2010" / "SegmentationClassContext").exists()


def test_pascal_context60_reads_the_context59_files_and_prepares_nothing_more(server, tmp_path):
    val_ids = ["2008_000002", "2008_000008"]
    voc, ctx, full = _context_archives(val_ids, [])
    sources = _sources(server, {"VOCtrainval_03-May-2010.tar": voc, "trainval.tar.gz": ctx})
    root = tmp_path / "data"
    prepare("pascal_context59", root, sources=sources, progress=False, workers=1)
    requests = len(server.log)
    assert check_dataset("pascal_context60", root, expected_images=2).ok
    before = {p: p.stat().st_mtime_ns for p in (root / "VOCdevkit").rglob("*") if p.is_file()}
    prepare("pascal_context60", root, sources=sources, progress=False, workers=1)  # everything in place
    assert len(server.log) == requests
    assert {p: p.stat().st_mtime_ns for p in (root / "VOCdevkit").rglob("*") if p.is_file()} == before


# --------------------------------------------------------------------------- VOC 2012 (voc21, voc20)

def _palette_png(indices: np.ndarray) -> bytes:
    from clip_surgery_seg.datasets.encodings import voc_palette

    image = Image.fromarray(indices.astype(np.uint8))
    image.putpalette(voc_palette().reshape(-1).tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _voc2012_tar(val_ids: List[str], train_ids: List[str], drop: Tuple[str, ...] = ()) -> Dict[str, bytes]:
    """The members of a small VOCtrainval_11-May-2012.tar: images and palette labels of both splits,
    the split lists, and files the preparation must leave out."""
    rng = np.random.default_rng(7)
    base = "VOCdevkit/VOC2012"
    members = {f"{base}/ImageSets/Segmentation/val.txt": ("\n".join(val_ids) + "\n").encode(),
               f"{base}/ImageSets/Segmentation/train.txt": ("\n".join(train_ids) + "\n").encode(),
               f"{base}/ImageSets/Main/val.txt": b"2012_999999\n",
               f"{base}/Annotations/{val_ids[0]}.xml": b"<annotation/>",
               f"{base}/SegmentationObject/{val_ids[0]}.png": _png_bytes(np.ones((18, 20)))}
    for k, i in enumerate(val_ids + train_ids):
        label = rng.choice(np.array(list(range(21)) + [255]), size=(18, 20))
        members[f"{base}/JPEGImages/{i}.jpg"] = _jpeg_bytes((18, 20), k)
        members[f"{base}/SegmentationClass/{i}.png"] = _palette_png(label)
    for name in drop:
        del members[f"{base}/{name}"]
    return members


def test_voc2012_gets_the_val_split_as_released_for_voc21_and_voc20(server, tmp_path):
    val_ids, train_ids = ["2007_000033", "2007_000042", "2011_003276"], ["2007_000032"]
    members = _voc2012_tar(val_ids, train_ids)
    tar = _tar(members)
    sources = _sources(server, {"VOCtrainval_11-May-2012.tar": tar})
    server.cuts["/VOCtrainval_11-May-2012.tar"] = [len(tar) // 3]  # a cut connection on the way
    root = tmp_path / "data"
    folder = prepare("voc21", root, sources=sources, progress=False, workers=1)
    assert folder == root / "VOCdevkit" / "VOC2012"
    assert server.requests_for("VOCtrainval_11-May-2012.tar") == [None, f"bytes={len(tar) // 3}-"]
    assert (folder / "ImageSets" / "Segmentation" / "val.txt").read_text().split() == val_ids
    assert sorted(p.stem for p in (folder / "JPEGImages").glob("*.jpg")) == val_ids
    for i in val_ids:  # the palette PNGs are the released bytes, read as their indices
        png = folder / "SegmentationClass" / f"{i}.png"
        assert png.read_bytes() == members[f"VOCdevkit/VOC2012/SegmentationClass/{i}.png"]
        assert Image.open(png).mode == "P"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == sorted(
        [f"JPEGImages/{i}.jpg" for i in val_ids] + [f"SegmentationClass/{i}.png" for i in val_ids]
        + ["ImageSets/Segmentation/val.txt"])
    for name in ("voc21", "voc20"):
        report = check_dataset(name, root, expected_images=3)
        assert report.ok, report.format()
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    prepare("voc20", root, sources=sources, progress=False)  # the same files: nothing fetched or rewritten
    assert len(server.requests_for("VOCtrainval_11-May-2012.tar")) == 2
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before


def test_voc2012_with_a_val_label_missing_writes_no_split_list(server, tmp_path):
    val_ids = ["2007_000033", "2007_000042"]
    tar = _tar(_voc2012_tar(val_ids, [], drop=("SegmentationClass/2007_000042.png",)))
    sources = _sources(server, {"VOCtrainval_11-May-2012.tar": tar})
    with pytest.raises(ConversionError, match=r"1 of the 2 images .* \(first: 2007_000042\)"):
        prepare("voc21", tmp_path / "data", sources=sources, progress=False)
    assert not (tmp_path / "data" / "VOCdevkit" / "VOC2012" / "ImageSets").exists()


def test_an_archive_without_the_voc2012_split_list_is_refused(server, tmp_path):
    tar = _tar(_voc2012_tar(["2007_000033"], [], drop=("ImageSets/Segmentation/val.txt",)))
    sources = _sources(server, {"VOCtrainval_11-May-2012.tar": tar})
    with pytest.raises(ArchiveError, match=r"has no file VOCdevkit/VOC2012/ImageSets/Segmentation/val\.txt"):
        prepare("voc21", tmp_path / "data", sources=sources, progress=False)
    assert not (tmp_path / "data" / "VOCdevkit").exists()


# --------------------------------------------------------------------------- COCO-Object

def _coco_archives(stems: List[str]) -> Tuple[bytes, bytes, Dict[str, np.ndarray]]:
    """val2017.zip and stuffthingmaps_trainval2017.zip; the first map holds every value a map can."""
    rng = np.random.default_rng(11)
    raw_values = np.array(sorted(set(range(182)) | {255}))
    raw = {s: rng.choice(raw_values, size=(20, 30)).astype(np.uint8) for s in stems}
    raw[stems[0]].ravel()[: len(raw_values)] = raw_values
    images = _zip({f"val2017/{s}.jpg": _jpeg_bytes((20, 30), i) for i, s in enumerate(stems)})
    maps = _zip({**{f"val2017/{s}.png": _png_bytes(raw[s]) for s in stems},
                 "train2017/000000000009.png": _png_bytes(np.zeros((20, 30)))})
    return images, maps, raw


def _coco_object_lut() -> np.ndarray:
    """stuffthingmap value -> COCO-Object label, re-stated: things in id order, everything else 0."""
    from clip_surgery_seg.datasets.encodings import COCO_STUFF_UNUSED_IDS

    lut = np.zeros(256, dtype=np.uint8)  # stuff ids 91..181 and 255 (unlabeled): background
    things = [i for i in range(91) if i not in COCO_STUFF_UNUSED_IDS]
    lut[things] = np.arange(1, 81)
    lut[list(COCO_STUFF_UNUSED_IDS)] = 255
    return lut


def test_coco_object_after_coco_stuff_converts_the_same_maps_without_any_download(server, tmp_path):
    stems = [f"{139 + 146 * i:012d}" for i in range(3)]
    images, maps, raw = _coco_archives(stems)
    names = ("val2017.zip", "stuffthingmaps_trainval2017.zip")
    sources = _sources(server, dict(zip(names, (images, maps))))
    root = tmp_path / "data"
    prepare("coco_stuff171", root, sources=sources, progress=False, workers=1)
    requests = len(server.log)
    import shutil

    shutil.rmtree(root / "downloads")  # as data/README.md allows once a split checks out
    folder = prepare("coco_object", root, sources=sources, progress=False, workers=1)
    assert len(server.log) == requests  # nothing fetched again
    for s in stems:
        converted = np.asarray(Image.open(folder / "annotations" / "val2017" / f"{s}_instanceTrainIds.png"))
        assert np.array_equal(converted, _coco_object_lut()[raw[s]])
    for name in ("coco_object", "coco_stuff171"):
        report = check_dataset(name, root, expected_images=3)
        assert report.ok, report.format()


def test_coco_object_first_fetches_each_archive_once_and_coco_stuff_then_nothing(server, tmp_path):
    stems = [f"{139 + 146 * i:012d}" for i in range(2)]
    images, maps, raw = _coco_archives(stems)
    sources = _sources(server, {"val2017.zip": images, "stuffthingmaps_trainval2017.zip": maps})
    root = tmp_path / "data"
    folder = prepare("coco_object", root, sources=sources, progress=False, workers=1)
    assert [path for path, _ in server.log] == ["/val2017.zip", "/stuffthingmaps_trainval2017.zip"]
    assert (folder / "val2017.txt").read_text().split() == stems
    prepare("coco_stuff171", root, sources=sources, progress=False, workers=1)
    assert len(server.log) == 2
    # each conversion reads the stuffthingmaps only, never the other one's output
    made = sorted(p.name for p in (folder / "annotations" / "val2017").iterdir())
    assert made == sorted(f"{s}{suffix}" for s in stems for suffix in (".png", "_instanceTrainIds.png",
                                                                        "_labelTrainIds.png"))
    assert not (folder / "annotations" / "train2017").exists()
    for name in ("coco_object", "coco_stuff171"):
        report = check_dataset(name, root, expected_images=2)
        assert report.ok, report.format()


# --------------------------------------------------------------------------- the CLI, Cityscapes

def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cityscapes_archives(folder: Path, frame: Path) -> None:
    """The two official zips, with the real frame in val and a train image that must be left out."""
    stem = "frankfurt/frankfurt_000000_000294"
    images = {f"leftImg8bit/val/{stem}_leftImg8bit.png":
              (frame / "leftImg8bit" / "val" / f"{stem}_leftImg8bit.png").read_bytes(),
              "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png": _png_bytes(np.zeros((4, 4))),
              "README": b"images", "license.txt": b"terms"}
    labels = {f"gtFine/val/{stem}_gtFine_{kind}": (frame / f"gtFine/val/{stem}_gtFine_{kind}").read_bytes()
              for kind in ("labelIds.png", "instanceIds.png")}
    labels.update({f"gtFine/val/{stem}_gtFine_polygons.json": b"{}", "README": b"labels"})
    (folder / "leftImg8bit_trainvaltest.zip").write_bytes(_zip(images))
    (folder / "gtFine_trainvaltest.zip").write_bytes(_zip(labels))


def test_cityscapes_cli_from_archives_makes_the_official_train_ids(tmp_path, mmseg_samples, capsys):
    frame = mmseg_samples / "pseudo_cityscapes_dataset"
    archives = tmp_path / "archives"
    archives.mkdir()
    _cityscapes_archives(archives, frame)
    tool = _load_tool("prepare_data")
    root = tmp_path / "data"
    code = tool.main(["cityscapes", "--root", str(root), "--from-archives", str(archives), "--no-progress"])
    out = capsys.readouterr().out
    # One real frame is not the 500 of the split: the report says so and the exit code is 1.
    assert code == 1 and "found 1 images, the cityscapes split has 500" in out
    stem = "frankfurt/frankfurt_000000_000294"
    ours = np.asarray(Image.open(root / "cityscapes" / "gtFine" / "val" / f"{stem}_gtFine_labelTrainIds.png"))
    label_ids = np.asarray(Image.open(frame / "gtFine" / "val" / f"{stem}_gtFine_labelIds.png"))
    # The frame went through zip, extraction and conversion intact (the table itself is checked
    # against the official trainIds in test_prepare_convert.py).
    assert np.array_equal(ours, cityscapes_train_ids(label_ids))
    assert not (root / "cityscapes" / "leftImg8bit" / "train").exists()
    assert not list((root / "cityscapes").glob("*.txt")) and not (root / "cityscapes" / "README").exists()
    report = check_dataset("cityscapes", root, expected_images=1)
    assert report.ok, report.format()


def test_cityscapes_without_its_archives_says_where_to_get_them(tmp_path, capsys):
    tool = _load_tool("prepare_data")
    code = tool.main(["cityscapes", "--root", str(tmp_path / "data"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "leftImg8bit_trainvaltest.zip" in err and "cityscapes-dataset.com" in err
    assert "--from-archives" in err


def test_from_archives_never_downloads(server, tmp_path):
    body = _ade_zip(tmp_path, 1)
    sources = _sources(server, {"ADEChallengeData2016.zip": body})
    with pytest.raises(MissingArchiveError, match=r"empty/ADEChallengeData2016\.zip not found: put it from "
                                                  r"http://127\.0\.0\.1:\d+/ADEChallengeData2016\.zip there"):
        prepare("ade20k", tmp_path / "data", tmp_path / "empty", sources=sources, progress=False)
    assert server.log == []
