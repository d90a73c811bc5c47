"""The report, from saved records only: rows, the one list of columns, markdown, CSV, terminal summary,
plots, the accuracy test, compare, merge, the CLI and atomic writes.

The main sample, tests/data/sample_records (schema 2, made by tests/data/make_sample.py from the H200
reference run), holds cpu and cuda rows, non-default modes, the numba floor, unavailable, failed and
over-budget cases, a diverged seed, a failed memory child and a block cut short; expected values are
computed here from its records. Cases it lacks are made by editing a copy.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from backends.task import SIN_TO_COS, TaskConfig
from benchmarks import atomic, records
from benchmarks.records import Block, Case, Finish, FirstStep, Loaded, RecordError, Start, Training
from benchmarks.report import columns, compare, merge, plots, render, rows, stats, tables, write

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLE = DATA / "sample_records"
SAMPLE_1 = DATA / "sample_run"
REFERENCE = ROOT / "results" / "reference"
PNG = b"\x89PNG\r\n\x1a\n"
OUTPUTS = ["comparison.md", "comparison.csv", "summary.txt", "step_times.png", "speed_accuracy.png",
           "predictions.png", "loss_curves.png"]  # fmt: skip
MAIN = ["backend", "mode", "device", "step (ms)", "vs torch-rnn eager", "× floor", "first step (ms)", "held-out MSE",
        "converged", "params"]  # fmt: skip
SIZE = "32x1x10"


@pytest.fixture(scope="module")
def sample() -> rows.RunRows:
    return write.load(SAMPLE)


def by_key(result: rows.RunRows) -> dict[tuple[str, str, str], rows.Row]:
    return {(r.case.backend, r.case.mode, r.case.device): r for r in result.rows}


def copy_records(dst: Path, edit: Callable[[list], list] | None = None, source: Path = SAMPLE) -> Path:
    """A copy of a run's records (upgraded when it is schema 1), edited as a list of records."""
    recs = records.read(source).records
    recs = edit(list(recs)) if edit else recs
    dst.mkdir(parents=True)
    writer = records.Writer(dst)
    for record in recs:
        writer.write(record)
    writer.close()
    return dst


def table(md: str, heading: str = "## Results") -> tuple[list[str], list[list[str]]]:
    """Header and body cells of the table under `heading`."""
    part = md.split(heading, 1)[1].split("\n## ", 1)[0]
    lines = [line for line in part.splitlines() if line.startswith("| ")]
    split = [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]] for line in lines]
    return split[0], split[1:]


def synthetic(folder: Path, cases: dict[tuple[str, str, str], tuple[float, float]], metrics: dict | None = None,
              task: dict | None = None) -> Path:  # fmt: skip
    """A small run: each (backend, mode, device) -> (step seconds, first-step seconds); metrics per case."""
    config = dataclasses.asdict(TaskConfig())
    start = Start(records.SCHEMA, "2026-01-01T00:00:00", [], {"rounds": 5, "repeats": 1},
                  task or SIN_TO_COS.describe(), config)  # fmt: skip
    out: list = [start]
    for (backend, mode, device), (step, first) in cases.items():
        case = Case(backend, mode, device, SIZE)
        out += [Loaded(case, {"kernel": "k", "mode": mode}, 1121), FirstStep(case, first)]
        out.append(Block(case, "train_step", 0, 1, [step * f for f in (0.9, 1.0, 1.0, 1.0, 1.1)]))
        for seed, metric in enumerate((metrics or {}).get((backend, mode, device), [])):
            out.append(Training(case, seed, [0.5, 0.1], metric, None, 1.0))
    out.append(Finish("2026-01-01T00:01:00", True, 0))
    folder.mkdir(parents=True)
    writer = records.Writer(folder)
    for record in out:
        writer.write(record)
    writer.close()
    return folder


# ---- the sample ----


def test_the_sample_holds_every_kind_of_row(sample):
    statuses = {r.status for r in sample.rows}
    assert {"ok", "partly-diverged", "unavailable", "failed", "over-budget"} <= statuses
    assert {r.case.device for r in sample.rows} == {"cpu", "cuda"}
    notes = [n for r in sample.rows for n in r.notes]
    assert any(n.startswith("failed (predict block, repeat 2): ") for n in notes)
    assert any(n.startswith("peak memory not measured: ") for n in notes)
    assert "diverged: seed 3 at step 187" in notes
    assert any(r.break_even is not None for r in sample.rows) and any(r.floor_ratio for r in sample.rows)
    assert sample.warnings == ["thread pools not at the requested 1 thread(s): openblas (blas): 16 threads"]


