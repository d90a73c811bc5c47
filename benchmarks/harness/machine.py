"""Machine info recorded beside every run: CPU, threads, OS, Python, framework versions, GPU."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from backends import threads
from benchmarks.records import Machine

# environment variables that change how frameworks run or compile; recorded with every run
RECORDED_ENV = (
    "XLA_FLAGS",
    "NPROC",
    "TORCHINDUCTOR_CACHE_DIR",
    "JAX_COMPILATION_CACHE_DIR",
    "TF_XLA_FLAGS",
    "CUDA_VISIBLE_DEVICES",
)

# distribution names to report; the first installed of each tuple wins
FRAMEWORKS: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "torch": ("torch",),
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "keras": ("keras",),
    "tflearn": ("tflearn",),
    "jax": ("jax",),
    "numba": ("numba",),
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


def git_commit() -> tuple[str | None, bool | None]:
    """(commit id, dirty) of the project's checkout, or (None, None) outside git."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None, None
    if commit.returncode != 0:
        return None, None
    return commit.stdout.strip(), bool(status.stdout.strip())


def record(workers: list[dict[str, Any]] | None = None) -> Machine:
    """The machine record of a run: CPU, GPU, versions, and the thread settings in force now, in this
    process and in each case's worker (`workers`: what each reported once its framework had loaded)."""
    gpu, driver = gpu_info()
    commit, dirty = git_commit()
    settings: dict[str, Any] = {**threads.settings(), "native_pools": native_thread_pools()}
    for reported in workers or []:
        for framework, values in (reported.get("frameworks") or {}).items():
            settings["frameworks"][framework] = values
        for pool in reported.get("native_pools") or []:
            if pool not in settings["native_pools"]:
                settings["native_pools"].append(pool)
    settings["mismatch"] = threads.mismatches(settings)
    return Machine(
        host=socket.gethostname(),
        cpu=cpu_model(),
        cores=os.cpu_count(),
        os=f"{platform.system()} {platform.release()} ({platform.machine()})",
        python=f"{platform.python_version()} ({platform.python_implementation()})",
        gpu=gpu,
        gpu_driver=driver,
        frameworks=framework_versions(),
        threads=settings,
        commit=commit,
        dirty=dirty,
        env={k: os.environ[k] for k in RECORDED_ENV if k in os.environ},
    )
