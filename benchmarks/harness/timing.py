"""Timing loops, plain Python: a round times several calls when one call is too short to time well."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

MAX_CALLS_PER_ROUND = 1000


class Timer(Protocol):
    """Times `rounds` rounds of `calls` calls each after `warmup` untimed rounds; returns seconds per call,
    one value per round. The pytest shell passes one that runs through pytest-benchmark."""

    def __call__(self, call: Callable[[], Any], rounds: int, warmup: int, calls: int) -> list[float]: ...


def plain_timer(call: Callable[[], Any], rounds: int, warmup: int, calls: int) -> list[float]:
    """The default timer: perf_counter around each round."""
    loop = range(calls)
    for _ in range(warmup):
        for _ in loop:
            call()
    out = []
    clock = time.perf_counter
    for _ in range(rounds):
        start = clock()
        for _ in loop:
            call()
        out.append((clock() - start) / calls)
    return out


def calls_per_round(call: Callable[[], Any], min_round_s: float) -> int:
    """How many calls make a round last about `min_round_s`, from a few calls timed now."""
    if min_round_s <= 0:
        return 1
    start = time.perf_counter()
    for _ in range(3):
        call()
    per_call = max((time.perf_counter() - start) / 3, 1e-9)
    return max(1, min(MAX_CALLS_PER_ROUND, math.ceil(min_round_s / per_call)))


def cycling(fn: Callable[..., Any], args: list[tuple[Any, ...]]) -> Callable[[], Any]:
    """A no-argument call of fn over pre-made arguments, in turn (the overhead probe times this path too)."""
    it = itertools.cycle(args)

    def call() -> Any:
        return fn(*next(it))

    return call