def test_step_figures_come_from_the_blocks(sample):
    recs = records.read(SAMPLE)
    for row in sample.rows:
        blocks = sorted(
            (b for b in recs.of(Block) if b.case == row.case and b.op == "train_step"), key=lambda b: b.repeat
        )
        if not blocks:
            assert row.step is None
            continue
        medians = [float(np.median(b.seconds)) for b in blocks]
        iqrs = [float(np.subtract(*np.percentile(b.seconds, [75, 25]))) for b in blocks]
        assert row.step.median == pytest.approx(float(np.median(medians)))
        assert (row.step.low, row.step.high) == pytest.approx((min(medians), max(medians)))
        assert row.step.iqr == pytest.approx(float(np.median(iqrs)))
        assert row.step.rounds == sum(len(b.seconds) for b in blocks)
        firsts = [f.seconds for f in recs.of(FirstStep) if f.case == row.case]
        assert row.first_step == (firsts[0] if firsts else None)
        assert row.params == next(r.params for r in recs.of(Loaded) if r.case == row.case)
    cut = by_key(sample)[("torch-cell", "eager", "cuda")]
    assert f"step timed over {cut.step.rounds} of 120 rounds" in cut.notes


def test_accuracy_figures_come_from_the_trainings(sample):
    recs = records.read(SAMPLE)
    for row in sample.rows:
        mine = [t for t in recs.of(Training) if t.case == row.case]
        good = [t.metric for t in mine if t.metric is not None]
        assert row.converged == good and row.seeds == len(mine)
        if good:
            assert row.metric == pytest.approx(tuple(np.percentile(good, [25, 50, 75])))
            kept = [t.seconds for t in mine if t.metric is not None]
            assert row.train_seconds == pytest.approx(float(np.median(kept)))  # diverged runs stop early: left out
    diverged = by_key(sample)[("torch-cell", "eager", "cuda")]
    assert diverged.status == "partly-diverged" and columns._converged(diverged) == "4/5"


def test_comparisons_within_the_run(sample):
    keyed = by_key(sample)
    for (backend, mode, device), row in keyed.items():
        if row.step is None:
            assert row.speedup is row.floor_ratio is row.gpu_cpu is None
            continue
        reference = keyed.get(("torch-rnn", "eager", device))
        assert row.speedup == pytest.approx(reference.step.median / row.step.median)
        floor = keyed.get(("numba", "njit", device))
        assert row.floor_ratio == (pytest.approx(row.step.median / floor.step.median) if floor else None)
        cpu = keyed.get((backend, mode, "cpu"))
        expected = row.step.median / cpu.step.median if device == "cuda" and cpu and cpu.step else None
        assert row.gpu_cpu == pytest.approx(expected)
    assert keyed[("torch-rnn", "cuda-graph", "cuda")].break_even == 0  # its first step is faster too


def test_break_even_known_values(tmp_path):
    cases = {
        ("jax-scan", "jit", "cpu"): (1e-3, 0.01),
        ("jax-scan", "fast", "cpu"): (0.5e-3, 0.51),  # 0.5 s more at first, 0.5 ms less per step: 1000 steps
        ("torch-rnn", "eager", "cpu"): (2e-3, 0.1),
        ("torch-rnn", "compile", "cpu"): (3e-3, 5.0),  # slower at both: never pays back
    }
    keyed = by_key(write.load(synthetic(tmp_path / "run", cases)))
    assert keyed[("jax-scan", "fast", "cpu")].break_even == pytest.approx(1000)
    assert columns._break_even_cell(keyed[("jax-scan", "fast", "cpu")]) == "1000 steps"
    assert math.isinf(keyed[("torch-rnn", "compile", "cpu")].break_even)
    assert columns._break_even_cell(keyed[("torch-rnn", "compile", "cpu")]) == "—"
    assert keyed[("jax-scan", "jit", "cpu")].break_even is None  # the default mode itself
    assert keyed[("jax-scan", "jit", "cpu")].speedup == pytest.approx(2.0)


