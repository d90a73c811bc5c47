"""End to end: the benchmark command with tiny settings, its options and its run folders (each case runs in a
worker process of its own: tests/test_workers.py tests what survives what)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import records

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--seeds=1", "--train-steps=20", "--rounds=5", "--warmup-rounds=1", "--repeats=2", "--no-memory"]
NUMPY = records.Case("numpy", "eager", "cpu", "32x1x10")


def bench_cmd(results: Path, *args: str) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", "--benchmark-only", "-p", "no:cacheprovider", "-q"]
    return [*cmd, f"--results-dir={results}", *args]  # '=': a bare existing path would be taken as rootdir


# Only the tiny run draws plots: the report leaves them out without matplotlib, which saves ~3 s a run here
NO_PLOTS = "import sys\nsys.modules['matplotlib'] = None\n"


def bench(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = bench_cmd(tmp_path / "results", *args)
    env = env or sitecustomize_env(tmp_path, "")
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def sitecustomize_env(tmp_path: Path, code: str, plots: bool = False) -> dict[str, str]:
    """An environment whose Python (the run's and its workers') runs `code` at start-up (to simulate a missing
    or broken framework, or register a test backend)."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(code + ("" if plots else NO_PLOTS))
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")])}


def read(run: Path) -> records.RunRecords:
    return records.read(run)


def test_tiny_run_writes_records_tables_and_plots_and_keeps_old_runs(tmp_path):
    plots = sitecustomize_env(tmp_path, "", plots=True)
    first = bench(tmp_path, "--backends", "numpy,torch-cell", "--modes=default", *TINY, env=plots)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "[accuracy] numpy eager @cpu seed 1/1" in first.stdout
    results = tmp_path / "results"
    run = (results / "latest").resolve()
    for name in ("records.jsonl", "benchmark.json", "comparison.md", "comparison.csv"):
        assert (run / name).stat().st_size > 0, name
    assert any(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in run.glob("*.png"))
    table = (run / "comparison.md").read_text()
    assert "| numpy | eager | cpu |" in table and "| torch-cell | eager | cpu |" in table
    got = read(run)
    assert got.complete and got.start.schema == records.SCHEMA
    blocks = [(b.repeat, b.case.backend, b.op) for b in got.of(records.Block)]
    # the repeats go in turn across backends: every backend's first block, then every backend's second
    assert blocks == [(r, b, k) for r in (0, 1) for b in ("numpy", "torch-cell") for k in ("train_step", "predict")]
    assert [f.case.backend for f in got.of(records.FirstStep)] == ["numpy", "torch-cell"]
    assert len(got.of(records.Training)) == 2 and len(got.of(records.Overhead)) == 1
    assert str(run) in first.stdout
    # each case's worker writes its output to a log of its own and its start-up is recorded
    assert {p.name for p in (run / "logs").glob("*-cpu.log")} == {"numpy-eager-cpu.log", "torch-cell-eager-cpu.log"}
    assert sorted(loaded.case.backend for loaded in got.of(records.Loaded) if loaded.startup_seconds > 0) == [
        "numpy",
        "torch-cell",
    ]
    # every native thread pool of the workers got --threads (default 1): numpy's BLAS reads its count when
    # numpy loads, so the pin must come before that in each worker
    threads = got.machine.threads
    pools = threads["native_pools"]
    assert any(p["user_api"] == "blas" for p in pools), pools
    assert {p["num_threads"] for p in pools} == {1}, pools
    assert threads["frameworks"]["torch"] == {"intra_op": 1, "inter_op": 1}
    assert threads["mismatch"] == []

    second = bench(tmp_path, "--backends", "numpy", *TINY)
    assert second.returncode == 0, second.stdout[-3000:]
    runs = sorted(p.name for p in (results / "runs").iterdir())
    assert len(runs) == 2 and not any(r.endswith(".partial") for r in runs)
    assert (run / "comparison.md").read_text() == table  # the first run is untouched
    assert (results / "latest").resolve() != run
    assert json.loads((results / "index.json").read_text())["runs"] == runs


