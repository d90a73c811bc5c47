"""A plan run across the nodes of a cluster (benchmarks/harness/cluster.py): the harness the session gets with
--cluster. Each node runs its share of the plan, in plan order, through a Harness of its own whose workers are on
that node (one thread here per node, the nodes at once, one measurement at a time on each); every record comes
back here and is written into the run's one records file, naming its node. `split` shares the cases out (a case
and all its sizes on one node), `every` runs the whole plan on every node. A node that dies or leaves costs the
unit in flight (recorded failed); what it had left moves to the node with the least left (`split`) or is
recorded failed (`every`).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from backends.task import SIN_TO_COS, Task
from benchmarks import records
from benchmarks.harness import Failed, Harness, Policy, Unavailable, lane_of
from benchmarks.harness.cluster import CALL_TIMEOUT_S, Cluster, Node
from benchmarks.harness.workers import WorkerFailed
from benchmarks.options import Options
from benchmarks.plan import Plan, Work


def named(record: Any, node: str) -> Any:
    """The record naming the node it was measured on, where the record type has a place for it (records.py)."""
    if not node:
        return record
    case = getattr(record, "case", None)
    if isinstance(case, records.Case) and has_node(records.Case):
        return dataclasses.replace(record, case=dataclasses.replace(case, node=node))
    return dataclasses.replace(record, node=node) if has_node(type(record)) else record


def has_node(cls: type) -> bool:
    return any(f.name == "node" for f in dataclasses.fields(cls))


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
        self._moving = threading.RLock()  # a lost node's work is moved to a node still taking work
        self._drained: set[str] = set()  # lost nodes whose thread has handed its work on
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
        alive = [n for n in self.nodes if not n.lost]
        with ThreadPoolExecutor(max(1, len(alive))) as pool:  # each node describes itself at once
            described = [pool.submit(n.call, "machine", self.opts.threads, n.threads) for n in alive]
        for node, future in zip(alive, described):
            try:
                self.writer.write(named(future.result(), node.label))
            except WorkerFailed:
                continue
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
        try:
            self._serve_shares(node)
        except BaseException as err:  # a bug here must not leave the run waiting for ever
            self._deliver(-1, node.label, "error", err)

    def _serve_shares(self, node: Node) -> None:
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
                with self._moving:  # no share is queued to this node after this
                    self._drained.add(node.label)
                    self._orphan(node, share.todo)
                    while not self._queues[node.label].empty():
                        left = self._queues[node.label].get()
                        if left is not None:
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
        if not todo:
            return
        alive = [n for n in self.nodes if not n.lost and n.label not in self._drained]
        if self.opts.spread == "split" and alive:
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
