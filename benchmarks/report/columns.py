"""The one list of columns. Each says its header, its CSV fields (plain numbers in seconds and bytes),
its unit, how a row's cell is formatted, its legend, and whether it is in the main (narrow) table; the
markdown tables, the CSV, the terminal summary and the legend are all made from `COLUMNS`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from benchmarks.report.rows import ALPHA, MIN_SEEDS, ORACLE_BACKEND, REFERENCE, Row, describe, floor_case

MIB = 1024**2


def num(value: float | None, digits: int = 3) -> str:
    """About `digits` significant digits; scientific notation below 1e-3 and from 1e5; '' for None."""
    if value is None:
        return ""
    if not math.isfinite(value):
        return "invalid" if math.isnan(value) else ("∞" if value > 0 else "-∞")
    if value == 0:
        return "0"
    size = abs(value)
    if size < 1e-3 or size >= 1e5:
        return f"{value:.{digits - 1}e}"
    decimals = max(digits - 1 - math.floor(math.log10(size)), 0)
    return f"{value:.{decimals}f}"  # 1234 keeps its integer part whole: never 1.23e+03 nor 1,234


def ms(seconds: float | None) -> str:
    return num(None if seconds is None else seconds * 1e3)


def ratio(value: float | None) -> str:
    return "" if value is None else f"{num(value)}×"


def md_cell(text: Any) -> str:
    """Text fit for one markdown table cell: a pipe or a newline would break the table."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _metric_cell(row: Row) -> str:
    q = row.metric
    if q is None:
        return "diverged" if row.trainings else ""
    if len(row.converged) == 1:
        return num(q[1])
    return f"{num(q[1])} [{num(q[0])}–{num(q[2])}]"


def _step_cell(row: Row) -> str:
    if row.skipped:
        return f"{row.status}: {row.reason}" if row.reason else row.status
    if row.step is None:
        return ""
    if row.step.repeats < 2:
        return ms(row.step.median)
    return f"{ms(row.step.median)} ({ms(row.step.low)}–{ms(row.step.high)})"


def _memory_cell(row: Row) -> str:
    memory = row.memory
    if memory is None or memory.peak_rss_bytes is None:
        return ""
    text = num(memory.peak_rss_bytes / MIB)
    if memory.gpu_peak_bytes is not None:
        text += f" (+ GPU {num(memory.gpu_peak_bytes / MIB)})"
    return text


def _repeats_cell(row: Row) -> str:
    if row.step is None:
        return ""
    spread = row.step.spread
    if spread is None or row.step.median <= 0:
        return f"{row.step.repeats} × {row.step.rounds // row.step.repeats} rounds"
    return f"{row.step.repeats}, spread {num(100 * spread / row.step.median, 2)}%"


def _break_even_cell(row: Row) -> str:
    if row.break_even is None:
        return ""
    if math.isinf(row.break_even):
        return "—"
    return "at once" if row.break_even == 0 else f"{num(row.break_even)} steps"


def _converged(row: Row) -> str:
    return f"{len(row.converged)}/{row.seeds}" if row.trainings else ""


def _memory(field: str) -> Callable[[Row], Any]:
    return lambda r: getattr(r.memory, field) if r.memory is not None else None


def _timing(op: str, attr: str) -> Callable[[Row], Any]:
    def get(row: Row) -> Any:
        timing = getattr(row, op)
        return getattr(timing, attr) if timing is not None else None

    return get


def _quartile(i: int) -> Callable[[Row], float | None]:
    return lambda r: r.metric[i] if r.metric is not None else None


def _machine(attr: str) -> Callable[[Row], Any]:
    return lambda r: getattr(r.run.machine, attr) if r.run.machine is not None else None


def _options(row: Row) -> str:
    return "; ".join(f"{k}={describe(v)}" for k, v in row.run.options.items())


def _threads(row: Row) -> str:
    threads = row.run.machine.threads if row.run.machine else {}
    mismatch = threads.get("mismatch")
    return f"{threads.get('requested', '')}" + (f" (mismatch: {describe(mismatch)})" if mismatch else "")


def _frameworks(row: Row) -> str:
    frameworks = row.run.machine.frameworks if row.run.machine else {}
    return "; ".join(f"{k} {v}" for k, v in frameworks.items() if v != "*not-installed*")


