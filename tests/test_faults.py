"""Nothing measured is lost: a run killed or failing at any stage keeps every finished measurement.

A plugin loaded with `-p` kills the benchmark process (or raises) right after the n-th record of
one kind was written (records are written by the run's own process; its cases run in workers), or
when the report starts writing; then the next command that touches the results folder labels the
run incomplete, with one Finish record, and renders what it holds. Earlier runs, `latest` and
`index.json` are never harmed. A records file or run folder made read-only mid-run stops the run at
once, in one line naming the file, never published; a `--benchmark-json` that cannot be written and
a size that cannot fit in memory are refused before any run folder is made.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import records, runs

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--seeds=3", "--train-steps=20", "--rounds=5", "--warmup-rounds=1", "--repeats=2"]

PLUGIN = """
import os, signal
from benchmarks import atomic, records

KIND, COUNT, ACTION = os.environ["RNNBENCH_FAULT"].split(":")
seen = [0]


def fault():
    if ACTION == "raise":
        raise RuntimeError("injected fault")
    os.kill(os.getpid(), getattr(signal, ACTION))


write = records.Writer.write


def write_then_fault(self, record):
    write(self, record)
    if record.kind == KIND:
        seen[0] += 1
        if seen[0] == int(COUNT):
            fault()


records.Writer.write = write_then_fault
if KIND == "report":
    write_bytes = atomic.write_bytes

    def report_fault(path, data):
        if path.name != "index.json":
            fault()
        return write_bytes(path, data)

    atomic.write_bytes = report_fault
if KIND == "benchmark-save":
    from pytest_benchmark.session import BenchmarkSession

    def broken_save(self):
        raise RuntimeError("injected fault in pytest-benchmark's save")

    BenchmarkSession.handle_saving = broken_save
