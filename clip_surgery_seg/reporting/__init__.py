"""Reporting and regression tracking: the paper's table, comparisons, history and reproduction.

* ``records``: one result (``metrics.json``, run folder or history row) as a ``ResultRecord``;
* ``paper``: the published numbers (``results/paper.csv``) and the table ours vs paper (pandas);
* ``compare``: what moved between two results, and whether it is a regression;
* ``plots``: matplotlib charts (Agg backend);
* ``reproduce``: evaluate every dataset of a protocol into one run folder;
* ``cli``: the command lines of ``tools/{report,compare,history,reproduce}.py``.

The history file itself lives in ``clip_surgery_seg.engine.history`` (the runner appends to it).
"""
from .compare import DatasetComparison, compare_records, pair_records
from ..errors import MismatchError, ReportingError
from .errors import EXIT_MISSING_DATA, EXIT_OK, EXIT_REGRESSION, EXIT_USAGE
from .paper import load_paper, paper_table, to_csv, to_markdown
from .records import ResultRecord, load_records

__all__ = ["EXIT_MISSING_DATA", "EXIT_OK", "EXIT_REGRESSION", "EXIT_USAGE", "DatasetComparison", "MismatchError",
           "ReportingError", "ResultRecord", "compare_records", "load_paper", "load_records", "pair_records",
           "paper_table", "to_csv", "to_markdown"]
