"""What runs on a node of the cluster (benchmarks/harness/cluster.py): the host, a Ray actor holding the node's
benchmarking slot, which starts each case's worker there exactly as the local harness does (workers.py: a fresh
interpreter with the case's environment, the same `serve` loop) and relays the parent's requests to it. The host
never unpickles a request (a task or backend of the parent's own test module need not import here), and every
timing loop runs in the worker, a process with no Ray in it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import queue
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from backends import threads
from backends.errors import BackendUnavailable, one_line
from benchmarks import records
from benchmarks.harness import machine
from benchmarks.harness.workers import ROOT, WorkerFailed, WorkerProcess

LOG_BYTES = 1 << 20  # a worker's log brought back from its node (the end of it)
FINAL = ("done", "unavailable", "error")  # a request's last message


def project_digest() -> str:
    """What must be the same on every node: the project's source files (a dirty checkout counts)."""
    digest = hashlib.sha256()
    files = [p for d in ("backends", "benchmarks") for p in (ROOT / d).rglob("*.py")] + [ROOT / "pyproject.toml"]
    for path in sorted(files):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:  # gone since it was listed
            digest.update(b"\0missing")
    return digest.hexdigest()[:16]


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
