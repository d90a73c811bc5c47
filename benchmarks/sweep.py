"""The size sweep, plain Python: step time (train_step and predict) of every backend x mode x device over a
set of sizes (hidden x batch x seq_len). `python -m benchmarks.sweep [options]`, or `make sweep ARGS=...`;
`python -m benchmarks.sweep report FOLDER` renders a sweep folder again.

Time only by default: the seed's learning rate does not carry to other sizes, so accuracy there means
little unless asked for (--accuracy). Each point (case x size) reuses the harness (loading, first call,
calls per round, records) with a timer that fits its rounds into the point's time budget. Sizes are
taken smallest first; at each size every case is timed in turn, in --repeats short repeats. A point is
skipped and recorded as "over-budget" when its estimated memory or its train_step time (measured, or
predicted from the case's smaller sizes) is over the limits; a case over budget at one size is not
tried at any size at least as large on every axis. Compiling modes recompile at every size (torch.compile
took 12-72 s per size on the 2-core VM), so each case has a setup budget (loading, compiling, first
calls) over the whole sweep; once spent, its later sizes are skipped. The whole sweep has a time budget
too: points left when it is spent are skipped. Run folders go to RESULTS_DIR/sweeps/runs/, the last
complete one is RESULTS_DIR/sweeps/latest.
"""

from __future__ import annotations

import sys

from backends import threads

if __name__ == "__main__":  # before numpy loads its BLAS (benchmarks.options imports numpy through backends.task)
    _n = threads.from_args(sys.argv[1:])
    if _n is not None:
        threads.configure(_n)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import datetime as dt  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Mapping, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, NamedTuple  # noqa: E402

import backends  # noqa: E402
from backends.errors import one_line  # noqa: E402
from backends.task import LIMITS, SIN_TO_COS  # noqa: E402
from benchmarks import options, records, runs  # noqa: E402
from benchmarks.harness import Harness, Unavailable, machine  # noqa: E402
from benchmarks.options import Option, OptionError, Options  # noqa: E402
from benchmarks.plan import OPS, Plan, Work, cases  # noqa: E402
from benchmarks.records import Case, size_of  # noqa: E402

Size = tuple[int, int, int]  # (hidden, batch, seq_len)
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
ACTIVATION_FACTOR = 8  # floats kept per hidden unit, stream and step: states, pre-activations, their grads, copies
SUBLINEAR_DEVICES = {"cuda": 0.5}  # a GPU absorbs more work in parallel until it saturates: time ~ work**0.5
WARMUP_SHARE = 0.25  # warm-up rounds stop after this share of a block's budget


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


# Sweep-only options, in the style of benchmarks.options.OPTIONS (parsed by the same rules).
SWEEP_OPTIONS: tuple[Option, ...] = (
    Option("sizes", str, "", f"sizes to sweep, comma-separated {SIZE_FORM} (instead of --preset)", parse=str),
    Option("preset", str, "default", f"named set of sizes: {', '.join(PRESETS)}", parse=parse_preset),
    Option(
        "point_budget_s", float, 1.0, "seconds of timed rounds per case and size (both ops, all repeats)", 1e-3, 3600
    ),
    Option(
        "max_call_s", float, 1.0, "skip a case at sizes where one train_step takes (or would take) longer", 1e-6, 3600
    ),
    Option(
        "max_memory_mb", float, 4096.0, "skip points whose estimated memory (activations, Adam) is larger", 1e-3, 1e9
    ),
    Option("setup_budget_s", float, 30.0, "per case: seconds of loading, compiling and first calls, all sizes", 0, 1e6),
    Option(
        "budget_s", float, 480.0, "seconds for the whole sweep; points left when they are spent are skipped", 1, 1e7
    ),
    Option("accuracy", bool, False, "also train each measured case at each size (--seeds x --train-steps)"),
)
SWEEP_BY_NAME = {o.name: o for o in SWEEP_OPTIONS}
# common options (benchmarks.options) the sweep takes, and the defaults it gives them
COMMON = ("backends", "modes", "device", "threads", "rounds", "repeats", "warmup_rounds", "min_round_us")
COMMON += ("fresh_caches", "results_dir", "seeds", "train_steps", "lr")
COMMON_DEFAULTS: dict[str, Any] = {"repeats": 2, "memory": False}
TIMING_WINDOWS = 20  # windows a timed block cycles through (--train-steps when --accuracy is not given)


