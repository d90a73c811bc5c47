"""The plan on a Ray cluster (benchmarks/harness/cluster.py): a local cluster of single-CPU nodes on the
loopback (ray.cluster_utils.Cluster), started and stopped here; real backends (numpy, PyTorch)."""

import collections
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from importlib.util import find_spec
from pathlib import Path

import pytest

import backends
from benchmarks import options, records, sweep
from benchmarks.harness.cluster import SLOT

ROOT = Path(__file__).resolve().parent.parent
needs_ray = pytest.mark.skipif(
    find_spec("ray") is None, reason="ray is not installed (the cluster extra: pip install 'rnn-bench[cluster]')"
)
LOOPBACK = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray keeps every node on 127.0.0.1 (its single-machine mode)


@pytest.fixture(scope="module")
def ray_cluster():
    """Two nodes, one CPU and one benchmarking slot each."""
    old = os.environ.get(LOOPBACK)
    os.environ[LOOPBACK] = "0"  # before Ray is imported: it reads it once
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {SLOT: 1}})
    try:
        cluster.add_node(num_cpus=1, resources={SLOT: 1})
        assert cluster.address.startswith("127.0.0.1:"), cluster.address
        yield cluster
    finally:
        cluster.shutdown()
        if old is None:
            os.environ.pop(LOOPBACK, None)
        else:
            os.environ[LOOPBACK] = old


def sweep_opts(tmp_path, **raw):
    base = {"results_dir": str(tmp_path), "modes": "default", "sizes": "16x1x10,32x1x10", "repeats": "2"}
    budgets = {"point_budget_s": "0.1", "setup_budget_s": "600", "budget_s": "3600"}  # a loaded machine: no skips
    return sweep.parse({**base, "backends": "numpy,torch-rnn", **budgets, **raw})


def case_records(run):
    """What a run measured, as the local harness would name it: kind, case and unit, counted."""
    out = collections.Counter()
    for r in run.records:
        case = getattr(r, "case", None)
        if case is not None:
            key = (case.backend, case.mode, case.device, case.size, case.model)
            out[(r.kind, *key, getattr(r, "op", ""), getattr(r, "repeat", 0), getattr(r, "status", ""))] += 1
    return out


def log_nodes(run_folder):
    """The node each case's worker ran on, from the first line of its log."""
    out = {}
    for log in (run_folder / "logs").glob("*.log"):
        first = log.read_text().splitlines()[0]
        out[log.stem] = first.split(" on node ")[1].split(" ")[0]
    return out


def node_named(record):
    return getattr(getattr(record, "case", record), "node", None)


def test_cluster_options_are_one_line_errors():
    assert options.parse({}).cluster == "" and options.parse({}).spread == "split"
    assert options.parse({"cluster": "10.0.0.1:6379", "spread": "every"}, "sweep").cluster == "10.0.0.1:6379"
    for bad in ("10.0.0.1", "head:port", "ray://head:10001", "a b:1", "head:70000"):
        with pytest.raises(options.OptionError, match="--cluster must be auto or HOST:PORT") as err:
            options.parse({"cluster": bad})
        assert "\n" not in str(err.value)
    with pytest.raises(options.OptionError, match="--spread must be split .* or every"):
        options.parse({"spread": "half"})


