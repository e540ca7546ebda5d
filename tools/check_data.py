#!/usr/bin/env python
"""Verify a prepared split: python tools/check_data.py ade20k [--quick]"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, installed or not

from clip_surgery_seg.cli.check_data import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