def parse(raw: Mapping[str, Any]) -> tuple[Options, Options]:
    """(common options, sweep options) from option values by name; OptionError naming the option otherwise."""
    unknown = sorted(set(raw) - set(COMMON) - set(SWEEP_BY_NAME))
    if unknown:
        raise OptionError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(COMMON + tuple(SWEEP_BY_NAME))}")
    given_sizes = raw.get("sizes")
    if given_sizes is not None and raw.get("preset") is not None:
        raise OptionError("give --sizes or --preset, not both")
    defaults = dict(COMMON_DEFAULTS)
    if not options._bool(SWEEP_BY_NAME["accuracy"], raw.get("accuracy", False)):
        defaults["train_steps"] = TIMING_WINDOWS  # time only: fewer windows to convert at each load
    common = options.parse({**defaults, **{k: v for k, v in raw.items() if k in COMMON}})
    values: dict[str, Any] = {}
    for option in SWEEP_OPTIONS:
        value = raw.get(option.name, option.default)
        if option.parse is not None:
            value = option.parse(str(value))
        elif option.kind is bool:
            value = options._bool(option, value)
        else:
            value = options._number(option, value)
        values[option.name] = value
    values["sizes"] = parse_sizes(str(given_sizes)) if given_sizes is not None else PRESETS[values["preset"]]
    return common, Options(values)


def add_to_parser(parser: argparse.ArgumentParser) -> None:
    """The common options the sweep takes (with its defaults in the help) and its own."""

    def add_common(flag: str, **kwargs: Any) -> None:
        name = kwargs["dest"]
        if name in COMMON:
            old = f"(default {options.BY_NAME[name].default})"
            if name in COMMON_DEFAULTS and kwargs.get("help"):
                kwargs["help"] = kwargs["help"].replace(old, f"(default {COMMON_DEFAULTS[name]})")
            elif name == "train_steps":
                kwargs["help"] = kwargs["help"].replace(old, f"(default {TIMING_WINDOWS}; {old[9:-1]} with --accuracy)")
            parser.add_argument(flag, **kwargs)

    options.add_to_parser(add_common)
    for option in SWEEP_OPTIONS:
        shown = ("yes" if option.default else "no") if option.kind is bool else option.default or "none"
        text = f"{option.help} (default {shown})"
        if option.kind is bool:
            parser.add_argument(
                option.flag, action="store_const", const="yes", default=None, dest=option.name, help=text
            )
            parser.add_argument("--no-" + option.flag[2:], action="store_const", const="no", dest=option.name)
        else:
            parser.add_argument(option.flag, default=None, dest=option.name, help=text)


# ---- budgets: what a point would cost ----


def work(size: Size) -> float:
    """Multiply-adds of one step, roughly: batch x seq x hidden x (hidden + input + output + bias)."""
    hidden, batch, seq_len = size
    return float(batch * seq_len * hidden * (hidden + 3))


def estimated_bytes(size: Size) -> int:
    """Memory of one backend at `size`: activations (float32, ACTIVATION_FACTOR per unit, stream and step)
    plus the parameters with their gradients and Adam's two moments."""
    hidden, batch, seq_len = size
    params = hidden * hidden + 3 * hidden + 2
    return 4 * (ACTIVATION_FACTOR * batch * seq_len * hidden + 4 * params)


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


class BudgetTimer:
    """A harness Timer whose rounds fit a block's time budget: at least `min_rounds` (one when a single
    round is over the budget), at most the rounds asked for; warm-up rounds stop after a quarter of the
    budget. After a block, `elapsed` holds its seconds (warm-up included) and `last` its values."""

    def __init__(self, block_budget_s: float, min_rounds: int = 2) -> None:
        self.block_budget_s, self.min_rounds = block_budget_s, min_rounds
        self.elapsed = 0.0
        self.last: list[float] = []

    def __call__(self, run_round: Callable[[], Any], rounds: int, warmup: int, calls: int) -> list[float]:
        clock, budget = time.perf_counter, self.block_budget_s
        begin = clock()
        done = 0
        while done < warmup and clock() - begin < budget * WARMUP_SHARE:
            run_round()  # makes `calls` calls
            done += 1
        out: list[float] = []
        start = clock()
        while len(out) < rounds:
            spent = clock() - start
            if out and spent >= budget and (len(out) >= self.min_rounds or out[0] * calls >= budget):
                break
            t0 = clock()
            run_round()
            out.append((clock() - t0) / calls)
        self.elapsed, self.last = clock() - begin, out
        return out

    def reset(self) -> None:
        self.elapsed, self.last = 0.0, []


