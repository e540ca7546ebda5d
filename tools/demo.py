#!/usr/bin/env python
"""Explanation maps and the segmentation of one image: python tools/demo.py photo.jpg --classes "cat,dog,grass" """
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, installed or not

from clip_surgery_seg.cli.demo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
