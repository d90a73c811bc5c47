"""The size sweep: the same pipeline as `make bench` (options -> plan -> harness -> records -> report) over a
set of sizes (hidden x batch x seq_len). `python -m benchmarks.sweep [options]`, or `make sweep ARGS=...`.

What is the sweep's own lives here: the sizes and their presets, and the budgets, applied as the harness's
`Policy`. Time only by default (the seed's learning rate does not carry to other sizes; --accuracy trains).
A point (case x size) is skipped and recorded as "over-budget" when its estimated memory or its train_step
time (measured, or predicted from the case's smaller sizes) is over the limits; a case over budget at one
size is not tried at any size at least as large on every axis. Compiling modes recompile at every size, so
each case has a setup budget (loading, compiling, first calls) over the whole sweep; the whole sweep has a
time budget too. Run folders go to RESULTS_DIR/sweeps/runs/, the last complete one is RESULTS_DIR/sweeps/latest.
"""

from __future__ import annotations

import sys

from backends import threads
from benchmarks import signals

if __name__ == "__main__":  # before numpy loads its BLAS, and before anything can be interrupted
    signals.install()
    _n = threads.from_args(sys.argv[1:])
    if _n is not None:
        threads.configure(_n)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Mapping, Sequence  # noqa: E402
from typing import Any, NamedTuple  # noqa: E402

from backends.errors import one_line  # noqa: E402
from backends.task import LIMITS  # noqa: E402
from benchmarks import options  # noqa: E402
from benchmarks.harness import Failed, Policy, Unavailable  # noqa: E402
from benchmarks.names import size_parts, work  # noqa: E402
from benchmarks.options import OptionError, Options  # noqa: E402
from benchmarks.plan import OPS, Size, Work, estimated_bytes, make_plan  # noqa: E402
from benchmarks.records import Block, Case, size_of  # noqa: E402
from benchmarks.session import end_session, open_session  # noqa: E402

SIZE_FORM = "HIDDENxBATCHxSEQ_LEN, e.g. 32x1x10"
AXES = ("hidden_size", "batch_size", "seq_len")
SEED: Size = (32, 1, 10)
PRESETS: dict[str, tuple[Size, ...]] = {
    "seed": (SEED,),
    "torch7-rnn": ((20, 8, 100),),  # torch7 char-rnn's small model
    # each axis from the seed's point up to hidden 1024, batch 256, seq 100, plus a diagonal: from
    # overhead-bound (every backend a few ms or less) to compute-bound on the CPU (1024x1x10,
    # 256x32x50) and on a GPU (1024x256x100, over the CPU's per-call limit)
    "default": (
        SEED,
        (128, 1, 10),
        (512, 1, 10),
        (1024, 1, 10),
        (32, 16, 10),
        (32, 256, 10),
        (32, 1, 30),
        (32, 1, 100),
        (128, 8, 30),
        (256, 32, 50),
        (1024, 256, 100),
    ),
}
SUBLINEAR_DEVICES = {"cuda": 0.5}  # a GPU absorbs more work in parallel until it saturates: time ~ work**0.5
TIMING_WINDOWS = 20  # windows a timed block cycles through (--train-steps when --accuracy is not given)


def parse_sizes(raw: str) -> tuple[Size, ...]:
    """'32x1x10,64x4x20' -> ((32, 1, 10), (64, 4, 20)); OptionError naming --sizes and the form otherwise."""
    out: list[Size] = []
    for item in (p.strip() for p in raw.split(",")):
        parts = item.lower().split("x")
        try:
            size = tuple(int(p) for p in parts)
        except ValueError:
            size = ()
        if len(size) != 3:
            raise OptionError(f"--sizes: {item!r} is not {SIZE_FORM}")
        for axis, value in zip(AXES, size):
            if not 1 <= value <= LIMITS[axis]:
                limits = ", ".join(f"{a} 1..{LIMITS[a]}" for a in AXES)
                raise OptionError(f"--sizes: {item!r}: {axis} {value} is out of range ({SIZE_FORM}; {limits})")
        if size not in out:
            out.append((size[0], size[1], size[2]))
    return tuple(out)


def parse_preset(raw: str) -> str:
    if raw not in PRESETS:
        raise OptionError(f"--preset: unknown {raw!r}; known: {', '.join(PRESETS)}")
    return raw


def parse(raw: Mapping[str, Any]) -> Options:
    """The sweep's options from values by name; OptionError naming the option otherwise."""
    sized = [options.BY_NAME[a].flag for a in AXES if a in raw]
    if sized:  # the table's task options reach the sweep too, but its sizes are --sizes or --preset
        raise OptionError(f"{', '.join(sized)}: the sweep's sizes are given by --sizes or --preset ({SIZE_FORM})")
    opts = options.parse(raw, "sweep")
    if not opts.accuracy and "train_steps" not in raw:  # time only: fewer windows to convert at each load
        opts = opts.replace(train_steps=TIMING_WINDOWS)
    return opts


