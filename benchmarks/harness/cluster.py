"""The plan on a Ray cluster (`--cluster=ADDRESS`; `auto` for the cluster this machine belongs to).

The parent stays here: it holds the plan, runs the harness (benchmarks/harness/__init__.py) and writes every
record into the one run folder. Each node of the cluster that offers the benchmarking slot (the custom resource
`rnn_bench_slot`, 1 per node: `ray start ... --resources='{"rnn_bench_slot": 1}'`) gets one host: a Ray actor
that takes the node's whole slot (and one GPU when the plan has CUDA cases and the node has one), so no two
measurements share a node, not even of two runs. The host starts each case's worker on its node exactly as the
local harness does (benchmarks/harness/workers.py: a fresh interpreter with the case's environment, the same
`serve` loop and `Worker` class), so every timing loop runs there with no Ray in the process; only requests and
their replies cross the network (a Ray streaming generator brings progress and each seed's result as they come).

The nodes run at once, each one measurement at a time, each its share of the plan in plan order through a harness
of its own (one thread here per node): `split` shares the cases out (a case and all its sizes stay on one node),
`every` runs the whole plan on every node. A node that dies or leaves costs the unit in flight (recorded failed);
what it had left moves to another node (`split`) or is recorded failed (`every`). When the parent ends, however
it ends, Ray kills the hosts it owns, and the kernel kills their workers (PR_SET_PDEATHSIG).

Every node must run the same copy of the project (checked: its source files' digest and commit) with the same
frameworks; what the nodes receive is each request (case, options, task) and the case's environment variables
(threads, the mode's own; compile caches are made fresh on the node). Without --cluster nothing imports Ray.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import itertools
import logging
import os
import pickle
import queue
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from backends import threads
from backends.errors import BackendUnavailable, one_line
from backends.task import SIN_TO_COS, Task
from benchmarks import records
from benchmarks.harness import Failed, Harness, Policy, Unavailable, lane_of, machine
from benchmarks.harness.workers import ROOT, WorkerFailed, WorkerProcess
from benchmarks.options import OptionError, Options
from benchmarks.plan import Plan, Work

SLOT = "rnn_bench_slot"  # the custom resource each benchmarking node offers, 1 per node
SPREADS = ("split", "every")
NAMESPACE = "rnn-bench"
CONNECT_TIMEOUT_S = 30.0  # ray.init against an address that answers but is not a Ray cluster waits for ever
PROBE_TIMEOUT_S = 5.0
HOST_START_TIMEOUT_S = 120.0  # a node's host: a Ray worker process, the project imported, its machine described
CALL_TIMEOUT_S = 30.0  # a host's answer to anything but a request
HOST_THREADS = 64  # requests in flight on one host (loading several cases at once) plus control calls
LOG_BYTES = 1 << 20  # a worker's log brought back from its node (the end of it)
FINAL = ("done", "unavailable", "error")
CACHE_VARS = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR")
SENT_VARS = (*threads.ENV_VARS, "XLA_FLAGS", "TF_XLA_FLAGS")  # sent even when this machine's own value
NOT_SENT = ("PYTHONPATH", "CUDA_VISIBLE_DEVICES", *CACHE_VARS)  # made on the node (paths, Ray's GPU choice)


class ClusterError(OptionError):
    """The cluster cannot take the run (nothing answers, no slot, another copy of the project); one line."""


def parse_address(raw: str) -> str:
    """'' (run here), 'auto', or HOST:PORT of the cluster's head (`ray start --head` prints it)."""
    if raw in ("", "auto"):
        return raw
    host, _, port = raw.rpartition(":")
    if host and port.isdigit() and 0 < int(port) < 65536 and not any(c.isspace() or c == "/" for c in host):
        return raw
    raise OptionError(f"--cluster must be auto or HOST:PORT of a Ray cluster's head, got {raw!r:.60}")


def parse_spread(raw: str) -> str:
    if raw not in SPREADS:
        raise OptionError(f"--spread must be split (cases shared out across nodes) or every (all on each), got {raw!r}")
    return raw