def test_a_case_whose_every_seed_diverged(tmp_path):
    folder = synthetic(tmp_path / "run", {("numpy", "eager", "cpu"): (1e-3, 0.1)})
    case = Case("numpy", "eager", "cpu", SIZE)
    writer = records.Writer(folder)
    for seed in range(3):
        writer.write(Training(case, seed, [0.5, 1e3, None], None, 2, 0.01))
    writer.close()
    (row,) = write.load(folder).rows
    assert row.status == "diverged" and row.metric is None and row.train_seconds is None
    cells = columns.cells(row, columns.main_columns([row]))
    assert cells[MAIN.index("held-out MSE")] == "diverged" and cells[MAIN.index("converged")] == "0/3"
    assert row.notes == ["diverged: seed 0 at step 2, seed 1 at step 2, seed 2 at step 2"]


def test_rows_are_sorted_by_step_time_within_each_device(sample):
    devices = [r.case.device for r in sample.rows]
    assert devices == sorted(devices, key=rows.DEVICE_ORDER.index)
    for device in set(devices):
        mine = [r for r in sample.rows if r.case.device == device]
        steps = [r.step.median if r.step else math.inf for r in mine]
        assert steps == sorted(steps)
        assert all(r.skipped for r in mine[len([s for s in steps if s < math.inf]) :])


# ---- the accuracy test ----


def test_mann_whitney_known_values():
    # scipy.stats.mannwhitneyu's documented example: U = 17, exact p = 1/9, asymptotic p = 0.11134688653314041
    males, females = [19, 22, 16, 29, 24], [20, 11, 17, 12]
    assert stats.mann_whitney(males, females) == (17.0, pytest.approx(1 / 9))
    assert stats.mann_whitney(males, females, exact_limit=0)[1] == pytest.approx(0.11134688653314041, rel=1e-9)
    assert stats.mann_whitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == (0.0, pytest.approx(2 / 252))
    assert stats.mann_whitney([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])[1] == 1.0
    assert list(stats.ranks([3, 1, 3, 2])) == [3.5, 1.0, 3.5, 2.0]


def test_mann_whitney_exact_equals_brute_force_with_ties():
    x, y = [0.1, 0.3, 0.3, 0.7, 0.2], [0.3, 0.5, 0.9, 0.9]
    pooled = x + y

    def u(group: list[float]) -> float:  # U by counting pairs, ties counting one half
        rest = list(pooled)
        for v in group:
            rest.remove(v)
        return sum((a > b) + 0.5 * (a == b) for a in group for b in rest)

    observed = u(x)
    centre = len(x) * len(y) / 2
    splits = [u([pooled[i] for i in idx]) for idx in combinations(range(len(pooled)), len(x))]
    expected = sum(abs(s - centre) >= abs(observed - centre) - 1e-9 for s in splits) / len(splits)
    assert stats.mann_whitney(x, y) == (observed, pytest.approx(expected))
    assert stats.mann_whitney(y, x)[1] == pytest.approx(expected)


def test_mann_whitney_normal_approximation_with_ties_by_hand():
    rng = np.random.default_rng(0)
    x, y = list(rng.integers(0, 6, 30)), list(rng.integers(1, 7, 25))
    n1, n2, n = 30, 25, 55
    pooled = x + y
    u = sum((a > b) + 0.5 * (a == b) for a in x for b in y)
    ties = sum(pooled.count(v) ** 3 - pooled.count(v) for v in set(pooled))
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    p = math.erfc((abs(u - n1 * n2 / 2) - 0.5) / sigma / math.sqrt(2))
    assert stats.mann_whitney(x, y) == (pytest.approx(u), pytest.approx(p))


