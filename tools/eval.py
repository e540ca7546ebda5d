#!/usr/bin/env python
"""Evaluate training-free segmentation: python tools/eval.py configs/ade20k.py"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, installed or not

from clip_surgery_seg.cli.eval import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
