"""The one table of measurements (`benchmarks.report.frame`) and the reports that are views of it: a benchmark
run, a sweep and a schema-1 run give one DataFrame with the documented columns and dtypes; the same records
read as a benchmark and as a sweep give the same step time; the sweep's report (winners and ties, accuracy,
CSV, plots) from the same case table."""

from __future__ import annotations

import csv
import dataclasses
import io

import numpy as np
import pandas as pd
import pytest

from benchmarks import records
from benchmarks.records import Block, Case, Finish, FirstStep, Loaded, Skipped, Start, Training
from benchmarks.report import cases, frame, render, sweep, tables
from benchmarks.report.frame import COLUMNS
from tests.data.synthetic import REFERENCE, SAMPLE, SAMPLE_1, cli, copy_records, start, table, write_run

SWEEP = REFERENCE / "h200-sweep-allmodes-20261128-014530"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return frame(SAMPLE, SWEEP, SAMPLE_1)


def test_one_table_with_the_documented_columns_and_dtypes(df):
    assert list(df.columns) == list(COLUMNS)
    assert {name: str(dtype) for name, dtype in df.dtypes.items()} == COLUMNS
    assert set(df["run"]) == {"sample_records", SWEEP.name, "sample_run"}
    assert set(df["kind"]) == {"block", "first_step", "training", "memory", "skipped", "overhead"}
    for column in ("run", "path", "sweep", "host", "cpu", "versions", "metric_name"):  # run-level: one value a run
        assert (df.groupby("path")[column].nunique(dropna=False) == 1).all(), column
    assert df.loc[df["run"] == SWEEP.name, "sweep"].all() and not df.loc[df["run"] != SWEEP.name, "sweep"].any()
    import benchmarks.report

    assert "frame(*run_dirs) -> pandas.DataFrame" in benchmarks.report.__doc__  # documented, with an example
    assert ">>> df = frame(" in benchmarks.report.__doc__


def test_each_record_is_one_row(df):
    for folder in (SAMPLE, SWEEP, SAMPLE_1):
        run = records.read(folder)
        mine = df[df["path"] == str(folder.resolve())]
        counts = mine["kind"].value_counts().to_dict()
        for kind, cls in (("block", Block), ("first_step", FirstStep), ("training", Training), ("skipped", Skipped)):
            planned = sum(1 for c in run.start.cases if c not in set(run.cases())) if kind == "skipped" else 0
            assert counts.get(kind, 0) == len(run.of(cls)) + planned, (folder.name, kind)
        blocks = mine[mine["kind"] == "block"].sort_values("order")
        for record, (_, row) in zip(run.of(Block), blocks.iterrows()):
            assert row["seconds"] == pytest.approx(float(np.median(record.seconds)))
            assert (row["op"], row["repeat"], row["rounds"]) == (record.op, record.repeat, len(record.seconds))
            assert (row["backend"], row["size"]) == (record.case.backend, record.case.size)
            hidden, batch, seq_len = (int(p) for p in record.case.size.split("x"))
            assert (row["hidden"], row["batch"], row["seq_len"]) == (hidden, batch, seq_len)


def test_the_documented_example_runs():
    df = frame("results/reference/cpu-20261128-022118-vm", "results/reference/cpu-sweep-20261128-023502-vm")
    blocks = df[(df.kind == "block") & (df.op == "train_step")]
    step = blocks.groupby(["run", "backend", "mode", "device", "size"]).seconds.median()
    seeds = df[df.kind == "training"].groupby(["backend", "mode"]).outcome.value_counts()
    table_ = cases.load("results/reference/cpu-20261128-022118-vm").table
    numba = table_[table_["backend"] == "numba"].iloc[0]
    assert step[("cpu-20261128-022118-vm", "numba", "njit", "cpu", "32x1x10")] == numba["step_median_s"]
    assert seeds[("torch-rnn", "eager")].to_dict() == {"learned": 9, "did-not-learn": 1}


def test_a_folder_named_twice_is_read_once():
    assert len(frame(SAMPLE, SAMPLE)) == len(frame(SAMPLE))


# ---- the same records as a benchmark and as a sweep ----


def _as_sweep(recs: list) -> list:
    return [dataclasses.replace(r, options={**r.options, "sweep": True}) if isinstance(r, Start) else r for r in recs]


def test_the_same_records_give_the_same_step_time_as_a_benchmark_and_as_a_sweep(tmp_path):
    bench = copy_records(tmp_path / "bench")
    swept = copy_records(tmp_path / "sweep", _as_sweep)
    render(bench, plots=False)
    written, _ = render(swept, plots=False)
    assert {p.name for p in written} == {"sweep.csv", "sweep.md"} and not (swept / "comparison.md").exists()
    main = {(x["backend"], x["mode"], x["device"]): x for x in csv.DictReader(open(bench / "comparison.csv"))}
    points = {(x["backend"], x["mode"], x["device"]): x for x in csv.DictReader(open(swept / "sweep.csv"))}
    timed = [k for k, x in main.items() if x["step_median_s"]]
    assert timed and set(main) == set(points)
    for key in timed:
        assert float(points[key]["train_step_median_us"]) == pytest.approx(float(main[key]["step_median_s"]) * 1e6)
        assert points[key]["step_median_s"] == main[key]["step_median_s"]  # the same column, the same digits
    md = (swept / "sweep.md").read_text()
    cpu = cases.load(bench).table
    fastest = cpu[cpu["device"] == "cpu"].iloc[0]
    assert f"| 32x1x10 | {fastest['backend']} {fastest['mode']} | {sweep._time(fastest['step_median_s'])} |" in md


# ---- the sweep's report ----


