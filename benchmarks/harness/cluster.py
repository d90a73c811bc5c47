"""The plan on a Ray cluster (`--cluster=ADDRESS`; `auto` for the cluster this machine belongs to): connecting,
and the parent's side of the workers on the nodes.

The parent stays here: it holds the plan, runs the harness and writes every record into the one run folder. Each
node of the cluster that offers the benchmarking slot (the custom resource `rnn_bench_slot`, 1 per node:
`ray start ... --resources='{"rnn_bench_slot": 1}'`) gets one host (node_host.py): a Ray actor that takes the
node's whole slot (and one GPU when the plan has CUDA cases and the node has one), so no two measurements share
a node, not even of two runs. The host starts each case's worker on its node as the local harness does (the same
worker process, `serve` loop and `Worker` class), so every timing loop runs there with no Ray in the process;
only requests and replies cross the network (a Ray streaming generator brings what a worker says on the way, a
seed's result or progress, as it comes). How the plan is shared out across the nodes is spread.py.

Every node must run the same copy of the project (checked: its source files' digest, and the commit is named)
with the same frameworks; the nodes receive each request (case, options, task) and the case's environment
variables (threads, the mode's own; compile caches are made fresh on the node; import paths inside the project
are found again in the node's copy). When the parent ends, however it ends, Ray kills the hosts it owns and the
kernel kills their workers (PR_SET_PDEATHSIG). Without --cluster nothing imports Ray.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends import threads
from backends.errors import one_line
from backends.task import SIN_TO_COS, Task
from benchmarks import records
from benchmarks.harness import Policy, machine
from benchmarks.harness.node_host import NodeHost, project_digest
from benchmarks.harness.workers import ROOT, WorkerFailed, WorkerProcess, answer
from benchmarks.options import OptionError, Options
from benchmarks.plan import Plan

if TYPE_CHECKING:
    from benchmarks.harness.spread import ClusterHarness

SLOT = "rnn_bench_slot"  # the custom resource each benchmarking node offers, 1 per node
SPREADS = ("split", "every")
NAMESPACE = "rnn-bench"
CONNECT_TIMEOUT_S = 30.0  # ray.init against an address that answers but is not a Ray cluster waits for ever
PROBE_TIMEOUT_S = 5.0
HOST_START_TIMEOUT_S = 120.0  # a node's host: a Ray worker process, the project imported, its machine described
CALL_TIMEOUT_S = 30.0  # a host's answer to anything but a request
HOST_THREADS = 64  # requests in flight on one host (loading several cases at once) plus control calls
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
            answer(reply, on_message)
            deadline = time.monotonic() + timeout

    request = WorkerProcess.request  # send, then receive: the same for a worker on another node

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
        from benchmarks.harness.spread import ClusterHarness

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
    from benchmarks.harness.spread import has_node

    if opts.spread == "every" and not has_node(records.Case):
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
                if isinstance(err, ray.exceptions.RayActorError) and "node has died" in str(err):
                    progress(f"cluster: node {n['NodeManagerAddress']} left out: it died as the run started")
                    continue
                raise ClusterError(
                    f"{where}: node {n['NodeManagerAddress']} cannot run the project ({one_line(err)})"
                ) from None
        if not hosts:
            raise ClusterError(f"{where}: no node took the run (each {SLOT} taken, or its node gone)")
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
