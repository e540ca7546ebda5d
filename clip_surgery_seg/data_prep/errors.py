"""Errors of dataset preparation; each message is one line that names the file or URL and the fix."""
from __future__ import annotations


class DataPrepError(RuntimeError):
    """Base class: preparing a dataset failed in a way the user can act on."""


class DownloadError(DataPrepError):
    """An HTTP download failed, was cut short, or could not be resumed."""


class ChecksumError(DownloadError):
    """A file's digest differs from the published checksum."""


class MissingArchiveError(DataPrepError):
    """An archive the dataset needs is not where it was expected."""


class ArchiveError(DataPrepError):
    """An archive is corrupt, truncated or not an archive at all."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would be written outside the target folder (absolute path, ``..``, link)."""


class ConversionError(DataPrepError):
    """A label map cannot be converted: wrong format or ids outside the source label set."""