def test_same_as_oracle_column(sample, tmp_path):
    keyed = by_key(sample)
    oracle = keyed[("numpy", "eager", "cpu")]
    assert oracle.oracle == "oracle"
    for row in sample.rows:
        if row is oracle or len(row.converged) < rows.MIN_SEEDS:
            assert row.oracle in ("oracle", "—")
            continue
        p = stats.mann_whitney(row.converged, oracle.converged)[1]
        assert row.oracle_p == pytest.approx(p)
        assert row.oracle == f"{'differs' if p < 0.05 else 'same'} (p={rows._p(p)})"
    metrics = {("numpy", "eager", "cpu"): [0.01, 0.02, 0.03, 0.04, 0.05],
               ("jax-scan", "jit", "cpu"): [0.5, 0.6, 0.7, 0.8, 0.9],  # all worse: p = 2/252
               ("torch-cell", "eager", "cpu"): [0.01, 0.02]}  # fmt: skip
    cases = {k: (1e-3, 0.1) for k in metrics}
    keyed = by_key(write.load(synthetic(tmp_path / "run", cases, metrics)))
    assert keyed[("jax-scan", "jit", "cpu")].oracle == "differs (p=0.0079)"
    assert keyed[("torch-cell", "eager", "cpu")].oracle == "—"  # fewer than 3 seeds
    legend = "\n".join(tables.legend(list(keyed.values()), SIN_TO_COS.describe()["metric"]))
    assert "torch-rnn eager trains both of nn.RNN's biases" in legend and "difference is expected" in legend


# ---- markdown, terminal, CSV ----


def test_markdown_main_and_details_tables(sample):
    md = tables.markdown(sample)
    header, body = table(md)
    assert header == MAIN
    assert [c[:3] for c in body] == [[r.case.backend, r.case.mode, r.case.device] for r in sample.rows]
    details, dbody = table(md, "## Details")
    assert details[:4] == ["backend", "mode", "device", "kernel / path"] and "same as oracle" in details
    assert "notes" in details and len(dbody) == len(body)
    for cells, row in zip(body, sample.rows):
        assert len(cells) == len(MAIN)
        if row.skipped:
            assert cells[3].startswith(f"{row.status}: ") and set(cells[4:]) == {"—"}
        else:
            assert float(cells[3].split()[0]) == pytest.approx(row.step.median * 1e3, rel=0.01)
    failed = next(c for c in body if c[0] == "tf-cell")
    assert failed[3] == "failed: RuntimeError: boom \\| a pipe and a second line (train_step block, repeat 0)"
    for label in ("- CPU:", "- threads:", "- OS:", "- Python:", "- frameworks:", "- GPU: NVIDIA H200", "- options:",
                  "- commit:", "- run:", "## Columns", "harness overhead per timed call:"):  # fmt: skip
        assert label in md, label
    assert md.splitlines()[2] == "> **thread pools not at the requested 1 thread(s): openblas (blas): 16 threads**"
    for column in columns.shown(sample.rows):
        assert f"- **{column.title(sample.run.metric)}**: " in md


def test_terminal_summary_is_the_main_table(sample, tmp_path):
    written, summary = render(copy_records(tmp_path / "run"), plots=False)
    assert (tmp_path / "run" / "summary.txt").read_text() == "\n".join(summary) + "\n"
    assert summary[0].startswith("warning: thread pools not at the requested 1")
    assert re.split(r"\s{2,}", summary[1]) == MAIN
    listed = [line.split()[:3] for line in summary[2:] if not line.startswith(" ") and "overhead" not in line]
    assert listed == [[r.case.backend, r.case.mode, r.case.device] for r in sample.rows]
    assert summary[-1].startswith("harness overhead per timed call: ")
    diverged = summary.index(next(s for s in summary if s.startswith("torch-cell") and " cuda " in s and "eager" in s))
    assert "diverged: seed 3 at step 187" in summary[diverged + 1]


def test_csv_has_every_row_and_the_run_level_fields(sample, tmp_path):
    text = tables.csv_text(sample.rows)
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [(x["backend"], x["mode"], x["device"]) for x in lines] == [r.key[:3] for r in sample.rows]
    for line, row in zip(lines, sample.rows):
        assert line["status"] == row.status
        assert (float(line["step_median_s"]) if line["step_median_s"] else None) == (row.step and row.step.median)
        for name in ("run", "host", "cpu_model", "gpu_model", "commit", "options", "threads", "frameworks"):
            assert line[name], name
        assert line["metric_name"] == "held_out_mse" and line["gpu_model"] == "NVIDIA H200"
    assert next(x for x in lines if x["backend"] == "tf-cell")["reason"].startswith("RuntimeError: boom | a pipe\n")
    other = tables.csv_text(write.load(SAMPLE_1).rows)
    assert other.splitlines()[0] == text.splitlines()[0]  # CSVs of different runs stack


