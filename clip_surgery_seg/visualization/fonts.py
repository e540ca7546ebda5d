"""Fonts for the text on pictures: DejaVu Sans (shipped with matplotlib) and a fallback chain for the
characters it lacks (Chinese, Japanese, Korean, ...), chosen per character from the fonts' own
character maps.

Pillow's bundled default font has only ASCII: "Café", "Müll", "猫" came out as boxes. Text is now
cut into runs of characters, each drawn with the first font of the chain that has all of them:

1. matplotlib's ``DejaVuSans.ttf`` (Latin, Greek, Cyrillic; the same file wherever this matplotlib
   version is installed);
2. the system's CJK fonts, as fontconfig chooses them (``fc-match 'sans-serif:lang=zh'``, then
   ``ja`` and ``ko``), or, without fontconfig, the first of a few well-known CJK font files found
   among the system fonts;
3. for a character none of these has: the font fontconfig picks for that character
   (``fc-match 'sans-serif:charset=<hex>'``), when its character map really has it.

A character no font has is drawn with DejaVu Sans (its .notdef box). Which font draws a character
depends only on that character and the fonts installed (not on what was drawn before), so the
same machine draws the same pixels. Character maps are read with fontTools (a matplotlib
dependency) once per font; Pillow draws with its basic layout (no shaping: Latin, Greek, Cyrillic
and CJK need none).
"""
from __future__ import annotations

import functools
import shutil
import subprocess
import threading
import unicodedata
from pathlib import Path
from typing import FrozenSet, List, Optional, Sequence, Tuple

from PIL import ImageDraw, ImageFont

#: A font face: its file and the face's index in a collection (``.ttc``; 0 for a plain font file).
Face = Tuple[str, int]

#: Sample characters a CJK font must have to join the chain (cat, Japanese "a", Korean "han").
_LANG_SAMPLES = {"zh": "\u732b", "ja": "\u3042", "ko": "\ud55c"}
# file names of CJK fonts on systems without fontconfig (macOS, Windows), in order of preference
_KNOWN_CJK_FILES = (
    "NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular.otf", "NotoSansSC-Regular.otf", "SourceHanSans-Regular.ttc",
    "wqy-zenhei.ttc", "wqy-microhei.ttc", "DroidSansFallbackFull.ttf", "DroidSansFallback.ttf",
    "PingFang.ttc", "Hiragino Sans GB.ttc", "STHeiti Light.ttc", "Arial Unicode.ttf",
    "msyh.ttc", "msgothic.ttc", "malgun.ttf", "simsun.ttc",
)
_FC_TIMEOUT_S = 10


@functools.lru_cache(maxsize=1)
def primary_face() -> Face:
    """matplotlib's DejaVu Sans: every machine with this matplotlib draws the same Latin text."""
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), 0


@functools.lru_cache(maxsize=None)
def charset(face: Face) -> FrozenSet[int]:
    """The code points ``face`` has a glyph for (its best Unicode cmap); empty for a file that
    cannot be read."""
    from fontTools.ttLib import TTFont

    path, index = face
    try:
        with TTFont(path, fontNumber=index, lazy=True) as font:
            cmap = font.getBestCmap() or {}
    except Exception:  # noqa: BLE001 - a broken or unreadable font file is no candidate, not an error
        return frozenset()
    return frozenset(cmap)


def _fc_match(pattern: str) -> Optional[Face]:
    """fontconfig's best font for ``pattern``; None without fontconfig or on any failure."""
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        return None
    try:
        out = subprocess.run([fc_match, "--format", "%{file}\t%{index}", pattern], capture_output=True,
                             text=True, timeout=_FC_TIMEOUT_S, check=False).stdout
        path, index = out.strip().split("\t")
        return (path, int(index)) if Path(path).is_file() else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _known_cjk_faces() -> List[Face]:
    """Well-known CJK font files among the system fonts (for systems without fontconfig)."""
    from matplotlib import font_manager

    try:
        found = {Path(p).name: p for p in sorted(font_manager.findSystemFonts())}
    except Exception:  # noqa: BLE001 - no system fonts to look at
        return []
    return [(found[name], 0) for name in _KNOWN_CJK_FILES if name in found]


