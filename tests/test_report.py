"""The run report, from saved records only: the case table (statistics, comparisons within a run, ranks and
ties, outcomes), the one list of columns, markdown, CSV, terminal summary, plots, merge, the CLI, the committed
reference runs and sweeps, and atomic writes.

The main sample, tests/data/sample_records (schema 2, made by tests/data/make_sample.py from the H200
reference run), holds cpu and cuda rows, non-default modes, the numba floor, unavailable, failed and
over-budget cases, a diverged seed, a seed that did not learn, a failed memory child and a block cut short;
expected values are computed here from its records. Cases it lacks are made by editing a copy.
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
from pathlib import Path

import numpy as np
import pytest

from backends.task import SIN_TO_COS
from benchmarks import atomic, records
from benchmarks.records import Block, Case, Finish, FirstStep, Loaded, Training
from benchmarks.report import cases, columns, merge, plots, render, tables, write
from tests.data.synthetic import (
    REFERENCE,
    ROOT,
    SAMPLE,
    SAMPLE_1,
    SIZE,
    cli,
    copy_records,
    start,
    synthetic,
    table,
    write_run,
)

PNG = b"\x89PNG\r\n\x1a\n"
OUTPUTS = ["comparison.md", "comparison.csv", "summary.txt", "step_times.png", "speed_accuracy.png",
           "predictions.png", "loss_curves.png"]  # fmt: skip
MAIN = ["backend", "mode", "device", "step (ms)", "rank", "vs torch-rnn eager", "× floor", "first step (ms)",
        "held-out MSE", "outcome", "params"]  # fmt: skip


@pytest.fixture(scope="module")
def sample() -> cases.View:
    return cases.load(SAMPLE)


def by_key(result: cases.View) -> dict[tuple[str, str, str], dict]:
    return {(r["backend"], r["mode"], r["device"]): r for r in result.rows}


# ---- the case table ----


def test_the_sample_holds_every_kind_of_row(sample):
    assert {"measured", "unavailable", "failed", "over-budget"} <= {r["status"] for r in sample.rows}
    assert {r["device"] for r in sample.rows} == {"cpu", "cuda"}
    notes = [n for r in sample.rows for n in r["notes"]]
    assert any(n.startswith("failed (predict block, repeat 2): ") for n in notes)
    assert any(n.startswith("peak memory not measured: ") for n in notes)
    assert "diverged: seed 3 at step 187" in notes
    assert any(r["did_not_learn"] for r in sample.rows) and any(r["diverged"] for r in sample.rows)
    assert any(cases.finite(r["break_even"]) is not None for r in sample.rows)
    assert sample.run.warnings == ["thread pools not at the requested 1 thread(s): openblas (blas): 16 threads"]


def test_step_figures_come_from_the_blocks(sample):
    recs = records.read(SAMPLE)
    for row in sample.rows:
        key = (row["backend"], row["mode"], row["device"])
        mine = [
            b for b in recs.of(Block) if (b.case.backend, b.case.mode, b.case.device) == key and b.op == "train_step"
        ]
        mine.sort(key=lambda b: b.repeat)
        if not mine:
            assert cases.finite(row["step_median_s"]) is None
            continue
        medians = [float(np.median(b.seconds)) for b in mine]
        iqrs = [float(np.subtract(*np.percentile(b.seconds, [75, 25]))) for b in mine]
        assert row["step_median_s"] == pytest.approx(float(np.median(medians)))
        assert (row["step_low_s"], row["step_high_s"]) == pytest.approx((min(medians), max(medians)))
        assert row["step_spread_s"] == pytest.approx(max(medians) - min(medians))
        assert row["step_iqr_s"] == pytest.approx(float(np.median(iqrs)))
        assert row["step_rounds"] == sum(len(b.seconds) for b in mine) and row["step_repeats"] == len(mine)
        firsts = [f.seconds for f in recs.of(FirstStep) if f.case == mine[0].case]
        assert row["first_step_s"] == (firsts[0] if firsts else None)
        assert row["params"] == next(r.params for r in recs.of(Loaded) if r.case == mine[0].case)
    cut = by_key(sample)[("torch-cell", "eager", "cuda")]
    assert f"step timed over {cut['step_rounds']} of 120 rounds" in cut["notes"]


def test_accuracy_is_over_the_learned_seeds(sample):
    recs = records.read(SAMPLE)
    for row in sample.rows:
        mine = [t for t in recs.of(Training) if (t.case.backend, t.case.mode, t.case.device) ==
                (row["backend"], row["mode"], row["device"])]  # fmt: skip
        learned = [t.metric for t in mine if t.outcome == "learned"]
        assert row["learned_metrics"] == learned and row["seeds"] == len(mine)
        assert row["learned"] + row["diverged"] + row["did_not_learn"] == len(mine)
        if learned:
            assert (row["metric_q1"], row["metric_median"], row["metric_q3"]) == pytest.approx(
                tuple(np.percentile(learned, [25, 50, 75]))
            )
            kept = [t.seconds for t in mine if t.outcome != "diverged"]
            assert row["train_run_s"] == pytest.approx(float(np.median(kept)))  # diverged runs stop early
    keyed = by_key(sample)
    assert columns.outcome_cell(keyed[("torch-cell", "eager", "cuda")]) == "learned 4/5, 1 diverged"
    unlearned = keyed[("torch-rnn", "eager", "cpu")]
    assert columns.outcome_cell(unlearned) == "learned 4/5, 1 did not learn"
    assert (
        max(
            t.metric
            for t in recs.of(Training)
            if t.case.backend == "torch-rnn" and t.case.mode == "eager" and t.case.device == "cpu"
        )
        > unlearned["metric_q3"]
    )  # fmt: skip - the unlearned seed is left out


def test_outcome_column_names_every_outcome(tmp_path):
    case = Case("numpy", "eager", "cpu", SIZE)
    trainings = [Training(case, 0, [0.5, 0.1], 0.01, None, 1.0, outcome="learned"),
                 Training(case, 1, [0.5, 0.4], 0.573, None, 1.0, outcome="did-not-learn"),
                 Training(case, 2, [0.57], None, 0, 1.0, outcome="diverged"),
                 Training(case, 3, [0.5, 0.1], None, None, 1.0, outcome="diverged")]  # fmt: skip
    folder = write_run(tmp_path / "run", [start(), *trainings, Finish("", True, 0)])
    (row,) = cases.load(folder).rows
    assert columns.outcome_cell(row) == "learned 1/4, 2 diverged, 1 did not learn"
    assert columns.metric_cell(row) == "0.0100"  # the learned seed only
    assert "diverged: seed 2 at step 0, seed 3 (no finite metric)" in row["notes"]  # never "at step None"
    legend = "\n".join(tables.legend([row], cases.load(folder).run.metric))
    assert "over the learned seeds only" in legend and "predicting 0 everywhere: 0.5" in legend


def test_comparisons_within_the_run(sample):
    keyed = by_key(sample)
    for (backend, mode, device), row in keyed.items():
        if cases.finite(row["step_median_s"]) is None:
            assert all(cases.finite(row[k]) is None for k in ("speedup", "floor_ratio", "step_gpu_cpu"))
            continue
        reference = keyed[("torch-rnn", "eager", device)]
        assert row["speedup"] == pytest.approx(reference["step_median_s"] / row["step_median_s"])
        floor = keyed.get(("numba", "njit", device))
        expected = row["step_median_s"] / floor["step_median_s"] if floor else None
        assert cases.finite(row["floor_ratio"]) == (pytest.approx(expected) if expected else None)
        cpu = keyed.get((backend, mode, "cpu"))
        expected = (
            row["step_median_s"] / cpu["step_median_s"] if device == "cuda" and cpu and cpu["step_repeats"] else None
        )
        assert cases.finite(row["step_gpu_cpu"]) == (pytest.approx(expected) if expected else None)
    assert keyed[("torch-rnn", "cuda-graph", "cuda")]["break_even"] == 0  # its first step is faster too


def test_break_even_known_values(tmp_path):
    timings = {
        ("jax-scan", "jit", "cpu"): (1e-3, 0.01),
        ("jax-scan", "fast", "cpu"): (0.5e-3, 0.51),  # 0.5 s more at first, 0.5 ms less per step: 1000 steps
        ("torch-rnn", "eager", "cpu"): (2e-3, 0.1),
        ("torch-rnn", "compile", "cpu"): (3e-3, 5.0),  # slower at both: never pays back
    }
    keyed = by_key(cases.load(synthetic(tmp_path / "run", timings)))
    assert keyed[("jax-scan", "fast", "cpu")]["break_even"] == pytest.approx(1000)
    assert columns._break_even_cell(keyed[("jax-scan", "fast", "cpu")]) == "1000 steps"
    assert math.isinf(keyed[("torch-rnn", "compile", "cpu")]["break_even"])
    assert columns._break_even_cell(keyed[("torch-rnn", "compile", "cpu")]) == "—"
    assert cases.finite(keyed[("jax-scan", "jit", "cpu")]["break_even"]) is None  # the default mode itself
    assert keyed[("jax-scan", "jit", "cpu")]["speedup"] == pytest.approx(2.0)


def test_rows_are_sorted_by_step_time_within_each_device(sample):
    devices = [r["device"] for r in sample.rows]
    assert devices == sorted(devices, key=["cpu", "cuda"].index)
    for device in set(devices):
        mine = [r for r in sample.rows if r["device"] == device]
        steps = [cases.finite(r["step_median_s"]) or math.inf for r in mine]
        assert steps == sorted(steps)
        assert all(cases.skipped(r) for r in mine[len([s for s in steps if s < math.inf]) :])


def test_rank_ties_rows_whose_repeat_ranges_overlap(tmp_path):
    timings = {("numba", "njit", "cpu"): (1e-5, 1.0), ("jax-scan", "jit", "cpu"): (1.00e-4, 1.0),
               ("jax-scan", "fast", "cpu"): (1.05e-4, 1.0), ("numpy", "eager", "cpu"): (3e-4, 1.0)}  # fmt: skip
    keyed = by_key(cases.load(synthetic(tmp_path / "noisy", timings, repeats=3, spread=0.2)))
    cells = {k: columns.rank_cell(r) for k, r in keyed.items()}
    assert cells == {("numba", "njit", "cpu"): "1", ("jax-scan", "jit", "cpu"): "2=",
                     ("jax-scan", "fast", "cpu"): "2=", ("numpy", "eager", "cpu"): "4"}  # fmt: skip
    quiet = by_key(cases.load(synthetic(tmp_path / "quiet", timings, repeats=3, spread=0.01)))
    assert [columns.rank_cell(quiet[k]) for k in timings] == ["1", "2", "3", "4"]  # 5% apart, 1% noise: ranked
    md = tables.markdown(cases.load(tmp_path / "noisy"))
    assert "| jax-scan | jit | cpu | 0.100 (0.0900–0.110) | 2= |" in md


# ---- the accuracy test ----


def test_mann_whitney_known_values():
    # scipy.stats.mannwhitneyu's documented example: U = 17, exact p = 1/9
    assert cases.mann_whitney_p([19, 22, 16, 29, 24], [20, 11, 17, 12]) == pytest.approx(1 / 9)
    assert cases.mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(2 / 252)
    assert cases.mann_whitney_p([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]) == 1.0


def test_same_as_oracle_column(sample, tmp_path):
    keyed = by_key(sample)
    oracle = keyed[("numpy", "eager", "cpu")]
    assert columns.oracle_cell(oracle) == "oracle"
    for row in sample.rows:
        if row["is_oracle"] or min(len(row["learned_metrics"]), len(oracle["learned_metrics"])) < cases.MIN_SEEDS:
            assert columns.oracle_cell(row) in ("oracle", "—")
            continue
        p = cases.mann_whitney_p(row["learned_metrics"], oracle["learned_metrics"])
        assert row["oracle_p"] == pytest.approx(p)
        assert columns.oracle_cell(row) == f"{'differs' if p < 0.05 else 'same'} (p={columns.p_text(p)})"
    metrics = {("numpy", "eager", "cpu"): [0.01, 0.02, 0.03, 0.04, 0.05],
               ("jax-scan", "jit", "cpu"): [0.1, 0.2, 0.3, 0.4, 0.45],  # all worse: p = 2/252
               ("torch-cell", "eager", "cpu"): [0.01, 0.02]}  # fmt: skip
    keyed = by_key(cases.load(synthetic(tmp_path / "run", {k: (1e-3, 0.1) for k in metrics}, metrics)))
    assert columns.oracle_cell(keyed[("jax-scan", "jit", "cpu")]) == "differs (p=0.0079)"
    assert columns.oracle_cell(keyed[("torch-cell", "eager", "cpu")]) == "—"  # fewer than 3 learned seeds
    legend = "\n".join(tables.legend(list(keyed.values()), SIN_TO_COS.describe()["metric"] | {"trivial": ""}))
    assert "torch-rnn eager trains both of nn.RNN's biases" in legend and "difference is expected" in legend


# ---- markdown, terminal, CSV ----


def test_markdown_main_and_details_tables(sample):
    md = tables.markdown(sample)
    header, body = table(md)
    assert header == MAIN
    assert [c[:3] for c in body] == [[r["backend"], r["mode"], r["device"]] for r in sample.rows]
    details, dbody = table(md, "## Details")
    assert details[:4] == ["backend", "mode", "device", "kernel / path"] and "same as oracle" in details
    assert "notes" in details and len(dbody) == len(body)
    for cells, row in zip(body, sample.rows):
        assert len(cells) == len(MAIN)
        if cases.skipped(row):
            assert cells[3].startswith(f"{row['status']}: ") and set(cells[4:]) == {"—"}
        else:
            assert float(cells[3].split()[0]) == pytest.approx(row["step_median_s"] * 1e3, rel=0.01)
            assert cells[10] == str(row["params"])
    failed = next(c for c in body if c[0] == "tf-cell")
    assert failed[3] == "failed: RuntimeError: boom \\| a pipe and a second line (train_step block, repeat 0)"
    for label in ("- CPU:", "- threads:", "- OS:", "- Python:", "- frameworks:", "- GPU: NVIDIA H200", "- options:",
                  "- commit:", "- run:", "## Columns", "harness overhead per timed call:"):  # fmt: skip
        assert label in md, label
    assert md.splitlines()[2] == "> **thread pools not at the requested 1 thread(s): openblas (blas): 16 threads**"
    for column in columns.shown(sample.rows):
        assert f"- **{column.title(sample.run.metric)}**: " in md


def test_integer_columns_print_as_integers(tmp_path):
    case = Case("numpy", "eager", "cpu", "1x1x10")
    folder = write_run(tmp_path / "tiny", [start(), Loaded(case, {"kernel": "k"}, 5), *_blocks(case, 3),
                                           Finish("", True, 0)])  # fmt: skip
    view = cases.load(folder)
    header, body = table(tables.markdown(view))
    assert body[0][header.index("params")] == "5"  # not "5.00"
    details, dbody = table(tables.markdown(view), "## Details")
    assert dbody[0][details.index("calls/round")] == "3"
    line = next(csv.DictReader(io.StringIO(tables.csv_text(view.table))))
    assert (line["params"], line["step_repeats"], line["step_calls_per_round"]) == ("5", "2", "3")


def _blocks(case: Case, calls: int) -> list[Block]:
    return [Block(case, "train_step", r, calls, [1e-4, 1.1e-4, 0.9e-4]) for r in range(2)]


def test_terminal_summary_is_the_main_table(sample, tmp_path):
    written, summary = render(copy_records(tmp_path / "run"), plots=False)
    assert (tmp_path / "run" / "summary.txt").read_text() == "\n".join(summary) + "\n"
    assert summary[0].startswith("warning: thread pools not at the requested 1")
    assert re.split(r"\s{2,}", summary[1]) == MAIN
    listed = [line.split()[:3] for line in summary[2:] if not line.startswith(" ") and "overhead" not in line]
    assert listed == [[r["backend"], r["mode"], r["device"]] for r in sample.rows]
    assert summary[-1].startswith("harness overhead per timed call: ")
    diverged = summary.index(next(s for s in summary if s.startswith("torch-cell") and " cuda " in s and "eager" in s))
    assert "diverged: seed 3 at step 187" in summary[diverged + 1]


def test_csv_has_every_row_and_the_run_level_fields(sample):
    text = tables.csv_text(sample.table)
    lines = list(csv.DictReader(io.StringIO(text)))
    assert list(lines[0]) == columns.CSV_COLUMNS
    assert [(x["backend"], x["mode"], x["device"]) for x in lines] == [
        (r["backend"], r["mode"], r["device"]) for r in sample.rows
    ]
    for line, row in zip(lines, sample.rows):
        assert line["status"] == row["status"] and line["outcome"] == columns.outcome_cell(row)
        step = cases.finite(row["step_median_s"])
        assert (float(line["step_median_s"]) if line["step_median_s"] else None) == step  # every digit kept
        for name in ("run", "path", "host", "cpu", "commit", "options", "threads", "versions"):
            assert line[name], name
        assert line["metric_name"] == "held_out_mse" and line["gpu"] == "NVIDIA H200"
    assert next(x for x in lines if x["backend"] == "tf-cell")["reason"].startswith("RuntimeError: boom | a pipe\n")
    other = tables.csv_text(cases.load(SAMPLE_1).table)
    assert other.splitlines()[0] == text.splitlines()[0]  # CSVs of different runs stack


@pytest.mark.parametrize(
    "value,text",
    [(None, ""), (0, "0"), (0.5, "0.500"), (1.2345, "1.23"), (12.345, "12.3"), (1234.5, "1234"), (-1000, "-1000"),
     (99999, "99999"), (123456789, "1.23e+08"), (1e40, "1.00e+40"), (0.000123, "1.23e-04"), (float("nan"), ""),
     (float("inf"), "∞")],
)  # fmt: skip
def test_numbers_have_three_significant_digits(value, text):
    assert columns.num(value) == text


def test_md_cell_escapes_pipes_and_newlines():
    assert columns.md_cell("a | b\nc\r\n  d") == "a \\| b c d"


# ---- what a run did not finish ----


def test_incomplete_run_says_what_was_never_reached(tmp_path):
    never = Case("torch-rnn", "compile", "cpu", SIZE)

    def stop(recs: list) -> list:
        recs = [dataclasses.replace(r, cases=[*r.cases, never]) if isinstance(r, records.Start) else r for r in recs]
        cut = [r for r in recs if not isinstance(r, Finish)]
        cut = [r for r in cut if not (isinstance(r, Training) and r.case.device == "cuda")]
        return [r for r in cut if not (isinstance(r, Training) and r.case.backend == "numpy" and r.seed == 4)]

    result = cases.load(copy_records(tmp_path / "run", stop))
    assert any("incomplete" in w for w in result.run.warnings)
    keyed = by_key(result)
    assert "never reached before the run stopped: accuracy" in keyed[("torch-rnn", "eager", "cuda")]["notes"]
    assert not any("never reached" in n for n in keyed[("numpy", "eager", "cpu")]["notes"])
    assert "accuracy over 4 of 5 seeds" in keyed[("numpy", "eager", "cpu")]["notes"]
    planned = keyed[("torch-rnn", "compile", "cpu")]  # planned in the start record, never begun
    assert planned["status"] == "not reached" and cases.skipped(planned)
    assert ("torch-rnn", "cuda-graph", "cpu") not in keyed  # not planned: not a row
    md = tables.markdown(result)
    assert "this run is incomplete" in md and "| torch-rnn | compile | cpu | not reached: " in md


def test_torn_last_line_is_reported(tmp_path):
    folder = copy_records(tmp_path / "run")
    with open(folder / records.FILE, "a") as f:
        f.write('{"kind":"training","case":')
    assert any("cut-off line" in w for w in cases.load(folder).run.warnings)


def test_a_second_task_labels_the_tables_and_plots(tmp_path):
    task = {**SIN_TO_COS.describe(), "name": "sin-shift", "target_label": "sin(t + π/4)",
            "metric": {"name": "held_out_mae", "label": "held-out MAE", "about": "mean absolute error"}}  # fmt: skip
    metrics = {("numpy", "eager", "cpu"): [0.1, 0.2, 0.3], ("jax-scan", "jit", "cpu"): [0.2, 0.3, 0.4]}
    folder = synthetic(tmp_path / "run", {k: (1e-3, 0.1) for k in metrics}, metrics, task)
    written, summary = render(folder, plots=False)
    md = (folder / "comparison.md").read_text()
    assert table(md)[0][8] == "held-out MAE" and "held-out MSE" not in md and "MSE" not in "".join(summary)
    assert "mean absolute error" in md
    assert {x["metric_name"] for x in csv.DictReader(io.StringIO((folder / "comparison.csv").read_text()))} == {
        "held_out_mae"
    }


# ---- files, plots, CLI ----


def test_render_writes_tables_summary_and_plots(tmp_path):
    folder = copy_records(
        tmp_path / "run", lambda recs: [r for r in recs if getattr(r, "case", None) is None or r.case.device == "cuda"]
    )  # fmt: skip - fewer panels
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
    result = cases.load(SAMPLE)
    skipped = [r for r in result.rows if cases.skipped(r)]
    assert plots.step_times(skipped, [result.run]) is None
    assert plots.speed_accuracy(skipped, [result.run], result.run.metric) is None


def test_tables_without_matplotlib(tmp_path):
    folder = copy_records(tmp_path / "run")
    code = "import sys; sys.modules['matplotlib'] = None\nfrom benchmarks.report.__main__ import main; sys.exit(main())"
    done = subprocess.run([sys.executable, "-c", code, str(folder)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "matplotlib is not installed" in done.stderr
    assert (folder / "comparison.md").exists() and not list(folder.glob("*.png"))


def test_cli_renders_a_folder(tmp_path):
    folder = copy_records(tmp_path / "run")
    done = cli(str(folder), "--no-plots")
    assert done.returncode == 0, done.stderr
    wrote = [line.removeprefix("wrote ") for line in done.stdout.splitlines() if line.startswith("wrote ")]
    assert wrote == [str(folder / n) for n in OUTPUTS[:3]]
    assert done.stdout.startswith("warning: thread pools")


def test_newest_run(tmp_path):
    runs = tmp_path / "runs"
    for name in ("20260101-000000-a", "20260102-000000-b", "20260103-000000-c.partial", "20260104-000000-d-incomplete"):
        synthetic(runs / name, {("numpy", "eager", "cpu"): (1e-3, 0.1)})
    (runs / "20260105-000000-e").mkdir()  # no records: not a run
    assert write.newest_run(tmp_path) == (runs / "20260102-000000-b").resolve()
    (tmp_path / "index.json").write_text(json.dumps({"runs": ["20260101-000000-a"], "latest": "20260101-000000-a"}))
    assert write.newest_run(tmp_path) == (runs / "20260101-000000-a").resolve()
    (tmp_path / "latest").symlink_to(Path("runs") / "20260104-000000-d-incomplete")
    assert write.newest_run(tmp_path) == (runs / "20260104-000000-d-incomplete").resolve()
    with pytest.raises(records.RecordError, match="no run found"):
        write.newest_run(tmp_path / "nothing")


# ---- committed reference runs and sweeps ----


def _is_sweep(folder: Path) -> bool:
    return bool(records.read(folder).start.options.get("sweep"))


FOLDERS = sorted(p for p in REFERENCE.iterdir() if p.is_dir() and write.is_run(p))
REFERENCE_RUNS = [p for p in FOLDERS if not _is_sweep(p)]
REFERENCE_SWEEPS = [p for p in FOLDERS if p not in REFERENCE_RUNS]


def test_the_reference_holds_the_gpu_runs_and_both_sweeps():
    names = {p.name for p in REFERENCE_RUNS}
    assert {"h200-20261127-234442", "h200-large-20261127-234633", "cpu-20261127-095840-vm"} <= names
    assert any(p.name.startswith("cpu-sweep") for p in REFERENCE_SWEEPS)
    assert any(p.name.startswith("h200-sweep") for p in REFERENCE_SWEEPS)


def _main_tables(md: str) -> str:
    return md.split("## Results", 1)[1].split("## Columns", 1)[0]


@pytest.mark.parametrize("folder", REFERENCE_RUNS, ids=lambda p: p.name)
def test_every_reference_run_renders_as_committed(folder, tmp_path):
    written, summary = render(folder, tmp_path, plots=False)  # the plots are tested on the samples
    assert [p.name for p in written] == OUTPUTS[:3]
    md = (tmp_path / "comparison.md").read_text()
    header, body = table(md)
    main = MAIN if "model" not in header else [*MAIN[:3], "model", *MAIN[3:]]  # a column where models differ
    step = header.index("step (ms)")
    assert header == main and body and all(not c[step].startswith("failed") for c in body)
    assert _main_tables(md) == _main_tables((folder / "comparison.md").read_text()), "re-render the reference"


@pytest.mark.parametrize("folder", REFERENCE_SWEEPS, ids=lambda p: p.name)
def test_every_reference_sweep_renders_as_committed(folder, tmp_path):
    written, _ = render(folder, tmp_path, plots=False)  # the sweep's plots are tested in test_frame.py
    assert {p.name for p in written} == {"sweep.csv", "sweep.md"}

    def tables_of(md: str) -> str:
        return md.split("## Files")[0]

    assert tables_of((tmp_path / "sweep.md").read_text()) == tables_of((folder / "sweep.md").read_text())


# ---- merge ----


def test_merge_cpu_and_gpu_runs_in_one_table(tmp_path):
    out = tmp_path / "merged"
    runs = [REFERENCE / "cpu-20261127-095840-vm", REFERENCE / "h200-20261127-234442"]
    written = merge.write_merge(runs, out, plots=False)  # the plot is tested on small runs below
    assert [p.name for p in written] == ["comparison.md", "comparison.csv", "summary.txt"]
    md = (out / "comparison.md").read_text()
    header, body = table(md)
    assert header[:4] == ["backend", "mode", "device", "machine"] and "size" not in header
    assert any(c[2] == "cuda" and c[3] == "vm · H200" for c in body)
    assert {c[3] for c in body if c[2] == "cpu"} == {"vm · AMD EPYC", "vm · Intel Xeon"}
    assert md.count("## Machine: ") == 2 and len(table(md, "## Details")[1]) == len(body)
    assert "'× floor': each row against its own run on the same machine" in md
    own = {p.name: by_key(cases.load(p)) for p in runs}
    lines = list(csv.DictReader(io.StringIO((out / "comparison.csv").read_text())))
    assert len(lines) == sum(len(k) for k in own.values())
    for line in lines:  # each row's speed-up is against its own run's torch-rnn eager
        row = own[line["run"]][(line["backend"], line["mode"], line["device"])]
        assert float(line["speedup"]) == pytest.approx(row["speedup"])
    assert {line["gpu"] for line in lines} == {"", "NVIDIA H200"}


def test_merge_across_sizes_shows_the_size_and_tells_same_named_runs_apart(tmp_path):
    a = synthetic(tmp_path / "one" / "run", {("numpy", "eager", "cpu"): (1e-3, 0.1)})
    b = synthetic(tmp_path / "two" / "run", {("numpy", "eager", "cpu"): (2e-3, 0.1)}, size="64x4x20")
    written = merge.write_merge([a, b], tmp_path / "merged")
    assert [p.name for p in written] == ["comparison.md", "comparison.csv", "summary.txt", "step_times.png"]
    assert written[3].read_bytes().startswith(PNG)
    header, body = table(written[0].read_text())
    assert "size" in header and {c[header.index("size")] for c in body} == {SIZE, "64x4x20"}
    machines = {c[header.index("machine")] for c in body}
    assert machines == {f"? {a}", f"? {b}"}  # same name, same host: the paths tell them apart
    with pytest.raises(records.RecordError, match="the same run given twice"):
        merge.write_merge([a, a], tmp_path / "again")


def test_merge_says_what_it_does_with_a_sweep(tmp_path):
    written = merge.write_merge(
        [SAMPLE, REFERENCE / "h200-sweep-allmodes-20261128-014530"], tmp_path / "merged", plots=False
    )
    md = written[0].read_text()
    assert "h200-sweep-allmodes-20261128-014530 is a size sweep (11 sizes): each size is a row of its own" in md
    assert "size" in table(md)[0]


def test_merge_default_output_is_the_results_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(merge, "DEFAULT_OUT", tmp_path / "merged")
    written = merge.write_merge([SAMPLE, SAMPLE_1], plots=False)
    assert all(p.parent == tmp_path / "merged" for p in written)


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


def test_report_imports_no_framework_and_draws_without_pyplot(tmp_path):
    folder = synthetic(tmp_path / "run", {("numpy", "eager", "cpu"): (1e-3, 0.1)})
    code = (
        "import sys\nfrom benchmarks.report import render, compare, merge, plots, sweep, frame\n"
        "bad = [m for m in ('torch', 'jax', 'tensorflow', 'keras', 'numba', 'pytest', 'scipy') if m in sys.modules]\n"
        f"render({str(folder)!r})\n"
        "print(bad, 'matplotlib.pyplot' in sys.modules, 'matplotlib' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[] False True", done.stdout + done.stderr
    assert (folder / "step_times.png").read_bytes().startswith(PNG)


def test_the_report_uses_one_writer_and_no_pyplot():
    report = ROOT / "benchmarks" / "report"
    for file in report.glob("*.py"):
        text = file.read_text()
        assert "import matplotlib.pyplot" not in text and "plt." not in text, file.name
        assert ".write_text(" not in text.replace("atomic.write_text(", ""), file.name
        assert "open(" not in text, file.name


def test_each_device_is_measured_against_its_own_floor(tmp_path):
    """numba is the CPU's floor, the Triton kernel the GPU's: a cuda row's × floor is over the triton row's step."""
    steps = {
        ("numba", "njit", "cpu"): (10e-6, 1.0),
        ("torch-rnn", "eager", "cpu"): (1e-3, 0.01),
        ("triton", "kernel", "cuda"): (20e-6, 1.0),
        ("torch-rnn", "eager", "cuda"): (2e-3, 0.01),
        ("torch-rnn", "cuda-graph", "cuda"): (100e-6, 1.0),
    }
    folder = synthetic(tmp_path / "run", steps)
    keyed = {(r["backend"], r["mode"], r["device"]): r for r in cases.load(folder).rows}
    assert keyed[("torch-rnn", "eager", "cpu")]["floor_ratio"] == pytest.approx(100)
    assert keyed[("torch-rnn", "cuda-graph", "cuda")]["floor_ratio"] == pytest.approx(5)
    assert keyed[("triton", "kernel", "cuda")]["floor_ratio"] == pytest.approx(1)
