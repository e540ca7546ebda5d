#!/usr/bin/env python
"""Evaluate training-free CLIP Surgery segmentation: python tools/eval.py configs/ade20k.py"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from clip_surgery_seg.engine.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