@functools.lru_cache(maxsize=1)
def fallback_faces() -> Tuple[Face, ...]:
    """The fonts after DejaVu Sans, in order: the system's CJK fonts (see the module docstring).

    Looked up once, on the first character DejaVu Sans lacks; each is kept only if its character
    map has the sample character of its language.
    """
    faces: List[Face] = []
    candidates = [(_fc_match(f"sans-serif:lang={lang}"), sample) for lang, sample in _LANG_SAMPLES.items()]
    if all(face is None for face, _ in candidates):
        candidates = [(face, "\u732b") for face in _known_cjk_faces()]
    for face, sample in candidates:
        if face is not None and face not in faces and face != primary_face() and ord(sample) in charset(face):
            faces.append(face)
    return tuple(faces)


@functools.lru_cache(maxsize=4096)
def _face_for_char(code: int) -> Optional[Face]:
    if code in charset(primary_face()):
        return primary_face()
    for face in fallback_faces():
        if code in charset(face):
            return face
    face = _fc_match(f"sans-serif:charset={code:x}")
    if face is not None and code in charset(face):
        return face
    return None


def face_for(char: str) -> Optional[Face]:
    """The font that draws ``char``: the first of the chain whose character map has it (None: no
    font here has it)."""
    return _face_for_char(ord(char))


def _joins_previous(char: str) -> bool:
    # spaces and combining marks stay in the run before them (no font switch for a space)
    return char.isspace() or unicodedata.combining(char) != 0 or unicodedata.category(char) in ("Cf", "Mn", "Me")


def runs(text: str) -> List[Tuple[Face, str]]:
    """``text`` cut into ``(face, characters)`` runs, each drawn with one font."""
    out: List[Tuple[Face, str]] = []
    for char in text:
        if out and _joins_previous(char):
            out[-1] = (out[-1][0], out[-1][1] + char)
            continue
        face = face_for(char) or primary_face()
        if out and out[-1][0] == face:
            out[-1] = (face, out[-1][1] + char)
        else:
            out.append((face, char))
    return out


_BASIC = getattr(getattr(ImageFont, "Layout", None), "BASIC", getattr(ImageFont, "LAYOUT_BASIC", 0))
_load_lock = threading.Lock()


@functools.lru_cache(maxsize=64)
def _freetype(face: Face, size: int) -> ImageFont.FreeTypeFont:
    with _load_lock:
        return ImageFont.truetype(face[0], size, index=face[1], layout_engine=_BASIC)


def font(size: int, face: Optional[Face] = None) -> ImageFont.FreeTypeFont:
    """The Pillow font of ``face`` (default DejaVu Sans) at ``size`` pixels."""
    return _freetype(face or primary_face(), size)


def text_width(text: str, size: int) -> float:
    """Width of ``text`` in pixels at ``size``, over its runs."""
    return sum(font(size, face).getlength(part) for face, part in runs(text))


def ascent(size: int) -> int:
    """DejaVu Sans's ascent at ``size``: the baseline's distance below the top of a line."""
    return font(size).getmetrics()[0]


def draw_text(draw: ImageDraw.ImageDraw, xy: Sequence[float], text: str, fill, size: int) -> None:
    """Draw ``text`` with its top-left at ``xy``: each run in its font, on DejaVu Sans's baseline."""
    x, y = float(xy[0]), float(xy[1])
    baseline = y + ascent(size)
    for face, part in runs(text):
        f = font(size, face)
        draw.text((x, baseline), part, fill=fill, font=f, anchor="ls")
        x += f.getlength(part)


def has_cjk_font() -> bool:
    """Whether some font here draws the sample Chinese character (the tests skip CJK checks without)."""
    return face_for("\u732b") is not None


def clear_caches() -> None:
    """Forget the fonts found and loaded (after fonts were installed; for tests)."""
    for cached in (primary_face, charset, fallback_faces, _face_for_char, _freetype):
        cached.cache_clear()


__all__ = ["Face", "ascent", "charset", "clear_caches", "draw_text", "face_for", "fallback_faces", "font",
           "has_cjk_font", "primary_face", "runs", "text_width"]