@dataclasses.dataclass(frozen=True)
class Column:
    """One column. `header` and `legend` may name {metric} and {about}: the run's task fills them in."""

    header: str  # "" for a CSV-only column
    csv: tuple[tuple[str, Callable[[Row], Any]], ...]  # CSV field names and their raw values
    unit: str  # of the cell text: "ms", "s", "MiB", "×", "steps" or ""
    cell: Callable[[Row], str]
    legend: str
    main: bool = False  # in the narrow main table (and the terminal summary); else in the details table
    key: bool = False  # names the row: in both tables
    varies: bool = False  # shown only when its value differs between rows (machine, size)
    numbers: bool = True  # right-aligned
    skipped: bool = False  # has a cell on a row without numbers (else '—')

    def title(self, metric: dict[str, str]) -> str:
        return self.header.format(metric=metric["label"], about=metric["about"])


def _c(header: str, csv: tuple[tuple[str, Callable[[Row], Any]], ...], unit: str, cell: Callable[[Row], str],
       legend: str, **kw: Any) -> Column:  # fmt: skip
    return Column(header, csv, unit, cell, legend, **kw)


def _floor_name() -> str:
    floor = floor_case("cpu", "")
    return f"{floor[0]} {floor[1]}" if floor else "the floor backend"


REF = f"{REFERENCE[0]} {REFERENCE[1]}"

