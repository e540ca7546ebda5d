"""Never a silent wrong number: damaged or hostile input at the edges of history, comparisons, the
text cache, data listing, preparation and weights. Each test is one case of the issue; it failed on
the code before its fix."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from clip_surgery_seg.cli.compare import main as compare_main
from clip_surgery_seg.cli.history import main as history_main
from clip_surgery_seg.cli.report import main as report_main
from clip_surgery_seg.reporting.history import HISTORY_COLUMNS, append_history, history_row
from test_prepare_data import server  # noqa: F401  (the local HTTP server fixture)
from test_report import fake_results, write_results

NAN = float("nan")


def _cli(capsys, main, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- 1. damaged history rows

def _good_history(tmp_path: Path) -> Path:
    """Two good ade20k rows: 34.0 then 35.0 (the baseline a comparison must find)."""
    path = tmp_path / "history.csv"
    for day, miou in ((1, 34.0), (2, 35.0)):
        append_history(path, fake_results(miou=miou, created=f"2025-01-0{day}T00:00:00+00:00"))
    return path


def _row_text(**change) -> str:
    """One history line of a good ade20k row, with some cells changed."""
    row = history_row(fake_results())
    row.update(change)
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n").writerow(row)
    return buffer.getvalue()


def test_a_history_row_cut_after_a_few_fields_is_never_the_baseline(tmp_path, capsys):
    history = _good_history(tmp_path)
    with open(history, "a") as handle:  # a later row cut off mid-write: '25.31' became '2'
        handle.write("2025-01-03T00:00:00+00:00,ade20k,sclip,2\n")
    new = write_results(tmp_path / "new", miou=25.0, created="2025-01-09T00:00:00+00:00")
    code, out, err = _cli(capsys, compare_main, new, history)
    assert code == 1, out + err  # the 10-point drop from 35.0 is found
    assert "REGRESSION ade20k: mIoU -10.00" in out
    assert f"{history} line 4: damaged row (4 of {len(HISTORY_COLUMNS)} fields)" in err
    assert "ignored (never a baseline)" in err


def test_a_history_row_cut_inside_a_quoted_field_does_not_swallow_the_next_row(tmp_path, capsys):
    history = _good_history(tmp_path)
    cut = _row_text(time="2025-01-03T00:00:00+00:00", mIoU=2.0)
    with open(history, "a") as handle:  # cut inside the quoted per-class JSON, then a good row
        handle.write(cut[: cut.index('""floor""')] + "\n")
        handle.write(_row_text(time="2025-01-04T00:00:00+00:00", mIoU=36.0))
    new = write_results(tmp_path / "new", miou=25.0, created="2025-01-09T00:00:00+00:00")
    code, out, err = _cli(capsys, compare_main, new, history)
    assert code == 1 and "REGRESSION ade20k: mIoU -11.00" in out  # the row of 2025-01-04 is the baseline
    assert f"{history} line 4: damaged row (not a CSV row)" in err and "line 5" not in err


def test_a_history_row_with_an_unparseable_time_is_not_the_latest(tmp_path, capsys):
    history = _good_history(tmp_path)
    with open(history, "a") as handle:
        handle.write(_row_text(time="2025-13-45T99:00:00", mIoU=20.0))
    new = write_results(tmp_path / "new", miou=25.0, created="2025-01-09T00:00:00+00:00")
    code, out, err = _cli(capsys, compare_main, new, history)
    assert code == 1 and "REGRESSION ade20k: mIoU -10.00" in out
    assert f"{history} line 4: damaged row (time '2025-13-45T99:00:00' is not an ISO 8601 time)" in err
    # the history tool and the report leave it out too, and say so
    code, out, err = _cli(capsys, history_main, "--history", history)
    assert code == 0 and len(out.splitlines()) == 3 and "line 4: damaged row" in err
    code, out, err = _cli(capsys, report_main, history)
    lines = out.splitlines()
    header = [c.strip() for c in lines[0].split("|")[1:-1]]
    row = next([c.strip() for c in line.split("|")[1:-1]] for line in lines if line.startswith("| CLIP Surgery"))
    assert code == 0 and row[header.index("ADE20K-150")].startswith("35.00 /") and "line 4: damaged row" in err


def test_invalid_per_class_json_in_the_history_is_bad_input_not_a_regression(tmp_path, capsys):
    history = tmp_path / "history.csv"
    history.write_text(",".join(HISTORY_COLUMNS) + "\n" + _row_text(per_class_iou='{"wall": 40.0, "flo'))
    new = write_results(tmp_path / "new", miou=25.0, created="2025-01-09T00:00:00+00:00")
    code, out, err = _cli(capsys, compare_main, new, history)
    assert code == 2, out + err  # 1 would say "regression"
    assert f"{history} line 2: damaged row (per_class_iou is not a JSON object of numbers" in err
    assert err.strip().splitlines()[-1].startswith("error: no history row matches")
    code, _, err = _cli(capsys, report_main, history)
    assert code == 2 and "line 2: damaged row" in err and "Traceback" not in err
    # a good row after it is used as usual
    with open(history, "a") as handle:
        handle.write(_row_text(mIoU=25.0, time="2025-01-05T00:00:00+00:00"))
    assert _cli(capsys, compare_main, new, history)[0] == 0


# --------------------------------------------------------------------------- 2. NaN in comparisons

@pytest.mark.parametrize("new_miou, base_miou, code, line", [
    (NAN, 30.0, 1, "REGRESSION ade20k: mIoU is nan (not a number)"),
    (NAN, NAN, 1, "REGRESSION ade20k: mIoU is nan (not a number)"),
    (30.0, NAN, 2, "the baseline's mIoU is nan (not a number)"),
    (float("inf"), 30.0, 1, "REGRESSION ade20k: mIoU is inf (not a number)"),
])
def test_a_non_finite_miou_is_never_a_pass(tmp_path, capsys, new_miou, base_miou, code, line):
    base = write_results(tmp_path / "base", miou=base_miou)
    new = write_results(tmp_path / "new", miou=new_miou)
    got, out, err = _cli(capsys, compare_main, new, base)
    assert got == code, out + err
    assert line in (out if code == 1 else err)
    assert "OK: no regression" not in out


# --------------------------------------------------------------------------- 3. text-embedding cache

def test_a_damaged_text_embedding_cache_entry_is_recomputed(tiny_vit, tmp_path, caplog):
    from clip_surgery_seg.models import SurgeryCLIP
    from clip_surgery_seg.segmentors.text_embeddings import cached_text_embeddings

    model = SurgeryCLIP(*tiny_vit, method="vanilla")
    rows, cache = ["road", "sky", "car"], tmp_path / "cache"
    first = cached_text_embeddings(model, rows, ["a photo of a {}."], "tiny:test", cache)
    (entry,) = cache.iterdir()
    # change one stored number in place: the zip container stays intact, only the tensor's bytes differ
    data = bytearray(entry.read_bytes())
    stored = first.contiguous().numpy().tobytes()
    at = bytes(data).index(stored[:64])
    data[at:at + 4] = np.float32(123.0).tobytes()
    entry.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="clip_surgery_seg"):
        again = cached_text_embeddings(model, rows, ["a photo of a {}."], "tiny:test", cache)
    assert torch.equal(again, first)  # recomputed, not read back damaged
    assert f"text-embedding cache entry {entry} is damaged (its digest does not match); recomputing" in caplog.text
    # ... and the rewritten entry is good again
    caplog.clear()
    with caplog.at_level("WARNING", logger="clip_surgery_seg"):
        assert torch.equal(cached_text_embeddings(model, rows, ["a photo of a {}."], "tiny:test", cache), first)
    assert "damaged" not in caplog.text


# --------------------------------------------------------------------------- 4. class names with a BOM

def test_a_class_name_file_with_a_bom_reads_the_first_name_clean(tmp_path):
    from clip_surgery_seg.datasets.classnames import load_classnames

    path = tmp_path / "classes.txt"
    path.write_bytes("road, street\r\nsky\r\n".encode("utf-8-sig"))  # as Windows Notepad saves it
    names = load_classnames(path)
    assert names.classes == ("road", "sky") and names.rows == ("road", "street", "sky")


# --------------------------------------------------------------------------- 5. 16-bit grey images

def test_a_16_bit_grey_image_is_scaled_to_8_bits_not_clipped_to_white(tmp_path):
    from PIL import Image

    from clip_surgery_seg.datasets.transforms import read_image_rgb
    from clip_surgery_seg.errors import BadSampleError

    rng = np.random.default_rng(0)
    for shape in ((5, 7), (16, 3)):
        grey16 = rng.integers(0, 65536, size=shape, dtype=np.uint16)
        path = tmp_path / f"grey16_{shape[0]}.png"
        Image.fromarray(grey16).save(path)
        assert Image.open(path).mode.startswith("I;16")
        rgb = read_image_rgb(str(path))
        # the high byte, as Pillow reads a 16-bit RGB file; the same image saved as 8-bit reads the same
        expected = np.stack([(grey16 // 256).astype(np.uint8)] * 3, axis=-1)
        assert rgb.dtype == np.uint8 and rgb.shape == (*shape, 3) and np.array_equal(rgb, expected)
        Image.fromarray(expected[..., 0]).save(tmp_path / "grey8.png")
        assert np.array_equal(read_image_rgb(str(tmp_path / "grey8.png")), rgb)
    # 32-bit integer or float pixels have no 8-bit range to read them by: refused, not guessed
    Image.fromarray(rng.random((4, 4), dtype=np.float32)).save(tmp_path / "float.tiff")
    with pytest.raises(BadSampleError, match=r"float\.tiff: image mode F \(32-bit float pixels\) has no 8-bit "
                                             r"range; save it as an 8-bit RGB image"):
        read_image_rgb(str(tmp_path / "float.tiff"))


# --------------------------------------------------------------------------- 10. decompression bombs

def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height grey pixels (and holds almost none): what Pillow refuses."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.fixture
def ade_split(tmp_path) -> Path:
    from clip_surgery_seg.datasets.synthetic import write_synthetic

    write_synthetic("ade20k", tmp_path / "data", num_images=3, image_size=(24, 32))
    return tmp_path / "data"


def _ade(root: Path, kind: str, k: int) -> Path:
    folder, suffix = {"image": ("images", ".jpg"), "label": ("annotations", ".png")}[kind]
    return root / "ADEChallengeData2016" / folder / "validation" / f"ADE_val_{k:08d}{suffix}"


def test_a_decompression_bomb_image_is_a_bad_file_in_check_data_and_in_evaluation(ade_split, capsys, run_eval,
                                                                                 tmp_path):
    from clip_surgery_seg.cli.check_data import main as check_main
    from conftest import eval_args

    bomb = _ade(ade_split, "image", 2)
    bomb.write_bytes(_png_header_only(20000, 20000))
    code, out, err = _cli(capsys, check_main, "ade20k", "--root", ade_split, "--expected-images", 3, "--workers", 1)
    assert code == 1 and "Traceback" not in err, out + err
    assert "  bad file: 1" in out
    assert f"{bomb}: image of 400000000 pixels is over Pillow's decompression-bomb limit" in out
    code, _, err = run_eval(eval_args("ade20k", ade_split, tmp_path / "w"))
    assert code == 1
    assert err.strip().splitlines()[-1].startswith(f"error: {bomb}: image of 400000000 pixels is over Pillow's "
                                                   "decompression-bomb limit")


# --------------------------------------------------------------------------- 6. zip bombs

def _zip_bytes(members, compression=None) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression or zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tar_gz_bytes(members) -> bytes:
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


ZEROS = bytes(64 << 20)  # 64 MiB that deflate to ~64 KB: a ratio of ~1000


@pytest.mark.parametrize("name, build, message", [
    ("one.zip", lambda: _zip_bytes({"ok.txt": b"fine", "x/big.bin": ZEROS}),
     r"member 'x/big\.bin' expands to 64\.0 MiB, \d+ times its compressed size \(the limit is 200\)"),
    ("many.zip", lambda: _zip_bytes({"ok.txt": b"fine", **{f"x/{i:02d}.bin": ZEROS[:4 << 20] for i in range(16)}}),
     r"the members up to 'x/\d+\.bin' expand to \d+\.\d MiB, \d+ times the archive's size \(the limit is 200\)"),
    ("one.tar.gz", lambda: _tar_gz_bytes({"ok.txt": b"fine", "x/big.bin": ZEROS}),
     r"the members up to 'x/big\.bin' expand to 64\.0 MiB, \d+ times the archive's size \(the limit is 200\)"),
])
def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path, name, build, message):
    from clip_surgery_seg.data_prep.archives import extract
    from clip_surgery_seg.errors import UnsafeArchiveError

    archive = tmp_path / name
    archive.write_bytes(build())
    with pytest.raises(UnsafeArchiveError, match=message) as err:
        extract(archive, tmp_path / "out")
    assert str(err.value).startswith(f"{archive}: ") and "\n" not in str(err.value)
    assert "delete it and download it again" in str(err.value)
    assert not (tmp_path / "out").exists()  # refused before the first file, 'ok.txt' included


def test_archive_size_limits_apply_per_member_and_in_total(tmp_path):
    from clip_surgery_seg.data_prep.archives import ExtractLimits, extract
    from clip_surgery_seg.errors import UnsafeArchiveError

    rng = np.random.default_rng(0)  # random bytes: no compression ratio to speak of
    members = {f"x/{i}.bin": rng.bytes(3000) for i in range(4)}
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip_bytes(members))
    with pytest.raises(UnsafeArchiveError, match=r"member 'x/0\.bin' expands to 2\.9 KiB, over the limit "
                                                 r"of 2\.0 KiB per member"):
        extract(archive, tmp_path / "out", limits=ExtractLimits(member_bytes=2048))
    with pytest.raises(UnsafeArchiveError, match=r"the members up to 'x/3\.bin' expand to 11\.7 KiB, over the "
                                                 r"limit of 10\.0 KiB in all"):
        extract(archive, tmp_path / "out", limits=ExtractLimits(total_bytes=10240))
    assert not (tmp_path / "out").exists()
    # the members a selection leaves out do not count
    stats = extract(archive, tmp_path / "out", lambda n: n if n < "x/3" else None,
                    limits=ExtractLimits(total_bytes=10240))
    assert stats.written == 3


# --------------------------------------------------------------------------- 7. prepare_data --force

def test_prepare_data_force_rewrites_an_extracted_file_damaged_in_place(tmp_path, capsys):
    from clip_surgery_seg.cli.prepare_data import main as prepare_main
    from test_prepare_data import _ade_zip

    archives = tmp_path / "archives"
    archives.mkdir()
    (archives / "ADEChallengeData2016.zip").write_bytes(_ade_zip(tmp_path, 3))
    root = tmp_path / "data"
    argv = ["ade20k", "--root", root, "--from-archives", archives, "--no-checksum", "--no-progress"]
    # (exit 1 at the end: 3 images where the real split has 2000)
    assert "ade20k: 3 image/label pairs" in _cli(capsys, prepare_main, *argv)[1]
    image = _ade(root, "image", 2)
    good = image.read_bytes()
    image.write_bytes(good[:100] + bytes(len(good) - 100))  # damaged in place, same size
    code, out, err = _cli(capsys, prepare_main, *argv, "--force")
    assert "ade20k: 3 image/label pairs" in out and "Traceback" not in err
    assert image.read_bytes() == good


# --------------------------------------------------------------------------- 8. downloads

def test_download_attempts_match_data_readme(server, tmp_path):
    import re

    from clip_surgery_seg.data_prep import download as dl
    from clip_surgery_seg.errors import DownloadError
    from conftest import REPO

    stated = re.search(r"tried up to (\d+) times in all", (REPO / "data" / "README.md").read_text())
    assert stated, "data/README.md no longer states how often a download is tried"
    url = server.serve("a.zip", bytes(1000))
    server.cuts["/a.zip"] = [10] * 50  # every connection is cut after 10 bytes: worth retrying
    with pytest.raises(DownloadError) as err:
        dl.download(url, tmp_path / "a.zip", backoff_s=0, progress=False)
    tries = len(server.requests_for("a.zip"))
    assert tries == int(stated.group(1)) == dl.RETRIES + 1
    assert f"download failed {tries} times" in str(err.value)
    assert "--from-archives DIR" in str(err.value)


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("url, reason", [
    ("http://archive.example.invalid/ADEChallengeData2016.zip", "cannot resolve the host archive.example.invalid"),
    (f"http://127.0.0.1:{_closed_port()}/ADEChallengeData2016.zip", "the connection to 127.0.0.1:"),
])
def test_a_download_that_no_retry_can_fix_fails_at_once_and_says_how_to_work_offline(tmp_path, monkeypatch,
                                                                                      url, reason):
    from clip_surgery_seg.data_prep import download as dl
    from clip_surgery_seg.errors import DownloadError

    tries = []
    fetch_once = dl._fetch_once
    monkeypatch.setattr(dl, "_fetch_once", lambda *a, **k: tries.append(a) or fetch_once(*a, **k))
    with pytest.raises(DownloadError) as err:
        dl.download(url, tmp_path / "ADEChallengeData2016.zip", backoff_s=0, progress=False)
    assert len(tries) == 1  # not retried
    message = str(err.value)
    assert message.startswith(f"{url}: {reason}") and "\n" not in message
    assert ("a retry will not help; check the network connection (and a proxy: HTTP(S)_PROXY), or work offline: "
            "put ADEChallengeData2016.zip in a folder DIR and pass --from-archives DIR") in message
    assert not (tmp_path / "ADEChallengeData2016.zip.part").exists()


# --------------------------------------------------------------------------- 9. symlink loops

def test_a_symlink_loop_under_the_data_root_is_one_line_naming_the_folder(ade_split, capsys, run_eval, tmp_path):
    from clip_surgery_seg.cli.check_data import main as check_main
    from conftest import eval_args

    images = _ade(ade_split, "image", 1).parent
    (images / "again").symlink_to("..", target_is_directory=True)  # images/validation/again -> images
    code, out, err = _cli(capsys, check_main, "ade20k", "--root", ade_split, "--expected-images", 3, "--workers", 1)
    assert code == 1 and out == "", out
    assert err.strip() == (f"error: {images / 'again'} is a symlink loop: it leads back to {images.parent}, a folder "
                           "it is in; remove that link or point it elsewhere")
    code, _, err = run_eval(eval_args("ade20k", ade_split, tmp_path / "w"))
    assert code == 1 and err.strip().splitlines()[-1].startswith(f"error: {images / 'again'} is a symlink loop")


def test_a_folder_reached_twice_would_count_its_images_twice_and_is_refused(ade_split, capsys, tmp_path):
    from clip_surgery_seg.cli.check_data import main as check_main

    for kind in ("image", "label"):  # a link to its own folder, in images and labels: every pair twice
        folder = _ade(ade_split, kind, 1).parent
        (folder / "copy").symlink_to(folder, target_is_directory=True)
    code, out, err = _cli(capsys, check_main, "ade20k", "--root", ade_split, "--quick")
    assert code == 1 and "6 image/label pairs" not in out
    images = _ade(ade_split, "image", 1).parent
    assert err.strip() == (f"error: {images / 'copy'} is a symlink loop: it leads back to {images}, a folder it is "
                           "in; remove that link or point it elsewhere")
    for kind in ("image", "label"):
        (_ade(ade_split, kind, 1).parent / "copy").unlink()
    # two links to one folder elsewhere: not a loop, but its files would be listed twice all the same
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "x.jpg").write_bytes(_ade(ade_split, "image", 1).read_bytes())
    (images / "a").symlink_to(tmp_path / "more", target_is_directory=True)
    (images / "b").symlink_to(tmp_path / "more", target_is_directory=True)
    code, out, err = _cli(capsys, check_main, "ade20k", "--root", ade_split, "--quick")
    assert code == 1 and err.strip() == (f"error: {images / 'b'} is the same folder as {images / 'a'} (through a "
                                         "symlink), so its files would be listed twice; remove one of the links")


# --------------------------------------------------------------------------- 11. file names that are not UTF-8

def test_a_file_name_that_is_not_utf8_is_named_printably_with_the_fix(ade_split, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import REPO

    images = _ade(ade_split, "image", 1).parent
    bad = os.path.join(os.fsencode(images), b"caf\xe9.jpg")
    with open(bad, "wb") as handle:
        handle.write(_ade(ade_split, "image", 1).read_bytes())
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONIOENCODING="utf-8")  # strict, as in most terminals
    proc = subprocess.run([sys.executable, "tools/check_data.py", "ade20k", "--root", str(ade_split),
                           "--expected-images", "3"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == (f"error: {images}/caf\\xe9.jpg: the file name is not valid UTF-8 (shown here with "
                                   "\\xNN for its undecodable bytes); rename it, e.g. `convmv -f latin1 -t utf8 "
                                   "--notest FILE`, and run again")


def test_a_data_root_that_is_not_utf8_is_printed_not_a_traceback(tmp_path):
    import os
    import subprocess
    import sys

    from clip_surgery_seg.datasets.synthetic import write_synthetic
    from conftest import REPO

    root = os.path.join(os.fsencode(tmp_path), b"d\xe9ta")
    write_synthetic("ade20k", os.fsdecode(root), num_images=2, image_size=(24, 32))
    os.remove(os.path.join(root, b"ADEChallengeData2016/annotations/validation/ADE_val_00000001.png"))
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONIOENCODING="utf-8")
    proc = subprocess.run([sys.executable, "tools/check_data.py", "ade20k", "--root", os.fsdecode(root),
                           "--expected-images", "2"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{tmp_path}/d\\xe9ta/ADEChallengeData2016/images/validation/ADE_val_00000001.jpg: no label" in proc.stdout


# --------------------------------------------------------------------------- 12. safetensors weights

@pytest.mark.parametrize("content, problem", [
    (b"", "is not a readable safetensors file (it is empty)"),
    (b"<html>404 Not Found</html>\n", "is not a readable safetensors file (Error while deserializing header"),
])
def test_an_empty_or_foreign_safetensors_file_is_one_weights_error_line(tmp_path, content, problem):
    from clip_surgery_seg.errors import WeightsError
    from clip_surgery_seg.models import build_clip
    from conftest import TINY_VIT

    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsError) as err:
        build_clip(str(TINY_VIT), str(path))
    assert str(err.value).startswith(f"weights file {path} {problem}") and "\n" not in str(err.value)
    assert "re-download it" in str(err.value)


def test_safetensors_weights_are_checked_like_any_checkpoint(tmp_path, tiny_vit):
    from safetensors.torch import save_file

    from clip_surgery_seg.errors import WeightsError
    from clip_surgery_seg.models import build_clip
    from conftest import TINY_VIT

    state = {k: v.contiguous() for k, v in tiny_vit[0].state_dict().items()}
    save_file(state, str(tmp_path / "good.safetensors"))
    model, _ = build_clip(str(TINY_VIT), str(tmp_path / "good.safetensors"))
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    save_file({"weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match=r"other\.safetensors is not a CLIP checkpoint \(no 'visual\.\*' weights\)"):
        build_clip(str(TINY_VIT), str(tmp_path / "other.safetensors"))


# --------------------------------------------------------------------------- 13. full disk, unwritable outputs

@pytest.fixture
def full_disk(monkeypatch):
    """Make writing a file whose name contains one of the given parts fail as on a full disk."""
    import errno

    def fill(*parts: str) -> None:
        write_bytes = Path.write_bytes

        def write(self, data):
            if any(part in self.name for part in parts):
                raise OSError(errno.ENOSPC, "No space left on device", str(self))
            return write_bytes(self, data)

        monkeypatch.setattr(Path, "write_bytes", write)

    return fill


def _leftovers(folder: Path) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.tmp"))


def test_a_full_disk_when_appending_to_the_history_is_one_error_line_and_the_history_is_unchanged(
        tmp_path, full_disk):
    from clip_surgery_seg.errors import UserError

    history = _good_history(tmp_path)
    before = history.read_bytes()
    full_disk("history.csv")
    with pytest.raises(UserError) as err:
        append_history(history, fake_results(miou=40.0, created="2025-01-05T00:00:00+00:00"))
    assert str(err.value) == (f"cannot write {history} (No space left on device); free disk space or fix the "
                              f"permissions of {tmp_path}, or write elsewhere")
    assert isinstance(err.value, OSError)  # callers that fall back on any OSError keep doing so
    assert history.read_bytes() == before and _leftovers(tmp_path) == []


def test_an_unwritable_history_stops_eval_before_it_runs(run_eval, synthetic_root, tmp_path):
    from conftest import eval_args

    (tmp_path / "file").write_text("not a folder")
    history = tmp_path / "file" / "history.csv"
    code, out, err = run_eval(eval_args("cityscapes", synthetic_root, tmp_path / "w", "--history", history))
    assert code == 1 and out == ""
    assert err.strip().splitlines()[-1] == (f"error: --history folder {tmp_path / 'file'} is not writable (File "
                                            "exists); choose another folder or fix its permissions")
    assert not (tmp_path / "w" / "metrics.json").exists()


def test_a_full_disk_when_eval_writes_its_results_is_one_error_line(run_eval, synthetic_root, tmp_path, full_disk):
    from conftest import eval_args

    full_disk("metrics.json")
    code, _, err = run_eval(eval_args("cityscapes", synthetic_root, tmp_path / "w"))
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"error: cannot write {tmp_path / 'w' / 'metrics.json'} (No "
                                                   "space left on device); free disk space")
    assert not (tmp_path / "w" / "metrics.json").exists() and _leftovers(tmp_path / "w") == []


def test_an_unwritable_or_full_reproduce_out_is_one_error_line(tmp_path, capsys, synthetic_root, full_disk):
    from clip_surgery_seg.cli.reproduce import main as reproduce_main

    (tmp_path / "file").write_text("not a folder")
    argv = ["--datasets", "cityscapes", "--data-root", synthetic_root, "--history", "none", "--quiet"]
    code, out, err = _cli(capsys, reproduce_main, *argv, "--out", tmp_path / "file")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"error: --out folder {tmp_path / 'file'} is not writable (File exists); "
                                            "choose another folder or fix its permissions")
    code, out, err = _cli(capsys, reproduce_main, *argv, "--history", tmp_path / "file" / "h.csv",
                          "--out", tmp_path / "run")
    assert code == 2 and err.strip().splitlines()[-1].startswith(f"error: --history folder {tmp_path / 'file'} is "
                                                                 "not writable")
    full_disk("summary.json")
    code, out, err = _cli(capsys, reproduce_main, *argv, "--out", tmp_path / "run")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"error: cannot write {tmp_path / 'run' / 'summary.json'} (No "
                                                   "space left on device)")
    assert not (tmp_path / "run" / "summary.json").exists() and _leftovers(tmp_path / "run") == []


# ----------------------------------------------------- 14. other unreadable input in the data tools

def test_a_split_list_that_is_not_utf8_is_one_error_line_in_check_data(tmp_path, capsys):
    from clip_surgery_seg.cli.check_data import main as check_main
    from clip_surgery_seg.datasets.synthetic import write_synthetic

    write_synthetic("pascal_context59", tmp_path / "data", num_images=2, image_size=(24, 32))
    split = tmp_path / "data" / "VOCdevkit" / "VOC2010" / "ImageSets" / "SegmentationContext" / "val.txt"
    split.write_bytes(b"2008_000001\n\xff\xfe2008_000002\n")
    code, out, err = _cli(capsys, check_main, "pascal_context59", "--root", tmp_path / "data", "--quick")
    assert code == 1 and out == ""
    assert err.strip() == (f"error: {split}: the split list is not UTF-8 text (byte 12); restore it "
                           "(tools/prepare_data.py --force writes it again)")


def test_a_decompression_bomb_label_stops_the_conversion_with_one_line(tmp_path):
    from clip_surgery_seg.data_prep.convert import convert_coco_stuff_file, convert_many
    from clip_surgery_seg.errors import ConversionError

    src = tmp_path / "000000000139.png"
    src.write_bytes(_png_header_only(20000, 20000))
    with pytest.raises(ConversionError) as err:
        convert_many(convert_coco_stuff_file, [(src, tmp_path / "000000000139_labelTrainIds.png")], workers=1)
    assert str(err.value).startswith(f"{src}: label map of 400000000 pixels is over Pillow's decompression-bomb "
                                     "limit")
    assert not (tmp_path / "000000000139_labelTrainIds.png").exists()


def test_a_full_disk_while_converting_labels_is_one_error_line(tmp_path, monkeypatch):
    import errno

    from PIL import Image

    from clip_surgery_seg.data_prep.convert import convert_coco_stuff_file, convert_many
    from clip_surgery_seg.errors import UserError

    src = tmp_path / "000000000139.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(src)
    dst = tmp_path / "000000000139_labelTrainIds.png"

    def no_space(self, fp, *args, **kwargs):  # Pillow writes the PNG itself
        raise OSError(errno.ENOSPC, "No space left on device", str(fp))

    monkeypatch.setattr(Image.Image, "save", no_space)
    with pytest.raises(UserError) as err:
        convert_many(convert_coco_stuff_file, [(src, dst)], workers=1)
    assert str(err.value).startswith(f"cannot write {dst} (No space left on device)")
    assert not dst.exists() and _leftovers(tmp_path) == []


def test_a_download_that_cannot_be_written_is_one_error_line_not_retried(server, tmp_path):
    from clip_surgery_seg.data_prep import download as dl
    from clip_surgery_seg.errors import UserError

    url = server.serve("a.zip", bytes(1000))
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UserError) as err:  # the downloads folder cannot be made
        dl.download(url, tmp_path / "file" / "a.zip", backoff_s=0, progress=False)
    assert str(err.value).startswith(f"cannot write {tmp_path / 'file' / 'a.zip'} (File exists)")
    # the .part file cannot be opened for writing (a link into a folder that is gone)
    (tmp_path / "a.zip.part").symlink_to(tmp_path / "gone" / "a.zip.part")
    with pytest.raises(UserError) as err:
        dl.download(url, tmp_path / "a.zip", backoff_s=0, progress=False)
    assert str(err.value).startswith(f"cannot write {tmp_path / 'a.zip.part'} (No such file or directory)")
    assert len(server.requests_for("a.zip")) == 1  # no retry can fix a disk