def test_without_a_cluster_ray_is_never_imported():
    code = (
        "import sys\n"
        "from benchmarks import options, session, sweep\n"
        "import benchmarks.harness.cluster, benchmarks.bench_suite\n"
        "from benchmarks.plan import make_plan\n"
        "make_plan(sweep.parse({'spread': 'every', 'backends': 'numpy'}))\n"
        "print('ray' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


@needs_ray
def test_a_split_sweep_gives_the_local_records_each_naming_its_node(ray_cluster, tmp_path):
    here = sweep.run_sweep(sweep_opts(tmp_path / "here"), progress=lambda line: None, argv=["test"])
    lines = []
    there = sweep.run_sweep(sweep_opts(tmp_path / "there", cluster=ray_cluster.address), lines.append, ["test"])
    assert here.complete and there.complete, lines
    local, remote = records.read(here.folder), records.read(there.folder)
    assert case_records(remote) == case_records(local)
    assert not remote.of(records.Skipped) and remote.start.cases == local.start.cases
    assert any(line.startswith("cluster: 2 node(s) at 127.0.0.1:") for line in lines)
    # each node measured its own share and says so: its machine at the start and the end, its harness overhead
    lines_of = (there.folder / records.FILE).read_text().count  # (the two nodes' machines may read the same)
    assert lines_of('"kind":"machine"') == 4 and len(remote.of(records.Overhead)) == 2
    nodes = log_nodes(there.folder)
    cases = {name: node for name, node in nodes.items() if name != "overhead"}
    assert len(cases) == 2 and len(set(cases.values())) == 2, nodes  # numpy on one node, torch-rnn on the other
    if any(f.name == "node" for f in records.Case.__dataclass_fields__.values()):
        for r in remote.records:
            case = getattr(r, "case", None)
            if case is not None:
                assert case.node == cases[f"{case.backend}-{case.mode}-{case.device}"], r


@needs_ray
def test_a_node_killed_mid_run_costs_at_most_the_unit_in_flight(ray_cluster, tmp_path):
    doomed = ray_cluster.add_node(num_cpus=1, resources={SLOT: 1})
    chosen = {"backends": "numpy,torch-rnn,torch-cell", "repeats": "3", "point_budget_s": "3"}  # blocks of 0.5 s
    opts = sweep_opts(tmp_path, cluster=ray_cluster.address, **chosen)
    lines, result = [], []
    thread = threading.Thread(target=lambda: result.append(sweep.run_sweep(opts, lines.append, ["test"])))
    thread.start()
    deadline = time.monotonic() + 120
    while thread.is_alive() and time.monotonic() < deadline:  # a case per node: at the first block, all run
        found = list((tmp_path / "sweeps" / "runs").glob("*.partial/records.jsonl"))
        if found and '"kind":"block"' in found[0].read_text():
            break
        time.sleep(0.05)
    ray_cluster.remove_node(doomed, allow_graceful=False)
    thread.join(300)
    ray_cluster.wait_for_nodes(timeout=120)  # the cluster has marked it dead: the next test starts with two
    assert result and result[0].complete, lines[-20:]
    run = records.read(result[0].folder)
    planned = {(c, op, r) for c in run.start.cases for op in ("train_step", "predict") for r in range(3)}
    anywhere = lambda case: dataclasses.replace(case, node="")  # noqa: E731 - planned cases name no node
    blocks = {(anywhere(b.case), b.op, b.repeat) for b in run.of(records.Block)}
    failed = {anywhere(s.case) for s in run.of(records.Skipped) if s.status == "failed"}
    assert all(b.case.node for b in run.of(records.Block)), "every block names its node"
    lost = planned - blocks
    assert len(lost) <= 1 and {case for case, _, _ in lost} <= failed, (lost, failed)
    assert any("left (" in line and "move to" in line for line in lines), lines
    machines = (result[0].folder / records.FILE).read_text().count('"kind":"machine"')
    assert machines == 3 + 2  # every node's first record; the two left at the end


@needs_ray
def test_a_worker_that_crashes_or_hangs_on_a_node_fails_its_own_units_only(ray_cluster, tmp_path, monkeypatch):
    from fault_backends import ABORT_AT_THIRD, SLEEPS_FOREVER

    monkeypatch.setitem(backends.REGISTRY, "abort-at-3", ABORT_AT_THIRD)  # defined here: the node's worker
    monkeypatch.setitem(backends.REGISTRY, "sleeps-forever", SLEEPS_FOREVER)  # imports it from its own copy
    chosen = {"backends": "numpy,abort-at-3,sleeps-forever", "sizes": "16x1x10", "repeats": "1", "worker_timeout": "2"}
    lines = []
    result = sweep.run_sweep(sweep_opts(tmp_path, cluster=ray_cluster.address, **chosen), lines.append, ["test"])
    assert result.complete
    run = records.read(result.folder)
    measured = {(b.case.backend, b.op) for b in run.of(records.Block)}
    assert measured == {
        ("numpy", "train_step"),
        ("numpy", "predict"),
        ("abort-at-3", "predict"),
        ("sleeps-forever", "predict"),
    }
    failed = {(s.case.backend, s.where): s.reason for s in run.of(records.Skipped) if s.status == "failed"}
    assert "SIGABRT" in failed["abort-at-3", "train_step block, repeat 0"]
    hung = failed["sleeps-forever", "train_step block, repeat 0"]
    assert "no answer within 8 s (--worker-timeout); worker stopped" in hung and "sleeps forever" in hung
    assert not any("left (" in line for line in lines)  # a worker's end is not its node's
    assert not [p for p, cmd in descendants(os.getpid()).items() if "benchmarks.harness.worker" in cmd]


def descendants(pid):
    """This process's descendants: pid -> command line."""
    parent, cmdline = {}, {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
                cmdline[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            parent[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out = {}
    for p in parent:
        q = p
        while q in parent and q not in (pid, 0, 1):
            q = parent[q]
        if q == pid and p != pid:
            out[p] = cmdline[p]
    return out


@needs_ray
def test_a_killed_parent_leaves_no_work_on_the_cluster(ray_cluster, tmp_path):
    env = {**os.environ, LOOPBACK: "0"}
    cmd = [sys.executable, "-m", "benchmarks.sweep", f"--cluster={ray_cluster.address}", f"--results-dir={tmp_path}"]
    cmd += ["--backends=numpy,torch-rnn", "--modes=default", "--sizes=16x1x10"]
    cmd += ["--min-round-us=100000", "--point-budget-s=60"]  # blocks of 10 s
    parent = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # both cases loaded, on their nodes
            found = list(tmp_path.glob("sweeps/runs/*.partial/records.jsonl"))
            if found and found[0].read_text().count('"kind":"loaded"') == 2:
                break
            time.sleep(0.1)
        workers = [p for p, cmd in descendants(os.getpid()).items() if "benchmarks.harness.worker" in cmd]
        assert len(workers) == 2
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.2)
    assert not [p for p in workers if Path(f"/proc/{p}").exists()]
    hosts = [p for p, cmd in descendants(os.getpid()).items() if "NodeHost" in cmd]
    assert not hosts


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_ray
def test_no_cluster_at_the_address_is_one_line_before_anything_runs(tmp_path, capsys):
    begin = time.monotonic()
    port = free_port()
    args = [f"--cluster=127.0.0.1:{port}", f"--results-dir={tmp_path / 'results'}", "--backends=numpy"]
    assert sweep.main(args) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"sweep: --cluster=127.0.0.1:{port}: no Ray cluster answers there (Connection refused)"
    assert time.monotonic() - begin < 10 and not (tmp_path / "results").exists()


@needs_ray
def test_a_cluster_without_the_slot_is_one_line_before_anything_runs(ray_cluster, tmp_path, capsys):
    from ray.cluster_utils import Cluster

    bare = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        begin = time.monotonic()
        args = [f"--cluster={bare.address}", f"--results-dir={tmp_path / 'results'}", "--backends=numpy"]
        assert sweep.main(args) == 2
        err = capsys.readouterr().err
        assert time.monotonic() - begin < 30 and not (tmp_path / "results").exists()
        assert len(err.strip().splitlines()) == 1, err
        assert f"no node offers the {SLOT} resource" in err and "ray start" in err
    finally:
        bare.shutdown()