@pytest.mark.parametrize(
    "value,text",
    [(None, ""), (0, "0"), (0.5, "0.500"), (1.2345, "1.23"), (12.345, "12.3"), (1234.5, "1234"), (-1000, "-1000"),
     (99999, "99999"), (123456789, "1.23e+08"), (1e40, "1.00e+40"), (0.000123, "1.23e-04"), (float("nan"), "invalid"),
     (float("inf"), "∞")],
)  # fmt: skip
def test_numbers_have_three_significant_digits(value, text):
    assert columns.num(value) == text


def test_md_cell_escapes_pipes_and_newlines():
    assert columns.md_cell("a | b\nc\r\n  d") == "a \\| b c d"


# ---- what a run did not finish, and bad records ----


def test_incomplete_run_says_what_was_never_reached(tmp_path):
    def stop(recs: list) -> list:
        cut = [r for r in recs if not isinstance(r, Finish)]
        cut = [r for r in cut if not (isinstance(r, Training) and r.case.device == "cuda")]
        return [r for r in cut if not (isinstance(r, Training) and r.case.backend == "numpy" and r.seed == 4)]

    result = write.load(copy_records(tmp_path / "run", stop))
    assert any("incomplete" in w for w in result.warnings)
    keyed = by_key(result)
    assert "never reached before the run stopped: accuracy" in keyed[("torch-rnn", "eager", "cuda")].notes
    assert not any("never reached" in n for n in keyed[("numpy", "eager", "cpu")].notes)
    assert "accuracy over 4 of 5 seeds" in keyed[("numpy", "eager", "cpu")].notes
    planned = keyed[("torch-rnn", "compile", "cpu")]  # in the options' plan, never begun
    assert planned.status == "not reached" and planned.skipped
    assert ("torch-rnn", "cuda-graph", "cpu") not in keyed  # a mode that does not run there was never planned
    md = tables.markdown(result)
    assert "this run is incomplete" in md and "| torch-rnn | compile | cpu | not reached: " in md


def test_torn_last_line_is_reported(tmp_path):
    folder = copy_records(tmp_path / "run")
    with open(folder / records.FILE, "a") as f:
        f.write('{"kind":"training","case":')
    result = write.load(folder)
    assert any("cut-off line" in w for w in result.warnings)


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "benchmarks.report", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=env)  # fmt: skip


def _one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    for word in words:
        assert word in done.stderr, (word, done.stderr)


def _retyped(folder: Path, kind: str, field: str, value: object) -> Path:
    lines = (folder / records.FILE).read_text().splitlines()
    for i, line in enumerate(lines):
        obj = json.loads(line)
        if obj["kind"] == kind:
            obj[field] = value
            lines[i] = json.dumps(obj)
            break
    (folder / records.FILE).write_text("\n".join(lines) + "\n")
    return folder


def test_typed_inputs_are_one_line_errors(tmp_path):
    metric = _retyped(copy_records(tmp_path / "metric"), "training", "metric", "0.1")
    _one_line_error(_cli(str(metric)), "metric", "must be a finite number", "'0.1'")
    negative = _retyped(copy_records(tmp_path / "negative"), "block", "seconds", [0.001, -0.001])
    with pytest.raises(RecordError, match="negative time"):
        write.load(negative)
    _one_line_error(_cli(str(negative)), "negative")
    first = _retyped(copy_records(tmp_path / "first"), "first_step", "seconds", -1.0)
    _one_line_error(_cli(str(first)), "seconds must not be negative")


def test_a_second_task_labels_the_tables_and_plots(tmp_path):
    task = {**SIN_TO_COS.describe(), "name": "sin-shift", "target_label": "sin(t + π/4)",
            "metric": {"name": "held_out_mae", "label": "held-out MAE", "about": "mean absolute error"}}  # fmt: skip
    metrics = {("numpy", "eager", "cpu"): [0.1, 0.2, 0.3], ("jax-scan", "jit", "cpu"): [0.2, 0.3, 0.4]}
    folder = synthetic(tmp_path / "run", {k: (1e-3, 0.1) for k in metrics}, metrics, task)
    written, summary = render(folder)  # with plots: their labels come from the task too
    md = (folder / "comparison.md").read_text()
    assert table(md)[0][7] == "held-out MAE" and "held-out MSE" not in md and "MSE" not in "".join(summary)
    assert "mean absolute error" in md
    assert {x["metric_name"] for x in csv.DictReader(io.StringIO((folder / "comparison.csv").read_text()))} == {
        "held_out_mae"
    }


