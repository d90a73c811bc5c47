"""The size sweep: its options (from the one options table, command "sweep"), its budgets (`sweep.Budgets`, the
harness's policy), and tiny real sweeps (numpy and torch-rnn eager) with their records and report."""

from __future__ import annotations

import csv

import pytest

from benchmarks import options, records, sweep
from benchmarks.names import work as work_of
from benchmarks.options import OptionError
from benchmarks.plan import OPS, Work
from benchmarks.records import Block, Case

RUN_COLUMNS = ("host", "cpu", "commit", "threads", "versions")


def test_sizes_parse_in_order_without_repeats():
    assert sweep.parse_sizes("32x1x10, 64X4X20,32x1x10") == ((32, 1, 10), (64, 4, 20))
    assert sweep.parse({"sizes": "20x8x100"}).sizes == ((20, 8, 100),)


@pytest.mark.parametrize("raw", ["32x1", "32x1x10x2", "axbxc", "32x1x10,", "32x1.5x10", ",", " "])
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
    from benchmarks.plan import sizes

    assert sizes(sweep.parse({"preset": "seed"})) == ((32, 1, 10),)
    assert sizes(sweep.parse({"preset": "torch7-rnn"})) == ((20, 8, 100),)
    default = sizes(sweep.parse({}))
    assert set(default) == set(sweep.PRESETS["default"]) and sweep.SEED in default
    assert list(default) == sorted(default, key=work_of)  # least work first
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
    with pytest.raises(OptionError, match="--hidden-size, --seq-len: the sweep's sizes are given by --sizes or"):
        sweep.parse({"hidden_size": 64, "seq_len": 5})  # not silently ignored
    with pytest.raises(OptionError, match="unknown option"):
        options.parse({"sizes": "32x1x10"})  # the benchmark has one size, from the task options


def test_the_sweep_takes_the_options_table_with_its_own_defaults():
    taken = {o.name for o in options.taken_by("sweep")}
    assert {"sizes", "preset", "point_budget_s", "max_call_s", "max_memory_mb", "budget_s"} <= taken
    assert {"backends", "modes", "device", "threads", "repeats", "results_dir"} <= taken
    assert "sizes" not in {o.name for o in options.taken_by("bench")}
    opts = sweep.parse({})
    assert opts.command == "sweep" and opts.seeds == 1 and opts.repeats == 2 and not opts.memory