def test_missing_framework_is_an_unavailable_row(tmp_path):
    env = sitecustomize_env(tmp_path, "import sys\nsys.modules['tensorflow'] = None\n")
    result = bench(tmp_path, "--backends", "numpy,keras-simplernn", "--modes=default", *TINY, env=env)
    assert result.returncode == 0, result.stdout[-3000:]
    run = (tmp_path / "results" / "latest").resolve()
    skipped = read(run).of(records.Skipped)
    assert [(s.case.backend, s.status) for s in skipped] == [("keras-simplernn", "unavailable")]
    table = (run / "comparison.md").read_text()
    assert "keras-simplernn: cannot import its framework" in table
    assert "| numpy | eager | cpu |" in table


@pytest.mark.parametrize(
    "args,message",
    [
        (["--seeds", "0"], "--seeds must be in [1, 1000], got '0'"),
        (["--threads=²"], "--threads must be an integer, got '²'"),
        (["--device", "tpu"], "--device must be one of auto, cpu, cuda, all, got 'tpu'"),
        (["--backends", "caffe"], "--backends: unknown caffe; known: numpy, torch-rnn"),
        (["--results-dir="], "--results-dir must name a folder, got ''"),
        (["--results-dir=README.md/x"], "--results-dir 'README.md/x': README.md is a file, not a folder"),
        (["--backends=numpy", "--device=cuda"], "no case to measure: --backends=numpy"),
        (["--benchmark-json=/nonexistent/b.json"], "--benchmark-json /nonexistent/b.json: folder /nonexistent"),
        (["--cpu-affinity="], "--cpu-affinity must be none or comma-separated cores of this machine ("),
        (["--worker-timeout=0"], "--worker-timeout must be in [1, 1e+06], got '0'"),
    ],
)
def test_bad_option_is_one_line_error(tmp_path, args, message):
    result = bench(tmp_path, *args)
    assert result.returncode == 4
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(errors) == 1 and message in errors[0], errors
    assert not (tmp_path / "results").exists()


