"""Inputs the report must answer in one line, naming the file, the line and the field, or report plainly: damaged
run files, repeated records, outputs that would land on another run, and every subcommand's --help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import records
from benchmarks.records import Block, Case, Finish, Loaded, Machine, Training
from benchmarks.report import cases, columns
from tests.data.synthetic import cli, one_line_error, start, synthetic, write_run

FILE = records.FILE


def _edit_line(folder: Path, which: str, fields: dict) -> Path:
    """Set fields of the first record of kind `which` in the file as written (no type checks on the way)."""
    lines = (folder / FILE).read_text().splitlines()
    for i, line in enumerate(lines):
        obj = json.loads(line)
        if obj["kind"] == which:
            obj.update(fields)
            lines[i] = json.dumps(obj)
            break
    (folder / FILE).write_text("\n".join(lines) + "\n")
    return folder


def _line_of(folder: Path, kind: str) -> int:
    lines = (folder / FILE).read_text().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if json.loads(line)["kind"] == kind)


@pytest.fixture
def run(tmp_path) -> Path:
    return synthetic(tmp_path / "run", {("numpy", "eager", "cpu"): (1e-3, 0.1)}, {("numpy", "eager", "cpu"): [0.1]})


@pytest.mark.parametrize(
    "kind,fields,says",
    [
        ("training", {"metric": "0.1"}, ", line {n} (training).metric: must be a finite number, got '0.1'"),
        ("block", {"kind": ["block"]}, ", line {n}: unknown kind ['block']"),
        ("block", {"seconds": [1e-3, -1e-3]}, ", line {n} (block numpy eager @cpu 32x1x10).seconds: holds a negative"),
        ("first_step", {"seconds": -1.0}, ", line {n} (first_step numpy eager @cpu 32x1x10).seconds: must not be neg"),
        ("block", {"case": {"backend": "numpy", "mode": "eager", "device": "cpu", "size": "axb"}},
         ", line {n} (block numpy eager @cpu axb).case.size: must be HIDDENxBATCHxSEQ_LEN, got 'axb'"),
        ("block", {"case": ["numpy"]}, ", line {n} (block).case: must be an object with backend, mode, device, size"),
        ("training", {"outcome": "great"}, ", line {n} (training).outcome: 'great' is not one of learned"),
        ("training", {"colour": "red"}, ", line {n} (training): unknown field(s) colour"),
        ("start", {"schema": "3"}, ", line {n} (start).schema: must be an integer from 2, got '3'"),
        ("start", {"schema": 99}, ": schema 99, written by a newer version; this version reads up to"),
    ],
)  # fmt: skip
def test_a_malformed_record_names_the_file_the_line_and_the_field(run, kind, fields, says):
    line = _line_of(run, kind)
    _edit_line(run, kind, fields)
    one_line_error(cli(str(run), "--no-plots"), f"{run / FILE}{says.format(n=line)}")


def test_unreadable_records_files_are_one_line(tmp_path, run):
    dangling = tmp_path / "dangling"
    dangling.mkdir()
    (dangling / FILE).symlink_to(tmp_path / "nowhere.jsonl")
    one_line_error(cli(str(dangling)), f"{dangling / FILE}: a symbolic link that leads to no file")
    loop = tmp_path / "loop"
    loop.mkdir()
    (loop / FILE).symlink_to(loop / FILE)
    one_line_error(cli(str(loop)), f"{loop / FILE}: a symbolic link that leads to no file")
    folder = tmp_path / "dir"
    (folder / FILE).mkdir(parents=True)
    one_line_error(cli(str(folder)), f"{folder / FILE}: cannot read it")
    binary = tmp_path / "binary"
    binary.mkdir()
    (binary / FILE).write_bytes(b"\xff\xfe\x00")
    one_line_error(cli(str(binary)), f"{binary / FILE}: cannot read it")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / FILE).write_text("")
    one_line_error(cli(str(empty)), f"{empty / FILE}: no start record")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / FILE).write_text("not json\n" + (run / FILE).read_text())
    one_line_error(cli(str(broken)), f"{broken / FILE}, line 1: not JSON")


def test_bad_command_lines_are_one_line(tmp_path, run):
    empty = tmp_path / "empty"
    empty.mkdir()
    wrong = {
        "missing folder": ([str(tmp_path / "nope")], "no such run folder"),
        "not a run": ([str(empty)], "not a run folder"),
        "two folders": ([str(run), str(run)], "unrecognized arguments"),
        "unknown option": (["--frobnicate"], "unrecognized arguments"),
        "compare with one run": (["compare", str(run)], "required: RUN_B"),
        "merge without runs": (["merge"], "required: RUN"),
        "compare into a run": (["compare", str(run), str(run), "--out", str(run / "x.md")], "inside the run folder"),
        "merge into a run": (["merge", str(run), "--out", str(run / "merged")], "inside the run folder"),
    }
    for args, word in wrong.values():
        one_line_error(cli(*args), word)


@pytest.mark.parametrize("command", [[], ["render"], ["compare"], ["merge"]])
def test_every_subcommand_has_help(command):
    done = cli(*command, "--help")
    assert done.returncode == 0 and "usage:" in done.stdout and done.stderr == ""
    assert "--out" in done.stdout or not command


def test_rendering_into_another_run_folder_is_refused(tmp_path, run):
    other = synthetic(tmp_path / "other", {("numpy", "eager", "cpu"): (2e-3, 0.1)})
    (other / "comparison.md").write_text("other's report")
    one_line_error(cli(str(run), "--out", str(other), "--no-plots"), f"inside the run folder {other}")
    one_line_error(cli(str(run), "--out", str(other / "sub"), "--no-plots"), f"inside the run folder {other}")
    assert (other / "comparison.md").read_text() == "other's report" and not (other / "sub").exists()
    assert cli(str(run), "--out", str(run), "--no-plots").returncode == 0  # its own folder is where it goes anyway
    assert cli(str(run), "--out", str(tmp_path / "elsewhere"), "--no-plots").returncode == 0


def test_every_record_repeated_counts_once_and_says_so(tmp_path, run):
    twice = tmp_path / "twice"
    twice.mkdir()
    text = (run / FILE).read_text()
    (twice / FILE).write_text(text + text)
    once, repeated = cases.load(run), cases.load(twice)
    assert [columns.outcome_cell(r) for r in repeated.rows] == ["learned 1/1"]  # not 2/2
    assert repeated.rows[0]["step_repeats"] == once.rows[0]["step_repeats"] == 1
    (warning,) = [w for w in repeated.run.warnings if "repeated" in w]
    lines = text.splitlines()
    counted = [json.loads(line)["kind"] not in ("machine", "loaded") for line in lines]  # those repeat by design
    where = twice / FILE
    assert warning.startswith(f"{sum(counted)} repeated record(s) left out, each counted once ({where}, line "
                              f"{len(lines) + 1} repeats {where}, line 1;")  # fmt: skip


def test_a_machine_record_written_at_the_start_and_again_at_the_end_is_no_repeat(tmp_path):
    machine = Machine("vm", "cpu", 2, "Linux", "3.11", None, None, {"numpy": "2"}, {"requested": 1})
    case = Case("numpy", "eager", "cpu", "32x1x10")
    recs = [start(), machine, Loaded(case, {}, 5), Loaded(case, {}, 5), Block(case, "train_step", 0, 1, [1e-3]),
            machine, Finish("", True, 0)]  # fmt: skip
    view = cases.load(write_run(tmp_path / "run", recs))
    assert view.run.warnings == [] and view.run.records.duplicates == []


def test_the_same_measurement_twice_with_other_values_keeps_the_first_and_says_so(tmp_path):
    case = Case("numpy", "eager", "cpu", "32x1x10")
    seeds = [Training(case, 0, [0.5, 0.1], 0.01, None, 1.0, outcome="learned"),
             Training(case, 0, [0.5, 0.2], 0.02, None, 1.0, outcome="learned")]  # fmt: skip
    folder = write_run(tmp_path / "run", [start(), *seeds, Finish("", True, 0)])
    view = cases.load(folder)
    assert view.rows[0]["learned_metrics"] == [0.01]
    assert any(f"{folder / FILE}, line 3: the same training as {folder / FILE}, line 2, with other values" in w
               for w in view.run.warnings)  # fmt: skip


def test_two_different_start_records_are_refused(tmp_path, run):
    two = tmp_path / "two"
    two.mkdir()
    other = synthetic(tmp_path / "other", {("numpy", "eager", "cpu"): (2e-3, 0.1)}, options={"seeds": 3})
    (two / FILE).write_text((run / FILE).read_text() + (other / FILE).read_text())
    lines = len((run / FILE).read_text().splitlines())
    one_line_error(cli(str(two)), f"{two / FILE}, line {lines + 1}: a second, different start record")


def test_a_null_metric_not_marked_diverged_reads_as_diverged_without_a_step(tmp_path):
    case = Case("numpy", "eager", "cpu", "32x1x10")
    folder = write_run(tmp_path / "run", [start(), Training(case, 0, [0.5, 0.1], None, None, 1.0),
                                          Finish("", True, 0)])  # fmt: skip
    (row,) = cases.load(folder).rows
    assert columns.outcome_cell(row) == "learned 0/1, 1 diverged"
    assert row["notes"] == ["diverged: seed 0 (no finite metric)"]


def test_content_the_report_cannot_use_is_one_line_naming_the_run(run, monkeypatch):
    def broken(table: object) -> object:
        raise ValueError("a value no run should hold")

    monkeypatch.setattr(cases, "cases", broken)
    one_line_error(cli(str(run), "--no-plots"), f"unexpected content in {run} (ValueError: a value no run should hold)")
