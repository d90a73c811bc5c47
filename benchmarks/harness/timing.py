"""Timing loops, plain Python. A round runs several calls when one call is too short to time well, so
the clock and the loop cost little per call (the overhead probe measures what is left)."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

MAX_CALLS_PER_ROUND = 1000


class Timer(Protocol):
    """Times `rounds` calls of `run_round` (each makes `calls` calls) after `warmup` untimed ones; returns
    seconds per call, one value per round. The pytest shell passes one that runs through pytest-benchmark."""

    def __call__(self, run_round: Callable[[], Any], rounds: int, warmup: int, calls: int) -> list[float]: ...


def plain_timer(run_round: Callable[[], Any], rounds: int, warmup: int, calls: int) -> list[float]:
    """The default timer: perf_counter around each round."""
    for _ in range(warmup):
        run_round()
    out = []
    clock = time.perf_counter
    for _ in range(rounds):
        start = clock()
        run_round()
        out.append((clock() - start) / calls)
    return out


def rounds_of(fn: Callable[..., Any], args: list[tuple[Any, ...]], calls: int) -> Callable[[], None]:
    """A round: `calls` calls of fn over pre-made arguments, taken in turn across rounds."""
    it = itertools.cycle(args)
    islice = itertools.islice

    def run_round() -> None:
        for a in islice(it, calls):
            fn(*a)

    return run_round


def calls_per_round(fn: Callable[..., Any], args: list[tuple[Any, ...]], min_round_s: float) -> int:
    """How many calls make a round last about `min_round_s`, from a few calls timed now."""
    if min_round_s <= 0:
        return 1
    run_round = rounds_of(fn, args, 3)
    start = time.perf_counter()
    run_round()
    per_call = max((time.perf_counter() - start) / 3, 1e-9)
    return max(1, min(MAX_CALLS_PER_ROUND, math.ceil(min_round_s / per_call)))
