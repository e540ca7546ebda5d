"""Safe, selective, idempotent extraction of zip and tar archives.

Safety: every member name of the archive is checked before anything is written, and the whole
archive is refused if one member has an absolute path, a ``..`` component, is a link whose target
lies outside the archive's tree, or is a device/fifo. Safe links are written as copies of their
target, so nothing on disk can point outside the target folder.

Size: before anything is written, the expanded sizes are checked against :class:`ExtractLimits` --
per member and in total, and as a ratio to the compressed size (per zip member, and of everything
selected to the archive's file size) -- so a "zip bomb" cannot fill the disk. Declared sizes are
binding: zipfile and tarfile never return more bytes than a member's header states.

Idempotence: each file is written to a hidden temporary name and renamed into place, so a file
either exists complete or not at all; a file already present with the member's size is skipped
(``overwrite=True`` rewrites it: a file damaged in place keeps its size).
"""
from __future__ import annotations

import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, List, Optional, Tuple

from ..fileio import atomic_path, human_size
from ..errors import ArchiveError, UnsafeArchiveError

# What reading a damaged or truncated archive raises (gzip's errors are OSError/EOFError).
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, zlib.error, OSError)

# Maps a member name (normalised, '/'-separated) to its output path relative to the target folder,
# or None to leave the member out.
Selector = Callable[[str], Optional[str]]


def _one_line(err: BaseException, limit: int = 200) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _starts_like_zip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def keep_all(name: str) -> Optional[str]:
    return name


@dataclass(frozen=True)
class ExtractLimits:
    """How far an archive may expand. The defaults are far above any dataset archive (the largest
    member of the official ones is a few MB, the largest validation split a few GB, and images and
    label maps hardly compress) and far below what a decompression bomb asks for."""

    member_bytes: int = 1 << 30  # one member
    total_bytes: int = 64 << 30  # everything selected from one archive
    ratio: float = 200.0  # expanded / compressed, per zip member and selected total / archive size
    ratio_floor: int = 16 << 20  # ratios are only checked above this many expanded bytes


_size = human_size


@dataclass
class ExtractStats:
    written: int = 0
    skipped: int = 0  # already present with the right size


@dataclass(frozen=True)
class _Member:
    name: str  # normalised
    size: int
    packed: Optional[int]  # compressed size (zip), None where the archive does not say (tar)
    kind: str  # "file", "dir", "link"
    link_target: Optional[str]  # normalised archive path of a link's target
    handle: object  # ZipInfo or TarInfo


def normalise_name(raw: str) -> str:
    """'/'-separated member name without leading './'."""
    name = raw.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def unsafe_reason(raw: str) -> Optional[str]:
    """Why a member name may not be extracted, or None if it is safe."""
    if "\x00" in raw:
        return "contains a NUL byte"
    name = raw.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path"
    if ".." in name.split("/"):
        return "contains a '..' component"
    return None


def _link_target(member_name: str, target: str, symbolic: bool) -> Tuple[Optional[str], Optional[str]]:
    """(normalised archive path of the link target, reason it is unsafe)."""
    target = target.replace("\\", "/")
    if target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        return None, f"links to the absolute path {target!r}"
    # A symlink is relative to its own folder; a tar hard link names another member.
    joined = posixpath.join(posixpath.dirname(member_name), target) if symbolic else target
    resolved = posixpath.normpath(joined)
    if resolved == ".." or resolved.startswith("../"):
        return None, f"links to {target!r}, outside the archive's folder"
    return normalise_name(resolved), None


def _refuse(archive: Path, raw: str, reason: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{archive}: member {raw!r} {reason}; refusing to extract this archive "
                              "(it is not the official file: delete it and download it again)")


def _check_member_size(archive: Path, raw: str, size: int, limits: ExtractLimits) -> None:
    if size > limits.member_bytes:
        raise _refuse(archive, raw, f"expands to {_size(size)}, over the limit of {_size(limits.member_bytes)} "
                                    "per member")


