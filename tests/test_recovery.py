"""Recovery of runs that were killed (benchmarks/runs.py), on real killed runs: a killed sweep is labelled and
rendered as a sweep by whichever command finds it; two runs started together beside a dead run both succeed and
the dead run gets exactly one Finish record, on a line of its own, readable back; the compile caches a killed
run left go with its recovery; the results folder's index and lock survive bad content and other processes.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import records, runs, session

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--backends=numpy", "--seeds=2", "--train-steps=20", "--rounds=5", "--warmup-rounds=1", "--repeats=2"]
BENCH = ["-m", "pytest", "--benchmark-only", "-p", "no:cacheprovider", "-q", *TINY, "--no-memory"]
SWEEP = ["-m", "benchmarks.sweep", "--backends=numpy", "--sizes=16x1x5,32x1x10", "--point-budget-s=0.2"]


def command(args: list[str], results: Path) -> list[str]:
    return [sys.executable, *args, f"--results-dir={results}"]


def run(args: list[str], results: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command(args, results), cwd=ROOT, capture_output=True, text=True, timeout=300)


def finish_lines(folder: Path) -> int:
    """Finish records as written (records.read leaves out a repeated identical record: count the lines)."""
    return (folder / records.FILE).read_text(encoding="utf-8").count('"kind":"finish"')


def workers_of(folder: Path) -> list[int]:
    """Processes whose environment names the run folder (its case workers: their compile caches are in it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(folder).encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def kill_after_first_block(args: list[str], results: Path, runs_dir: Path) -> tuple[Path, list[int], dict[str, str]]:
    """Start a run, SIGKILL it once its first step block is recorded; its .partial folder, the workers it had
    and the environment of one of them."""
    proc = subprocess.Popen(command(args, results), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        partial = next(iter(runs_dir.glob("*" + runs.PARTIAL)), None)
        if partial is not None and '"kind":"block"' in _text(partial / records.FILE):
            workers = workers_of(partial)
            env = _environ(workers[0]) if workers else {}
            proc.kill()
            proc.wait()
            return partial, workers, env
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"the run never recorded a step block: {proc.communicate()[1][-2000:]}")


def _environ(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/environ").read_text(errors="replace")
    return dict(line.split("=", 1) for line in text.split("\0") if "=" in line)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


@dataclasses.dataclass
class Killed:
    results: Path  # a results folder holding one benchmark run killed (SIGKILL) mid-run, left `.partial`
    workers: list[int]  # the run's workers when it was killed
    worker_env: dict[str, str]  # the environment of one of them


@pytest.fixture(scope="module")
def killed_bench(tmp_path_factory) -> Killed:
    """One benchmark run killed mid-run; tests copy its results folder."""
    results = tmp_path_factory.mktemp("killed-bench") / "results"
    partial, workers, env = kill_after_first_block(BENCH, results, results / "runs")
    return Killed(results, workers, env)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def copy(results: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of a results folder and its one dead `.partial` run."""
    target = tmp_path / "results"
    shutil.copytree(results, target, symlinks=True)
    (partial,) = target.rglob("*" + runs.PARTIAL)
    return target, partial


def test_a_killed_run_leaves_no_worker_behind(killed_bench):
    assert killed_bench.workers, "the run had no worker when it was killed"
    deadline = time.monotonic() + 10  # the kernel kills a worker whose parent died (PR_SET_PDEATHSIG)
    while any(_alive(pid) for pid in killed_bench.workers):
        assert time.monotonic() < deadline, f"workers {killed_bench.workers} outlived their killed run"
        time.sleep(0.05)


def test_the_workers_had_their_compile_caches_in_the_run_folder(killed_bench):
    (partial,) = killed_bench.results.rglob("*" + runs.PARTIAL)
    caches = partial / runs.CACHES
    env = killed_bench.worker_env
    assert [env.get(k) for k in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR")] == [
        str(caches / "inductor"),
        str(caches / "triton"),
        str(caches / "jax"),
    ]


def test_the_compile_caches_of_a_killed_run_go_with_its_recovery(killed_bench, tmp_path):
    results, partial = copy(killed_bench.results, tmp_path)
    cache = partial / runs.CACHES / "inductor" / "fxgraph"
    cache.mkdir(parents=True)  # what a compiling mode leaves there
    (cache / "entry").write_bytes(b"x" * 1000)
    (final,) = runs.recover(results)
    assert final.name == partial.name.removesuffix(runs.PARTIAL) + runs.INCOMPLETE
    assert not (final / runs.CACHES).exists() and (final / records.FILE).exists()


def test_two_runs_started_together_beside_a_dead_run_both_succeed(killed_bench, tmp_path):
    results, partial = copy(killed_bench.results, tmp_path)
    procs = [subprocess.Popen(command(BENCH, results), cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[-1500:] for o in outs]
    dead = partial.with_name(partial.name.removesuffix(runs.PARTIAL) + runs.INCOMPLETE)
    assert dead.is_dir() and not partial.exists()
    assert finish_lines(dead) == 1  # recovered once, by one of them
    assert not records.read(dead).complete and (dead / "comparison.md").exists()
    assert sum("was left by a run that was killed" in o for o in outs) == 1
    new = sorted(set((results / "runs").iterdir()) - {dead})
    assert len(new) == 2 and all(records.read(f).complete for f in new)
    index = json.loads((results / "index.json").read_text())
    assert sorted(index["runs"]) == [f.name for f in new] and (results / "latest").resolve() in new


def test_a_cut_off_last_line_gets_the_finish_on_a_line_of_its_own(killed_bench, tmp_path):
    results, partial = copy(killed_bench.results, tmp_path)
    path = partial / records.FILE
    whole = path.read_bytes()
    before = records.read(partial)
    path.write_bytes(whole + b'{"kind":"block","case":{"backend":"num')  # killed while writing a record
    assert records.read(partial).torn
    (final,) = runs.recover(results)
    run = records.read(final)  # readable back, the Finish included
    assert run.finish is not None and not run.finish.complete and not run.torn
    assert [r.kind for r in run.records] == [r.kind for r in before.records] + ["finish"]
    assert (final / records.FILE).read_bytes().startswith(whole)  # nothing recorded before is touched


def test_a_run_recovered_by_a_command_that_was_killed_itself_gets_one_finish(killed_bench, tmp_path):
    """A recovering command killed between appending the Finish and renaming the folder: the next one renames
    it without a second Finish."""
    results, partial = copy(killed_bench.results, tmp_path)
    runs._append_finish(partial, "the run's process died; labelled by a later command")
    (final,) = runs.recover(results)
    assert finish_lines(final) == 1 and not records.read(final).complete


def test_a_killed_sweep_is_labelled_and_rendered_as_a_sweep_by_the_report_command(tmp_path):
    results = tmp_path / "results"
    partial, _, _ = kill_after_first_block(SWEEP, results, results / "sweeps" / "runs")
    twin = tmp_path / "twin"
    shutil.copytree(results, twin, symlinks=True)
    twin_partial = next((twin / "sweeps" / "runs").glob("*" + runs.PARTIAL))

    report = [sys.executable, "-m", "benchmarks.report", str(partial), "--no-plots"]
    shown = subprocess.run(report, cwd=ROOT, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    labelled = partial.with_name(partial.name.removesuffix(runs.PARTIAL) + runs.INCOMPLETE)
    assert "labelled " + labelled.name in shown.stdout
    assert (labelled / "sweep.md").exists() and (labelled / "sweep.csv").exists()
    assert not (labelled / "comparison.md").exists()
    assert finish_lines(labelled) == 1 and not records.read(labelled).complete

    # the next sweep in the same results folder recovers its twin the same way, then runs
    done = run([*SWEEP[:3], "--sizes=16x1x5", "--point-budget-s=0.05"], twin)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    twin_labelled = twin_partial.with_name(labelled.name)
    assert f"{twin_labelled} was left by a run that was killed" in done.stdout
    assert (twin_labelled / "sweep.md").exists() and not (twin_labelled / "comparison.md").exists()
    assert "incomplete" in (twin_labelled / "sweep.md").read_text().lower()
    assert (twin / "sweeps" / "latest").resolve() != twin_labelled


@pytest.mark.parametrize(
    "content",
    ["[" * 100_000 + "]" * 100_000, '{"runs": ' + "[" * 100_000 + "]" * 100_000 + "}", '{"runs": [[[[]]]]}'],
    ids=["nested-list", "nested-runs", "runs-of-lists"],
)
def test_an_index_of_the_wrong_shape_is_set_aside_and_rebuilt(tmp_path, content):
    results = tmp_path / "results"
    (results / "runs" / "20260101-000000-a").mkdir(parents=True)
    (results / "runs" / "20260102-000000-a-incomplete").mkdir()
    (results / "index.json").write_text(content)
    assert runs.read_index(results) == ["20260101-000000-a"]
    (aside,) = results.glob("index.json.corrupt-*")
    assert aside.read_text() == content and not (results / "index.json").exists()
    runs.publish(results / "runs" / "20260101-000000-a")
    assert json.loads((results / "index.json").read_text())["runs"] == ["20260101-000000-a"]


def test_names_that_are_not_run_folders_are_dropped_from_the_index(tmp_path):
    results = tmp_path / "results"
    for name in ("20260101-000000-a", "20260102-000000-a"):
        (results / "runs" / name).mkdir(parents=True)
    (tmp_path / "etc").mkdir()  # a real folder the bad names lead to
    bad = ["../../../../etc", "../../etc", "/etc", "a/../../etc", "..", "", ".hidden", "20260101-000000-a/.."]
    index = {"runs": [*bad, "20260101-000000-a"], "latest": "../../../../etc"}
    (results / "index.json").write_text(json.dumps(index))
    assert runs.read_index(results) == ["20260101-000000-a"]
    runs.publish(results / "runs" / "20260102-000000-a")
    rebuilt = json.loads((results / "index.json").read_text())
    assert rebuilt == {"runs": ["20260101-000000-a", "20260102-000000-a"], "latest": "20260102-000000-a"}


def hold_lock(results: Path, holder: str):
    """Hold the results folder's lock as another process would (flock on a file description of our own)."""
    results.mkdir(parents=True, exist_ok=True)
    handle = open(results / ".lock", "a+")  # noqa: SIM115 - closed by the caller
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.truncate(0)
    handle.write(holder + "\n")
    handle.flush()
    return handle


def test_a_held_lock_says_who_holds_it_and_gives_up_after_the_wait(tmp_path, capsys):
    results = tmp_path / "results"
    handle = hold_lock(results, "pid 4242")
    try:
        began = time.monotonic()
        with pytest.raises(runs.LockTimeout, match=r"\.lock stayed locked for 0\.5 s"):
            with runs.locked(results, wait_s=0.5):
                pass
        assert 0.5 <= time.monotonic() - began < 5
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"rnn-bench: waiting for the lock on {results / '.lock'} (held by pid 4242)"]
    finally:
        handle.close()
    with runs.locked(results, wait_s=0.5):  # free again: taken at once, and it says so in the file
        assert (results / ".lock").read_text() == f"pid {os.getpid()}\n"


def test_a_sweep_facing_a_held_lock_waits_then_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    from benchmarks import sweep

    monkeypatch.setattr(runs, "LOCK_WAIT_S", 0.3)
    results = tmp_path / "results"
    (results / "sweeps" / "runs").mkdir(parents=True)  # a results folder in use: the sweep first recovers there
    handle = hold_lock(results / "sweeps", "pid 4242")
    try:
        status = sweep.main(["--backends=numpy", "--sizes=16x1x5", f"--results-dir={results}"])
    finally:
        handle.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert err[0] == f"rnn-bench: waiting for the lock on {results / 'sweeps' / '.lock'} (held by pid 4242)"
    assert err[1].startswith("sweep: cannot create a run folder (") and "stayed locked for 0.3 s" in err[1]
    assert len(err) == 2 and not any((results / "sweeps" / "runs").iterdir())


def test_sigterm_to_a_recovering_command_leaves_the_dead_run_recoverable(killed_bench, tmp_path):
    """A command interrupted while it recovers: the dead run is either labelled or still `.partial`, and the
    next command finishes the job with one Finish record."""
    results, partial = copy(killed_bench.results, tmp_path)
    proc = subprocess.Popen(command(BENCH, results), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while partial.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0].decode()
    assert "Traceback (most recent call last)" not in out
    runs.recover(results, session.render)
    dead = partial.with_name(partial.name.removesuffix(runs.PARTIAL) + runs.INCOMPLETE)
    assert finish_lines(dead) == 1 and (dead / "comparison.md").exists()


def test_a_run_writing_its_report_is_not_taken_for_a_killed_one(killed_bench, tmp_path):
    """A run that ended holds the lock on its .running file until its report is written; meanwhile another
    command neither renders it nor calls it killed."""
    results, _ = copy(killed_bench.results, tmp_path)
    (final,) = runs.recover(results)  # labelled, not rendered: as a run that has just renamed its folder
    handle = runs.claim(final)  # what the live run holds while it renders
    try:
        assert runs.recover(results, session.render) == []
        assert not (final / "comparison.md").exists()
    finally:
        runs.release(final, handle)
    assert runs.recover(results, session.render) == [final]  # its process died before writing the report
    assert (final / "comparison.md").exists() and not (final / runs.RUNNING).exists()


def test_a_dead_run_made_read_only_is_left_as_it_is_and_blocks_nothing(killed_bench, tmp_path):
    results, partial = copy(killed_bench.results, tmp_path)
    kept = (partial / records.FILE).read_bytes()
    os.chmod(partial / records.FILE, 0o444)
    os.chmod(partial, 0o555)
    try:
        assert runs.recover(results, session.render) == []  # no error: a later run can start beside it
        assert partial.is_dir() and (partial / records.FILE).read_bytes() == kept
    finally:
        os.chmod(partial, 0o755)
        os.chmod(partial / records.FILE, 0o644)
    (final,) = runs.recover(results)  # writable again: labelled as any dead run
    assert final.name.endswith(runs.INCOMPLETE) and finish_lines(final) == 1
