"""``css-prepare-data`` / ``tools/prepare_data.py``: get a dataset's validation split ready under --root.

    python tools/prepare_data.py ade20k            # downloads into data/downloads/
    python tools/prepare_data.py cityscapes --from-archives ~/Downloads   # archives you downloaded

Download, extract, convert, then check. Safe to interrupt and re-run: downloads resume, finished files
are kept. See data/README.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from . import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ToolParser, add_debug_flag, as_invoked, command_for, invoked_as,
               positive_int, run)


def build_parser(prog: str = "python tools/prepare_data.py") -> ToolParser:
    from ..datasets.catalog import DATASETS

    parser = ToolParser(prog=prog, description=as_invoked(__doc__.replace("python tools/prepare_data.py", prog)))
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("--root", "--data-root", dest="root", default="data", help="data root (default: data)")
    parser.add_argument("--from-archives", metavar="DIR", type=Path,
                        help="take the archives from DIR instead of downloading (required for cityscapes)")
    parser.add_argument("--workers", type=positive_int, default=None, help="processes for label conversion")
    parser.add_argument("--force", action="store_true",
                        help="run every step even if the split already looks complete, and rewrite every "
                             "extracted file (e.g. one damaged in place)")
    parser.add_argument("--no-checksum", action="store_true",
                        help="skip the published-checksum check (only for a file you verified yourself)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_debug_flag(parser)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser(invoked_as("tools/prepare_data.py")).parse_args(argv)
    return run(lambda: _prepare(args), args, EXIT_FAILED)


def _prepare(args: argparse.Namespace) -> int:
    from ..data_prep.prepare import prepare
    from ..datasets.check import check_dataset
    from ..errors import DataLayoutError

    root = Path(args.root)
    if not args.force:
        try:
            report = check_dataset(args.dataset, root, deep=False)
        except DataLayoutError:
            report = None
        if report is not None and report.ok:
            print(report.format())
            print(f"{args.dataset} is already prepared; --force runs every step again")
            return EXIT_OK
    try:
        prepare(args.dataset, root, args.from_archives, verify=not args.no_checksum,
                progress=not args.no_progress, workers=args.workers, force=args.force)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue where it stopped",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    report = check_dataset(args.dataset, root, deep=False)
    print(report.format())
    if not report.ok:
        return EXIT_FAILED
    print(f"next: {command_for('tools/check_data.py')} {args.dataset} --root {root}  (opens every file)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