"""


def bench(results: Path, fault: str | None, *args: str) -> subprocess.CompletedProcess:
    plugin_dir = results.parent / "plugin"
    plugin_dir.mkdir(exist_ok=True)
    (plugin_dir / "faultplugin.py").write_text(PLUGIN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), str(ROOT)])}
    cmd = [sys.executable, "-m", "pytest", "--benchmark-only", "-p", "no:cacheprovider", "-q"]
    cmd += [f"--results-dir={results}", "--backends=numpy", *TINY, *args]
    if fault is not None:
        env["RNNBENCH_FAULT"] = fault
        cmd += ["-p", "faultplugin"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """A results folder holding one good, published run."""
    results = tmp_path_factory.mktemp("faults") / "results"
    done = bench(results, None, "--no-memory")
    assert done.returncode == 0, done.stdout[-3000:]
    return results


def snapshot(results: Path) -> tuple[Path, str, str]:
    latest = (results / "latest").resolve()
    return latest, (latest / "comparison.md").read_text(), (results / "index.json").read_text()


@pytest.mark.parametrize(
    "fault,kept",
    [
        ("block:3:SIGKILL", {records.Block: 3, records.FirstStep: 1}),
        ("block:2:SIGTERM", {records.Block: 2}),
        ("training:2:SIGKILL", {records.Block: 4, records.Training: 2}),
        ("memory:1:SIGKILL", {records.Training: 3, records.Memory: 1}),
    ],
)
def test_a_killed_run_keeps_every_finished_measurement(earlier, fault, kept):
    results = earlier
    before = snapshot(results)
    names_before = set(os.listdir(results / "runs"))
    killed = bench(results, fault)
    assert killed.returncode != 0
    assert snapshot(results) == before  # latest and index.json untouched
    new = [results / "runs" / n for n in set(os.listdir(results / "runs")) - names_before]
    assert len(new) == 1
    folder = new[0]
    if folder.name.endswith(runs.PARTIAL):  # SIGKILL: nothing could run; the next command labels it
        recovered = runs.recover(results, render)
        assert [p.name for p in recovered] == [folder.name.removesuffix(runs.PARTIAL) + runs.INCOMPLETE]
        folder = recovered[0]
    assert folder.name.endswith(runs.INCOMPLETE)
    got = records.read(folder)
    assert not got.complete
    assert (folder / records.FILE).read_text().count('"kind":"finish"') == 1  # one end, by the run or its recovery
    assert not (folder / runs.CACHES).exists() and not (folder / runs.RUNNING).exists()
    for cls, n in kept.items():
        assert len(got.of(cls)) == n, (cls.__name__, [r.kind for r in got.records])
    assert (folder / "comparison.md").exists()  # what it holds is rendered
    assert "incomplete" in (folder / "comparison.md").read_text().lower()
    assert snapshot(results) == before


def render(folder: Path) -> None:
    subprocess.run([sys.executable, "-m", "benchmarks.report", str(folder)], cwd=ROOT, check=True, capture_output=True)


def test_a_run_killed_while_writing_its_report_is_not_published_and_renders_later(earlier):
    results = earlier
    before = snapshot(results)
    names_before = set(os.listdir(results / "runs"))
    killed = bench(results, "report:1:SIGKILL")
    assert killed.returncode != 0
    assert snapshot(results) == before  # never a latest without tables
    (final,) = (results / "runs" / n for n in set(os.listdir(results / "runs")) - names_before)
    assert not (final / "comparison.md").exists()
    assert runs.recover(results, render) == [final]
    got = records.read(final)
    assert got.complete and len(got.of(records.Training)) == 3 and len(got.of(records.Memory)) == 1
    assert (final / "comparison.md").exists()
    assert snapshot(results) == before


def test_a_failing_pytest_benchmark_save_loses_nothing(earlier):
    results = earlier
    names_before = set(os.listdir(results / "runs"))
    result = bench(results, "benchmark-save:0:raise", "--no-memory")
    assert result.returncode != 0  # pytest reports the plugin's error
    new = [results / "runs" / n for n in set(os.listdir(results / "runs")) - names_before]
    assert len(new) == 1 and not new[0].name.endswith((runs.PARTIAL, runs.INCOMPLETE))
    got = records.read(new[0])
    assert got.complete and len(got.of(records.Training)) == 3
    assert (results / "latest").resolve() == new[0]  # published before pytest-benchmark's save
    assert json.loads((results / "index.json").read_text())["latest"] == new[0].name


def test_a_corrupt_index_is_kept_aside_and_rebuilt(tmp_path):
    results = tmp_path / "results"
    (results / "runs" / "20260101-000000-a").mkdir(parents=True)
    (results / "runs" / "20260102-000000-a-incomplete").mkdir()
    for bad in ("{not json", "[]", '{"runs": "x"}'):
        (results / "index.json").write_text(bad)
        assert runs.read_index(results) == ["20260101-000000-a"]
    kept = sorted(p.name for p in results.glob("index.json.corrupt-*"))
    assert kept and not (results / "index.json").exists()
    runs.publish(results / "runs" / "20260101-000000-a")
    assert json.loads((results / "index.json").read_text())["runs"] == ["20260101-000000-a"]


def test_two_processes_publishing_at_once_lose_no_run(tmp_path):
    results = tmp_path / "results"
    names = [f"2026010{i}-000000-h" for i in range(1, 7)]
    for name in names:
        (results / "runs" / name).mkdir(parents=True)
    code = "import sys; from pathlib import Path; from benchmarks import runs\nfor n in sys.argv[1:]:\n"
    code += "    runs.publish(Path(sys.argv[0]).parent / 'runs' / n)\n"
    script = results / "publish.py"
    script.write_text(code.replace("sys.argv[0]", repr(str(script))).replace("sys.argv[1:]", "sys.argv[1:]"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, str(script), *names[i::2]], env=env) for i in (0, 1)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    assert sorted(json.loads((results / "index.json").read_text())["runs"]) == names


def test_the_report_command_labels_a_killed_run(earlier, tmp_path):
    """`python -m benchmarks.report RUN.partial` on a run whose process died labels it first."""
    results = tmp_path / "results"
    shutil.copytree(earlier, results, symlinks=True)
    incomplete_before = set((results / "runs").glob("*" + runs.INCOMPLETE))
    killed = bench(results, "training:1:SIGKILL")
    assert killed.returncode != 0
    (partial,) = (results / "runs").glob("*" + runs.PARTIAL)
    shown = subprocess.run(
        [sys.executable, "-m", "benchmarks.report", str(partial), "--no-plots"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    (labelled,) = set((results / "runs").glob("*" + runs.INCOMPLETE)) - incomplete_before
    assert "labelled " + labelled.name in shown.stdout
    assert (labelled / "comparison.md").exists() and not records.read(labelled).complete


def start_then(results: Path, action, sweep: bool = False) -> tuple[subprocess.CompletedProcess, Path, bytes]:
    """Start a benchmark run (or a sweep), apply `action(partial folder)` once its first step block is recorded,
    and let the run end; the result, the partial folder and its records as they were right after the action."""
    if sweep:
        cmd = [sys.executable, "-m", "benchmarks.sweep", "--backends=numpy", "--sizes=16x1x5,32x1x10"]
        cmd += ["--point-budget-s=0.2", "--repeats=3", f"--results-dir={results}"]
    else:
        cmd = [sys.executable, "-m", "pytest", "--benchmark-only", "-p", "no:cacheprovider", "-q"]
        cmd += [f"--results-dir={results}", "--backends=numpy", *TINY, "--repeats=4", "--no-memory"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs_dir = results / "sweeps" / "runs" if sweep else results / "runs"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        partial = next(iter(runs_dir.glob("*" + runs.PARTIAL)), None)
        file = partial / records.FILE if partial is not None else None  # made a moment after its folder
        if file is not None and file.exists() and '"kind":"block"' in file.read_text(encoding="utf-8"):
            action(partial)
            kept = (partial / records.FILE).read_bytes()
            out = proc.communicate(timeout=300)[0]
            return subprocess.CompletedProcess(cmd, proc.returncode, out), partial, kept
        time.sleep(0.002)
    proc.kill()
    pytest.fail(f"the run never recorded a step block:\n{proc.communicate()[0][-2000:]}")


@pytest.mark.parametrize(("target", "sweep"), [("records", False), ("folder", False), ("records", True)])
def test_a_run_whose_folder_becomes_read_only_stops_at_once_in_one_line(tmp_path, target, sweep):
    """The Writer checks the mode bits, so this holds for root too: nothing more is written, the run stops at
    the unit that could not record, says so in one line naming the file, and is never published."""
    results = tmp_path / "results"

    def make_read_only(partial: Path) -> None:
        os.chmod(partial / records.FILE if target == "records" else partial, 0o444 if target == "records" else 0o555)

    ended, partial, kept = start_then(results, make_read_only, sweep)
    out = ended.stdout
    assert ended.returncode != 0
    assert "Traceback (most recent call last)" not in out and "INTERNALERROR" not in out
    named = [line for line in out.splitlines() if f"cannot write {partial / records.FILE}" in line]
    assert len(named) == 1 and named[0].endswith("the run stops here"), out[-3000:]
    (folder,) = partial.parent.iterdir()
    os.chmod(folder, 0o755)
    assert folder.name == partial.name.removesuffix(runs.PARTIAL) + runs.INCOMPLETE
    assert (folder / records.FILE).read_bytes() == kept  # what was recorded stays; nothing after
    if not sweep:
        units = kept.count(b'"kind":"block"') + kept.count(b'"kind":"overhead"')
        assert f"{units} passed" in out  # no unit ran after the one that could not record
    else:
        assert "[failed]" not in out and out.count("@cpu") <= 1  # no later point was tried
    root = partial.parent.parent
    assert not (root / "latest").exists() and not (root / "index.json").exists()


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("folder", "is a folder; give a file name"),
        ("missing/bench.json", "does not exist"),
        ("/proc/self/bench.json", "not writable"),
    ],
)
def test_an_unusable_benchmark_json_is_refused_before_the_run_folder_is_made(tmp_path, where, says):
    results = tmp_path / "results"
    (tmp_path / "folder").mkdir()
    target = where if where.startswith("/") else str(tmp_path / where)
    ended = bench(results, None, f"--benchmark-json={target}")
    assert ended.returncode == 4  # pytest's usage error
    errors = [line for line in (ended.stdout + ended.stderr).splitlines() if line.startswith("ERROR:")]
    assert errors == [f"ERROR: --benchmark-json {target}: " + errors[0].split(": ", 2)[2]] and says in errors[0]
    assert "Traceback" not in ended.stdout + ended.stderr
    assert not results.exists()


def test_a_size_that_cannot_fit_is_refused_before_anything_runs(tmp_path):
    from backends.task import LIMITS
    from benchmarks.plan import estimated_bytes, machine_bytes

    size = (LIMITS["hidden_size"], LIMITS["batch_size"], LIMITS["seq_len"])
    assert estimated_bytes(size) > machine_bytes()  # terabytes: within each option's bounds, not together
    results = tmp_path / "results"
    flags = [f"--hidden-size={size[0]}", f"--batch-size={size[1]}", f"--seq-len={size[2]}"]
    ended = bench(results, None, *flags)
    assert ended.returncode == 4
    errors = [line for line in (ended.stdout + ended.stderr).splitlines() if line.startswith("ERROR:")]
    need, have = estimated_bytes(size) / 2**30, machine_bytes() / 2**30
    assert errors == [
        f"ERROR: size 4096x4096x10000 needs about {need:.3g} GiB per case, more than this machine's {have:.3g} GiB: "
        "choose a smaller --hidden-size, --batch-size or --seq-len"
    ]
    assert not results.exists()