# ---- files, plots, CLI ----


def test_render_writes_tables_summary_and_plots(tmp_path):
    folder = copy_records(tmp_path / "run")
    written, _ = render(folder)
    assert [p.name for p in written] == OUTPUTS
    md = (folder / "comparison.md").read_text()
    for name in OUTPUTS[3:]:
        assert (folder / name).read_bytes().startswith(PNG) and f"]({name})" in md
    assert sorted(p.name for p in folder.iterdir()) == sorted([records.FILE, *OUTPUTS])


def test_a_plot_without_data_is_skipped(tmp_path):
    only_steps = synthetic(tmp_path / "steps", {("numpy", "eager", "cpu"): (1e-3, 0.1)})
    written, _ = render(only_steps)
    assert [p.name for p in written] == ["comparison.md", "comparison.csv", "summary.txt", "step_times.png"]
    result = write.load(SAMPLE)
    skipped = [r for r in result.rows if r.skipped]
    assert plots.step_times(skipped, [result.run]) is None
    assert plots.speed_accuracy(skipped, [result.run], result.run.metric) is None


def test_tables_without_matplotlib(tmp_path):
    folder = copy_records(tmp_path / "run")
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from benchmarks.report.__main__ import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(folder)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "matplotlib is not installed" in done.stderr
    assert (folder / "comparison.md").exists() and not list(folder.glob("*.png"))


@pytest.mark.parametrize("command", [[], ["render"], ["compare"], ["merge"]])
def test_help_exits_0(command):
    done = _cli(*command, "--help")
    assert done.returncode == 0 and "usage:" in done.stdout and done.stderr == ""


def test_cli_renders_a_folder(tmp_path):
    folder = copy_records(tmp_path / "run")
    done = _cli(str(folder), "--no-plots")
    assert done.returncode == 0, done.stderr
    wrote = [line.removeprefix("wrote ") for line in done.stdout.splitlines() if line.startswith("wrote ")]
    assert wrote == [str(folder / n) for n in OUTPUTS[:3]]
    assert done.stdout.startswith("warning: thread pools")


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    good = copy_records(tmp_path / "good")
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "bad.jsonl").mkdir()
    broken = copy_records(tmp_path / "broken")
    (broken / records.FILE).write_text("not json\n" + (good / records.FILE).read_text())
    cases = {
        "missing folder": ([str(tmp_path / "nope")], "no such run folder"),
        "not a run": ([str(empty)], "not a run folder"),
        "malformed line": ([str(broken)], "line 1: not JSON"),
        "two folders": ([str(good), str(good)], "unrecognized arguments"),
        "unknown option": (["--frobnicate"], "unrecognized arguments"),
        "compare with one run": (["compare", str(good)], "required: RUN_B"),
        "merge without runs": (["merge"], "required: RUN"),
        "compare into a run": (["compare", str(good), str(good), "--out", str(good / "x.md")], "inside the run folder"),
        "merge into a run": (["merge", str(good), "--out", str(good / "merged")], "inside the run folder"),
    }
    for args, word in cases.values():
        _one_line_error(_cli(*args), word)


def test_newest_run(tmp_path):
    runs = tmp_path / "runs"
    for name in ("20260101-000000-a", "20260102-000000-b", "20260103-000000-c.partial", "20260104-000000-d-incomplete"):
        copy_records(runs / name)
    (runs / "20260105-000000-e").mkdir()  # no records: not a run
    assert write.newest_run(tmp_path) == (runs / "20260102-000000-b").resolve()
    (tmp_path / "index.json").write_text(json.dumps({"runs": ["20260101-000000-a"], "latest": "20260101-000000-a"}))
    assert write.newest_run(tmp_path) == (runs / "20260101-000000-a").resolve()
    (tmp_path / "latest").symlink_to(Path("runs") / "20260104-000000-d-incomplete")
    assert write.newest_run(tmp_path) == (runs / "20260104-000000-d-incomplete").resolve()
    with pytest.raises(RecordError, match="no run found"):
        write.newest_run(tmp_path / "nothing")


# ---- committed reference runs ----


def _is_sweep(folder: Path) -> bool:
    return bool(records.read(folder).start.options.get("sweep"))