# ---- budgets: what a point would cost ----


def covers(size: Size, smaller: Size) -> bool:
    """Whether `size` is at least `smaller` on every axis."""
    return all(a >= b for a, b in zip(size, smaller))


def predicted_call_s(size: Size, measured: Mapping[Size, float], device: str) -> tuple[float, Size] | None:
    """One train_step at `size`, scaled by work from the largest measured size with no more work (time ~
    work on a CPU: an overestimate while overhead dominates, so it errs on the side of skipping); None
    when nothing smaller was measured."""
    refs = [s for s in measured if work(s) <= work(size)]
    if not refs:
        return None
    ref = max(refs, key=work)
    exponent = SUBLINEAR_DEVICES.get(device, 1.0)
    return measured[ref] * (work(size) / work(ref)) ** exponent, ref


@dataclasses.dataclass
class CaseState:
    """What the sweep knows of one backend x mode x device across sizes."""

    over: list[tuple[Size, str]] = dataclasses.field(default_factory=list)  # (size, why) where it went over budget
    measured: dict[Size, float] = dataclasses.field(default_factory=dict)  # size -> train_step median seconds
    setup_s: float = 0.0  # loading, compiling, first calls, warm-up: everything but timed rounds
    size_setup_s: dict[Size, float] = dataclasses.field(default_factory=dict)
    stopped: set[tuple[Size, str]] = dataclasses.field(default_factory=set)  # (size, op) with no more repeats


class Budgets(Policy):
    """The sweep's budgets as the harness's policy: asked before each unit, told what each unit cost."""

    def __init__(self, opts: Options, progress: Callable[[str], None] = print) -> None:
        self.opts, self.progress = opts, progress
        self.states: dict[tuple[str, str, str], CaseState] = {}
        self.began = time.monotonic()
        self.counts = {"measured": 0, "skipped": 0, "failed": 0}
        self._seen: dict[Case, list[float]] = {}  # points started, with their train_step medians
        self._refused: dict[Case, str] = {}  # points skipped as over budget, and why

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def state(self, case: Case) -> CaseState:
        return self.states.setdefault((case.backend, case.mode, case.device), CaseState())

    def skip(self, work: Work) -> str:
        case = work.case
        if case is None:
            return ""
        state, size = self.state(case), size_parts(case.size)
        if work.kind != "block":  # training and memory only where the point was timed
            return "" if size in state.measured else "not timed at this size"
        if case in self._refused:  # a point skipped at its first unit is skipped at every later one
            return self._refused[case]
        if (size, work.op) in state.stopped:
            return "one repeat is enough over --max-call-s"
        if work.repeat > 0:  # a point keeps the repeats it has when the sweep's budget runs out
            spent = self.elapsed() >= self.opts.budget_s
            return f"sweep budget spent (--budget-s={self.opts.budget_s:g})" if spent else ""
        if case in self._seen:
            return ""
        reason = self._reason(state, size, case.device)
        if reason:
            self._refused[case] = reason
        return reason

    def _reason(self, state: CaseState, size: Size, device: str) -> str:
        """Why the point must be skipped as over-budget, or ''. The surest reasons come first; a prediction
        is made only while the sweep runs normally (from the nearest smaller size measured)."""
        opts = self.opts
        mb = estimated_bytes(size) / 2**20
        if mb > opts.max_memory_mb:
            return f"estimated memory {mb:.3g} MB > --max-memory-mb={opts.max_memory_mb:g}"
        for smaller, why in state.over:
            if covers(size, smaller):
                return f"over budget at {size_of(*smaller)} ({why}); not tried at sizes as large on every axis"
        last = list(state.size_setup_s.values())[-1] if state.size_setup_s else 0.0
        if state.setup_s + last > opts.setup_budget_s:  # a compiling mode recompiles at every size
            return (
                f"setup budget: {state.setup_s:.1f} s of loading, compiling and first calls spent, about "
                f"{last:.1f} s more at each size > --setup-budget-s={opts.setup_budget_s:g}"
            )
        if self.elapsed() >= opts.budget_s:
            return f"sweep budget spent (--budget-s={opts.budget_s:g})"
        predicted = predicted_call_s(size, state.measured, device)
        if predicted is not None and predicted[0] > opts.max_call_s:
            seconds, ref = predicted
            why = f"train_step predicted {seconds:.3g} s per call from {state.measured[ref]:.3g} s at {size_of(*ref)}"
            state.over.append((size, why))
            return f"{why} > --max-call-s={opts.max_call_s:g}"
        return ""

    def block_budget_s(self, work: Work) -> float | None:
        return self.opts.point_budget_s / (len(OPS) * self.opts.repeats)

    def observe(self, work: Work, record: Any, seconds: float) -> None:
        case = work.case
        if case is None or work.kind != "block" or case in self._refused:
            return
        state, size = self.state(case), size_parts(case.size)
        self._seen.setdefault(case, [])
        timed = sum(record.seconds) * record.calls_per_round if isinstance(record, Block) else 0.0
        spent = max(0.0, seconds - timed)
        state.setup_s += spent
        state.size_setup_s[size] = state.size_setup_s.get(size, 0.0) + spent
        if isinstance(record, Block) and record.seconds:
            median = statistics.median(record.seconds)
            if work.op == "train_step":
                self._seen[case].append(median)
                state.measured[size] = statistics.median(self._seen[case])
                if median > self.opts.max_call_s:
                    state.over.append((size, f"train_step {median:.3g} s per call"))
                    state.stopped.update((size, op) for op in OPS)
            if work.repeat == 0 and work.op == OPS[-1]:
                shown = _fmt_s(state.measured[size]) if size in state.measured else "failed"
                self._line(case, f"train {shown}, predict {_fmt_s(median)}  (setup so far {state.setup_s:.1f} s)")

    def _line(self, case: Case, text: str) -> None:
        label = f"{case.backend} {case.mode} @{case.device}" + ("" if case.model == "rnn" else f" {case.model}")
        self.progress(f"[{self.elapsed():5.0f} s] {case.size:>12}  {label:<34} {text}")


