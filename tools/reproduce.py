#!/usr/bin/env python
"""Reproduce the paper's table (all four datasets): python tools/reproduce.py"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from clip_surgery_seg.reporting.cli import reproduce_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(reproduce_main())