def _zip_members(archive: Path, handle: zipfile.ZipFile, limits: ExtractLimits) -> List[_Member]:
    members = []
    for info in handle.infolist():
        reason = unsafe_reason(info.filename)
        if reason:
            raise _refuse(archive, info.filename, reason)
        name = normalise_name(info.filename)
        mode = info.external_attr >> 16
        if info.is_dir():
            members.append(_Member(name.rstrip("/"), 0, 0, "dir", None, info))
        elif stat.S_ISLNK(mode):
            _check_member_size(archive, info.filename, info.file_size, limits)  # the link's own text
            target, why = _link_target(name, handle.read(info).decode("utf-8", "replace"), True)
            if why:
                raise _refuse(archive, info.filename, why)
            members.append(_Member(name, 0, 0, "link", target, info))
        else:
            _check_member_size(archive, info.filename, info.file_size, limits)
            members.append(_Member(name, info.file_size, info.compress_size, "file", None, info))
    return members


def _tar_members(archive: Path, handle: tarfile.TarFile, limits: ExtractLimits) -> List[_Member]:
    members = []
    for info in handle:  # one header at a time: a giant member is refused before reading past it
        reason = unsafe_reason(info.name)
        if reason:
            raise _refuse(archive, info.name, reason)
        name = normalise_name(info.name).rstrip("/")
        if info.isdir():
            members.append(_Member(name, 0, 0, "dir", None, info))
        elif info.issym() or info.islnk():
            target, why = _link_target(name, info.linkname, info.issym())
            if why:
                raise _refuse(archive, info.name, why)
            members.append(_Member(name, 0, 0, "link", target, info))
        elif info.isfile():
            _check_member_size(archive, info.name, info.size, limits)
            members.append(_Member(name, info.size, None, "file", None, info))
        else:
            raise _refuse(archive, info.name, "is a device, fifo or other special file")
    return members


class _Reader:
    """Uniform access to a zip or tar archive's members."""

    def __init__(self, archive: Path, limits: ExtractLimits) -> None:
        self.archive = archive
        self._zip: Optional[zipfile.ZipFile] = None
        self._tar: Optional[tarfile.TarFile] = None
        try:
            if zipfile.is_zipfile(archive):
                self._zip = zipfile.ZipFile(archive)
                self.members = _zip_members(archive, self._zip, limits)
            elif _starts_like_zip(archive):
                raise ArchiveError(f"{archive} is a zip file without its end (central directory); the "
                                   "download is incomplete: delete it and download it again")
            else:
                self._tar = tarfile.open(archive, "r:*")
                self.members = _tar_members(archive, self._tar, limits)
        except _READ_ERRORS as err:
            self.close()
            raise ArchiveError(f"{archive} is not a readable zip or tar archive ({_one_line(err)}); the "
                               "download is probably incomplete: delete it and download it again") from None
        except BaseException:
            self.close()
            raise
        self._by_name = {m.name: m for m in self.members}

    def close(self) -> None:
        for handle in (self._zip, self._tar):
            if handle is not None:
                handle.close()

    def resolve(self, member: _Member, depth: int = 0) -> _Member:
        """The regular file (or folder) a link finally points to."""
        while member.kind == "link":
            target = self._by_name.get(member.link_target or "")
            if target is None or depth > 32:
                raise _refuse(self.archive, member.name, f"links to {member.link_target!r}, which is "
                                                         "not a file in the archive")
            member, depth = target, depth + 1
        return member

    def open(self, member: _Member) -> IO[bytes]:
        if self._zip is not None:
            return self._zip.open(member.handle)  # type: ignore[arg-type]
        stream = self._tar.extractfile(member.handle)  # type: ignore[union-attr,arg-type]
        if stream is None:
            raise ArchiveError(f"{self.archive}: member {member.name!r} has no data")
        return stream


