"""compare: B against A per case, a change flagged only beyond the noise, each time judged in absolute terms and
against how the machine moved as a whole (the floor's ratio, else the median ratio over the cases)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from benchmarks.records import Block, Start
from benchmarks.report import compare
from tests.data.synthetic import REFERENCE, SAMPLE, cli, copy_records, synthetic


def _scaled(factor: float, case: tuple[str, str, str] = ("torch-rnn", "eager", "cpu")) -> Callable[[list], list]:
    """Scale one case's train_step times."""

    def scale(r: object) -> object:
        if isinstance(r, Block) and r.op == "train_step" and (r.case.backend, r.case.mode, r.case.device) == case:
            return dataclasses.replace(r, seconds=[v * factor for v in r.seconds])
        return r

    return lambda recs: [scale(r) for r in recs]


def _lines(text: str, prefix: str) -> list[str]:
    return [x for x in text.splitlines() if x.startswith(prefix)]


def test_compare_the_same_run_twice_is_within_noise(tmp_path):
    out = tmp_path / "out" / "same.md"
    done = cli("compare", str(SAMPLE), str(SAMPLE), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "**changed" not in done.stdout and "**differs" not in done.stdout and "within noise" in done.stdout
    assert "**moved" not in done.stdout and "Moved against the rest of the run: none." in done.stdout
    assert "Rule: one run on a side" in done.stdout and out.read_text() in done.stdout
    for measure in ("step median (ms)", "first step (ms)", "peak RSS (MiB)", "GPU peak (MiB)",
                    "held-out MSE median (learned seeds)"):  # fmt: skip
        assert f"| {measure} |" in done.stdout


def test_compare_flags_a_change_beyond_the_noise(tmp_path):
    a = compare.side([SAMPLE])
    text = compare.compare_markdown(a, compare.side([copy_records(tmp_path / "slow", _scaled(3.0))]))
    flagged = [line for line in text.splitlines() if "**changed" in line]
    assert len(flagged) == 1 and flagged[0].startswith("| torch-rnn | eager | cpu | 32x1x10 | step median (ms) |")
    assert "| 3.00 | **changed: B ×3.00** | 3.00 | **moved: ×3.00 against the rest** |" in flagged[0]
    # several runs per side: a 1.3x change inside A's own run-to-run spread (1.0x and 1.6x) is noise
    a2 = copy_records(tmp_path / "a2", _scaled(1.6))
    b1, b2 = (copy_records(tmp_path / n, _scaled(f)) for n, f in (("b1", 1.3), ("b2", 1.35)))
    text = compare.compare_markdown(compare.side([SAMPLE, a2]), compare.side([b1, b2]))
    assert "Rule: noise = run-to-run spread" in text
    (line,) = _lines(text, "| torch-rnn | eager | cpu | 32x1x10 | step median")
    assert "| within noise |" in line and "with the rest" in line
    c1, c2 = (copy_records(tmp_path / n, _scaled(f)) for n, f in (("c1", 2.5), ("c2", 2.6)))
    (line,) = _lines(compare.compare_markdown(compare.side([SAMPLE, a2]), compare.side([c1, c2])),
                     "| torch-rnn | eager | cpu | 32x1x10 | step median")  # fmt: skip
    assert "**changed" in line


def test_a_run_named_twice_on_a_side_counts_once(tmp_path):
    b = copy_records(tmp_path / "b", _scaled(1.3))
    twice = compare.compare_markdown(compare.side([SAMPLE, SAMPLE]), compare.side([b, b]))
    once = compare.compare_markdown(compare.side([SAMPLE]), compare.side([b]))
    assert "Rule: one run on a side" in twice  # not two runs a side with a run-to-run spread of 0
    assert "Side A named sample_records more than once: each run counted once." in twice
    assert twice.split("How the machine moved")[1] == once.split("How the machine moved")[1]


def test_compare_shows_cases_only_on_one_side(tmp_path):
    def without_jax(recs: list) -> list:
        recs = [r for r in recs if getattr(r, "case", None) is None or r.case.backend != "jax-scan"]
        return [dataclasses.replace(r, cases=[c for c in r.cases if c.backend != "jax-scan"])
                if isinstance(r, Start) else r for r in recs]  # fmt: skip

    b = copy_records(tmp_path / "b", without_jax)
    lines = compare.compare_markdown(compare.side([SAMPLE]), compare.side([b])).splitlines()
    assert "| jax-scan | jit | cpu | 32x1x10 | status | measured | not run |  |  |  |  |" in lines
    assert any(
        x.startswith("| tf-cell | function | cpu | 32x1x10 | status | failed: RuntimeError: boom \\|") for x in lines
    )


def test_compare_default_output_goes_to_the_results_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(compare, "RESULTS_DIR", tmp_path)
    text, path = compare.write_compare([SAMPLE], [SAMPLE])
    assert path.parent == tmp_path and path.read_text() == text


# ---- the machine as a whole ----

CASES = {("numba", "njit", "cpu"): (1e-5, 1.0), ("jax-scan", "jit", "cpu"): (1e-4, 1.0),
         ("numpy", "eager", "cpu"): (3e-4, 0.01), ("torch-rnn", "eager", "cpu"): (2e-3, 0.1),
         ("tf-cell", "function", "cpu"): (1e-3, 2.0)}  # fmt: skip


def _run(folder, factor: float = 1.0, but: dict | None = None, without: str | None = None):
    timings = {k: (step * (but or {}).get(k, factor), first * (but or {}).get(k, factor))
               for k, (step, first) in CASES.items() if k[0] != without}  # fmt: skip
    return synthetic(folder, timings, repeats=3, spread=0.04)


def test_a_machine_twice_as_fast_reads_as_one_line_and_the_case_that_moved_is_flagged(tmp_path):
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b", 0.5, but={("numpy", "eager", "cpu"): 1 / 3})
    text = compare.compare_markdown(compare.side([a]), compare.side([b]))
    machine = "- step median @cpu 32x1x10: ×0.500: the floor (numba njit) ×0.500; the median ratio over the 5 cases"
    assert machine + " both sides measured ×0.500" in text
    steps = _lines(text, "| ")
    changed = [x for x in steps if "step median" in x and "**changed" in x]
    assert len(changed) == len(CASES)  # in absolute time every case got faster
    moved = [x for x in steps if "**moved" in x]
    numpy = ["| numpy", "eager", "cpu", "32x1x10"]
    assert [x.split(" | ")[:5] for x in moved] == [[*numpy, "step median (ms)"], [*numpy, "first step (ms)"]]
    assert "| 0.667 | **moved: ×0.667 against the rest** |" in moved[0]
    assert "**Moved against the rest of the run: numpy eager cpu 32x1x10 step median ×0.667; numpy eager cpu " in text
    floor = next(x for x in steps if x.startswith("| numba | njit | cpu | 32x1x10 | step median"))
    assert floor.endswith("| 1.00 | the yardstick |")


def test_two_identical_runs_flag_nothing(tmp_path):
    text = compare.compare_markdown(compare.side([_run(tmp_path / "a")]), compare.side([_run(tmp_path / "b")]))
    assert "**changed" not in text and "**moved" not in text and "×1.00: the floor (numba njit) ×1.00;" in text


def test_without_a_floor_on_one_side_the_median_ratio_is_the_yardstick(tmp_path):
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b", 2.0, but={("numpy", "eager", "cpu"): 6.0}, without="numba")
    text = compare.compare_markdown(compare.side([a]), compare.side([b]))
    line = (
        "- step median @cpu 32x1x10: ×2.00: the median ratio over the 4 cases both sides measured ×2.00 (no floor on "
    )
    assert line + "both sides: judged against that instead)" in text
    moved = [x for x in _lines(text, "| ") if "**moved" in x and "step median" in x]
    assert len(moved) == 1 and moved[0].startswith("| numpy | eager | cpu |") and "×3.00 against the rest" in moved[0]


def test_compare_says_when_a_side_is_a_sweep_and_compares_the_common_sizes(tmp_path):
    sweep = REFERENCE / "h200-sweep-allmodes-20261128-014530"
    text = compare.compare_markdown(compare.side([SAMPLE]), compare.side([sweep]))
    described = f"- B: {sweep.name} (results/reference/{sweep.name}) on vm, Intel(R) Xeon(R) Processor, NVIDIA H200"
    assert described + ", a size sweep of 11 size(s)" in text
    assert "Compared at the size(s) both sides measured (32x1x10); left out: " in text
    assert {x.split(" | ")[3] for x in _lines(text, "| ") if x.count(" | ") > 8} == {"32x1x10", "size"}


def test_runs_with_no_size_in_common_are_one_line(tmp_path):
    a = _run(tmp_path / "a")
    b = synthetic(tmp_path / "b", {("numpy", "eager", "cpu"): (1e-3, 0.1)}, size="64x4x20")
    done = cli("compare", str(a), str(b), "--out", str(tmp_path / "c.md"))
    assert done.returncode == 2 and done.stderr.startswith("error: compare: no size in common (A: 32x1x10; B: 64x4x20)")


def test_the_committed_drift_example_is_current(tmp_path):
    """results/reference/compare-drift: the reference run against one of the day before, as the README shows it."""
    runs = [REFERENCE / "cpu-20261127-095840-vm", REFERENCE / "cpu-20261128-022118-vm"]
    text, _ = compare.write_compare(runs[:1], runs[1:], tmp_path / "compare.md")
    assert text == (REFERENCE / "compare-drift" / "compare.md").read_text()
    assert "- step median @cpu 32x1x10: ×1.64: the median ratio over the 7 cases" in text  # no floor in A
    assert "**Moved against the rest of the run: tflearn session cpu 32x1x10 step median ×0.780;" in text


def test_settings_that_differ_are_named(tmp_path):
    b = copy_records(tmp_path / "b", lambda recs: [dataclasses.replace(r, options={**r.options, "threads": 4})
                                                   if isinstance(r, Start) else r for r in recs])  # fmt: skip
    text = compare.compare_markdown(compare.side([SAMPLE]), compare.side([b]))
    assert "**Settings differ: threads 1 → 4.**" in text
