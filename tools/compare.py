#!/usr/bin/env python
"""Compare results against a baseline; exit 1 on an mIoU regression: python tools/compare.py NEW BASELINE"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, installed or not

from clip_surgery_seg.cli.compare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
