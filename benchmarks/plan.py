"""Options -> plan: the cases to measure and the order of the work.

Order: the harness-overhead probe, then the step blocks in repeats (every case's train_step and
predict block, then every case's next block, and so on), then the training runs, then the memory
probes. The machine's speed drifts over a run (on the 2-core VM, torch-rnn's median over
consecutive blocks went from 1.33 to 0.80 ms with nothing else changing); taking blocks in turn
spreads that drift over all cases and shows it as the spread between repeats, instead of handing
all of it to whichever case was timed at a bad moment.
"""

from __future__ import annotations

import dataclasses

import backends
from benchmarks.options import OptionError, Options
from benchmarks.records import Case, size_of

OPS = ("train_step", "predict")


@dataclasses.dataclass(frozen=True)
class Work:
    """One unit of the plan."""

    kind: str  # "overhead", "block", "training" or "memory"
    case: Case | None = None
    op: str = ""  # for a block: "train_step" or "predict"
    repeat: int = 0

    @property
    def id(self) -> str:
        """A readable id (pytest shows it)."""
        if self.case is None:
            return self.kind
        case = f"{self.case.backend}-{self.case.mode}-{self.case.device}"
        if self.kind == "block":
            return f"{self.op}-{case}-r{self.repeat}"
        return f"{self.kind}-{case}"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a run will measure, in order."""

    cases: tuple[Case, ...]
    work: tuple[Work, ...]
    repeats: int


def cases(opts: Options) -> list[Case]:
    """Every backend x mode x device the options select, in registry order, cpu before cuda. A mode
    limited to other devices is not a case at all."""
    config = opts.config
    size = size_of(config.hidden_size, config.batch_size, config.seq_len)
    out = []
    for name in opts.backends:
        names = backends.modes(name)
        chosen = names if opts.modes == ("all",) else names[:1] if opts.modes == ("default",) else opts.modes
        for device in opts.devices:
            for mode in names:
                if mode in chosen and device in backends.mode_devices(name, mode):
                    out.append(Case(name, mode, device, size))
    return out


def make_plan(opts: Options, training: bool = True) -> Plan:
    """The run's plan; OptionError when the options leave no case."""
    chosen = cases(opts)
    if not chosen:
        raise OptionError(
            f"no case to measure: --backends={','.join(opts.backends)} --modes={','.join(opts.modes)} "
            f"--device={opts.device} select no mode that runs on {', '.join(opts.devices)}"
        )
    work = [Work("overhead")]
    work += [Work("block", c, op, r) for r in range(opts.repeats) for c in chosen for op in OPS]
    if training:
        work += [Work("training", c) for c in chosen]
    if opts.memory:
        work += [Work("memory", c) for c in chosen]
    return Plan(tuple(chosen), tuple(work), opts.repeats)
