#!/usr/bin/env python
"""Rebuild the paper's table from results: python tools/report.py work_dirs/reproduce/RUN"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from clip_surgery_seg.reporting.cli import report_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(report_main())