def _point(case: Case, step: float, spread: float) -> list:
    """Two repeats of 5 rounds: medians step * (1 -+ spread / 2)."""
    out: list = [Loaded(case, {"kernel": "k"}, 100), FirstStep(case, 0.1)]
    for op, factor in (("train_step", 1.0), ("predict", 0.3)):
        for r, scale in enumerate((1 - spread / 2, 1 + spread / 2)):
            out.append(Block(case, op, r, 1, [step * factor * scale * f for f in (0.95, 1.0, 1.0, 1.0, 1.05)]))
    return out


def sweep_run(folder, points: dict, trainings: list | None = None, accuracy: bool = False):
    cases_ = [Case(b, m, d, s) for (b, m, d, s) in points]
    recs: list = [start({"sweep": True, "repeats": 2, "accuracy": accuracy}, cases=cases_)]
    for case, (step, spread) in zip(cases_, points.values()):
        recs += _point(case, step, spread)
    return write_run(folder, [*recs, *(trainings or []), Finish("", True, 0)])


def test_a_winner_within_the_noise_reads_as_a_tie(tmp_path):
    timings = {"32x1x10": ((1e-5, 0.02), (1e-4, 0.02)), "512x1x10": ((869e-6, 0.3), (887e-6, 0.3)),
               "1024x1x10": ((2e-3, 0.01), (2.1e-3, 0.01))}  # fmt: skip
    points = {}
    for size, (floor, jit) in timings.items():
        points[("numba", "njit", "cpu", size)], points[("jax-scan", "jit", "cpu", size)] = floor, jit
    folder = sweep_run(tmp_path / "sweep", points)
    render(folder, plots=False)
    md = (folder / "sweep.md").read_text()
    _, rows = table(md, "## Winners: train_step on cpu")
    margin = {r[0]: r[5] for r in rows}
    assert margin["32x1x10"] == "10.00× (900% slower)"
    assert margin["512x1x10"].startswith("tie: 1.02× (2% slower), within the noise")  # 2% apart, 30% noise
    assert margin["1024x1x10"] == "1.05× (5% slower)"  # 5% apart, 1% noise: a winner
    assert "Time only" in md and "## Accuracy" not in md


def test_a_sweep_that_trained_shows_metric_and_outcome(tmp_path):
    learned, diverged, flat = (Case(b, m, "cpu", "32x1x10") for b, m in (("numpy", "eager"), ("numba", "njit"),
                                                                          ("jax-scan", "jit")))  # fmt: skip
    points = {
        (c.backend, c.mode, c.device, c.size): (1e-4 * (i + 1), 0.01) for i, c in enumerate((learned, diverged, flat))
    }
    trainings = [Training(learned, 0, [0.5, 0.1], 0.01, None, 1.0, outcome="learned"),
                 Training(diverged, 0, [0.57], None, 0, 1.0, outcome="diverged"),
                 Training(flat, 0, [0.5, 0.5], 0.573, None, 1.0, outcome="did-not-learn")]  # fmt: skip
    folder = sweep_run(tmp_path / "sweep", points, trainings, accuracy=True)
    render(folder, plots=False)
    md = (folder / "sweep.md").read_text()
    assert "Time only" not in md and "Trained at every measured point" in md
    _, rows = table(md, "## Accuracy")
    got = {r[1]: (r[2], r[3]) for r in rows}
    assert got == {
        "numpy eager @cpu": ("0.0100", "learned 1/1"),
        "numba njit @cpu": ("none learned", "learned 0/1, 1 diverged"),
        "jax-scan jit @cpu": ("none learned", "learned 0/1, 1 did not learn"),
    }
    lines = {x["backend"]: x for x in csv.DictReader(open(folder / "sweep.csv"))}
    assert lines["numba"]["outcome"] == "learned 0/1, 1 diverged" and lines["numba"]["diverged"] == "1"
    assert lines["jax-scan"]["did_not_learn"] == "1" and lines["numpy"]["metric_median"] == "0.01"
    assert all(x["outcome"] for x in lines.values())  # never blank where it trained


def test_the_report_command_renders_a_sweep_folder_as_a_sweep(tmp_path):
    folder = sweep_run(tmp_path / "sweep", {("numpy", "eager", "cpu", "32x1x10"): (1e-4, 0.01),
                                            ("numpy", "eager", "cpu", "64x1x10"): (2e-4, 0.01)})  # fmt: skip
    done = cli(str(folder))
    assert done.returncode == 0, done.stderr
    names = {p.name for p in folder.iterdir()}
    assert {"sweep.md", "sweep.csv", "sweep-train_step.png", "sweep-winners.png", "sweep-throughput.png"} <= names
    assert "comparison.md" not in names and "cpu 64x1x10: numpy eager" in done.stdout
    for name in names - {"sweep.md", "sweep.csv", records.FILE}:
        assert (folder / name).read_bytes().startswith(PNG), name


def test_sweep_csv_throughput_and_run_columns(tmp_path):
    folder = sweep_run(tmp_path / "sweep", {("numpy", "eager", "cpu", "32x4x10"): (1e-4, 0.01)})
    lines = list(csv.DictReader(io.StringIO(sweep.csv_text(cases.load(folder)))))
    (line,) = lines
    assert list(line)[: len(tables.csv_frame(cases.load(folder).table).columns)] == list(
        tables.csv_frame(cases.load(folder).table).columns
    )  # the run CSV's columns first, the same names
    assert float(line["train_step_seq_steps_per_s"]) == pytest.approx(
        4 * 10 / (float(line["train_step_median_us"]) * 1e-6)
    )
    assert line["status"] == "measured" and line["threads"] == "" and line["hidden"] == "32"
