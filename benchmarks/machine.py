"""Machine info recorded beside every run: CPU, threads, OS, Python, framework versions, GPU."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from typing import Any

from backends import threads

# distribution names to report; the first installed of each tuple wins
FRAMEWORKS: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "torch": ("torch",),
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "keras": ("keras",),
    "tflearn": ("tflearn",),
    "jax": ("jax",),
    "pytest-benchmark": ("pytest-benchmark",),
}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def framework_versions() -> dict[str, str]:
    out = {}
    for label, dists in FRAMEWORKS.items():
        out[label] = "*not-installed*"
        for dist in dists:
            try:
                out[label] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


def gpu_info() -> tuple[str | None, str | None]:
    """(GPU name, driver version) from nvidia-smi, or (None, None)."""
    if not shutil.which("nvidia-smi"):
        return None, None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, None
    if not out:
        return None, None
    name, _, driver = out.splitlines()[0].partition(",")
    return name.strip(), driver.strip() or None


def native_thread_pools() -> list[dict[str, Any]]:
    """The BLAS/OpenMP pools loaded in this process and their thread counts, as threadpoolctl reads them."""
    try:
        import threadpoolctl
    except ImportError:
        return []
    keys = ("user_api", "internal_api", "num_threads", "filepath")
    return [{k: pool.get(k) for k in keys} for pool in threadpoolctl.threadpool_info()]


def machine_info() -> dict[str, Any]:
    """What the harness adds to pytest-benchmark's machine_info."""
    gpu, driver = gpu_info()
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "threads": {**threads.settings(), "native_pools": native_thread_pools()},
        "frameworks": framework_versions(),
        "os": f"{platform.system()} {platform.release()}",
        "gpu": gpu,
        "gpu_driver": driver,
    }
