"""One rule for every interrupt (benchmarks/signals.py), checked on real runs: a benchmark (pytest) and a sweep,
each in a subprocess, sent SIGINT twice in quick succession, SIGTERM at the start, mid-run and while the run
finishes, and SIGHUP once. Whatever arrives, the run ends either complete (every planned unit measured, a
complete Finish) or labelled `-incomplete` with its report; it is published as `latest` only when complete;
the terminal shows no Python traceback and no INTERNALERROR.

Signals are timed by what the run has written (a record of some kind appearing in records.jsonl), not by the
clock alone, so the moment hit does not depend on how loaded the machine is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import records, runs

ROOT = Path(__file__).resolve().parent.parent
SEEDS, REPEATS = 2, 2
BENCH = [
    *("-m", "pytest", "--benchmark-only", "-p", "no:cacheprovider", "-q", "--backends=numpy"),
    *(f"--seeds={SEEDS}", "--train-steps=300", "--rounds=300", "--warmup-rounds=1", f"--repeats={REPEATS}"),
    "--no-memory",
]
SWEEP = ["-m", "benchmarks.sweep", "--backends=numpy", "--sizes=16x1x5,32x1x10", "--point-budget-s=0.4"]
TRACEBACK = "Traceback (most recent call last)"


def start(command: str, results: Path) -> subprocess.Popen:
    args = BENCH if command == "bench" else SWEEP
    cmd = [sys.executable, *args, f"--results-dir={results}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def runs_dir(command: str, results: Path) -> Path:
    return results / "sweeps" / "runs" if command == "sweep" else results / "runs"


def wait_for(proc: subprocess.Popen, folder: Path, kind: str, timeout: float = 90.0) -> None:
    """Until a record of `kind` is in the run's records (the run is at that point of its life)."""
    needle = f'"kind":"{kind}"'
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in folder.glob("*/" + records.FILE):
            try:
                if needle in path.read_text(encoding="utf-8"):
                    return
            except OSError:
                pass
        if proc.poll() is not None:
            break
        time.sleep(0.005)
    out = proc.communicate(timeout=60)[0] if proc.poll() is None or proc.stdout else ""
    pytest.fail(f"the run never wrote a {kind} record (exit {proc.returncode}):\n{out[-2000:]}")


def planned_units_done(run: records.RunRecords, command: str) -> bool:
    """Every planned unit measured: the overhead probe, each case's blocks, and (bench) each seed's training."""
    cases = run.start.cases
    blocks = {(b.case, b.op, b.repeat) for b in run.of(records.Block)}
    repeats = run.start.options["repeats"]
    if len(blocks) != len(cases) * 2 * repeats or not run.of(records.Overhead):
        return False
    return command == "sweep" or len(run.of(records.Training)) == len(cases) * SEEDS


def check_rule(command: str, results: Path, proc: subprocess.Popen, out: str) -> list[Path]:
    """Rule 1 of issue 22 for the run `proc` made; returns its folder (none if it died before making one)."""
    assert TRACEBACK not in out and "INTERNALERROR" not in out and "Fatal Python error" not in out, out[-3000:]
    folders = sorted(runs_dir(command, results).iterdir()) if runs_dir(command, results).is_dir() else []
    assert len(folders) <= 1, folders
    assert not any(f.name.endswith(runs.PARTIAL) for f in folders), (folders, out[-2000:])
    report = "sweep.md" if command == "sweep" else "comparison.md"
    latest = results / "sweeps" / "latest" if command == "sweep" else results / "latest"
    for folder in folders:
        run = records.read(folder)
        finish = run.finish
        if folder.name.endswith(runs.INCOMPLETE):
            assert finish is not None and not finish.complete, folder
            if not (folder / report).exists():  # a signal cut the rendering short: the next command renders it
                assert "the next command renders it" in out, out[-2000:]
                assert runs.recover(folder.parent.parent, _render) == [folder]
            assert (folder / report).exists(), out[-2000:]
            assert not latest.exists() or latest.resolve() != folder.resolve()
        else:
            assert finish is not None and finish.complete, (folder, out[-2000:])
            assert planned_units_done(run, command), [r.kind for r in run.records]
    if proc.returncode == 0:  # a zero exit status means a complete, published run, never less
        assert len(folders) == 1 and not folders[0].name.endswith(runs.INCOMPLETE), out[-2000:]
        assert latest.resolve() == folders[0].resolve()
    return folders


def _render(folder: Path) -> None:
    from benchmarks.session import render

    render(folder)


def send(proc: subprocess.Popen, signals: list[tuple[float, signal.Signals]]) -> None:
    """Each signal `gap` seconds after the one before."""
    for gap, sig in signals:
        time.sleep(gap)
        if proc.poll() is None:
            proc.send_signal(sig)


