"""Every error a user can act on, under one root.

A :class:`UserError` means "the input is wrong, and the message says which file and what to do":
the command-line tools print its message as one ``error: ...`` line. Any other exception is a bug
(ours or a library's) and keeps its traceback. ``--debug`` (or ``CLIP_SURGERY_SEG_DEBUG=1``) shows
the traceback of a ``UserError`` too.

Errors that used to be ``ValueError``\\s stay ``ValueError``\\s as well, so ``except ValueError``
around the library keeps working.
"""
from __future__ import annotations

import difflib
from typing import Iterable


def suggest(word: str, choices: Iterable[str]) -> str:
    """``'; did you mean X?'`` for the choices closest to ``word``, or ``''``: the hint every
    "unknown name" message carries."""
    close = difflib.get_close_matches(str(word), list(choices), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


def one_line(err: BaseException) -> str:
    """The error's message on one line (its type's name if it has none)."""
    return " ".join(str(err).split()) or type(err).__name__


class UserError(Exception):
    """Input the user can fix; the message is one line that names the file and the fix."""


class OutputError(UserError, OSError):
    """A file the harness must write cannot be written: a full disk, no permission, a read-only or
    missing folder. Also an ``OSError``, so code that falls back on any write error keeps doing so."""


# --- configs, weights, class names ----------------------------------------------------------------

class ConfigError(UserError, ValueError):
    """A config file, a ``--cfg-options`` override or a command-line value that cannot be used."""


class WeightsError(UserError, ValueError):
    """A weights file or tag that is missing, unreadable, not a CLIP checkpoint, or not reachable."""


class ClassNamesError(UserError, ValueError):
    """A class-name file that cannot be used."""


# --- data -------------------------------------------------------------------------------------------

class DataLayoutError(UserError):
    """A data folder that is missing or does not have the dataset's layout."""


class BadSampleError(UserError):
    """One image or label file that cannot be used; the message names the file and the problem."""


class DataPrepError(UserError):
    """Preparing a dataset failed in a way the user can act on."""


class DownloadError(DataPrepError):
    """An HTTP download failed, was cut short, or could not be resumed."""


class ChecksumError(DownloadError):
    """A file's digest differs from the published checksum."""


class MissingArchiveError(DataPrepError):
    """An archive the dataset needs is not where it was expected."""


class ArchiveError(DataPrepError):
    """An archive is corrupt, truncated or not an archive at all."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would be written outside the target folder, or expands beyond the limits."""


class ConversionError(DataPrepError):
    """A label map cannot be converted: wrong format or ids outside the source label set."""


# --- runs and results -------------------------------------------------------------------------------

class ResumeError(UserError):
    """A resume that cannot be done: another run, a run in the way, or damaged progress files."""


class NumericalError(UserError):
    """A number came out non-finite (NaN/Inf): the result would be meaningless, so none is reported."""


class ReportingError(UserError, ValueError):
    """Results, history rows or published numbers that the reporting tools cannot use."""


class ResultsFileError(ReportingError):
    """A results file that is missing, unreadable, incomplete or of another schema."""


class HistoryError(ReportingError):
    """A history file or selection that cannot be used."""


class MismatchError(ReportingError):
    """Two results that must not be compared (other protocol or dataset) unless forced."""


__all__ = [
    "UserError", "OutputError", "ConfigError", "WeightsError", "ClassNamesError", "DataLayoutError", "BadSampleError",
    "DataPrepError", "DownloadError", "ChecksumError", "MissingArchiveError", "ArchiveError",
    "UnsafeArchiveError", "ConversionError", "ResumeError", "NumericalError", "ReportingError", "ResultsFileError",
    "HistoryError", "MismatchError",
]
