#!/usr/bin/env python
"""Get a dataset's validation split ready under --root: download, extract, convert, then check.

    python tools/prepare_data.py ade20k            # downloads into data/downloads/
    python tools/prepare_data.py cityscapes --from-archives ~/Downloads   # archives you downloaded

Safe to interrupt and re-run: downloads resume, finished files are kept. See data/README.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import clip_surgery_seg  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clip_surgery_seg.datasets import DATASETS  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("--root", "--data-root", dest="root", default="data",
                        help="data root (default: data)")
    parser.add_argument("--from-archives", metavar="DIR", type=Path,
                        help="take the archives from DIR instead of downloading (required for cityscapes)")
    parser.add_argument("--workers", type=int, default=None, help="processes for label conversion")
    parser.add_argument("--force", action="store_true",
                        help="run every step even if the split already looks complete")
    parser.add_argument("--no-checksum", action="store_true",
                        help="skip the published-checksum check (only for a file you verified yourself)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from clip_surgery_seg.data_prep import DataPrepError
    from clip_surgery_seg.data_prep.prepare import prepare
    from clip_surgery_seg.data_prep.verify import check_dataset
    from clip_surgery_seg.datasets.layout import DataLayoutError

    root = Path(args.root)
    if not args.force:
        try:
            report = check_dataset(args.dataset, root, deep=False)
        except DataLayoutError:
            report = None
        if report is not None and report.ok:
            print(report.format())
            print(f"{args.dataset} is already prepared; --force runs every step again")
            return 0
    try:
        prepare(args.dataset, root, args.from_archives, verify=not args.no_checksum,
                progress=not args.no_progress, workers=args.workers)
    except DataPrepError as err:
        print(f"prepare_data: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("prepare_data: interrupted; run the same command again to continue where it stopped",
              file=sys.stderr)
        return 130
    try:
        report = check_dataset(args.dataset, root, deep=False)
    except DataLayoutError as err:
        print(f"prepare_data: error: {err}", file=sys.stderr)
        return 1
    print(report.format())
    if not report.ok:
        return 1
    print(f"next: python tools/check_data.py {args.dataset} --root {root}  (opens every file)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