FOLDERS = sorted(p for p in REFERENCE.iterdir() if p.is_dir() and write.is_run(p))
REFERENCE_RUNS = [p for p in FOLDERS if not (p / records.FILE).exists() or not _is_sweep(p)]
REFERENCE_SWEEPS = [p for p in FOLDERS if p not in REFERENCE_RUNS]


def test_the_reference_holds_the_gpu_runs():
    names = {p.name for p in REFERENCE_RUNS}
    assert {"h200-20261127-234442", "h200-large-20261127-234633", "cpu-20261127-095840-vm"} <= names


@pytest.mark.parametrize("folder", REFERENCE_RUNS, ids=lambda p: p.name)
def test_every_reference_run_renders(folder, tmp_path):
    written, summary = render(folder, tmp_path, plots=False)  # the plots are tested on the samples
    assert [p.name for p in written][:3] == OUTPUTS[:3]
    md = (tmp_path / "comparison.md").read_text()
    header, body = table(md)
    assert header == MAIN and body and all(not c[3].startswith("failed") for c in body)
    committed = folder / "comparison.md"
    assert committed.exists() and "## Details" in committed.read_text(), "re-render: python -m benchmarks.report"


@pytest.mark.parametrize("folder", REFERENCE_SWEEPS, ids=lambda p: p.name)
def test_every_reference_sweep_renders(folder, tmp_path):
    from benchmarks.report.sweep import render_sweep

    copy = tmp_path / folder.name
    copy.mkdir()
    (copy / records.FILE).write_bytes((folder / records.FILE).read_bytes())
    names = {p.name for p in render_sweep(copy, plots=False)}  # the plots are tested in test_sweep.py
    assert names == {"sweep.csv", "sweep.md"}

    def tables(md: str) -> str:
        return md.split("## Files")[0]

    # the committed one is current
    assert tables((copy / "sweep.md").read_text()) == tables((folder / "sweep.md").read_text())


def test_the_reference_holds_a_cpu_and_a_gpu_sweep():
    assert any(p.name.startswith("cpu-sweep") for p in REFERENCE_SWEEPS)
    assert any(p.name.startswith("h200-sweep") for p in REFERENCE_SWEEPS)


# ---- compare ----


def _scaled(factor: float, case: tuple[str, str, str] = ("torch-rnn", "eager", "cpu")) -> Callable[[list], list]:
    """Scale one case's train_step times."""

    def scale(r: object) -> object:
        if isinstance(r, Block) and r.op == "train_step" and (r.case.backend, r.case.mode, r.case.device) == case:
            return dataclasses.replace(r, seconds=[v * factor for v in r.seconds])
        return r

    return lambda recs: [scale(r) for r in recs]


