"""The size sweep: its options, its budgets, and tiny real sweeps (numpy and torch-rnn eager) with the report."""

from __future__ import annotations

import csv
import time

import pytest

from benchmarks import records, sweep
from benchmarks.options import OptionError
from benchmarks.report.sweep import render_sweep

RUN_COLUMNS = ("host", "cpu", "gpu", "commit", "threads", "versions")


def test_sizes_parse_in_order_without_repeats():
    assert sweep.parse_sizes("32x1x10, 64X4X20,32x1x10") == ((32, 1, 10), (64, 4, 20))
    _, chosen = sweep.parse({"sizes": "20x8x100"})
    assert chosen.sizes == ((20, 8, 100),)


@pytest.mark.parametrize("raw", ["32x1", "32x1x10x2", "axbxc", "", "32x1x10,", "32x1.5x10"])
def test_a_malformed_size_is_a_one_line_error_naming_the_option_and_form(raw):
    with pytest.raises(OptionError) as err:
        sweep.parse({"sizes": raw})
    message = str(err.value)
    assert message.startswith("--sizes") and sweep.SIZE_FORM in message and "\n" not in message


@pytest.mark.parametrize(
    ("raw", "named"), [("5000x1x10", "hidden_size 5000"), ("32x1x20000", "seq_len 20000"), ("32x0x10", "batch_size 0")]
)
def test_a_size_beyond_the_task_limits_is_refused(raw, named):
    with pytest.raises(OptionError, match=f"--sizes: '{raw}': {named} is out of range") as err:
        sweep.parse({"sizes": raw})
    assert "hidden_size 1..4096" in str(err.value) and "\n" not in str(err.value)


def test_presets():
    assert sweep.parse({"preset": "seed"})[1].sizes == ((32, 1, 10),)
    assert sweep.parse({"preset": "torch7-rnn"})[1].sizes == ((20, 8, 100),)
    default = sweep.parse({})[1].sizes
    assert default == sweep.PRESETS["default"] and sweep.SEED in default
    assert [max(s[i] for s in default) for i in range(3)] == [1024, 256, 100]
    assert len(default) < 3 * 3 * 3  # not the full product
    for axis in range(3):  # each axis is swept from the seed's point, the others fixed
        line = [s for s in default if all(s[i] == sweep.SEED[i] for i in range(3) if i != axis)]
        assert len(line) >= 3
    assert any(all(a > b for a, b in zip(s, sweep.SEED)) for s in default)  # a diagonal


def test_preset_and_option_errors():
    with pytest.raises(OptionError, match="--preset: unknown 'huge'; known: seed, torch7-rnn, default"):
        sweep.parse({"preset": "huge"})
    with pytest.raises(OptionError, match="--sizes or --preset, not both"):
        sweep.parse({"sizes": "32x1x10", "preset": "seed"})
    with pytest.raises(OptionError, match="--point-budget-s must be a number"):
        sweep.parse({"point_budget_s": "fast"})
    with pytest.raises(OptionError, match="unknown option"):
        sweep.parse({"hidden_size": 64})  # sizes come from --sizes or --preset