def test_memory_is_the_peak_of_the_cases_own_worker(tmp_path):
    """Each case's worker reports its own peak: ballast in this process must not show up there."""
    import numpy as np

    from benchmarks import options
    from benchmarks.harness import run_all
    from benchmarks.plan import make_plan

    ballast = np.ones(300 * 2**20 // 8)  # 300 MiB resident here
    chosen = {"backends": "numpy", "repeats": 1, "rounds": 2, "accuracy": False, "memory": True}
    opts = options.parse({**chosen, "results_dir": str(tmp_path)})
    writer = records.Writer(tmp_path)
    try:
        run_all(opts, make_plan(opts), writer, progress=lambda line: None, argv=["test"])
    finally:
        writer.close()
    (got,) = read(tmp_path).of(records.Memory)
    assert got.case == NUMPY and got.error is None
    assert 200 * 2**20 > got.peak_rss_bytes > got.baseline_rss_bytes > 0, got
    assert got.gpu_peak_bytes is None
    del ballast


def test_interrupted_run_keeps_earlier_results(tmp_path):
    done = bench(tmp_path, "--backends", "numpy", *TINY)
    assert done.returncode == 0, done.stdout[-3000:]
    results = tmp_path / "results"
    before = (results / "latest").resolve()
    table = (before / "comparison.md").read_text()
    cmd = bench_cmd(results, "--backends=numpy", "--seeds=50", "--train-steps=100", "--no-memory")
    env = sitecustomize_env(tmp_path, "")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in proc.stdout:  # interrupt in the middle of the accuracy runs
        if "[accuracy] numpy eager @cpu seed 3/50" in line:
            proc.send_signal(signal.SIGINT)
            break
    proc.communicate(timeout=120)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED
    assert (results / "latest").resolve() == before
    assert (before / "comparison.md").read_text() == table
    names = [p.name for p in (results / "runs").iterdir()]
    assert not any(n.endswith(".partial") for n in names)
    assert sum(n.endswith("-incomplete") for n in names) == 1  # what it measured is kept, not published
    stopped = next(p for p in (results / "runs").iterdir() if p.name.endswith("-incomplete"))
    assert len(read(stopped).of(records.Training)) >= 3  # every finished seed is kept
    assert (stopped / "comparison.md").exists()


def test_a_repeat_after_a_failed_one_starts_from_a_fresh_backend(tmp_path):
    """Repeat 0's backend broke mid-timing (simulated: the worker's 3rd step raises, and that backend stays
    broken): repeat 1 must not reuse it, in the same worker, and is measured. The first step, measured before
    the failure, is kept; the fresh repeat-1 backend adds none."""
    broken = (
        "import backends.numpy_rnn as m\n"
        "step = m.NumpyRNN._train_step\n"
        "calls = []\n"
        "def flaky(self, x, y):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 3 or getattr(self, 'broken', False):\n"
        "        self.broken = True\n"
        "        raise RuntimeError('third step fails')\n"
        "    return step(self, x, y)\n"
        "m.NumpyRNN._train_step = flaky\n"
    )
    result = bench(tmp_path, "--backends=numpy", *TINY, env=sitecustomize_env(tmp_path, broken))
    assert result.returncode == 1, result.stdout[-3000:]
    run = read((tmp_path / "results" / "latest").resolve())
    failed = [(s.case.backend, s.status, s.where, s.reason) for s in run.of(records.Skipped)]
    assert failed == [("numpy", "failed", "train_step block, repeat 0", "RuntimeError: third step fails")]
    steps = [b.repeat for b in run.of(records.Block) if b.op == "train_step"]
    assert steps == [1] and len(run.of(records.FirstStep)) == 1
    assert len(run.of(records.Training)) == 1


def test_cuda_without_gpu_is_an_unavailable_row_not_a_cpu_run(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the check is for machines without one")
    result = bench(tmp_path, "--backends=torch-rnn", "--device=cuda", "--modes=default", *TINY)
    assert result.returncode == 0, result.stdout[-3000:]
    run = (tmp_path / "results" / "runs").iterdir().__next__()
    assert not (tmp_path / "results" / "latest").exists()  # no row measured: never latest
    got = read(run)
    assert [(s.case.device, s.status) for s in got.of(records.Skipped)] == [("cuda", "unavailable")]
    assert "PyTorch sees no CUDA GPU" in (run / "comparison.md").read_text()
    assert got.of(records.Block) == []  # nothing was measured under a cuda label


def test_a_backend_that_raises_is_a_failed_row(tmp_path):
    """A bug in a backend (tests/fault_backends.py: its predict raises) fails that benchmark and shows in the
    table; the other backend's row is whole."""
    entry = "Entry('tests.fault_backends:PredictRaises', 'core', {'eager': Mode()})"  # numpy not loaded yet
    register = f"from backends import REGISTRY, Entry, Mode\nREGISTRY['predict-raises'] = {entry}\n"
    env = sitecustomize_env(tmp_path, register)
    result = bench(tmp_path, "--backends=numpy,predict-raises", *TINY, env=env)
    assert result.returncode == 1, result.stdout[-3000:]
    run = (tmp_path / "results" / "latest").resolve()
    failed = [(s.case.backend, s.where, s.reason) for s in read(run).of(records.Skipped)]
    # every measurement that calls predict fails and says where: both repeats and the training run
    assert [w for _, w, _ in failed] == ["predict block, repeat 0", "predict block, repeat 1", "training"]
    assert {(b, r) for b, _, r in failed} == {("predict-raises", "RuntimeError: predict is broken")}
    table = (run / "comparison.md").read_text()
    assert "RuntimeError: predict is broken" in table
    assert "| numpy | eager | cpu |" in table

    stopped = bench(tmp_path, "--backends=predict-raises", *TINY, "-x", env=env)  # stops at that failure
    assert stopped.returncode == 1, stopped.stdout[-3000:]
    assert (tmp_path / "results" / "latest").resolve() == run  # a run cut short is not published
    assert sum(p.name.endswith("-incomplete") for p in (tmp_path / "results" / "runs").iterdir()) == 1
