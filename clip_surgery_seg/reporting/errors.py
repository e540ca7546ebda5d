"""Errors of the reporting tools, and their exit codes (documented in results/README.md)."""
from __future__ import annotations

EXIT_OK = 0
EXIT_REGRESSION = 1  # compare.py: a metric dropped past its tolerance; reproduce.py: a dataset failed
EXIT_USAGE = 2  # bad input: missing or invalid file, unknown name, mismatched protocol/dataset
EXIT_MISSING_DATA = 3  # reproduce.py: some datasets had no data; the others ran

