"""What this machine has to run on: usable CPU cores, the CPU model, NVIDIA GPUs.

Torch-free on purpose: GPUs are found through the CUDA *driver* library (``libcuda``, part of
the NVIDIA driver, present whenever a CUDA GPU is usable) with :mod:`ctypes`, so
``--backend auto`` can decide without importing torch, cupy or TensorRT.
Driver API used (CUDA Driver API reference, "Device Management"): ``cuInit``,
``cuDeviceGetCount``, ``cuDeviceGet``, ``cuDeviceGetName``, ``cuDeviceGetAttribute`` with
``CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR`` (75) / ``_MINOR`` (76).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

_CC_MAJOR, _CC_MINOR = 75, 76  # CUdevice_attribute enum values (cuda.h)


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device.

    Attributes:
        index: CUDA ordinal (as in ``cuda:<index>``; respects CUDA_VISIBLE_DEVICES).
        name: marketing name, e.g. ``NVIDIA H100 80GB HBM3``.
        compute_capability: (major, minor), e.g. (9, 0).
    """

    index: int
    name: str
    compute_capability: tuple[int, int]

    @property
    def sm(self) -> str:
        """``sm90``-style architecture tag (used in engine cache keys)."""
        major, minor = self.compute_capability
        return f"sm{major}{minor}"


@functools.lru_cache(maxsize=1)
def cuda_gpus() -> tuple[GpuInfo, ...]:
    """The CUDA GPUs the driver reports; ``()`` when there is no driver or no device.

    Never raises: any failure to load or initialise the driver means "no GPU".
    """
    try:
        lib = ctypes.CDLL("libcuda.so.1" if os.name != "nt" else "nvcuda.dll")
    except OSError:
        return ()
    try:
        if lib.cuInit(0) != 0:
            return ()
        count = ctypes.c_int(0)
        if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return ()
        gpus = []
        for i in range(count.value):
            dev = ctypes.c_int(0)
            if lib.cuDeviceGet(ctypes.byref(dev), i) != 0:
                continue
            name = ctypes.create_string_buffer(256)
            lib.cuDeviceGetName(name, 256, dev)
            major, minor = ctypes.c_int(0), ctypes.c_int(0)
            lib.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, dev)
            lib.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, dev)
            gpus.append(GpuInfo(i, name.value.decode(errors="replace"), (major.value, minor.value)))
        return tuple(gpus)
    except (AttributeError, OSError):  # a stub libcuda without these symbols
        return ()


def usable_cpus() -> int:
    """CPU cores this process may use: the affinity mask, capped by a cgroup v2 CPU quota
    (``/sys/fs/cgroup/cpu.max``, as containers set it). At least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def threads_per_worker(workers: int = 1, cpus: int | None = None) -> int:
    """Intra-op threads for each of ``workers`` processes sharing the machine:
    ``cpus // workers`` (at least 1). More threads than cores is ~2× slower here (NOTES.md)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    return max(1, (cpus or usable_cpus()) // workers)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_features() -> tuple[str, ...]:
    """The inference-relevant instruction-set extensions the CPU reports (Linux flags):
    a subset of avx2, avx512f, avx512_vnni, avx512_bf16, amx_tile, amx_int8, amx_bf16."""
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return tuple(f for f in wanted if f in flags)
    except OSError:
        pass
    return ()


def machine_line() -> str:
    """One line naming the machine, e.g.
    ``AMD EPYC, 2 cores (avx512f avx512_vnni avx512_bf16), no GPU``."""
    feats = " ".join(cpu_features())
    gpus = cuda_gpus()
    gpu = ", ".join(f"GPU {g.index}: {g.name} ({g.sm})" for g in gpus) if gpus else "no GPU"
    return f"{cpu_model()}, {usable_cpus()} cores" + (f" ({feats})" if feats else "") + f", {gpu}"
