#!/usr/bin/env python
"""Rebuild the paper's table from results: python tools/report.py work_dirs/reproduce/RUN"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, installed or not

from clip_surgery_seg.cli.report import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
