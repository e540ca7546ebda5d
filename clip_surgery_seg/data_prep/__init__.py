"""Getting the four evaluation datasets ready: download, safe extraction, label conversion, checks.

Modules: ``sources`` (URLs, published checksums), ``download`` (resumable, verified HTTP),
``archives`` (safe selective extraction), ``convert`` (label encodings), ``prepare`` (one recipe per
dataset), ``verify`` (cheap and deep checks of a prepared split). Nothing heavy is imported here.
"""
from ..errors import (ArchiveError, ChecksumError, ConversionError, DataPrepError, DownloadError,
                     MissingArchiveError, UnsafeArchiveError)

__all__ = ["ArchiveError", "ChecksumError", "ConversionError", "DataPrepError", "DownloadError",
           "MissingArchiveError", "UnsafeArchiveError"]