def finish(proc: subprocess.Popen) -> str:
    try:
        return proc.communicate(timeout=120)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the run did not end after its signal:\n{proc.communicate()[0][-2000:]}")


# (command, the record after which the signals start, the signals: (gap, signal)). Training begins after
# held_out (two seeds: about 0.3 s), so SIGINT twice lands in training, or in finishing for the longest gap.
CASES = [
    ("bench", "held_out", [(0, signal.SIGINT), (0.05, signal.SIGINT)]),
    ("bench", "held_out", [(0, signal.SIGINT), (0.2, signal.SIGINT)]),
    ("bench", "held_out", [(0, signal.SIGINT), (0.6, signal.SIGINT)]),
    ("bench", "block", [(0, signal.SIGTERM)]),  # mid-run
    ("bench", "finish", [(0, signal.SIGTERM)]),  # while the run finishes: renders, publishes
    ("bench", "overhead", [(0, signal.SIGHUP)]),
    ("sweep", "block", [(0, signal.SIGINT), (0.05, signal.SIGINT)]),
    ("sweep", "block", [(0.1, signal.SIGINT), (0.6, signal.SIGINT)]),
    ("sweep", "block", [(0, signal.SIGTERM)]),
    ("sweep", "finish", [(0, signal.SIGTERM)]),
    ("sweep", "start", [(0, signal.SIGHUP)]),
]


@pytest.mark.parametrize(
    ("command", "after", "signals"),
    CASES,
    ids=[f"{c}-{a}-" + "-".join(f"{s.name}+{g:g}" for g, s in sig) for c, a, sig in CASES],
)
def test_an_interrupted_run_ends_by_the_rule(tmp_path, command, after, signals):
    results = tmp_path / "results"
    proc = start(command, results)
    wait_for(proc, runs_dir(command, results), after)
    send(proc, signals)
    out = finish(proc)
    (folder,) = check_rule(command, results, proc, out)
    if after != "finish":  # a signal before the last record always makes the run incomplete
        assert folder.name.endswith(runs.INCOMPLETE), out[-2000:]
        assert "interrupted by SIG" in out and proc.returncode != 0


@pytest.mark.parametrize("command", ["bench", "sweep"])
@pytest.mark.parametrize("delay", [0.3, 0.8])
def test_sigterm_in_the_first_second(tmp_path, command, delay):
    """Before the handlers are installed the default action ends the process (no folder, nothing to say);
    after, the run ends by the rule: never a `.partial` folder left behind, never a traceback."""
    results = tmp_path / "results"
    proc = start(command, results)
    send(proc, [(delay, signal.SIGTERM)])
    out = finish(proc)
    folders = check_rule(command, results, proc, out)
    assert proc.returncode != 0
    # a small sweep may have measured everything by then (complete, its report cut short): never .partial
    assert not any(f.name.endswith(runs.PARTIAL) for f in folders)


@pytest.fixture
def rule():
    """The signal rule of this process, forgotten afterwards (the handler is called as the signal would call it)."""
    from benchmarks import signals as rule

    rule.reset()
    yield rule
    rule.reset()


def test_the_first_signal_raises_an_impatient_repeat_is_only_noted(rule):
    with pytest.raises(KeyboardInterrupt, match="SIGINT"):
        rule._handler(signal.SIGINT, None)
    rule._handler(signal.SIGINT, None)  # 0.05 s later, as a second Ctrl-C: the run's clean-up goes on
    assert rule.received() == ["SIGINT", "SIGINT"]
    with pytest.raises(KeyboardInterrupt, match="SIGINT"):
        rule.check()  # before the next unit: the run stops, whatever swallowed the first


def test_signals_are_only_noted_while_the_run_finishes_and_cut_its_rendering(rule):
    with rule.deferred():
        rule._handler(signal.SIGTERM, None)
        rule._handler(signal.SIGHUP, None)
    assert rule.received() == ["SIGTERM", "SIGHUP"]
    with rule.rendering(), pytest.raises(KeyboardInterrupt, match="SIGINT"):
        rule._handler(signal.SIGINT, None)  # a repeat too: the report can be made again later
    rule.settle()  # the run is over
    rule._handler(signal.SIGINT, None)
    assert len(rule.received()) == 4


def test_an_interrupt_no_one_catches_is_one_line(tmp_path):
    code = "from benchmarks import signals; signals.install(); import os, signal, time\n"
    code += "os.kill(os.getpid(), signal.SIGTERM); time.sleep(5)\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.splitlines() == ["rnn-bench: interrupted by SIGTERM"]
