"""HTTP(S) download with a progress bar, resume of a partial file, retries and checksum verification.

The bytes go to ``<dest>.part``; only a complete file whose checksums match is renamed to ``dest``,
so an existing ``dest`` is always a finished download. An interrupted run (Ctrl-C, a cut connection)
leaves the ``.part`` file, and the next run asks the server for the rest with an HTTP Range request.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence

from ..datasets.catalog import Checksum
from ..errors import ChecksumError, DownloadError
from ..fileio import write_error

USER_AGENT = "clip-surgery-seg-data-prep/1.0"
CHUNK = 1 << 20
# A failing transfer is tried 1 + RETRIES times in all (data/README.md says so).
RETRIES = 4
# Worth another try: the server or the network may recover; any other 4xx is final.
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
OFFLINE_ADVICE = "put {name} in a folder DIR and pass --from-archives DIR"


def file_digests(path: Path, algorithms: Iterable[str]) -> Dict[str, str]:
    """Hex digests of a file for several algorithms, in one pass over the file."""
    hashers = {name: hashlib.new(name) for name in set(algorithms)}
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            for hasher in hashers.values():
                hasher.update(block)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def checksum_mismatch(path: Path, checksums: Sequence[Checksum]) -> Optional[str]:
    """None if every digest of ``path`` matches, else what differs, e.g. 'md5 is .., the published ..'."""
    if not checksums:
        return None
    digests = file_digests(path, [c.algorithm for c in checksums])
    for checksum in checksums:
        actual = digests[checksum.algorithm]
        if actual.lower() != checksum.value.lower():
            return (f"{checksum.algorithm} is {actual}, the published value is {checksum.value} "
                    f"({checksum.published or 'recorded in sources.py'})")
    return None


def verify_checksums(path: Path, checksums: Sequence[Checksum], advice: str) -> None:
    """Raise ChecksumError naming ``path``, what differs, and ``advice``, if any digest differs."""
    problem = checksum_mismatch(path, checksums)
    if problem:
        raise ChecksumError(f"{path}: {problem}; {advice}")


class _Incomplete(Exception):
    """A transfer ended early; the ``.part`` file keeps what arrived, the next attempt resumes."""


class _Restart(Exception):
    """The partial file cannot be continued (server refused the range); start from zero."""


def _total_from_content_range(value: Optional[str]) -> Optional[int]:
    match = re.fullmatch(r"bytes (?:\d+-\d+|\*)/(\d+)", (value or "").strip())
    return int(match.group(1)) if match else None


def _start_from_content_range(value: Optional[str]) -> Optional[int]:
    match = re.fullmatch(r"bytes (\d+)-\d+/(?:\d+|\*)", (value or "").strip())
    return int(match.group(1)) if match else None


def _fetch_once(url: str, part: Path, timeout: float, progress: bool, label: str) -> None:
    """One HTTP request continuing ``part``; returns when the body is complete."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # Range not satisfiable: either the part is already whole, or it is longer than the file.
            total = _total_from_content_range(err.headers.get("Content-Range"))
            if total == offset:
                return
            raise _Restart(f"the server refused to resume at byte {offset}") from None
        raise
    with response:
        status = getattr(response, "status", 200)
        if offset and status == 206:
            start = _start_from_content_range(response.headers.get("Content-Range"))
            if start != offset:
                raise _Restart(f"the server resumed at byte {start}, not {offset}")
        elif offset:
            offset = 0  # 200: the server ignored the Range header and sends the whole file
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None and length.isdigit() else None
        received = offset
        from tqdm import tqdm

        # a failing write (a full disk) is an OutputError naming the .part file, never mistaken for a
        # network error that a retry could fix
        try:
            out = open(part, "ab" if offset else "wb")
        except OSError as err:
            raise write_error(part, err) from err
        with tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=label, disable=not progress, leave=True) as bar:
            try:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    try:
                        out.write(block)
                    except OSError as err:
                        raise write_error(part, err) from err
                    received += len(block)
                    bar.update(len(block))
            finally:
                try:
                    out.close()
                except OSError as err:
                    raise write_error(part, err) from err
        if total is not None and received < total:
            raise _Incomplete(f"connection closed after {received} of {total} bytes")


def _permanent(err: BaseException, url: str) -> Optional[str]:
    """What went wrong, when no retry can fix it (no such host, nobody listening, a bad certificate)."""
    reason = getattr(err, "reason", err)
    host = urllib.parse.urlsplit(url).netloc
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the host {urllib.parse.urlsplit(url).hostname} ({reason.strerror or reason})"
    if isinstance(reason, ConnectionRefusedError):
        return f"the connection to {host} was refused (nothing listens there)"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"the certificate of {host} cannot be verified ({reason.verify_message or reason})"
    return None


def download(url: str, dest: Path, checksums: Sequence[Checksum] = (), *, retries: int = RETRIES,
             timeout: float = 60.0, backoff_s: float = 2.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest``; resume ``dest.part`` if present; verify ``checksums``.

    An existing ``dest`` is verified and reused. Transient failures (connection reset or cut, timeouts,
    HTTP 5xx/408/429) are retried ``retries`` times, each time resuming where the last one stopped;
    failures no retry can fix (an unknown host, a refused connection, an untrusted certificate, any
    other HTTP error) stop at once.

    Raises:
        DownloadError: such a failure, or the transfer failed ``retries + 1`` times; the ``.part``
            file is kept so that running the command again resumes. The message says how to go on
            offline (``--from-archives DIR``).
        ChecksumError: the complete file does not match; the bad file is removed.
    """
    dest = Path(dest)
    if dest.is_file():
        verify_checksums(dest, checksums, "delete it and re-run to download it again")
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(dest, err) from err
    part = dest.with_name(dest.name + ".part")
    attempts = retries + 1
    last_problem = ""
    offline = OFFLINE_ADVICE.format(name=dest.name)
    for attempt in range(1, attempts + 1):
        try:
            _fetch_once(url, part, timeout, progress, dest.name)
            break
        except _Restart as err:
            last_problem = str(err)
            part.unlink(missing_ok=True)
        except urllib.error.HTTPError as err:
            if err.code not in RETRY_STATUS:
                raise DownloadError(f"{url}: HTTP {err.code} {err.reason}; check the URL and your "
                                    "network access (a proxy or login page can cause this), or work offline: "
                                    f"{offline}") from None
            last_problem = f"HTTP {err.code} {err.reason}"
        except (_Incomplete, urllib.error.URLError, http.client.HTTPException, socket.timeout,
                ConnectionError, TimeoutError) as err:
            problem = _permanent(err, url)
            if problem:
                raise DownloadError(f"{url}: {problem}; a retry will not help; check the network connection "
                                    f"(and a proxy: HTTP(S)_PROXY), or work offline: {offline}") from None
            last_problem = str(getattr(err, "reason", None) or err) or type(err).__name__
        if attempt < attempts:
            time.sleep(backoff_s * attempt)
    else:
        kept = part.stat().st_size if part.exists() else 0
        advice = (f"{kept} bytes are kept in {part}: re-run the same command to resume" if kept else
                  "check the network connection (and a proxy: HTTP(S)_PROXY), then re-run")
        raise DownloadError(f"{url}: download failed {attempts} times, last: {last_problem}; {advice}; or "
                            f"work offline: {offline}")
    problem = checksum_mismatch(part, checksums)
    if problem:
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{url}: the downloaded file's {problem}; it was removed: re-run to download "
                            "it again, and if this repeats the server's file has changed (check it "
                            "yourself before passing --no-checksum)")
    os.replace(part, dest)
    return dest