# ---- the sweep ----


@dataclasses.dataclass
class CaseState:
    """What the sweep knows of one backend x mode x device across sizes."""

    unavailable: str = ""
    over: list[tuple[Size, str]] = dataclasses.field(default_factory=list)  # (size, why) where it went over budget
    measured: dict[Size, float] = dataclasses.field(default_factory=dict)  # size -> train_step median seconds
    setup_s: float = 0.0  # loading, compiling, first calls, warm-up: everything but timed rounds
    last_setup_s: float = 0.0  # the setup of its last point: what the next size will cost, about


def _skip_reason(state: CaseState, size: Size, device: str, sweep: Options, elapsed: float) -> str:
    """Why the point must be skipped as over-budget, or ''. The surest reasons come first; a prediction
    is made only while the sweep runs normally (from the nearest smaller size measured)."""
    mb = estimated_bytes(size) / 2**20
    if mb > sweep.max_memory_mb:
        return f"estimated memory {mb:.3g} MB > --max-memory-mb={sweep.max_memory_mb:g}"
    for smaller, why in state.over:
        if covers(size, smaller):
            return f"over budget at {size_of(*smaller)} ({why}); not tried at sizes as large on every axis"
    if state.setup_s + state.last_setup_s > sweep.setup_budget_s:  # a compiling mode recompiles at every size
        return (
            f"setup budget: {state.setup_s:.1f} s of loading, compiling and first calls spent, about "
            f"{state.last_setup_s:.1f} s more at each size > --setup-budget-s={sweep.setup_budget_s:g}"
        )
    if elapsed >= sweep.budget_s:
        return f"sweep budget spent (--budget-s={sweep.budget_s:g})"
    predicted = predicted_call_s(size, state.measured, device)
    if predicted is not None and predicted[0] > sweep.max_call_s:
        seconds, ref = predicted
        why = f"train_step predicted {seconds:.3g} s per call from {state.measured[ref]:.3g} s at {size_of(*ref)}"
        state.over.append((size, why))
        return f"{why} > --max-call-s={sweep.max_call_s:g}"
    return ""


