"""One process per GPU under torchrun: rank, world size, device, and the few collectives a run needs."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Optional

import torch
import torch.distributed as dist

from ..errors import ConfigError


@dataclass(frozen=True)
class Processes:
    """Where this process stands: its rank among ``world`` processes, and its device."""

    rank: int
    world: int
    device: torch.device

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def gather(self, obj: Any) -> List[Any]:
        """``obj`` of every rank, in rank order (pickled; keep it small)."""
        if self.world == 1:
            return [obj]
        out: List[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def _device_name(device: Optional[str]) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` (checked against the GPUs there are); None: cuda when available."""
    if device is not None and device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA GPU is usable here (torch.cuda.is_available() is False); "
                              "run with --device cpu, or check the GPU driver and that torch is a CUDA build")
        index = device.partition(":")[2]
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: there are {torch.cuda.device_count()} GPUs here (cuda:0 to "
                              f"cuda:{torch.cuda.device_count() - 1})")
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def init_processes(launcher: str, device: Optional[str]) -> Processes:
    """``none``: one process; ``pytorch``: torchrun's environment (NCCL on GPUs, gloo on CPUs)."""
    name = _device_name(device)
    if launcher == "none":
        return Processes(0, 1, torch.device(name))
    if ":" in name:
        raise ConfigError(f"--device {name} with --launcher pytorch: each process takes the GPU of its LOCAL_RANK; "
                          "pass --device cuda (and CUDA_VISIBLE_DEVICES to choose the GPUs)")
    if launcher != "pytorch":
        raise ConfigError(f"--launcher must be none or pytorch, got {launcher!r}")
    if "RANK" not in os.environ:
        raise ConfigError("--launcher pytorch needs torchrun: torchrun --nproc-per-node N tools/eval.py ...")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if name == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if name == "cuda" else "gloo")
    device = torch.device(f"cuda:{local_rank}" if name == "cuda" else "cpu")
    return Processes(dist.get_rank(), dist.get_world_size(), device)
