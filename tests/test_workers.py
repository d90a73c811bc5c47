"""Each case in a worker process of its own: a worker that aborts or hangs costs only its own case's work,
a killed run leaves no worker behind, and the worker options refuse bad values before anything runs.

The faulty backends (tests/fault_backends.py) are registered here only; the harness hands a case's registry
entry to its worker, which registers it there.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_backends import ABORT_AT_THIRD, SLEEPS_FOREVER

import backends
from benchmarks import options, records, runs
from benchmarks.harness import run_all
from benchmarks.plan import make_plan
from benchmarks.report import render

ROOT = Path(__file__).resolve().parent.parent
FAST = {"seeds": 1, "train_steps": 20, "rounds": 5, "warmup_rounds": 1, "repeats": 2, "memory": False}
WORKER = "benchmarks.harness.worker"


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faulty: dict, **values) -> tuple[records.RunRecords, list]:
    """Run numpy and the `faulty` backends through the harness, in this process; the records and progress lines."""
    for name, entry in faulty.items():
        monkeypatch.setitem(backends.REGISTRY, name, entry)
    chosen = {"backends": ",".join(["numpy", *faulty]), "results_dir": str(tmp_path), **FAST, **values}
    opts = options.parse(chosen)
    folder = tmp_path / "run"
    folder.mkdir()
    writer = records.Writer(folder)
    lines: list[str] = []
    try:
        run_all(opts, make_plan(opts), writer, progress=lines.append, argv=["test"])
    finally:
        writer.close()
    return records.read(folder), lines


def workers_of(parent: int) -> list[int]:
    """PIDs of the live worker processes whose parent is `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if WORKER in cmdline and ppid == parent:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its reaper does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def by_case(rows: list, backend: str) -> list:
    return [r for r in rows if r.case.backend == backend]


def test_a_worker_that_aborts_fails_its_own_units_and_the_run_goes_on(tmp_path, monkeypatch):
    """os.abort() at the third train_step: every unit that trains fails with the signal and the last lines the
    worker printed; the next unit starts a fresh worker (predict is measured in both repeats), numpy is
    measured in full, and the run renders."""
    got, lines = run(tmp_path, monkeypatch, {"abort-at-3": ABORT_AT_THIRD}, memory=True)
    failed = by_case(got.of(records.Skipped), "abort-at-3")
    trained = ["train_step block, repeat 0", "train_step block, repeat 1", "training"]
    assert [s.where for s in failed] == [*trained, "memory"]
    for s in failed[:3]:
        assert s.status == "failed" and "killed by SIGABRT" in s.reason, s
        assert "abort-at-3: third train_step, calling os.abort()" in s.reason, s  # the log's last lines
    # its worker's peak died with it: no figure from a fresh worker that never trained
    assert failed[3].status == "failed" and by_case(got.of(records.Memory), "abort-at-3") == []
    assert [(b.op, b.repeat) for b in by_case(got.of(records.Block), "abort-at-3")] == [("predict", 0), ("predict", 1)]
    assert sum("[failed] " in line and "SIGABRT" in line for line in lines) == 3

    assert by_case(got.of(records.Skipped), "numpy") == []
    assert len(by_case(got.of(records.Block), "numpy")) == 4
    assert len(by_case(got.of(records.Training), "numpy")) == 1
    assert len(by_case(got.of(records.Memory), "numpy")) == 1
    assert got.complete and workers_of(os.getpid()) == []  # every worker stopped at the end

    # each case's worker start-up is recorded, and its output is in its own log in the run folder
    assert {(loaded.case.backend, loaded.startup_seconds > 0) for loaded in got.of(records.Loaded)} == {
        ("numpy", True),
        ("abort-at-3", True),
    }
    logs = got.path / "logs"
    assert (logs / "numpy-eager-cpu.log").exists()
    assert (logs / "abort-at-3-eager-cpu.log").read_text().count("calling os.abort()") == 3

    render(got.path, plots=False)
    table = (got.path / "comparison.md").read_text()
    assert "| numpy | eager | cpu |" in table and "SIGABRT" in table


def test_a_worker_that_hangs_is_stopped_after_the_timeout(tmp_path, monkeypatch):
    """A train_step that never returns: the worker is killed after --worker-timeout (4x for a first call), its
    unit is a failed record saying so with the worker's last lines, and the other units run."""
    begin = time.monotonic()
    got, _ = run(tmp_path, monkeypatch, {"sleeps-forever": SLEEPS_FOREVER}, repeats=1, accuracy=False, worker_timeout=1)
    assert time.monotonic() - begin < 60
    failed = by_case(got.of(records.Skipped), "sleeps-forever")
    assert [(s.status, s.where) for s in failed] == [("failed", "train_step block, repeat 0")]
    assert "no answer within 4 s (--worker-timeout)" in failed[0].reason, failed
    assert "sleeps-forever: train_step sleeps forever" in failed[0].reason, failed
    assert [b.op for b in by_case(got.of(records.Block), "sleeps-forever")] == ["predict"]  # in a fresh worker
    assert [b.op for b in by_case(got.of(records.Block), "numpy")] == ["train_step", "predict"]
    assert workers_of(os.getpid()) == []
    render(got.path, plots=False)
    assert "no answer within 4 s" in (got.path / "comparison.md").read_text()


def test_sigkill_of_the_run_leaves_no_worker_and_its_records_render(tmp_path):
    """The parent is killed (SIGKILL: nothing of its own runs) while one worker hangs in a step and another
    waits for its next block: both die with it, and the next command renders what the run recorded."""
    site = tmp_path / "site"
    site.mkdir()
    entry = "Entry('tests.fault_backends:SleepsForever', 'core', {'eager': Mode()})"  # numpy not loaded yet
    (site / "sitecustomize.py").write_text(
        f"from backends import REGISTRY, Entry, Mode\nREGISTRY['sleeps-forever'] = {entry}\n"
    )
    paths = [str(site), str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    core = min(os.sched_getaffinity(0))
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "pytest", "--benchmark-only", "-p", "no:cacheprovider", "-q"]
    cmd += [f"--results-dir={results}", "--worker-timeout=600", f"--cpu-affinity={core}"]
    cmd += ["--backends=numpy,sleeps-forever", "--rounds=5", "--repeats=2", "--no-accuracy", "--no-memory"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        hanging = False
        while not hanging and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            hanging = any("sleeps forever" in p.read_text() for p in results.glob("runs/*/logs/sleeps-forever-*.log"))
        assert hanging, "the hanging step never started"
        workers = workers_of(proc.pid)
        assert len(workers) == 2, workers  # numpy's (it has a second repeat to come) and the hanging one
        assert all(os.sched_getaffinity(pid) == {core} for pid in workers)  # --cpu-affinity pins the workers
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers), [pid for pid in workers if alive(pid)]

    rendered = runs.recover(results, lambda folder: render(folder, plots=False))
    assert len(rendered) == 1 and rendered[0].name.endswith(runs.INCOMPLETE), rendered
    got = records.read(rendered[0])
    assert not got.complete and got.start.options["cpu_affinity"] == [core]
    assert [(b.case.backend, b.op) for b in got.of(records.Block)] == [("numpy", "train_step"), ("numpy", "predict")]
    assert "| numpy | eager | cpu |" in (rendered[0] / "comparison.md").read_text()


@pytest.mark.parametrize(
    "name,raw,allowed",
    [
        ("cpu_affinity", "", "must be none or comma-separated cores of this machine ("),
        ("cpu_affinity", ",", "must be none or comma-separated cores of this machine ("),
        ("cpu_affinity", "4096", "must be none or comma-separated cores of this machine ("),
        ("cpu_affinity", "0,-1", "must be none or comma-separated cores of this machine ("),
        ("cpu_affinity", "first", "must be none or comma-separated cores of this machine ("),
        ("worker_timeout", "0", "must be in [1, 1e+06]"),
        ("worker_timeout", "-3", "must be in [1, 1e+06]"),
        ("worker_timeout", "soon", "must be a number"),
        ("worker_timeout", "inf", "must be a finite number"),
        ("worker_timeout", "nan", "must be a finite number"),
    ],
)
def test_bad_worker_option_is_one_line_naming_it(name, raw, allowed):
    with pytest.raises(options.OptionError) as err:
        options.parse({name: raw})
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"--{name.replace('_', '-')} {allowed}") and message.endswith(f"got {raw!r}"), message


def test_cpu_affinity_takes_this_machines_cores():
    cores = sorted(os.sched_getaffinity(0))
    assert options.parse({"cpu_affinity": ",".join(map(str, cores))}).cpu_affinity == tuple(cores)
    assert options.parse({}).cpu_affinity == () == options.parse({"cpu_affinity": "none"}).cpu_affinity
