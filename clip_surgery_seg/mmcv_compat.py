"""Make mmsegmentation importable on mmcv-lite.

mmseg 1.2.2 imports ``mmcv.ops`` (compiled CUDA/C++ ops) at import time from its ``datasets``,
``models`` and ``utils`` packages, although the code paths this project uses need none of them.
mmcv-lite ships the Python part of mmcv without the compiled ``mmcv._ext``, so ``import mmcv.ops``
fails. When -- and only when -- ``mmcv._ext`` is missing, :func:`install` registers a small
stand-in ``mmcv.ops`` module that

* gives the pure-torch ``point_sample`` (the one op mmseg's import-time code path needs), and
* answers every other name with a placeholder that raises a clear error when it is used.

With full mmcv installed it does nothing. This is the only module of the project that alters a
third-party library; keep it that way.

A plain install (``pip install .``) brings mmcv-lite (setup.cfg ``install_requires``); the ``full``
extra adds mmcv, built with its compiled ops for the installed torch. Both distributions install the
same ``mmcv`` package, so with both the compiled ``mmcv._ext`` is there and this module steps aside;
which one is active is decided by that file alone, not by which distribution pip lists.
"""
from __future__ import annotations

import importlib
import sys
import types
import warnings

import torch
import torch.nn.functional as F

_INSTALL_HINT = (
    "install full mmcv built for your torch (pip install 'mmcv>=2.0.0,<2.2.0', see "
    "https://mmcv.readthedocs.io/en/latest/get_started/installation.html)"
)


def has_compiled_ops() -> bool:
    """True when mmcv's compiled extension ``mmcv._ext`` can be imported (full mmcv)."""
    try:
        importlib.import_module("mmcv._ext")
    except ImportError:
        return False
    return True


def point_sample(input: torch.Tensor, points: torch.Tensor, align_corners: bool = False,
                 **kwargs) -> torch.Tensor:
    """Sample ``input`` (N, C, H, W) at normalised ``points`` (N, P, 2) or (N, Hg, Wg, 2) in [0, 1].

    Same contract as ``mmcv.ops.point_sample``: returns (N, C, P) or (N, C, Hg, Wg).
    """
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    output = F.grid_sample(input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    return output.squeeze(3) if add_dim else output


def _unavailable(name: str) -> type:
    """A class standing in for compiled op ``name``: importable, fails loudly when used."""

    def __new__(cls, *args, **kwargs):
        raise RuntimeError(
            f"mmcv.ops.{name} is a compiled op that mmcv-lite does not have; {_INSTALL_HINT}")

    return type(name, (), {"__new__": __new__, "__doc__": f"Unavailable compiled op {name}."})


class _LiteOps(types.ModuleType):
    """``mmcv.ops`` for mmcv-lite: ``point_sample`` works, everything else raises when used."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        op = _unavailable(name)
        setattr(self, name, op)
        return op


def install() -> bool:
    """Register the stand-in ``mmcv.ops`` if mmcv's compiled ops are missing.

    Returns True if the stand-in is (now) active, False if full mmcv (or no mmcv) is installed.
    Idempotent.
    """
    if isinstance(sys.modules.get("mmcv.ops"), _LiteOps):
        return True
    if has_compiled_ops():
        return False
    try:
        import mmcv
    except ImportError:  # mmseg's own import then says what is missing
        return False
    ops = _LiteOps("mmcv.ops", "Stand-in for mmcv.ops on mmcv-lite (see clip_surgery_seg.mmcv_compat).")
    ops.point_sample = point_sample
    sys.modules["mmcv.ops"] = ops
    mmcv.ops = ops
    # mmcv warns on import that a compiled attention op is missing; that is expected here
    warnings.filterwarnings("ignore", message="Fail to import ``MultiScaleDeformableAttention``")
    return True


def is_active() -> bool:
    """True when the stand-in ``mmcv.ops`` is the one in use."""
    return isinstance(sys.modules.get("mmcv.ops"), _LiteOps)
