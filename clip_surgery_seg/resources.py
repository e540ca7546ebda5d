"""Where the files that ship with the harness are: the configs and the published numbers.

In a checkout they are the repository's own ``configs/`` and ``results/paper.csv``; in an installed
package (``pip install .``) they are copies that the build puts under ``clip_surgery_seg/_packaged/``
(see ``setup.py``). This module is the only place that knows either location.
"""
from __future__ import annotations

import functools
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent
_PACKAGED = _PACKAGE / "_packaged"


@functools.lru_cache(maxsize=None)
def _root() -> Path:
    """The folder holding ``configs/`` and ``results/``: the checkout when this package is one."""
    if (_CHECKOUT / "configs" / "_base_").is_dir() and (_CHECKOUT / "setup.cfg").is_file():
        return _CHECKOUT
    return _PACKAGED


def checkout_dir() -> "Path | None":
    """The repository this package runs from, or None for an installed copy."""
    return _CHECKOUT if _root() == _CHECKOUT else None


def configs_dir() -> Path:
    """The harness's ``configs/`` folder."""
    return _root() / "configs"


def classnames_file(dataset: str) -> Path:
    """``configs/classnames/<dataset>.txt``."""
    return configs_dir() / "classnames" / f"{dataset}.txt"


def paper_csv() -> Path:
    """``results/paper.csv``: the published numbers the tables compare against."""
    return _root() / "results" / "paper.csv"


def find_config(path: str) -> Path:
    """A config given as a path, as ``configs/<...>.py`` from any folder, or as a bare name.

    ``configs/ade20k.py`` resolves against the current folder first, then against the shipped
    configs, so the installed tools accept the same arguments as ``tools/*.py`` in a checkout;
    ``ade20k`` and ``clip_surgery/ade20k`` mean ``configs/ade20k.py`` and
    ``configs/clip_surgery/ade20k.py``. Returns the path as given when nothing matches.
    """
    given = Path(path)
    if given.is_file():
        return given
    relative = Path(*given.parts[1:]) if given.parts[:1] == ("configs",) else given
    for candidate in (relative, relative.with_suffix(".py")):
        shipped = configs_dir() / candidate
        if not given.is_absolute() and shipped.is_file():
            return shipped
    return given


def known_configs() -> list:
    """The shipped experiment configs, as ``configs/<...>.py`` (no ``_base_`` parts)."""
    root = configs_dir()
    return sorted(f"configs/{p.relative_to(root).as_posix()}" for p in root.rglob("*.py")
                  if "_base_" not in p.parts)


def display_path(path: "str | Path") -> str:
    """A shipped file as ``configs/...`` (the same in every checkout and installed copy); any other
    path as given."""
    try:
        return Path(path).resolve().relative_to(_root().resolve()).as_posix()
    except ValueError:
        return str(path)