COLUMNS: list[Column] = [
    _c("backend", (("backend", lambda r: r.case.backend),), "", lambda r: r.case.backend,
       "registry name of the implementation", main=True, key=True, numbers=False, skipped=True),
    _c("mode", (("mode", lambda r: r.case.mode),), "", lambda r: r.case.mode,
       "how it runs (backends.REGISTRY: eager, jit, compile, cuda-graph, ...)", main=True, key=True, numbers=False,
       skipped=True),
    _c("device", (("device", lambda r: r.case.device),), "", lambda r: r.case.device,
       "where the step runs", main=True, key=True, numbers=False, skipped=True),
    _c("machine", (("machine", lambda r: r.machine),), "", lambda r: r.machine,
       "host / CPU (cpu rows) or GPU (GPU rows) of the run the row comes from", main=True, key=True, varies=True,
       numbers=False, skipped=True),
    _c("size", (("size", lambda r: r.case.size),), "", lambda r: r.case.size,
       "hidden units x batch streams x steps per window", main=True, key=True, varies=True, numbers=False,
       skipped=True),
    _c("step (ms)",
       (("step_median_s", _timing("step", "median")), ("step_low_s", _timing("step", "low")),
        ("step_high_s", _timing("step", "high"))),
       "ms", _step_cell,
       "one train_step (forward, BPTT, Adam, state carried): the median over repeats of each repeat's median "
       "round, then (lowest–highest repeat median): the machine's drift between blocks taken in turn across cases",
       main=True, skipped=True),
    _c(f"vs {REF}", (("speedup_vs_torch_rnn_eager", lambda r: r.speedup),), "×", lambda r: ratio(r.speedup),
       f"{REF}'s step median on the same device (same run, same size) / this row's: > 1 is faster", main=True),
    _c("× floor", (("floor_ratio", lambda r: r.floor_ratio),), "×", lambda r: ratio(r.floor_ratio),
       f"this row's step median / the no-framework floor's ({_floor_name()}, same device, same run): what the "
       "framework costs over plain compiled code; blank where the floor did not run", main=True),
    _c("first step (ms)", (("first_step_s", lambda r: r.first_step),), "ms", lambda r: ms(r.first_step),
       "the first train_step on a fresh backend (tracing, compiling), kept out of the step median; a framework's "
       "one-time start-up falls on its first case in the run", main=True),
    _c("{metric}", (("metric_median", _quartile(1)), ("metric_q1", _quartile(0)), ("metric_q3", _quartile(2))),
       "", _metric_cell,
       "{about}: median [first–third quartile] over the seeds that did not diverge", main=True),
    _c("converged", (("converged_seeds", lambda r: len(r.converged) if r.trainings else None),
                     ("seeds", lambda r: r.seeds if r.trainings else None)),
       "", _converged, "seeds whose training did not diverge / seeds trained", main=True),
    _c("params", (("params", lambda r: r.params),), "", lambda r: "" if r.params is None else num(float(r.params)),
       "trainable parameters as the framework counts them", main=True),
    _c("kernel / path", (("kernel", lambda r: r.kernel), ("framework", lambda r: r.info.get("framework"))), "",
       lambda r: r.kernel, "the backend's own description of its code path; its compiler; the GPU model on GPU rows",
       numbers=False),
    _c("predict (ms)", (("predict_median_s", _timing("predict", "median")),), "ms",
       lambda r: ms(r.predict.median) if r.predict else "", "one forward-only call on one window, median as above"),
    _c("step IQR (ms)", (("step_iqr_s", _timing("step", "iqr")),), "ms", lambda r: ms(r.step.iqr) if r.step else "",
       "interquartile range of the rounds within a repeat (median over repeats): the noise within a block"),
    _c("repeats", (("step_repeats", _timing("step", "repeats")), ("step_spread_s", _timing("step", "spread")),
                   ("step_rounds", _timing("step", "rounds"))),
       "", _repeats_cell, "blocks of timed rounds, and (highest − lowest repeat median) / median"),
    _c("calls/round", (("calls_per_round", _timing("step", "calls_per_round")),), "",
       lambda r: str(r.step.calls_per_round) if r.step else "",
       "train_step calls timed together in one round (several for fast rows: less timer overhead per call)"),
    _c("train run (s)", (("train_run_median_s", lambda r: r.train_seconds),), "s", lambda r: num(r.train_seconds),
       "wall time of one training run (first step included), median over seeds that did not diverge"),
    _c("final loss", (("final_loss_median", lambda r: r.final_loss),), "", lambda r: num(r.final_loss),
       "training loss of the last step, median over seeds that did not diverge"),
    _c("peak mem (MiB)", (("peak_rss_bytes", _memory("peak_rss_bytes")),
                          ("baseline_rss_bytes", _memory("baseline_rss_bytes")),
                          ("gpu_peak_bytes", _memory("gpu_peak_bytes"))),
       "MiB", _memory_cell,
       "peak RSS of a child process that loaded only this case's backend and trained (+ the GPU peak its "
       "framework's allocator handed out)"),
    _c("GPU/CPU", (("gpu_over_cpu", lambda r: r.gpu_cpu),), "×", lambda r: ratio(r.gpu_cpu),
       "this GPU row's step median / the same backend and mode on the cpu: < 1, the GPU is faster"),
    _c("break-even", (("break_even_steps", lambda r: r.break_even),), "steps", _break_even_cell,
       "for a mode other than the backend's default: steps after which its faster step has paid back its slower "
       "first step against the default mode on the same device ((first − default's first) / (default's step − "
       "step)); 'at once' when its first step is no slower; — when it never pays back"),
    _c("same as oracle", (("oracle_p", lambda r: r.oracle_p), ("oracle_verdict", lambda r: r.oracle)), "",
       lambda r: r.oracle,
       f"two-sided Mann–Whitney U test of this row's converged seeds against {ORACLE_BACKEND}'s cpu row (same run "
       f"and size): 'differs' at p < {ALPHA}; exact over all splits of the seeds when they are few, else the normal "
       f"approximation; — with fewer than {MIN_SEEDS} seeds on either side. {REF} trains both of nn.RNN's biases "
       "(the canonical model has one): that is the row where a difference is expected"),
    _c("notes", (("notes", lambda r: "; ".join(r.notes)),), "", lambda r: "; ".join(r.notes),
       "failures, measurements cut short, memory errors, diverged seeds and the step where each diverged",
       numbers=False, skipped=True),
    # CSV only: what a row is and the run it comes from, so that the CSVs of many runs stack
    _c("", (("status", lambda r: r.status), ("reason", lambda r: r.reason),
            ("metric_name", lambda r: r.run.metric["name"]), ("run", lambda r: r.run.name),
            ("host", _machine("host")), ("cpu_model", _machine("cpu")),
            ("gpu_model", _machine("gpu")), ("commit", _machine("commit")), ("options", _options),
            ("threads", _threads), ("frameworks", _frameworks)),
       "", lambda r: "", ""),
]  # fmt: skip


def main_columns(rows: list[Row]) -> list[Column]:
    return [c for c in shown(rows) if c.main]


def detail_columns(rows: list[Row]) -> list[Column]:
    return [c for c in shown(rows) if c.key or not c.main]


def shown(rows: list[Row]) -> list[Column]:
    """Columns with a header; a `varies` column only when its value differs between rows."""
    out = []
    for column in COLUMNS:
        if not column.header:
            continue
        if column.varies and len({column.cell(r) for r in rows}) < 2:
            continue
        out.append(column)
    return out


def cells(row: Row, columns: list[Column]) -> list[str]:
    """A row's cell texts (unescaped): '—' for a column without a value on a row without numbers."""
    return [c.cell(row) if (c.skipped or not row.skipped) else "—" for c in columns]


def csv_fields() -> list[tuple[str, Callable[[Row], Any]]]:
    return [field for column in COLUMNS for field in column.csv]
