"""The mmcv-lite compatibility module, with and without compiled mmcv ops."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import REPO


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_mmseg_imports_on_mmcv_lite():
    result = _run("""
        import importlib.util, torch, torch.nn.functional as F
        assert importlib.util.find_spec("mmcv._ext") is None, "test needs mmcv-lite"
        import clip_surgery_seg
        from clip_surgery_seg import mmcv_compat
        assert mmcv_compat.is_active()
        import mmseg.datasets, mmseg.models, mmseg.utils, mmseg.evaluation
        from mmcv.ops import point_sample
        feats, pts = torch.randn(2, 3, 8, 8), torch.rand(2, 5, 2)
        expected = F.grid_sample(feats, (2 * pts - 1).unsqueeze(2), align_corners=False).squeeze(3)
        assert torch.allclose(point_sample(feats, pts), expected)
        grid = torch.rand(2, 4, 6, 2)
        assert point_sample(feats, grid).shape == (2, 3, 4, 6)
        import mmcv.ops
        try:
            mmcv.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
        except RuntimeError as err:
            assert "mmcv.ops.nms is a compiled op that mmcv-lite does not have" in str(err), err
        else:
            raise AssertionError("a compiled op must not run on mmcv-lite")
        assert not isinstance(object(), mmcv.ops.DeformConv2d)
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_compat_is_inactive_with_full_mmcv():
    # Stand in for full mmcv: a compiled extension module that imports.
    result = _run("""
        import sys, types
        sys.modules["mmcv._ext"] = types.ModuleType("mmcv._ext")
        from clip_surgery_seg import mmcv_compat
        assert mmcv_compat.has_compiled_ops()
        assert mmcv_compat.install() is False
        assert not mmcv_compat.is_active()
        assert "mmcv.ops" not in sys.modules
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