def project_digest() -> str:
    """What must be the same on every node: the project's source files (a dirty checkout counts)."""
    digest = hashlib.sha256()
    files = [p for d in ("backends", "benchmarks") for p in (ROOT / d).rglob("*.py")] + [ROOT / "pyproject.toml"]
    for path in sorted(files):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()[:16]


def named(record: Any, node: str) -> Any:
    """The record naming the node it was measured on, where the record type has a place for it (records.py)."""
    if not node:
        return record
    case = getattr(record, "case", None)
    if isinstance(case, records.Case) and _has_node(records.Case):
        return dataclasses.replace(record, case=dataclasses.replace(case, node=node))
    return dataclasses.replace(record, node=node) if _has_node(type(record)) else record


def _has_node(cls: type) -> bool:
    return any(f.name == "node" for f in dataclasses.fields(cls))


# ---- on the node ----


class _NodeWorker(WorkerProcess):
    """A worker on the node, sent requests pickled by the parent: the host never unpickles what it relays (a
    task or backend defined in the parent's test module need not import here)."""

    def send_bytes(self, data: bytes) -> None:
        try:
            self._outbox.send_bytes(data)
        except OSError:
            raise self._died() from None


class NodeHost:
    """One per node (a Ray actor holding the node's slot): starts the case workers there and relays requests."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="rnn-bench-node-"))
        self.workers: dict[int, _NodeWorker] = {}
        self.offsets: dict[int, int] = {}  # where each worker's output starts in its log (logs are per lane)
        self.ids = itertools.count(1)
        # PR_SET_PDEATHSIG kills a worker when the thread that started it ends: one thread that lives as long as
        # the host starts them all (the actor's own threads serve calls)
        self.spawner = ThreadPoolExecutor(1, thread_name_prefix="spawner")

    def describe(self, thread_count: int) -> dict[str, Any]:
        import ray

        commit, dirty = machine.git_commit()
        return {
            "host": socket.gethostname(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "digest": project_digest(),
            "commit": commit,
            "dirty": dirty,
            "machine": self.machine(thread_count, []),
        }

    def digest(self) -> str:
        return project_digest()

    def machine(self, thread_count: int, workers: list[dict[str, Any]]) -> records.Machine:
        """The node's machine record; its thread pools are the workers' (this host's own pools run nothing timed)."""
        threads.configure(thread_count)
        record = machine.record(workers)
        settings = dict(record.threads)
        settings["native_pools"] = []
        for pool in (p for w in workers for p in w.get("native_pools") or []):
            if pool not in settings["native_pools"]:
                settings["native_pools"].append(pool)
        settings["mismatch"] = threads.mismatches(settings)
        return dataclasses.replace(record, threads=settings)

    def spawn(
        self, name: str, env: dict[str, str], paths: list[str], caches: dict[str, str], log: str, node: str
    ) -> int:
        full = dict(os.environ)
        full.update(env)
        for var, folder in caches.items():  # fresh compile caches for the run, on this node
            full[var] = str(self.tmp / "caches" / folder)
        project = [str(ROOT / p) for p in paths if (ROOT / p).is_dir()]
        full["PYTHONPATH"] = os.pathsep.join([*project, *filter(None, [os.environ.get("PYTHONPATH")])])
        path = self.tmp / "logs" / log
        offset = path.stat().st_size if path.exists() else 0
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:  # the run's logs say where each worker ran
            f.write(f"rnn-bench: worker {name} on node {node} (pid {os.getpid()} started it)\n")
        worker = self.spawner.submit(_NodeWorker, name, full, path).result()
        wid = next(self.ids)
        self.workers[wid], self.offsets[wid] = worker, offset
        return wid

    def request(self, wid: int, data: bytes) -> Iterator[dict[str, Any]]:
        """Relay one pickled request; yield what the worker sends on the way, then its answer."""
        worker = self.workers.get(wid)
        if worker is None:
            yield {"error": f"no worker {wid} on this node (it was closed)"}
            return
        out: queue.Queue[dict[str, Any]] = queue.Queue()

        def ask() -> None:  # the parent keeps the clock (--worker-timeout): it kills the worker through `kill`
            try:
                worker.send_bytes(data)
                out.put({"done": worker.receive(float("inf"), out.put)})
            except BackendUnavailable as err:
                out.put({"unavailable": str(err)})
            except WorkerFailed as err:
                out.put({"error": str(err)})
            except Exception as err:
                out.put({"error": one_line(err)})

        threading.Thread(target=ask, daemon=True, name=f"request-{wid}").start()
        while True:
            message = out.get()
            yield message
            if any(k in message for k in FINAL):
                return

    def alive(self, wid: int) -> bool:
        worker = self.workers.get(wid)
        return worker is not None and worker.alive()

    def kill(self, wid: int) -> str:
        """Kill a worker; the end of its log, for the reason."""
        worker = self.workers.get(wid)
        if worker is None:
            return ""
        worker.kill()
        return worker._tail()

    def close(self, wid: int) -> bytes:
        """Stop a worker; its output, to be kept with the run's logs."""
        worker = self.workers.pop(wid, None)
        if worker is None:
            return b""
        worker.close()
        try:
            with open(worker.log_path, "rb") as f:
                f.seek(self.offsets.pop(wid, 0))
                text = f.read()
        except OSError:
            return b""
        return text[-LOG_BYTES:]

    def kill_all(self) -> None:
        for worker in list(self.workers.values()):
            worker.kill()

    def shutdown(self) -> None:
        self.kill_all()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---- here: the nodes, their workers, the harness ----


@dataclasses.dataclass
class Node:
    """A node of the run: its host actor, and what it told us."""

    label: str
    host: Any  # the NodeHost actor
    gpu: bool
    machine: records.Machine
    lost: str = ""  # why the node is gone ('' while it is not)
    threads: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # each worker's thread settings

    def call(self, method: str, *args: Any, timeout: float = CALL_TIMEOUT_S) -> Any:
        """A host method's answer; WorkerFailed when the node is gone or does not answer."""
        import ray

        if self.lost:
            raise WorkerFailed(f"node {self.label} is gone ({self.lost})")
        try:
            return ray.get(getattr(self.host, method).remote(*args), timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            raise WorkerFailed(f"node {self.label} did not answer within {timeout:g} s") from None
        except ray.exceptions.RayActorError as err:
            self.lost = one_line(err)
            raise WorkerFailed(f"node {self.label} is gone ({self.lost})") from None
        except ray.exceptions.RayError as err:
            raise WorkerFailed(f"node {self.label}: {one_line(err)}") from None

    def check(self) -> bool:
        """Whether the node still answers (after a failure: a dead node's work goes elsewhere)."""
        try:
            self.call("alive", 0, timeout=10)
        except WorkerFailed as err:
            self.lost = self.lost or str(err)
        return not self.lost

    def spawn(self, name: str, env: dict[str, str], log_path: Path) -> RemoteWorker:
        """The Harness's `spawn`: a case's worker on this node."""
        return RemoteWorker(self, name, env, log_path)


class RemoteWorker:
    """A case's worker on a node, offering what WorkerProcess offers the harness."""

    def __init__(self, node: Node, name: str, env: dict[str, str], log_path: Path) -> None:
        self.node, self.name, self.log_path = node, name, log_path
        self.started = time.perf_counter()
        self._stream: Any = None
        self._asked = ""
        self._closed = False
        sent = {k: v for k, v in env.items() if (os.environ.get(k) != v or k in SENT_VARS) and k not in NOT_SENT}
        caches = {k: Path(env[k]).name for k in CACHE_VARS if k in env and os.environ.get(k) != env[k]}
        paths = []  # the parent's import path inside the project, found again in the node's copy
        for p in env.get("PYTHONPATH", "").split(os.pathsep):
            if p and Path(p).resolve().is_relative_to(ROOT):
                paths.append(str(Path(p).resolve().relative_to(ROOT)))
        self.id = node.call("spawn", name, sent, paths, caches, log_path.name, node.label)

    def send(self, message: dict[str, Any]) -> None:
        if self.node.lost:
            raise WorkerFailed(f"node {self.node.label} is gone ({self.node.lost})")
        self._asked = str(message.get("request", ""))
        host = self.node.host
        self._stream = host.request.options(num_returns="streaming").remote(self.id, pickle.dumps(message))

    def receive(self, timeout: float, on_message: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """As WorkerProcess.receive; the node being gone is a WorkerFailed naming it."""
        import ray

        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = ""
                try:
                    tail = self.node.call("kill", self.id)
                except WorkerFailed:
                    pass
                raise WorkerFailed(f"no answer within {timeout:g} s (--worker-timeout); worker stopped{tail}")
            try:
                ready, _ = ray.wait([self._stream], timeout=min(remaining, 1.0))
                if not ready:
                    continue
                reply = ray.get(next(self._stream))
            except StopIteration:
                raise WorkerFailed(f"node {self.node.label}: the request ended without an answer") from None
            except ray.exceptions.RayActorError as err:
                self.node.lost = self.node.lost or one_line(err)
                raise WorkerFailed(f"node {self.node.label} is gone ({self.node.lost})") from None
            except ray.exceptions.RayError as err:
                raise WorkerFailed(f"node {self.node.label}: {one_line(err)}") from None
            if "done" in reply:
                if self._asked == "threads":
                    self.node.threads.append({"worker": self.name, **reply["done"]})
                return reply["done"]
            if "unavailable" in reply:
                raise BackendUnavailable(reply["unavailable"])
            if "error" in reply:
                raise WorkerFailed(reply["error"])
            if on_message is not None:
                on_message(reply)
            deadline = time.monotonic() + timeout

    def request(
        self, message: dict[str, Any], timeout: float, on_message: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        self.send(message)
        return self.receive(timeout, on_message)

    def alive(self) -> bool:
        try:
            return bool(self.node.call("alive", self.id, timeout=10))
        except WorkerFailed:
            return False

    def close(self) -> None:
        """Stop the worker; its output joins the run's logs here."""
        if self._closed:
            return
        self._closed = True
        try:
            text = self.node.call("close", self.id)
        except WorkerFailed:
            return
        if text:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as f:
                f.write(text)

    def kill(self) -> None:
        try:
            self.node.call("kill", self.id)
        except WorkerFailed:
            pass


class _Stopped(Exception):
    """The run is ending: a node's harness must not write any more."""


class _NodeWriter:
    """A node's harness writes through this: records name the node, and one writer at a time writes."""

    def __init__(self, harness: ClusterHarness, node: str) -> None:
        self.harness, self.node, self.path = harness, node, harness.writer.path

    def write(self, record: records.Record) -> None:
        self.harness._write(record, self.node)


class _Locked(Policy):
    """The sweep's policy asked by several nodes' harnesses at once."""

    def __init__(self, policy: Policy) -> None:
        self.policy, self.lock = policy, threading.Lock()

    def skip(self, work: Work) -> str:
        with self.lock:
            return self.policy.skip(work)

    def block_budget_s(self, work: Work) -> float | None:
        with self.lock:
            return self.policy.block_budget_s(work)

    def observe(self, work: Work, record: Any, seconds: float) -> None:
        with self.lock:
            self.policy.observe(work, record, seconds)


@dataclasses.dataclass
class _Share:
    """Work of the plan (indices, in order) that one node runs through one harness."""

    harness: Harness
    todo: list[int]


class ClusterHarness:
    """The harness of a run on a cluster: what Harness offers the session (start, run, finish, close,
    measured_cases), with each node's share run by a harness of its own, the nodes at once."""

    def __init__(
        self,
        cluster: Cluster,
        opts: Options,
        plan: Plan,
        writer: records.Writer,
        task: Task = SIN_TO_COS,
        progress: Callable[[str], None] = print,
        caches: Path | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.cluster, self.opts, self.plan, self.writer, self.task = cluster, opts, plan, writer, task
        self.progress, self.caches, self.policy = progress, caches, policy or Policy()
        self._index = {work: i for i, work in enumerate(plan.work)}
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._expect: dict[int, set[str]] = {}  # work index -> nodes that will report it
        self._outcomes: dict[int, dict[str, tuple[str, Any]]] = {}  # work index -> node -> (kind, value)
        self._fatal: BaseException | None = None
        self._stopping = False
        self._held_out: set[str] = set()
        self._queues: dict[str, queue.Queue[_Share | None]] = {}
        self._harnesses: list[tuple[Node, Harness]] = []
        self._threads: list[threading.Thread] = []
        self._started = False
        self._closed = False
        self._shared = _Locked(self.policy)
        for node, _ in self._shares():
            self._queues[node.label] = queue.Queue()
        for node, todo in self._shares():
            if todo:
                self._queue(node, todo)

    @property
    def measured_cases(self) -> set[records.Case]:
        return set().union(*(h.measured_cases for _, h in self._harnesses))

    @property
    def nodes(self) -> list[Node]:
        return self.cluster.nodes

    def _shares(self) -> list[tuple[Node, list[int]]]:
        """Which node runs which unit: `every`, all of them; `split`, each case (all its sizes) on one node, the
        cases dealt out in plan order to the node with the fewest (CUDA cases to nodes with a GPU where any)."""
        work = list(range(len(self.plan.work)))
        if self.opts.spread == "every":
            return [(node, list(work)) for node in self.nodes]
        lanes: dict[Any, str] = {}
        count = {node.label: 0 for node in self.nodes}
        for case in self.plan.cases:
            if lane_of(case) in lanes:
                continue
            able = [n for n in self.nodes if n.gpu] if case.device == "cuda" else []
            chosen = min(able or self.nodes, key=lambda n: count[n.label])
            lanes[lane_of(case)] = chosen.label
            count[chosen.label] += 1
        out = []
        for node in self.nodes:
            mine = [i for i in work if (c := self.plan.work[i].case) is None or lanes[lane_of(c)] == node.label]
            out.append((node, mine if count[node.label] else []))  # the overhead probe where cases run
        return out

    def _queue(self, node: Node, todo: list[int], instead_of: str = "") -> None:
        """A harness on `node` for the units `todo` (indices into the plan, in order), which node `instead_of`
        was to run."""
        works = [self.plan.work[i] for i in todo]
        lanes = {lane_of(w.case) for w in works if w.case is not None}
        cases = tuple(c for c in self.plan.cases if lane_of(c) in lanes)
        policy = self._shared
        if self.opts.spread == "every":  # each node keeps its own budgets: the same cases run on every node
            policy = copy.deepcopy(self.policy)
            if callable(getattr(policy, "progress", None)):
                policy.progress = lambda line: self.progress(f"{line}  [{node.label}]")
        harness = Harness(
            self.opts,
            Plan(cases, tuple(works), self.plan.repeats),
            _NodeWriter(self, node.label),  # type: ignore[arg-type]
            task=self.task,
            progress=lambda line: self.progress(f"{line}  [{node.label}]"),
            caches=self.caches,
            policy=policy,
            spawn=node.spawn,
        )
        with self._cond:
            for i in todo:
                self._expect.setdefault(i, set()).add(node.label)
                self._expect[i].discard(instead_of)
        self._harnesses.append((node, harness))
        self._queues[node.label].put(_Share(harness, list(todo)))

    # ---- the run's first and last records ----

    def start(self, argv: list[str]) -> None:
        """The Start record (the whole plan) and each node's machine record; then the nodes begin."""
        harness = Harness(self.opts, self.plan, _Machines(self), task=self.task, caches=self.caches)  # type: ignore[arg-type]
        harness.start(argv)
        for node in self.nodes:
            thread = threading.Thread(target=self._serve, args=(node,), daemon=True, name=f"node-{node.label}")
            self._threads.append(thread)
            thread.start()
        self._started = True

    def finish(self, complete: bool, exit_status: int | None = None, note: str = "") -> None:
        self._stop()
        for node in self.nodes:
            if not node.lost:
                try:
                    fresh = node.call("machine", self.opts.threads, node.threads)
                except WorkerFailed:
                    continue
                self.writer.write(named(fresh, node.label))
        finished = dt.datetime.now().isoformat(timespec="seconds")
        self.writer.write(records.Finish(finished, complete, exit_status, note))
        self.close()

    def close(self) -> None:
        """Stop the nodes' work and let go of the cluster (idempotent)."""
        if self._closed:
            return
        self._stop()
        self._closed = True
        self.cluster.close()

    def _stop(self) -> None:
        """No more writes from the nodes; workers in flight killed, each node's harness closed."""
        with self._write_lock:
            already, self._stopping = self._stopping, True
        if already:
            return
        for node in self.nodes:
            self._queues[node.label].put(None)
            if not node.lost:
                try:
                    node.call("kill_all", timeout=10)
                except WorkerFailed:
                    pass
        for thread in self._threads:
            thread.join(timeout=CALL_TIMEOUT_S)
        for _, harness in list(self._harnesses):
            harness.close()

    # ---- work ----

    def run(self, work: Work) -> Any:
        """The unit's main record once its node (or every node) did it; Unavailable or Failed as Harness.run."""
        if not self._started:
            raise RuntimeError("ClusterHarness.run before start")
        i = self._index.get(work)
        if i is None:
            raise ValueError(f"{work.id} is not a unit of this run's plan")
        with self._cond:
            while not self._expect.get(i, set()) <= self._outcomes.get(i, {}).keys():
                if self._fatal is not None:
                    raise self._fatal
                self._cond.wait(0.5)
            outcomes = dict(self._outcomes.get(i, {}))
        if not outcomes:
            raise Unavailable("no node of the cluster runs it")
        ok = [value for kind, value in outcomes.values() if kind == "ok"]
        for label, (kind, value) in outcomes.items():
            if ok and kind != "ok":
                self.progress(f"  [{kind} on {label}] {work.id}: {value}")
        if ok:
            return ok[0]
        kind, value = next(iter(outcomes.values()))
        if kind == "error":
            raise value
        raise Unavailable(value) if kind == "unavailable" else Failed(value)

    def _write(self, record: records.Record, node: str) -> None:
        with self._write_lock:
            if self._stopping:
                raise _Stopped()
            if isinstance(record, records.HeldOut):  # the task's data, the same from every node
                if record.size in self._held_out:
                    return
                self._held_out.add(record.size)
            self.writer.write(named(record, node))

    def _deliver(self, i: int, node: str, kind: str, value: Any) -> None:
        with self._cond:
            self._outcomes.setdefault(i, {})[node] = (kind, value)
            if kind == "error" and self._fatal is None:
                self._fatal = value
            self._cond.notify_all()

    def _serve(self, node: Node) -> None:
        """A node's thread: its shares, unit by unit, in plan order."""
        while True:
            share = self._queues[node.label].get()
            if share is None:
                return
            while share.todo and not node.lost:
                i = share.todo[0]
                try:
                    kind, value = "ok", share.harness.run(self.plan.work[i])
                except Unavailable as err:
                    kind, value = "unavailable", str(err)
                except Failed as err:
                    kind, value = "failed", str(err)
                except _Stopped:
                    return
                except Exception as err:  # records.WriteError: the run stops here
                    kind, value = "error", err
                share.todo.pop(0)
                self._deliver(i, node.label, kind, value)
                if kind == "error":
                    return
                if kind == "failed":
                    node.check()
            if node.lost:
                share.harness.close()
                self._orphan(node, share.todo)
                while not self._queues[node.label].empty():
                    left = self._queues[node.label].get()
                    if left is None:
                        return
                    self._orphan(node, left.todo)
                return

    def _orphan(self, node: Node, todo: list[int]) -> None:
        """What a lost node had left: to the alive node with the least to do (`split`), else recorded failed."""
        if self._stopping or not todo:
            return
        overhead = [i for i in todo if self.plan.work[i].case is None]
        for i in overhead:  # the harness's own cost on that node: gone with it
            self._deliver(i, node.label, "failed", f"node {node.label} left the cluster ({node.lost})")
        todo = [i for i in todo if i not in overhead]
        alive = [n for n in self.nodes if not n.lost]
        if todo and self.opts.spread == "split" and alive:
            cuda = any(self.plan.work[i].case.device == "cuda" for i in todo)
            able = [n for n in alive if n.gpu] if cuda else []

            def left(n: Node) -> int:
                return sum(
                    1 for i, who in self._expect.items() if n.label in who and n.label not in self._outcomes.get(i, {})
                )

            with self._cond:
                chosen = min(able or alive, key=left)
            self.progress(f"cluster: node {node.label} left ({node.lost}); {len(todo)} unit(s) move to {chosen.label}")
            self._queue(chosen, todo, instead_of=node.label)
            return
        reason = f"node {node.label} left the cluster ({node.lost}); its remaining work was not run"
        self.progress(f"cluster: {reason}")
        cases = dict.fromkeys(self.plan.work[i].case for i in todo)
        for case in cases:
            try:
                self._write(records.Skipped(case, "failed", reason, "cluster"), node.label)
            except (_Stopped, OSError):
                break
        for i in todo:
            self._deliver(i, node.label, "failed", reason)


class _Machines:
    """The writer of the run's start: this machine's record is replaced by each node's (the nodes measure)."""

    def __init__(self, harness: ClusterHarness) -> None:
        self.harness, self.path = harness, harness.writer.path

    def write(self, record: records.Record) -> None:
        if not isinstance(record, records.Machine):
            self.harness.writer.write(record)
            return
        for node in self.harness.nodes:
            self.harness.writer.write(named(node.machine, node.label))


# ---- connecting ----


@dataclasses.dataclass
class Cluster:
    """The connection of a run to a cluster: one host per node that offers the slot."""

    address: str
    nodes: list[Node]
    closed: bool = False

    def harness(
        self,
        opts: Options,
        plan: Plan,
        writer: records.Writer,
        task: Task = SIN_TO_COS,
        progress: Callable[[str], None] = print,
        caches: Path | None = None,
        policy: Policy | None = None,
    ) -> ClusterHarness:
        return ClusterHarness(self, opts, plan, writer, task, progress, caches, policy)

    def close(self) -> None:
        """Kill the hosts (their workers die with them) and disconnect (idempotent)."""
        import ray

        if self.closed:
            return
        self.closed = True
        for node in self.nodes:
            if not node.lost:
                try:
                    node.call("shutdown", timeout=10)
                except WorkerFailed:
                    pass
            try:
                ray.kill(node.host)
            except Exception:  # already gone
                pass
        ray.shutdown()


def connect(opts: Options, plan: Plan, progress: Callable[[str], None] = print) -> Cluster:
    """Connect to `opts.cluster` and start a host on every node that offers the slot; ClusterError (one line)
    when nothing answers, no node offers the slot, or a node runs another copy of the project."""
    address = opts.cluster
    where = f"--cluster={address}"
    if opts.spread == "every" and not _has_node(records.Case):
        raise ClusterError("--spread=every needs records that name their node (records.Case has no node field)")
    try:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    except ImportError:
        raise ClusterError(f"{where} needs Ray here and on every node: pip install 'rnn-bench[cluster]'") from None
    if ray.is_initialized():
        raise ClusterError(f"{where}: this process is already connected to a Ray cluster")
    if address != "auto":
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
        except OSError as err:
            raise ClusterError(f"{where}: no Ray cluster answers there ({err.strerror or one_line(err)})") from None
    _init(ray, address, where)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(SLOT, 0) >= 1]
        if not nodes:
            raise ClusterError(
                f"{where}: no node offers the {SLOT} resource; start each benchmarking node with "
                f"ray start ... --resources='{{\"{SLOT}\": 1}}'"
            )
        cuda = any(c.device == "cuda" for c in plan.cases)
        host_class = ray.remote(NodeHost)
        started = []
        for n in nodes:
            gpu = cuda and n["Resources"].get("GPU", 0) >= 1
            handle = host_class.options(
                num_cpus=0,
                num_gpus=1 if gpu else 0,
                resources={SLOT: n["Resources"][SLOT]},  # the node's whole slot
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
                max_concurrency=HOST_THREADS,
                max_restarts=0,
            ).remote()
            started.append((n, gpu, handle, handle.describe.remote(opts.threads)))
        ready, _ = ray.wait([s[3] for s in started], num_returns=len(started), timeout=HOST_START_TIMEOUT_S)
        hosts = []
        for n, gpu, handle, described in started:
            if described not in ready:
                ray.kill(handle)
                progress(f"cluster: node {n['NodeManagerAddress']} left out: its {SLOT} is taken (another run?)")
                continue
            try:
                hosts.append((gpu, handle, ray.get(described)))
            except ray.exceptions.RayError as err:
                raise ClusterError(
                    f"{where}: node {n['NodeManagerAddress']} cannot run the project ({one_line(err)})"
                ) from None
        if not hosts:
            raise ClusterError(f"{where}: every node's {SLOT} stayed taken for {HOST_START_TIMEOUT_S:g} s")
        _same_project(hosts, where)
        names = [d["host"] for _, _, d in hosts]
        out = []
        for gpu, handle, d in sorted(hosts, key=lambda h: (h[2]["host"], h[2]["node_id"])):
            label = d["host"] if names.count(d["host"]) == 1 else f"{d['host']}/{d['node_id'][:8]}"
            out.append(Node(label, handle, gpu, d["machine"]))
        how = "cases split across them" if opts.spread == "split" else "the whole plan on each"
        progress(f"cluster: {len(out)} node(s) at {address} ({', '.join(n.label for n in out)}); {how}")
        return Cluster(address, out)
    except BaseException:
        ray.shutdown()
        raise


def _init(ray: Any, address: str, where: str) -> None:
    """ray.init, in bounded time (it waits for ever on an address that answers but is not a Ray cluster); in a
    thread of its own, which also keeps Ray from taking SIGTERM from the run's own signal handling."""
    box: dict[str, BaseException] = {}

    def init() -> None:
        try:
            ray.init(address=address, namespace=NAMESPACE, logging_level=logging.ERROR, log_to_driver=False)
        except BaseException as err:
            box["err"] = err

    logging.getLogger("ray").setLevel(logging.ERROR)
    thread = threading.Thread(target=init, daemon=True, name="ray-connect")
    thread.start()
    thread.join(CONNECT_TIMEOUT_S)
    if thread.is_alive():
        raise ClusterError(f"{where}: no Ray cluster answered within {CONNECT_TIMEOUT_S:g} s")
    if "err" in box:
        raise ClusterError(f"{where}: cannot connect ({one_line(box['err'])})")


def _same_project(hosts: list[tuple[bool, Any, dict[str, Any]]], where: str) -> None:
    """Refuse a node whose project files differ from this machine's (asked twice: a checkout being updated
    while the run starts differs only for a moment)."""
    commit, dirty = machine.git_commit()
    for _, handle, d in hosts:
        if d["digest"] == project_digest():
            continue
        import ray

        time.sleep(1.0)
        again = ray.get(handle.digest.remote(), timeout=CALL_TIMEOUT_S)
        if again != project_digest():
            raise ClusterError(
                f"{where}: node {d['host']} has another copy of the project ({_version(d['commit'], d['dirty'])}, "
                f"files {again[:8]}) than this machine ({_version(commit, dirty)}, files {project_digest()[:8]}): "
                "install the same commit on every node"
            )


def _version(commit: str | None, dirty: bool | None) -> str:
    return f"commit {(commit or 'unknown')[:10]}{' with changes' if dirty else ''}"
