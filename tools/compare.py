#!/usr/bin/env python
"""Compare results against a baseline; exit 1 on an mIoU regression: python tools/compare.py NEW BASELINE"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from clip_surgery_seg.reporting.cli import compare_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(compare_main())
