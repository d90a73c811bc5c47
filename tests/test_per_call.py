"""pytest-benchmark's own figures are per call: its table, its JSON and `pytest-benchmark compare` show the time
of one train_step or predict, the same figure as the suite's records for the same blocks, with the calls of a
round as its `iterations`. (Handing it a round's time as one call made fast rows look 2-30x slower.)"""

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import records

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--seeds=1", "--train-steps=10", "--rounds=20", "--repeats=2", "--no-memory"]
COLUMNS = "median,rounds,iterations"
UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def bench(results: Path, backends: str) -> tuple[Path, str]:
    """A real run (without plots: the report leaves them out without matplotlib, ~3 s less); its folder and
    its terminal output."""
    site = results.parent / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['matplotlib'] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pytest", "--benchmark-only", "-p", "no:cacheprovider", "-q"]
    cmd += [f"--results-dir={results}", f"--backends={backends}", *ARGS, f"--benchmark-columns={COLUMNS}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return next((results / "runs").iterdir()), done.stdout


def table_rows(text: str) -> list[tuple[str, float, int, int]]:
    """(name, median in seconds, rounds, iterations) of every row of pytest-benchmark's tables in `text`
    (printed with the columns COLUMNS); a row's time unit is its table's."""
    rows, scale = [], None
    for line in text.splitlines():
        unit = re.match(r"Name \(time in (\w+)\)", line)
        if unit:
            scale = UNITS[unit.group(1)]
            continue
        row = re.match(r"(test_work\[[^\]]+\])(?: \([^)]*\))?\s+(.*)", line)
        if row and scale is not None:
            median, rounds, iterations = re.sub(r"\([^)]*\)", " ", row.group(2)).split()
            rows.append((row.group(1), float(median.replace(",", "")) * scale, int(rounds), int(iterations)))
    return rows


def block_id(block: records.Block) -> str:
    case = block.case
    return f"test_work[{block.op}-{case.backend}-{case.mode}-{case.device}-r{block.repeat}]"


@pytest.fixture(scope="module")
def numba_numpy(tmp_path_factory) -> tuple[Path, str]:
    pytest.importorskip("numba")  # the floor: its calls are fast enough to take several per round
    return bench(tmp_path_factory.mktemp("per-call") / "results", "numba,numpy")


def test_json_median_is_the_step_median_and_iterations_the_calls_per_round(numba_numpy):
    folder, _ = numba_numpy
    run = records.read(folder)
    entries = {b["name"]: b for b in json.loads((folder / "benchmark.json").read_text())["benchmarks"]}
    blocks = run.of(records.Block)
    assert len(blocks) == 2 * 2 * 2  # backends x ops x repeats
    # several calls per round for the fast rows: a round's time handed over as one call would fail below
    assert max(b.calls_per_round for b in blocks) > 1
    for block in blocks:
        stats = entries[block_id(block)]["stats"]
        assert stats["median"] == pytest.approx(statistics.median(block.seconds), rel=0.01), block_id(block)
        assert stats["iterations"] == block.calls_per_round, block_id(block)
        assert stats["rounds"] == len(block.seconds) == 20
        assert stats["ops"] == pytest.approx(1 / statistics.mean(block.seconds), rel=0.01)
    (overhead,) = run.of(records.Overhead)
    stats = entries["test_work[overhead]"]["stats"]
    assert stats["median"] == pytest.approx(statistics.median(overhead.seconds), rel=0.01)
    assert stats["iterations"] == overhead.calls_per_round > 1


def test_terminal_table_shows_the_time_of_one_call(numba_numpy):
    folder, output = numba_numpy
    blocks = {block_id(b): b for b in records.read(folder).of(records.Block)}
    shown = {name: (median, rounds, iterations) for name, median, rounds, iterations in table_rows(output)}
    assert set(blocks) <= set(shown)
    for name, block in blocks.items():
        median, rounds, iterations = shown[name]
        assert median == pytest.approx(statistics.median(block.seconds), rel=0.01), name
        assert (rounds, iterations) == (len(block.seconds), block.calls_per_round), name


def test_pytest_benchmark_compare_of_two_saved_runs_shows_per_call_times(numba_numpy, tmp_path):
    first, _ = numba_numpy
    second, _ = bench(tmp_path / "results", "numpy")
    saved = {}
    for name, folder in (("first", first), ("second", second)):
        saved[name] = tmp_path / f"{name}.json"
        saved[name].write_text((folder / "benchmark.json").read_text())
    compare = [str(Path(sys.executable).with_name("pytest-benchmark")), "compare", str(saved["first"])]
    compare += [str(saved["second"]), f"--columns={COLUMNS}", "--group-by=name"]
    done = subprocess.run(compare, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    medians: dict[str, list[float]] = {}
    for folder in (first, second):
        run = records.read(folder)
        for block in run.of(records.Block):
            medians.setdefault(block_id(block), []).append(statistics.median(block.seconds))
        for overhead in run.of(records.Overhead):
            medians.setdefault("test_work[overhead]", []).append(statistics.median(overhead.seconds))
    # every block of both runs is a row (numpy's twice, numba's once), at its per-call median
    rows = [row for row in table_rows(done.stdout) if not row[0].startswith("test_work[training-")]
    assert sorted(name for name, *_ in rows) == sorted(name for name, values in medians.items() for _ in values)
    for name, median, _, _ in rows:
        assert any(median == pytest.approx(m, rel=0.01) for m in medians[name]), (name, median, medians[name])