def _fmt_s(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


class Sweep:
    """Runs the sweep of one run folder: every size, every case, writing records as it goes."""

    def __init__(
        self, opts: Options, sweep: Options, writer: records.Writer, progress: Callable[[str], None] = print
    ) -> None:
        self.opts, self.sweep, self.writer, self.progress = opts, sweep, writer, progress
        self.states: dict[tuple[str, str, str], CaseState] = {}
        self.measured_points = 0
        self.skipped_points = 0
        self.failed_points = 0
        self.imported: set[str] = set()
        self.began = time.monotonic()

    def start(self, argv: Sequence[str]) -> None:
        started = dt.datetime.now().isoformat(timespec="seconds")
        values = {**self.opts.as_dict(), **self.sweep.as_dict(), "sweep": True}
        values["sizes"] = [size_of(*s) for s in self.sweep.sizes]
        config = dataclasses.asdict(self.opts.config)
        self.writer.write(records.Start(records.SCHEMA, started, list(argv), values, SIN_TO_COS.describe(), config))
        self.writer.write(machine.record())

    def finish(self, complete: bool, exit_status: int | None = None, note: str = "") -> None:
        self.writer.write(machine.record())  # the thread settings in force once frameworks loaded
        finished = dt.datetime.now().isoformat(timespec="seconds")
        self.writer.write(records.Finish(finished, complete, exit_status, note))

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def run(self) -> None:
        sizes = sorted(self.sweep.sizes, key=lambda s: (work(s), s))
        for number, size in enumerate(sizes, start=1):
            self._size(size, f"{number}/{len(sizes)}")

    def _line(self, where: str, case: Case, text: str) -> None:
        label = f"{case.backend} {case.mode} @{case.device}"
        self.progress(f"[{self.elapsed():5.0f} s] {where} {case.size:>12}  {label:<34} {text}")

    def _skip(self, where: str, case: Case, status: str, reason: str) -> None:
        self.writer.write(records.Skipped(case, status, reason, "sweep"))
        self.skipped_points += 1
        self._line(where, case, f"skipped, {status}: {reason}")

    def _size(self, size: Size, where: str) -> None:
        hidden, batch, seq_len = size
        opts = self.opts.replace(hidden_size=hidden, batch_size=batch, seq_len=seq_len)
        chosen = cases(opts)
        live: list[Case] = []
        setup_before: dict[Case, float] = {}
        for case in chosen:
            state = self.states.setdefault((case.backend, case.mode, case.device), CaseState())
            if state.unavailable:
                self._skip(where, case, "unavailable", state.unavailable)
            elif reason := _skip_reason(state, size, case.device, self.sweep, self.elapsed()):
                self._skip(where, case, "over-budget", reason)
            else:
                self._import(case.backend)
                live.append(case)
                setup_before[case] = state.setup_s
        if not live:
            return
        repeats = opts.repeats
        plan = Plan(tuple(live), (), repeats)
        harness = Harness(opts, plan, self.writer, progress=self.progress)
        timer = BudgetTimer(self.sweep.point_budget_s / (len(OPS) * repeats))
        seconds: dict[tuple[Case, str], list[float]] = {}
        stopped: set[tuple[Case, str]] = set()  # (case, op) with no more repeats at this size
        for repeat in range(repeats):
            if repeat and self.elapsed() >= self.sweep.budget_s:
                break  # the points keep the repeats they have
            for case in live:
                state = self.states[(case.backend, case.mode, case.device)]
                for op in OPS:
                    if (case, op) not in stopped:
                        self._block(harness, Work("block", case, op, repeat), timer, state, seconds, stopped)
        for case in live:
            state = self.states[(case.backend, case.mode, case.device)]
            train, predict = seconds.get((case, "train_step")), seconds.get((case, "predict"))
            state.last_setup_s = state.setup_s - setup_before[case]
            if state.unavailable:
                self.skipped_points += 1
                self._line(where, case, f"skipped, unavailable: {state.unavailable}")
                continue
            if train:
                state.measured[size] = statistics.median(train)
                if state.measured[size] > self.sweep.max_call_s:
                    why = f"train_step {state.measured[size]:.3g} s per call"
                    state.over.append((size, why))
            if train or predict:
                self.measured_points += 1
            else:
                self.failed_points += 1
            shown = "  ".join(
                f"{name} {_fmt_s(statistics.median(v)) if v else 'failed'}"
                for name, v in (("train", train), ("predict", predict))
            )
            self._line(where, case, f"{shown}  (setup so far {state.setup_s:.1f} s)")
        if self.sweep.accuracy:
            self._accuracy(harness, [c for c in live if (c, "train_step") in seconds])

    def _import(self, backend: str) -> None:
        """Import a backend's framework once, before its first point: import time is not setup time."""
        if backend not in self.imported:
            self.imported.add(backend)
            with contextlib.suppress(Exception):  # the harness's load reports an import that fails
                backends.backend_class(backend)

    def _block(
        self,
        harness: Harness,
        unit: Work,
        timer: BudgetTimer,
        state: CaseState,
        seconds: dict[tuple[Case, str], list[float]],
        stopped: set[tuple[Case, str]],
    ) -> None:
        key = (unit.case, unit.op)
        timer.reset()
        begin = time.perf_counter()
        try:
            harness.run(unit, timer)
        except Unavailable as err:
            state.unavailable = str(err)
            stopped.update((unit.case, op) for op in OPS)
        except Exception as err:  # recorded by the harness as a failed measurement
            stopped.add(key)
            self.progress(f"  [failed] {unit.id} {unit.case.size}: {one_line(err)}")
        state.setup_s += time.perf_counter() - begin - timer.elapsed
        if timer.last:
            seconds.setdefault(key, []).extend(timer.last)
            if unit.op == "train_step" and statistics.median(timer.last) > self.sweep.max_call_s:
                stopped.update((unit.case, op) for op in OPS)  # one repeat is enough at a size over the limit

    def _accuracy(self, harness: Harness, measured: list[Case]) -> None:
        for case in measured:
            try:
                harness.run(Work("training", case))
            except Exception as err:
                self.progress(f"  [failed] accuracy {case.label}: {one_line(err)}")


def _fresh_caches() -> Path:
    """Empty compile caches for the sweep, so a compiled mode's first step is a cold compile (as the benchmark's)."""
    root = Path(tempfile.mkdtemp(prefix="rnn-sweep-caches-"))
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(root / "inductor")
    os.environ["TRITON_CACHE_DIR"] = str(root / "triton")
    return root


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _render(folder: Path) -> list[Path]:
    from benchmarks.report.sweep import render_sweep

    return render_sweep(folder)


def sweeps_dir(opts: Options) -> Path:
    """Where sweep run folders go: RESULTS_DIR/sweeps (apart from the benchmark's runs and index)."""
    return Path(opts.results_dir) / "sweeps"


class SweepResult(NamedTuple):
    folder: Path  # the run folder, renamed once the sweep ended (-incomplete unless complete)
    complete: bool  # every size was taken (not interrupted)
    published: bool  # made RESULTS_DIR/sweeps/latest


def run_sweep(
    opts: Options, sweep: Options, progress: Callable[[str], None] = print, argv: Sequence[str] | None = None
) -> SweepResult:
    """Run a whole sweep into a new run folder and render its report."""
    threads.configure(opts.threads)
    if not cases(opts):
        raise OptionError(
            f"no case to sweep: --backends={','.join(opts.backends)} --modes={','.join(opts.modes)} "
            f"--device={opts.device} select no mode that runs on {', '.join(opts.devices)}"
        )
    results_dir = sweeps_dir(opts)
    for folder in runs.recover(results_dir, _render, report="sweep.md"):
        progress(f"sweep: {folder} was left by a sweep that was killed; labelled incomplete")
    folder, alive = runs.new_run(results_dir)
    caches = _fresh_caches() if opts.fresh_caches else None
    writer = records.Writer(folder)
    runner = Sweep(opts, sweep, writer, progress)
    runner.start(list(sys.argv if argv is None else argv))
    sizes = ", ".join(size_of(*s) for s in sweep.sizes)
    progress(f"sweep: {len(sweep.sizes)} sizes ({sizes}) into {folder}")
    complete, status, note = False, 0, ""
    previous = signal.signal(signal.SIGTERM, _interrupt) if _main_thread() else None
    try:
        runner.run()
        complete = True
    except KeyboardInterrupt as err:
        status, note = 130, f"interrupted ({err or 'Ctrl-C'})"
        progress(f"sweep: {note}; what was measured is kept")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        runner.finish(complete, status, note)
        writer.close()
        final = runs.finish_run(folder, complete)
        alive.close()
        if caches is not None:
            shutil.rmtree(caches, ignore_errors=True)
    counts = f"{runner.measured_points} measured, {runner.skipped_points} skipped, {runner.failed_points} failed"
    progress(f"sweep: points: {counts}; {runner.elapsed():.0f} s")
    try:
        files = _render(final)
        progress("sweep: wrote " + ", ".join(p.name for p in files))
    except Exception as err:  # the records are saved; a report bug must not lose them
        progress(
            f"sweep: report failed ({one_line(err)}); render again with: python -m benchmarks.sweep report {final}"
        )
        return SweepResult(final, complete, False)
    published = complete and runner.measured_points > 0
    if published:
        with contextlib.suppress(OSError):
            runs.publish(final)
    progress(f"sweep: run folder {final}" + (" (published as latest)" if published else " (not published)"))
    return SweepResult(final, complete, published)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: a sweep, or `report FOLDER` to render one again."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["report"]:
        if len(args) != 2:
            print("usage: python -m benchmarks.sweep report FOLDER", file=sys.stderr)
            return 2
        try:
            files = _render(Path(args[1]))
        except (records.RecordError, OSError) as err:
            print(f"sweep report: {one_line(err)}", file=sys.stderr)
            return 1
        print("\n".join(str(p) for p in files))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sweep",
        description="Step time of every backend x mode x device over a set of sizes (see benchmarks/sweep.py). "
        "'python -m benchmarks.sweep report FOLDER' renders a sweep folder again.",
    )
    add_to_parser(parser)
    namespace = parser.parse_args(args)
    raw = {k: v for k, v in vars(namespace).items() if v is not None}
    try:
        opts, sweep = parse(raw)
        result = run_sweep(opts, sweep, argv=[sys.argv[0], *args])
    except OptionError as err:
        parser.error(str(err))
    return 0 if result.complete else 130


if __name__ == "__main__":
    sys.exit(main())
