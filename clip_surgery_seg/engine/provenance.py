"""What produced a result: code version, library versions, device."""
from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Dict, Optional

import torch

from .. import resources

PACKAGES = ("torch", "torchvision", "open_clip_torch", "mmsegmentation", "mmengine", "mmcv", "mmcv-lite",
            "numpy", "pandas", "pillow")


@functools.lru_cache(maxsize=None)
def code_version() -> Dict[str, Optional[object]]:
    """Package version, and the git commit (with a dirty flag) when run from a checkout."""
    from .. import __version__

    info: Dict[str, Optional[object]] = {"version": __version__, "git_commit": None, "git_dirty": None}
    root = resources.checkout_dir()
    if root is None:  # an installed copy: its version is all there is
        return info
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
            status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10)
            info["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def _package_versions() -> Dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {cpu} ({torch.get_num_threads()} threads)"


def environment(device: torch.device) -> Dict[str, object]:
    from .. import mmcv_compat

    return {"python": platform.python_version(), "platform": platform.platform(),
            "packages": _package_versions(), "mmcv_compiled_ops": not mmcv_compat.is_active(),
            "device": device_description(device)}
