"""A run's life, the same for `make bench` (through pytest) and `make sweep` (plain Python):

    open: recover runs that were killed, a new `.partial` run folder, fresh compile caches in it, the
          harness (Start record);
    work: the caller runs the plan's units through `session.harness`;
    end:  the last records, the folder renamed (`-incomplete` unless every unit ran and no signal came),
          the report rendered, and published as latest only when complete, measured and rendered.

Signals follow benchmarks/signals.py: the end is never cut in half, and an interrupted run is never
complete, whatever exit status its caller saw.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

from backends.errors import one_line
from backends.task import SIN_TO_COS, Task
from benchmarks import records, runs, signals
from benchmarks.harness import Harness, Policy
from benchmarks.options import Options
from benchmarks.plan import Plan


@dataclasses.dataclass
class Session:
    """A run folder, its harness and its outcome."""

    folder: Path
    alive: IO[str]
    writer: records.Writer
    harness: Harness
    caches: Path | None
    published: bool = False
    ended: bool = False
    summary: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)


def results_root(opts: Options) -> Path:
    """Where a command's run folders go: RESULTS_DIR for the benchmark, RESULTS_DIR/sweeps for the sweep."""
    root = Path(opts.results_dir)
    return root / runs.SWEEPS if opts.command == "sweep" else root


def render(folder: Path) -> list[str]:
    """Render a run folder's report (a sweep's as a sweep); the terminal summary lines."""
    from benchmarks.report import render as render_run

    return render_run(folder)[1]


def recover(results_dir: Path, progress: Callable[[str], None]) -> None:
    """Label and render the runs under `results_dir` that were killed."""
    for folder in runs.recover(results_dir, render):
        done = "labelled incomplete and rendered" if folder.name.endswith(runs.INCOMPLETE) else "rendered"
        progress(f"rnn-bench: {folder} was left by a run that was killed; {done}")


def open_session(
    opts: Options,
    plan: Plan,
    argv: list[str] | None = None,
    task: Task = SIN_TO_COS,
    progress: Callable[[str], None] = print,
    policy: Policy | None = None,
) -> Session:
    """Open a new run folder for `plan` (OSError when the results folder cannot hold one; with --cluster, first
    connect: ClusterError, an OptionError, when the cluster cannot take the run)."""
    cluster = None
    if opts.cluster:  # the case workers run on a Ray cluster's nodes (benchmarks/harness/cluster.py)
        from benchmarks.harness.cluster import connect

        cluster = connect(opts, plan, progress)
    results_dir = results_root(opts)
    recover(results_dir, progress)
    with signals.deferred():  # the folder and its Start record come whole; a signal meanwhile ends the run below
        folder, alive = runs.new_run(results_dir)
        caches = folder / runs.CACHES if opts.fresh_caches else None
        writer = records.Writer(folder)
        if cluster is None:
            harness = Harness(opts, plan, writer, task, progress, caches, policy)
        else:
            harness = cluster.harness(opts, plan, writer, task, progress, caches, policy)  # type: ignore[assignment]
        session = Session(folder, alive, writer, harness, caches)
        try:
            harness.start(list(sys.argv if argv is None else argv))
        except OSError:
            end_session(session, attempted_all=False)
            raise
    got = signals.received()
    if got:
        end_session(session, attempted_all=False, exit_status=130)
        for problem in session.problems:
            progress(f"rnn-bench: {problem}")
        raise KeyboardInterrupt(got[0])
    return session


def end_session(session: Session, attempted_all: bool, exit_status: int | None = None) -> Session:
    """End the run (once): see the module's docstring. Problems are one line each in `session.problems`."""
    if session.ended:
        return session
    session.ended = True
    got = signals.received()
    complete = attempted_all and not got
    note = f"interrupted by {', '.join(dict.fromkeys(got))}" if got else ""
    with signals.deferred():
        try:
            session.harness.finish(complete, exit_status, note)
        except OSError as err:  # records.WriteError: the folder was made unwritable
            session.harness.close()
            session.problems.append(one_line(err))
            complete = False  # its last records are missing: never published, whatever the caller attempted
        session.writer.close()
        if session.caches is not None:
            shutil.rmtree(session.caches, ignore_errors=True)
        try:
            session.folder = runs.finish_run(session.folder, complete)
        except OSError as err:
            session.problems.append(f"cannot rename the run folder {session.folder} ({err.strerror or err})")
            complete = False
    if note:
        session.problems.append(f"{note}: the run is incomplete, kept as {session.folder}")
    try:  # the run holds its .running lock until its report is written: no other command renders it meanwhile
        _report(session, complete, note)
    finally:
        runs.release(session.folder, session.alive)
    return session


def _report(session: Session, complete: bool, note: str) -> None:
    """Render the ended run and publish it when it is worth publishing."""
    try:
        with signals.rendering():
            session.summary = render(session.folder)
    except KeyboardInterrupt as err:
        session.problems.append(f"report cut short by {err}; the next command renders it")
        return
    except Exception as err:  # the records are saved; a report bug must not lose them
        session.problems.append(f"report failed ({one_line(err)})")
        session.problems.append(f"regenerate the report with: python -m benchmarks.report {session.folder}")
        return
    if not complete:
        if not note:
            session.problems.append("the run did not finish: not published as latest")
    elif not session.harness.measured_cases:
        session.problems.append("no case was measured: not published as latest")
    else:
        with signals.deferred():
            try:
                runs.publish(session.folder)
                session.published = True
            except OSError as err:
                session.problems.append(f"cannot publish the run as latest ({one_line(err)})")