def _fmt_s(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


class SweepResult(NamedTuple):
    folder: Any  # the run folder, renamed once the sweep ended (-incomplete unless complete)
    complete: bool  # every unit was taken (not interrupted)
    published: bool  # made RESULTS_DIR/sweeps/latest


def run_sweep(opts: Options, progress: Callable[[str], None] = print, argv: Sequence[str] | None = None) -> SweepResult:
    """Run a whole sweep into a new run folder and render its report."""
    threads.configure(opts.threads)
    plan = make_plan(opts)
    budgets = Budgets(opts, progress)
    session = open_session(opts, plan, list(sys.argv if argv is None else argv), progress=progress, policy=budgets)
    sizes = list(dict.fromkeys(c.size for c in plan.cases))
    progress(f"sweep: {len(sizes)} sizes ({', '.join(sizes)}) into {session.folder}")
    attempted_all, status, stopped = False, 0, ""
    try:
        for work in plan.work:
            signals.check()  # a signal whose KeyboardInterrupt was swallowed where it landed still stops the sweep
            try:
                session.harness.run(work)
            except Unavailable as err:
                if work.kind == "block" and work.repeat == 0 and work.op == OPS[0]:
                    budgets.counts["skipped"] += 1
                    budgets._line(work.case, f"skipped: {err}")
            except Failed as err:
                progress(f"  [failed] {work.id} {work.case.size if work.case else ''}: {one_line(err)}")
        attempted_all = True
    except KeyboardInterrupt as err:
        status = 130
        progress(f"sweep: interrupted by {err or 'SIGINT'}; what was measured is kept")
    except OSError as err:  # records.WriteError: the run folder became unwritable
        status, stopped = 1, one_line(err)
    end_session(session, attempted_all, status)
    progress(f"sweep: {budgets.elapsed():.0f} s")
    for line in session.summary:
        progress(line)
    for problem in dict.fromkeys([stopped, *session.problems] if stopped else session.problems):  # each once
        progress(f"sweep: {problem}")
    where = " (published as latest)" if session.published else " (not published)"
    progress(f"sweep: run folder {session.folder}{where}")
    return SweepResult(session.folder, attempted_all and not signals.received(), session.published)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sweep",
        description="Step time of every backend x mode x device over a set of sizes (see benchmarks/sweep.py). "
        "Render a sweep folder again with: python -m benchmarks.report FOLDER",
    )
    options.add_to_parser(parser.add_argument, "sweep")
    parser.error = _one_line_error(parser)  # type: ignore[method-assign]
    namespace = parser.parse_args(args)
    try:
        opts = parse(options.from_namespace(namespace, "sweep"))
        result = run_sweep(opts, argv=[sys.argv[0], *args])
        signals.settle()
    except OptionError as err:
        print(f"sweep: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # before the run folder existed, or as the sweep said its last lines
        print(f"sweep: interrupted by {err or 'SIGINT'}", file=sys.stderr)
        return 130
    except OSError as err:
        print(f"sweep: cannot create a run folder ({one_line(err)})", file=sys.stderr)
        return 1
    return 0 if result.complete else 130 if signals.received() else 1


def _one_line_error(parser: argparse.ArgumentParser) -> Callable[[str], None]:
    """argparse's errors as one line (its usage block is 16 lines; --help has it)."""

    def error(message: str) -> None:
        print(f"sweep: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)

    return error


if __name__ == "__main__":
    sys.exit(main())
