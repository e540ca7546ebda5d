#!/usr/bin/env python
"""Show the evaluation history and plot mIoU over time: python tools/history.py --dataset ade20k"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from clip_surgery_seg.reporting.cli import history_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(history_main())
