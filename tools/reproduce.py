#!/usr/bin/env python
"""Reproduce the paper's table (every dataset, one protocol): python tools/reproduce.py"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, installed or not

from clip_surgery_seg.cli.reproduce import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