def test_compare_the_same_run_twice_is_within_noise(tmp_path):
    out = tmp_path / "out" / "same.md"
    done = _cli("compare", str(SAMPLE), str(SAMPLE), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "**changed" not in done.stdout and "**differs" not in done.stdout and "within noise" in done.stdout
    assert "Rule: one run on a side" in done.stdout
    assert out.read_text() in done.stdout
    for measure in ("step median (ms)", "first step (ms)", "peak RSS (MiB)", "GPU peak (MiB)", "held-out MSE median"):
        assert f"| {measure} |" in done.stdout


def test_compare_flags_a_change_beyond_the_noise(tmp_path):
    a = write.load(SAMPLE)
    b = write.load(copy_records(tmp_path / "slow", _scaled(3.0)))
    text = compare.compare_markdown([a], [b])
    flagged = [line for line in text.splitlines() if "**changed" in line]
    assert len(flagged) == 1 and flagged[0].startswith("| torch-rnn | eager | cpu | 32x1x10 | step median (ms) |")
    assert "| 3.00 | **changed: B ×3.00** |" in flagged[0]
    # several runs per side: a 1.3x change inside A's own run-to-run spread (1.0x and 1.6x) is noise
    a2 = write.load(copy_records(tmp_path / "a2", _scaled(1.6)))
    b1, b2 = (write.load(copy_records(tmp_path / n, _scaled(f))) for n, f in (("b1", 1.3), ("b2", 1.35)))
    text = compare.compare_markdown([a, a2], [b1, b2])
    assert "Rule: noise = run-to-run spread" in text
    line = next(x for x in text.splitlines() if x.startswith("| torch-rnn | eager | cpu | 32x1x10 | step median"))
    assert line.endswith("| within noise |")
    c1, c2 = (write.load(copy_records(tmp_path / n, _scaled(f))) for n, f in (("c1", 2.5), ("c2", 2.6)))
    line = next(x for x in compare.compare_markdown([a, a2], [c1, c2]).splitlines()
                if x.startswith("| torch-rnn | eager | cpu | 32x1x10 | step median"))  # fmt: skip
    assert "**changed" in line


def test_compare_shows_cases_only_on_one_side(tmp_path):
    a = write.load(SAMPLE)
    b = write.load(copy_records(tmp_path / "b", lambda recs: [r for r in recs if getattr(r, "case", None) is None
                                                                or r.case.backend != "jax-scan"]))  # fmt: skip
    lines = compare.compare_markdown([a], [b]).splitlines()
    assert "| jax-scan | jit | cpu | 32x1x10 | status | measured | not run |  |  |" in lines
    assert any(
        x.startswith("| tf-cell | function | cpu | 32x1x10 | status | failed: RuntimeError: boom \\|") for x in lines
    )


def test_compare_default_output_goes_to_the_results_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(compare, "RESULTS_DIR", tmp_path)
    text, path = compare.write_compare([SAMPLE], [SAMPLE])
    assert path.parent == tmp_path and path.read_text() == text


# ---- merge ----


def test_merge_cpu_and_gpu_runs_in_one_table(tmp_path):
    out = tmp_path / "merged"
    written = merge.write_merge([REFERENCE / "cpu-20261127-095840-vm", REFERENCE / "h200-20261127-234442"], out)
    assert [p.name for p in written] == ["comparison.md", "comparison.csv", "summary.txt", "step_times.png"]
    md = (out / "comparison.md").read_text()
    header, body = table(md)
    assert header[:4] == ["backend", "mode", "device", "machine"]
    assert any(c[2] == "cuda" and c[3] == "vm · H200" for c in body)
    assert {c[3] for c in body if c[2] == "cpu"} == {"vm · AMD EPYC", "vm · Intel Xeon"}
    assert md.count("## Machine: ") == 2 and len(table(md, "## Details")[1]) == len(body)
    own = {name: by_key(write.load(REFERENCE / name)) for name in ("cpu-20261127-095840-vm", "h200-20261127-234442")}
    lines = list(csv.DictReader(io.StringIO((out / "comparison.csv").read_text())))
    assert len(lines) == sum(len(k) for k in own.values())
    for line in lines:  # each row's speed-up is against its own run's torch-rnn eager
        row = own[line["run"]][(line["backend"], line["mode"], line["device"])]
        assert float(line["speedup_vs_torch_rnn_eager"]) == pytest.approx(row.speedup)
    assert {line["gpu_model"] for line in lines} == {"", "NVIDIA H200"}


def test_merge_default_output_is_the_results_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(merge, "DEFAULT_OUT", tmp_path / "merged")
    written = merge.write_merge([SAMPLE, SAMPLE_1])
    assert all(p.parent == tmp_path / "merged" for p in written)
    with pytest.raises(RecordError, match="the same run given twice"):
        merge.write_merge([SAMPLE, SAMPLE])


# ---- atomic writes ----


def _fail(*args: object, **kwargs: object) -> None:
    raise OSError("simulated crash")


@pytest.mark.parametrize("where", ["replace", "fsync"])
def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch, where):
    target = tmp_path / "table.md"
    target.write_text("old")
    monkeypatch.setattr(os, where, _fail)
    with pytest.raises(OSError, match="simulated crash"):
        atomic.write_text(target, "new " * 10_000)
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.md"]


def test_interrupted_render_keeps_the_old_report(tmp_path, monkeypatch):
    folder = copy_records(tmp_path / "run")
    (folder / "comparison.md").write_text("old report")
    monkeypatch.setattr(os, "replace", _fail)
    with pytest.raises(OSError):
        render(folder, plots=False)
    monkeypatch.undo()
    assert (folder / "comparison.md").read_text() == "old report"
    assert sorted(p.name for p in folder.iterdir()) == ["comparison.md", records.FILE]


def test_report_imports_no_framework_and_no_pytest():
    code = (
        "import sys\nfrom benchmarks.report import render, compare, merge, plots\n"
        "bad = [m for m in ('torch', 'jax', 'tensorflow', 'keras', 'numba', 'pytest', 'scipy') if m in sys.modules]\n"
        "print(bad)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