def test_the_command_line_reports_a_bad_size_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        sweep.main(["--sizes=32x1"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"--sizes: '32x1' is not {sweep.SIZE_FORM}")


def test_time_only_by_default():
    opts, chosen = sweep.parse({})
    assert not chosen.accuracy and opts.train_steps == sweep.TIMING_WINDOWS and opts.repeats == 2
    opts, chosen = sweep.parse({"accuracy": "yes"})
    assert chosen.accuracy and opts.train_steps == 300  # the seed's training length


def test_budget_helpers():
    assert sweep.covers((64, 4, 10), (32, 4, 10)) and not sweep.covers((64, 1, 10), (32, 4, 10))
    measured = {(32, 1, 10): 0.001, (64, 1, 10): 0.002}
    seconds, ref = sweep.predicted_call_s((128, 1, 10), measured, "cpu")
    assert ref == (64, 1, 10) and seconds == pytest.approx(0.002 * sweep.work((128, 1, 10)) / sweep.work(ref))
    gpu, _ = sweep.predicted_call_s((128, 1, 10), measured, "cuda")
    assert gpu < seconds  # a GPU's time grows more slowly than its work
    assert sweep.predicted_call_s((16, 1, 10), measured, "cpu") is None  # nothing smaller was measured
    assert sweep.estimated_bytes((1024, 256, 100)) > sweep.estimated_bytes((32, 1, 10)) > 4 * 1121


def test_budget_timer_fits_the_budget():
    timer = sweep.BudgetTimer(0.02)
    values = timer(lambda: time.sleep(0.001), 10_000, 5, 1)
    assert 2 <= len(values) <= 25 and timer.elapsed < 0.5 and timer.last == values
    assert len(timer(lambda: None, 50, 0, 1)) == 50  # at most the rounds asked for
    slow = sweep.BudgetTimer(0.005)
    assert len(slow(lambda: time.sleep(0.01), 100, 0, 1)) == 1  # one round alone is over the budget


def _sweep(tmp_path, **given):
    raw = {"device": "cpu", "modes": "eager", "point_budget_s": "0.05", "warmup_rounds": "1", **given}
    opts, chosen = sweep.parse({"results_dir": str(tmp_path), "fresh_caches": "no", **raw})
    lines: list[str] = []
    result = sweep.run_sweep(opts, chosen, progress=lines.append, argv=["test"])
    assert result.complete
    return result.folder, result.published, lines


def test_a_sweep_writes_records_csv_markdown_and_plots(tmp_path):
    sizes = "16x1x5,32x1x10,64x8x20"  # 64x8x20 is over the memory limit below: skipped and marked
    folder, published, lines = _sweep(tmp_path, backends="numpy,torch-rnn", sizes=sizes, max_memory_mb="0.2")
    assert published and folder.parent == tmp_path / "sweeps" / "runs"
    assert (tmp_path / "sweeps" / "latest").resolve() == folder.resolve()
    run = records.read(folder)
    assert run.complete and run.start.options["sizes"] == sizes.split(",")
    cases = [(c.backend, c.size) for c in run.cases()]
    assert sorted(cases) == sorted((b, s) for b in ("numpy", "torch-rnn") for s in sizes.split(","))
    blocks = {(b.case.backend, b.case.size, b.op, b.repeat) for b in run.of(records.Block)}
    assert ("torch-rnn", "32x1x10", "predict", 1) in blocks and ("numpy", "16x1x5", "train_step", 0) in blocks
    skipped = run.of(records.Skipped)
    assert {(s.case.backend, s.case.size, s.status) for s in skipped} == {
        ("numpy", "64x8x20", "over-budget"),
        ("torch-rnn", "64x8x20", "over-budget"),
    }
    assert all("--max-memory-mb=0.2" in s.reason for s in skipped)
    point_lines = [line for line in lines if "@cpu" in line]
    assert len(point_lines) == 6 and any("64x8x20" in line and "skipped, over-budget" in line for line in point_lines)

    with open(folder / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {(r["backend"], r["size"]) for r in rows} == set(cases)
    assert all(r[c] != "" for r in rows for c in ("host", "cpu", "commit", "threads", "versions"))
    assert set(RUN_COLUMNS) <= set(rows[0]) and rows[0]["threads"] == "1" and "numpy=" in rows[0]["versions"]
    measured = [r for r in rows if r["status"] == "measured"]
    assert len(measured) == 4 and all(float(r["train_step_median_us"]) > 0 for r in measured)
    for r in measured:
        hidden, batch, seq_len = (int(r[k]) for k in ("hidden", "batch", "seq_len"))
        steps = batch * seq_len / (float(r["train_step_median_us"]) * 1e-6)
        assert float(r["train_step_seq_steps_per_s"]) == pytest.approx(steps, rel=1e-3)
    assert all(r["status"] == "over-budget" and "memory" in r["reason"] for r in rows if r["size"] == "64x8x20")

    md = (folder / "sweep.md").read_text()
    winners = [line for line in md.splitlines() if line.startswith("| 32x1x10 |")]
    assert len(winners) == 2  # train_step and predict on the CPU
    for line in winners:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert {cells[1], cells[3]} == {"numpy eager", "torch-rnn eager"} and "×" in cells[5] and "slower" in cells[5]
    assert "| 64x8x20 | — |" in md and "No size was measured on both devices." in md

    names = {p.name for p in render_sweep(folder)}
    assert {"sweep.csv", "sweep.md", "sweep-train_step.png", "sweep-predict.png"} <= names
    assert {"sweep-winners.png", "sweep-throughput.png"} <= names
    for name in names - {"sweep.csv", "sweep.md"}:
        assert (folder / name).read_bytes()[:4] == b"\x89PNG"
    assert sweep.main(["report", str(folder)]) == 0


def test_a_case_over_the_call_limit_is_not_tried_at_larger_sizes(tmp_path):
    sizes = "16x1x5,32x1x10,8x1x20"  # taken by work: 16x1x5, 8x1x20, 32x1x10
    folder, _, lines = _sweep(tmp_path, backends="numpy", sizes=sizes, max_call_s="1e-6")
    run = records.read(folder)
    assert {(b.case.size, b.repeat) for b in run.of(records.Block)} == {("16x1x5", 0)}  # one repeat once over
    skipped = {s.case.size: s for s in run.of(records.Skipped)}
    assert set(skipped) == {"8x1x20", "32x1x10"} and {s.status for s in skipped.values()} == {"over-budget"}
    assert skipped["8x1x20"].reason.startswith("train_step predicted")  # from 16x1x5's time, scaled by work
    assert skipped["8x1x20"].reason.endswith("> --max-call-s=1e-06")
    assert skipped["32x1x10"].reason.startswith("over budget at 16x1x5 (train_step")  # larger on every axis
    rows = (folder / "sweep.csv").read_text().splitlines()
    assert len(rows) == 4 and sum(",over-budget," in row for row in rows) == 2


def test_the_budget_timer_reports_seconds_per_call_of_rounds_that_make_several_calls():
    """A round makes `calls` calls itself (benchmarks.harness.timing.rounds_of); the timer must time each
    round once and divide by `calls`, as the bench's timer does."""
    import time

    from benchmarks.harness.timing import plain_timer, rounds_of
    from benchmarks.sweep import BudgetTimer

    made = []

    def step(k):
        made.append(k)
        time.sleep(0.001)

    run_round = rounds_of(step, [(0,), (1,)], 4)
    swept = BudgetTimer(10.0)(run_round, rounds=3, warmup=0, calls=4)
    assert len(made) == 12 and len(swept) == 3
    plain = plain_timer(run_round, rounds=3, warmup=0, calls=4)
    assert all(0.0009 < v < 0.003 for v in swept + plain), (swept, plain)
