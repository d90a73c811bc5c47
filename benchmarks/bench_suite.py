"""The benchmarks as pytest sees them: one test per unit of the plan, in plan order (see plan.py).

Each test hands its unit to the harness. Step blocks and the overhead probe are timed through
pytest-benchmark (its JSON and tables come for free); a training run or a memory probe is one
round. The harness writes every measurement to the run's records itself.
"""

import pytest

from benchmarks.harness import Unavailable
from benchmarks.session import SESSION


@pytest.fixture
def harness(request):
    state = request.config.stash.get(SESSION, None)
    if state is None:
        pytest.skip("no benchmark session (run with --benchmark-only)")
    return state.harness


def test_work(benchmark, work, harness):
    benchmark.group = work.kind if work.kind != "block" else work.op

    def timer(run_round, rounds, warmup, calls):
        benchmark.extra_info["calls_per_round"] = calls  # pytest-benchmark's figures are per round
        benchmark.pedantic(run_round, rounds=rounds, warmup_rounds=warmup, iterations=1)
        return [t / calls for t in benchmark.stats.stats.data]

    try:
        if work.kind in ("block", "overhead"):
            harness.run(work, timer)
        else:
            benchmark.pedantic(harness.run, args=(work,), rounds=1, iterations=1)
    except Unavailable as err:
        pytest.skip(str(err))
