"""One thread count for every framework, set before any framework is imported.

`configure(n)` writes the environment variables that OpenMP, MKL and TensorFlow read at
import time; each backend then applies the same count through its framework's own API
when it loads, and reports what is in force through `settings()`.
"""

from __future__ import annotations

import os

ENV_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)

_count: int | None = None
_applied: dict[str, dict[str, int]] = {}


def configure(n: int) -> None:
    """Pin every framework to n threads. Safe to call twice with the same n (pytest-benchmark compare does)."""
    global _count
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive int, got {n!r}")
    _count = n
    for var in ENV_VARS:
        os.environ[var] = str(n)


def from_args(args: list[str]) -> int | None:
    """The --threads value in a command line (default 1), or None when it is not an int from 1 to 256
    (the option check reports that)."""
    value = "1"
    for i, arg in enumerate(args):
        if arg.startswith("--threads="):
            value = arg.split("=", 1)[1]
        elif arg == "--threads" and i + 1 < len(args):
            value = args[i + 1]
    try:
        n = int(value)
    except ValueError:
        return None
    return n if 1 <= n <= 256 else None


def enforce() -> None:
    """Apply the count at run time to every native pool loaded so far (BLAS, OpenMP): a pool started
    before the environment was set, or by a framework that ignores it, is brought in line."""
    n = count()
    if n is None:
        return
    try:
        import threadpoolctl
    except ImportError:
        return
    threadpoolctl.threadpool_limits(limits=n)


def mismatches(settings: dict[str, object]) -> list[str]:
    """Every pool or framework setting that differs from the requested count, as 'where: n'."""
    n = settings.get("requested")
    if n is None:
        return []
    out = []
    for pool in settings.get("native_pools") or []:  # type: ignore[union-attr]
        if pool.get("num_threads") not in (None, n):
            out.append(f"{pool.get('internal_api')} ({pool.get('filepath')}): {pool.get('num_threads')}")
    for framework, values in (settings.get("frameworks") or {}).items():  # type: ignore[union-attr]
        for key, value in values.items():
            if value not in (0, n):  # 0: TensorFlow's "as the environment says"
                out.append(f"{framework} {key}: {value}")
    return out


def count() -> int | None:
    """The configured thread count, or None when nothing was configured (frameworks keep their defaults)."""
    if _count is None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return int(os.environ["OMP_NUM_THREADS"])
    return _count


def record(framework: str, **values: int) -> None:
    """Note the thread settings a framework actually reports (called by backends when they load)."""
    _applied[framework] = dict(values)


def settings() -> dict[str, object]:
    """The requested count and what each loaded framework reports."""
    return {"requested": count(), "frameworks": {k: dict(v) for k, v in _applied.items()}}
