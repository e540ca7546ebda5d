"""Shared helpers of the benchmark scripts: options, timing, peak memory, tables, machine description.

Timing: ``time_fn`` runs the function ``warmup`` times, then ``repeats`` times, each timed with
``time.perf_counter`` (CUDA synchronised before and after), and reports the fastest run: on a shared
machine the other runs measure the neighbours too. ``time_interleaved`` does the same for several
functions, alternating them, so that a change in the machine's load hits all of them alike.

Peak memory:

* CUDA: ``torch.cuda.max_memory_allocated`` over one call, minus what was allocated before it.
* CPU: torch has no CPU allocator statistics and ``tracemalloc`` does not see tensors, so the call
  runs in a fresh Python process (``peak_rss_child``): after the set-up and one warm-up call the
  kernel's peak-RSS mark is reset (``/proc/self/clear_refs``), the call is made once more, and the
  result is ``VmHWM - VmRSS`` (the peak resident set above what was resident before the call). The
  child runs with ``MALLOC_MMAP_THRESHOLD_`` fixed at 128 KiB so that every large buffer is an
  ``mmap`` returned on free, not heap memory that a later buffer reuses unseen.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

MiB = 2 ** 20


# --- options ------------------------------------------------------------------------------------

def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--quick", action="store_true", help="tiny shapes and models (the smoke test)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls before timing")
    p.add_argument("--repeats", type=int, default=3, help="timed calls; the median is reported")
    p.add_argument("--memory", choices=("child", "inprocess", "off"), default=None,
                   help="CPU peak memory: in a fresh process (exact, slower), in this process, or not "
                   "at all (default: child; inprocess with --quick)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    return p


def setup(args: argparse.Namespace) -> torch.device:
    """Apply the common options; returns the device."""
    import clip_surgery_seg  # noqa: F401  (mmseg on mmcv-lite needs its shim first)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    torch.manual_seed(0)
    return device


# --- timing -------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], Any], device: torch.device, warmup: int = 1, repeats: int = 3) -> float:
    """Fastest wall time of ``fn()`` in seconds over ``repeats`` calls after ``warmup`` calls."""
    return time_interleaved([fn], device, warmup, repeats)[0]


def time_interleaved(fns: Sequence[Callable[[], Any]], device: torch.device, warmup: int = 1,
                     repeats: int = 3) -> List[float]:
    """Fastest wall time of each function, the functions called in turn ``repeats`` times."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    sync(device)
    times: List[List[float]] = [[] for _ in fns]
    for _ in range(max(1, repeats)):
        for fn, record in zip(fns, times):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            record.append(time.perf_counter() - start)
    return [min(record) for record in times]


# --- peak memory --------------------------------------------------------------------------------

def _proc_status() -> Dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) * 1024
    return out


def peak_bytes_in_process(fn: Callable[[], Any], device: torch.device) -> Optional[int]:
    """Peak memory of one ``fn()`` call above what was in use before it (CUDA, or CPU via /proc)."""
    if device.type == "cuda":
        fn()
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    try:
        fn()
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS mark (Linux >= 4.0)
        base = _proc_status()["VmRSS"]
        fn()
        return _proc_status()["VmHWM"] - base
    except OSError:
        return None


def peak_rss_child(module: str, factory: str, kwargs: Dict[str, Any], device: str = "cpu",
                   threads: Optional[int] = None, timeout: float = 900) -> Optional[int]:
    """Peak memory (bytes) of one call of ``module.factory(**kwargs)()`` measured in a fresh process.

    ``factory`` builds the inputs and returns the zero-argument function to measure; on CPU the
    peak is the resident-set high-water mark above the resident set before the call (see the
    module docstring), on CUDA ``max_memory_allocated``. None where it cannot be measured.
    """
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", PYTHONPATH=os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")]))
    payload = json.dumps({"module": module, "factory": factory, "kwargs": kwargs, "device": device,
                          "threads": threads})
    result = subprocess.run([sys.executable, "-m", "benchmarks._common", "--child", payload], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"memory probe {module}.{factory} failed:\n{result.stderr[-3000:]}")
    for line in result.stdout.splitlines()[::-1]:
        if line.startswith("PEAK_BYTES "):
            value = line.split()[1]
            return None if value == "None" else int(value)
    raise RuntimeError(f"memory probe {module}.{factory} printed no result:\n{result.stdout[-2000:]}")


def measure_peak(args: argparse.Namespace, device: torch.device, module: str, factory: str,
                 kwargs: Dict[str, Any]) -> Optional[int]:
    """Peak bytes of one call of ``module.factory(**kwargs, device=...)()`` as ``--memory`` says."""
    mode = args.memory or ("inprocess" if args.quick else "child")
    if mode == "off":
        return None
    if device.type == "cuda" or mode == "inprocess":
        fn = getattr(importlib.import_module(module), factory)(**kwargs, device=str(device))
        with torch.inference_mode():
            return peak_bytes_in_process(fn, device)
    return peak_rss_child(module, factory, kwargs, str(device), args.threads)


def _child(payload: str) -> None:
    spec = json.loads(payload)
    import clip_surgery_seg  # noqa: F401

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    fn = getattr(importlib.import_module(spec["module"]), spec["factory"])(
        **spec["kwargs"], device=spec["device"])
    with torch.inference_mode():
        peak = peak_bytes_in_process(fn, torch.device(spec["device"]))
    print("PEAK_BYTES", peak, flush=True)


# --- output -------------------------------------------------------------------------------------

def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value != 0 and (abs(value) < 10 ** -digits or abs(value) >= 1e6):
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 3) -> str:
    """A Markdown table."""
    cells = [[fmt(v, digits) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(r) for r in cells)])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = (f"{date.today().isoformat()}, {cpu_model()}, {cores} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()})")
    if device.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(device)}"
    return text


def header(title: str, device: torch.device) -> None:
    print(f"## {title}\n\n{machine(device)}; device {device}\n", flush=True)


def write_json(path: Optional[str], data: Any) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, default=str))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(sys.argv[2])
    else:
        raise SystemExit("internal helper of the benchmark scripts")