def test_the_command_line_reports_a_bad_value_in_one_line(capsys, tmp_path):
    assert sweep.main(["--sizes=32x1", f"--results-dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"sweep: --sizes: '32x1' is not {sweep.SIZE_FORM}"]
    with pytest.raises(SystemExit) as exit_:
        sweep.main(["--no-such-flag"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--no-such-flag" in err[0] and err[0].endswith("(see --help)")
    assert not any(tmp_path.iterdir())  # refused before any folder was made


def test_time_only_by_default():
    opts = sweep.parse({})
    assert not opts.accuracy and opts.train_steps == sweep.TIMING_WINDOWS and opts.repeats == 2
    opts = sweep.parse({"accuracy": "yes"})
    assert opts.accuracy and opts.train_steps == 300  # the seed's training length


def test_budget_helpers():
    assert sweep.covers((64, 4, 10), (32, 4, 10)) and not sweep.covers((64, 1, 10), (32, 4, 10))
    measured = {(32, 1, 10): 0.001, (64, 1, 10): 0.002}
    seconds, ref = sweep.predicted_call_s((128, 1, 10), measured, "cpu")
    assert ref == (64, 1, 10) and seconds == pytest.approx(0.002 * work_of((128, 1, 10)) / work_of(ref))
    gpu, _ = sweep.predicted_call_s((128, 1, 10), measured, "cuda")
    assert gpu < seconds  # a GPU's time grows more slowly than its work
    assert sweep.predicted_call_s((16, 1, 10), measured, "cpu") is None  # nothing smaller was measured
    assert sweep.estimated_bytes((1024, 256, 100)) > sweep.estimated_bytes((32, 1, 10)) > 4 * 1121


def _case(size: str) -> Case:
    return Case("numpy", "eager", "cpu", size)


def _block(budgets: sweep.Budgets, size: str, op: str, repeat: int, per_call: float | None, wall: float = 0.1) -> str:
    """Ask the budgets about one block, and (unless skipped) tell them what it cost; the reason it was skipped."""
    work = Work("block", _case(size), op, repeat)
    reason = budgets.skip(work)
    record = None if per_call is None else Block(work.case, op, repeat, 1, [per_call] * 3)
    budgets.observe(work, None if reason else record, wall)  # the harness tells it in every case
    return reason


def test_a_point_over_the_memory_limit_is_skipped_at_every_unit():
    budgets = sweep.Budgets(sweep.parse({"max_memory_mb": "0.2"}), progress=lambda line: None)
    reasons = [_block(budgets, "64x8x20", op, r, 1e-4) for r in range(2) for op in OPS]
    assert all(r == "estimated memory 0.378 MB > --max-memory-mb=0.2" for r in reasons), reasons
    assert budgets.skip(Work("training", _case("64x8x20"))) == "not timed at this size"
    assert budgets.skip(Work("memory", _case("64x8x20"))) == "not timed at this size"
    assert _block(budgets, "16x1x5", "train_step", 0, 1e-4) == ""  # a smaller point still runs


def test_the_budgets_stop_repeats_over_the_call_limit_and_skip_larger_sizes():
    budgets = sweep.Budgets(sweep.parse({"max_call_s": "0.01"}), progress=lambda line: None)
    assert _block(budgets, "16x1x5", "train_step", 0, 0.02) == ""
    assert _block(budgets, "16x1x5", "predict", 0, 0.001) == "one repeat is enough over --max-call-s"
    assert _block(budgets, "16x1x5", "train_step", 1, 0.02) == "one repeat is enough over --max-call-s"
    assert budgets.skip(Work("training", _case("16x1x5"))) == ""  # it was timed: it may train
    assert _block(budgets, "32x1x10", "train_step", 0, 0.02).startswith("over budget at 16x1x5 (train_step 0.02 s")
    predicted = _block(budgets, "8x1x20", "train_step", 0, 0.02)  # more work, not larger on every axis
    assert predicted.startswith("train_step predicted") and predicted.endswith("> --max-call-s=0.01")


def test_the_setup_and_sweep_budgets():
    budgets = sweep.Budgets(sweep.parse({"setup_budget_s": "1"}), progress=lambda line: None)
    assert _block(budgets, "16x1x5", "train_step", 0, 1e-4, wall=0.9) == ""  # 0.9 s beyond its timed rounds
    assert _block(budgets, "32x1x10", "train_step", 0, 1e-4).startswith("setup budget: 0.9 s of loading")
    budgets = sweep.Budgets(sweep.parse({"budget_s": "1"}), progress=lambda line: None)
    assert _block(budgets, "16x1x5", "train_step", 0, 1e-4) == ""
    budgets.began -= 2  # two seconds later
    assert _block(budgets, "16x1x5", "train_step", 1, 1e-4) == "sweep budget spent (--budget-s=1)"
    assert _block(budgets, "32x1x10", "train_step", 0, 1e-4) == "sweep budget spent (--budget-s=1)"


def test_a_block_gets_its_share_of_the_point_budget():
    opts = sweep.parse({"point_budget_s": "0.8", "repeats": "2"})
    assert sweep.Budgets(opts).block_budget_s(Work("block", _case("16x1x5"), "predict", 1)) == pytest.approx(0.2)


def _sweep(tmp_path, **given):
    raw = {"device": "cpu", "modes": "eager", "point_budget_s": "0.2", "warmup_rounds": "1", **given}
    opts = sweep.parse({"results_dir": str(tmp_path), "fresh_caches": "no", **raw})
    lines: list[str] = []
    result = sweep.run_sweep(opts, progress=lines.append, argv=["test"])
    assert result.complete, "\n".join(lines)
    return result.folder, result.published, lines


def test_a_sweep_writes_records_csv_markdown_and_plots(tmp_path):
    sizes = "16x1x5,32x1x10,64x8x20"  # 64x8x20 is over the memory limit below: skipped and marked
    folder, published, lines = _sweep(tmp_path, backends="numpy,torch-rnn", sizes=sizes, max_memory_mb="0.2")
    assert published and folder.parent == tmp_path / "sweeps" / "runs"
    assert (tmp_path / "sweeps" / "latest").resolve() == folder.resolve()
    run = records.read(folder)
    assert run.complete and run.start.options["sweep"] and run.start.options["sizes"] == sizes.split(",")
    planned = {(c.backend, c.size) for c in run.start.cases}
    assert planned == {(b, s) for b in ("numpy", "torch-rnn") for s in sizes.split(",")}
    blocks = run.of(Block)
    measured = {(b.case.backend, b.case.size, b.op, b.repeat) for b in blocks}
    assert measured == {
        (b, s, op, r) for b in ("numpy", "torch-rnn") for s in ("16x1x5", "32x1x10") for op in OPS for r in (0, 1)
    }
    budget = 0.2 / (len(OPS) * 2)
    for b in blocks:  # the rounds fit the block's share of the point budget (a round may end past it)
        assert 1 <= len(b.seconds) <= 100
        assert sum(b.seconds) * b.calls_per_round <= budget + 2 * max(b.seconds) * b.calls_per_round
    skipped = run.of(records.Skipped)
    assert {(s.case.backend, s.case.size, s.status) for s in skipped} == {
        ("numpy", "64x8x20", "over-budget"),
        ("torch-rnn", "64x8x20", "over-budget"),
    }
    assert all("--max-memory-mb=0.2" in s.reason for s in skipped)
    point_lines = [line for line in lines if "@cpu" in line]
    assert len(point_lines) == 6 and sum("64x8x20" in line and "skipped" in line for line in point_lines) == 2

    with open(folder / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {(r["backend"], r["size"]) for r in rows} == planned
    assert all(r[c] != "" for r in rows for c in RUN_COLUMNS) and rows[0]["threads"] == "1"
    assert "numpy=" in rows[0]["versions"]
    done = [r for r in rows if r["status"] == "measured"]
    assert len(done) == 4 and all(float(r["train_step_median_us"]) > 0 for r in done)
    for r in done:
        batch, seq_len = int(r["batch"]), int(r["seq_len"])
        steps = batch * seq_len / (float(r["train_step_median_us"]) * 1e-6)
        assert float(r["train_step_seq_steps_per_s"]) == pytest.approx(steps, rel=1e-3)
    assert all(r["status"] == "over-budget" and "memory" in r["reason"] for r in rows if r["size"] == "64x8x20")

    md = (folder / "sweep.md").read_text()
    winners = [line for line in md.splitlines() if line.startswith("| 32x1x10 |")]
    assert len(winners) == 2  # train_step and predict on the CPU
    for line in winners:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert {cells[1], cells[3]} == {"numpy eager", "torch-rnn eager"}
    assert "| 64x8x20 | — |" in md and "over-budget" in md

    names = {p.name for p in folder.iterdir()}
    assert {"sweep.csv", "sweep.md", "sweep-train_step.png", "sweep-predict.png"} <= names
    for name in names:
        if name.endswith(".png"):
            assert (folder / name).read_bytes()[:4] == b"\x89PNG"
    assert not {"comparison.md", "comparison.csv"} & names


def test_a_case_over_the_call_limit_is_not_tried_at_larger_sizes(tmp_path):
    sizes = "16x1x5,32x1x10,8x1x20"  # taken by work: 16x1x5, 8x1x20, 32x1x10
    folder, _, lines = _sweep(tmp_path, backends="numpy", sizes=sizes, max_call_s="1e-6")
    run = records.read(folder)
    assert {(b.case.size, b.op, b.repeat) for b in run.of(Block)} == {("16x1x5", "train_step", 0)}  # once over
    skipped = {s.case.size: s for s in run.of(records.Skipped)}
    assert set(skipped) == {"8x1x20", "32x1x10"} and {s.status for s in skipped.values()} == {"over-budget"}
    assert skipped["8x1x20"].reason.startswith("train_step predicted")  # from 16x1x5's time, scaled by work
    assert skipped["8x1x20"].reason.endswith("> --max-call-s=1e-06")
    assert skipped["32x1x10"].reason.startswith("over budget at 16x1x5 (train_step")  # larger on every axis
    with open(folder / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and sum(r["status"] == "over-budget" for r in rows) == 2
