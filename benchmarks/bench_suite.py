"""The benchmarks as pytest sees them: one test per unit of the plan, in plan order (see plan.py).

Each test hands its unit to the harness, which runs it in the case's worker process and records it.
pytest-benchmark then gets the worker's own figures, per call: a round of several calls counts as that
many iterations (its `iterations`), so its table, its JSON and `pytest-benchmark compare` show the time of
one train_step or predict, the same figure as the suite's own table. A training run or a memory figure is
one round of one call: the unit's wall time.
"""

import time

import pytest

from benchmarks.harness import Failed, Unavailable
from benchmarks.records import WriteError
from benchmarks.stash import SESSION


@pytest.fixture
def harness(request):
    state = request.config.stash.get(SESSION, None)
    if state is None:
        pytest.skip("no benchmark session (run with --benchmark-only)")
    return state.harness


def feed(benchmark, seconds_per_call, calls):
    """Hand pytest-benchmark figures measured elsewhere (the worker), one per round, as seconds per call.
    pytest-benchmark has no public call for this: `_make_stats(iterations)` is what its own pedantic mode
    uses (5.2 and 5.3), and its stats divide each round's duration by the iterations."""
    benchmark._mode = "benchmark.pedantic(...)"  # marks the fixture used, as pedantic would
    stats = benchmark._make_stats(calls)
    for per_call in seconds_per_call:
        stats.update(per_call * calls)


def test_work(benchmark, work, harness):
    benchmark.group = work.kind if work.kind != "block" else work.op
    begin = time.perf_counter()
    try:
        record = harness.run(work)
    except Unavailable as err:
        pytest.skip(str(err))
    except Failed as err:
        pytest.fail(str(err), pytrace=False)
    except WriteError as err:
        pytest.exit(f"rnn-bench: {err}", returncode=1)
    if record is not None:
        benchmark.extra_info["calls_per_round"] = record.calls_per_round
        feed(benchmark, record.seconds, record.calls_per_round)
    else:
        feed(benchmark, [time.perf_counter() - begin], 1)
