"""Options -> plan: the cases to measure (backend x mode x device x size) and the order of the work.
`make bench` is the plan of one size, `make sweep` the plan of many; one harness runs both.

Order: the harness-overhead probe, then size by size (least work first) and model by model: the step blocks in repeats
(every case's train_step and predict block, then every case's next block, and so on), then the training
runs, then the memory figures. The machine's speed drifts over a run (on the 2-core VM, torch-rnn's
median over consecutive blocks went from 1.33 to 0.80 ms with nothing else changing); taking blocks in
turn spreads that drift over all cases and shows it as the spread between repeats, instead of handing all
of it to whichever case was timed at a bad moment.
"""

from __future__ import annotations

import dataclasses
import os

import backends
from benchmarks.names import OPS, work
from benchmarks.options import OptionError, Options
from benchmarks.records import Case, size_of

Size = tuple[int, int, int]  # (hidden, batch, seq_len)
ACTIVATION_FACTOR = 8  # floats kept per hidden unit, stream and step: states, pre-activations, their grads, copies


@dataclasses.dataclass(frozen=True)
class Work:
    """One unit of the plan."""

    kind: str  # "overhead", "block", "training" or "memory"
    case: Case | None = None
    op: str = ""  # for a block: "train_step" or "predict"
    repeat: int = 0

    @property
    def id(self) -> str:
        """A readable id (pytest shows it; pytest-benchmark compares saved runs by it, so no size: a pytest run
        has one size)."""
        if self.case is None:
            return self.kind
        case = f"{self.case.backend}-{self.case.mode}-{self.case.device}"
        case += "" if self.case.model == "rnn" else f"-{self.case.model}"
        if self.kind == "block":
            return f"{self.op}-{case}-r{self.repeat}"
        return f"{self.kind}-{case}"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a run will measure, in order."""

    cases: tuple[Case, ...]
    work: tuple[Work, ...]
    repeats: int


def estimated_bytes(size: Size) -> int:
    """Memory of one backend at `size`: activations (float32, ACTIVATION_FACTOR per unit, stream and step)
    plus the parameters with their gradients and Adam's two moments."""
    hidden, batch, seq_len = size
    params = hidden * hidden + 3 * hidden + 2
    return 4 * (ACTIVATION_FACTOR * batch * seq_len * hidden + 4 * params)


def machine_bytes() -> int:
    """This machine's memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def sizes(opts: Options) -> tuple[Size, ...]:
    """The plan's sizes, least work first: the sweep's list, or the one size of the task options."""
    chosen = getattr(opts, "sizes", ()) or ()
    if not chosen and opts.command == "sweep":
        from benchmarks.sweep import PRESETS

        chosen = PRESETS[opts.preset]
    if not chosen:
        c = opts.config
        chosen = ((c.hidden_size, c.batch_size, c.seq_len),)
    return tuple(sorted(chosen, key=lambda s: (work(s), s)))


def cases(opts: Options, size: Size | None = None) -> list[Case]:
    """Every model x backend x mode x device the options select at one size (default: the task options'), in
    declared order, cpu before cuda. A mode limited to other devices is not a case at all."""
    c = opts.config
    label = size_of(*size) if size is not None else size_of(c.hidden_size, c.batch_size, c.seq_len)
    out = []
    for model in opts.models:  # a backend without a model still gets its case: an unavailable row saying why
        for name in opts.backends:
            names = backends.modes(name)
            chosen = names if opts.modes == ("all",) else names[:1] if opts.modes == ("default",) else opts.modes
            for device in opts.devices:
                for mode in names:
                    if mode in chosen and device in backends.mode_devices(name, mode):
                        out.append(Case(name, mode, device, label, model))
    return out


def make_plan(opts: Options) -> Plan:
    """The run's plan; OptionError when the options leave no case or a size cannot fit in memory."""
    plan_sizes = sizes(opts)
    if not cases(opts, plan_sizes[0]):
        raise OptionError(
            f"no case to measure: --backends={','.join(opts.backends)} --modes={','.join(opts.modes)} "
            f"--device={opts.device} select no mode that runs on {', '.join(opts.devices)}"
        )
    if opts.command != "sweep":  # the sweep skips such points itself (--max-memory-mb), as over budget
        need, have = estimated_bytes(plan_sizes[0]), machine_bytes()
        if need > have:
            raise OptionError(
                f"size {size_of(*plan_sizes[0])} needs about {need / 2**30:.3g} GiB per case, "
                f"more than this machine's {have / 2**30:.3g} GiB: "
                "choose a smaller --hidden-size, --batch-size or --seq-len"
            )
    all_cases: list[Case] = []
    work = [Work("overhead")]
    for size in plan_sizes:
        for model in opts.models:  # a model's cases at a time: their workers are alive together, not all models'
            chosen = [c for c in cases(opts, size) if c.model == model]
            all_cases += chosen
            work += [Work("block", c, op, r) for r in range(opts.repeats) for c in chosen for op in OPS]
            if opts.accuracy:
                work += [Work("training", c) for c in chosen]
            if opts.memory:
                work += [Work("memory", c) for c in chosen]
    return Plan(tuple(all_cases), tuple(work), opts.repeats)