def _plan(reader: _Reader, select: Selector, limits: ExtractLimits) -> List[Tuple[_Member, _Member, str]]:
    """(member, the file whose bytes it holds, output path) for every selected file; all checks
    happen here, before anything is written."""
    plan = []
    total, archive_bytes = 0, max(1, reader.archive.stat().st_size)
    for member in reader.members:
        if member.kind == "dir":
            continue
        out = select(member.name)
        if out is None:
            continue
        reason = unsafe_reason(out)
        if reason or not out.strip("/"):
            raise UnsafeArchiveError(f"{reader.archive}: member {member.name!r} maps to the output "
                                     f"path {out!r}, which {reason or 'is empty'}")
        source = reader.resolve(member)
        if source.kind == "dir":
            continue  # a link to a folder: the files below it are members of their own
        if source.packed is not None and source.size > limits.ratio_floor \
                and source.size > limits.ratio * max(1, source.packed):
            raise _refuse(reader.archive, member.name, f"expands to {_size(source.size)}, "
                          f"{source.size / max(1, source.packed):.0f} times its compressed size (the limit is "
                          f"{limits.ratio:g})")
        total += source.size
        if total > limits.total_bytes:
            raise _refuse_total(reader.archive, member.name, f"expand to {_size(total)}, over the limit of "
                                                             f"{_size(limits.total_bytes)} in all")
        if total > limits.ratio_floor and total > limits.ratio * archive_bytes:
            raise _refuse_total(reader.archive, member.name, f"expand to {_size(total)}, "
                                f"{total / archive_bytes:.0f} times the archive's size (the limit is {limits.ratio:g})")
        plan.append((member, source, out))
    return plan


def _refuse_total(archive: Path, last: str, reason: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{archive}: the members up to {last!r} {reason}; refusing to extract this "
                              "archive (it is not the official file: delete it and download it again)")


def extract(archive: Path, dest: Path, select: Selector = keep_all, *, progress: bool = False,
            desc: Optional[str] = None, overwrite: bool = False,
            limits: ExtractLimits = ExtractLimits()) -> ExtractStats:
    """Extract the members ``select`` keeps from ``archive`` under ``dest``.

    ``overwrite`` rewrites files already in place (a file damaged in place keeps its size, so it
    would be skipped otherwise).

    Raises:
        UnsafeArchiveError: a member is unsafe, or the selected members expand beyond ``limits``
            (nothing is written).
        ArchiveError: the archive is corrupt or truncated (a bad CRC, an early end of data); the
            files extracted before the problem are complete and are kept.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise ArchiveError(f"{archive} does not exist")
    reader = _Reader(archive, limits)
    stats = ExtractStats()
    try:
        plan = _plan(reader, select, limits)
        from tqdm import tqdm

        for member, source, out in tqdm(plan, desc=desc or f"extracting {archive.name}", unit="file",
                                        disable=not progress):
            target = dest / out
            if not overwrite and target.is_file() and target.stat().st_size == source.size:
                stats.skipped += 1
                continue
            try:
                with reader.open(source) as stream, atomic_path(target) as tmp, open(tmp, "wb") as sink:
                    shutil.copyfileobj(stream, sink, 1 << 20)
            except _READ_ERRORS as err:
                if isinstance(err, OSError) and err.errno:
                    raise ArchiveError(f"cannot write {target} ({err}); check free disk space and "
                                       "permissions") from None
                raise ArchiveError(f"{archive}: member {member.name!r} is damaged or truncated "
                                   f"({_one_line(err)}); delete the archive and download it again") from None
            stats.written += 1
    finally:
        reader.close()
    return stats


def read_member(archive: Path, name: str, limit: int = 1 << 24,
                limits: ExtractLimits = ExtractLimits()) -> bytes:
    """The bytes of the file member ``name`` (a small one, e.g. a split list), without writing it.

    The whole archive is checked as :func:`extract` checks it first. Raises ArchiveError when the
    member is absent or larger than ``limit`` bytes.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise ArchiveError(f"{archive} does not exist")
    reader = _Reader(archive, limits)
    try:
        member = next((m for m in reader.members if m.name == normalise_name(name)), None)
        source = reader.resolve(member) if member is not None else None
        if source is None or source.kind != "file":
            raise ArchiveError(f"{archive} has no file {name}; is it the right archive?")
        if source.size > limit:
            raise ArchiveError(f"{archive}: {name} is {source.size} bytes, more than the {limit} expected; "
                               "is it the right archive?")
        try:
            with reader.open(source) as stream:
                return stream.read()
        except _READ_ERRORS as err:
            raise ArchiveError(f"{archive}: member {name!r} is damaged or truncated ({_one_line(err)}); "
                               "delete the archive and download it again") from None
    finally:
        reader.close()
