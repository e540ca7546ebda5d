#!/usr/bin/env python
"""Show the evaluation history and plot mIoU over time: python tools/history.py --dataset ade20k"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, installed or not

from clip_surgery_seg.cli.history import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
