"""The one list of columns of the run tables. Each says its header, its unit, how a case row's cell is
formatted, its legend, and whether it is in the main (narrow) table; the markdown tables, the terminal
summary and the legend are made from `COLUMNS`. The CSV is the case table's own columns (`CSV_COLUMNS`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from benchmarks.names import DEVICE_ORDER
from benchmarks.report.cases import ALPHA, MIN_SEEDS, ORACLE, REFERENCE, floor, skipped
from benchmarks.report.frame import finite

MIB = 1024**2
Row = dict[str, Any]  # one row of the case table


def num(value: float | None, digits: int = 3) -> str:
    """About `digits` significant digits; scientific notation below 1e-3 and from 1e5; '' for None."""
    value = finite(value)
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


def integer(value: Any) -> str:
    """A count as an integer: '1121', never '1121.0' or '5.00'; '' for None."""
    value = finite(value)
    return "" if value is None else str(int(value))


def ms(seconds: float | None) -> str:
    seconds = finite(seconds)
    return num(None if seconds is None else seconds * 1e3)


def ratio(value: float | None) -> str:
    value = finite(value)
    return "" if value is None else f"{num(value)}×"


def md_cell(text: Any) -> str:
    """Text fit for one markdown table cell: a pipe or a newline would break the table."""
    return " ".join(str(text).split()).replace("|", "\\|")


def p_text(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def metric_cell(row: Row) -> str:
    if not row["seeds"]:
        return ""
    if not row["learned"]:
        return "none learned"
    if row["learned"] == 1:
        return num(row["metric_median"])
    return f"{num(row['metric_median'])} [{num(row['metric_q1'])}–{num(row['metric_q3'])}]"


def outcome_cell(row: Row) -> str:
    """'learned 8/10, 1 diverged, 1 did not learn'."""
    if not row["seeds"]:
        return ""
    parts = [f"learned {row['learned']}/{row['seeds']}"]
    parts += [f"{row['diverged']} diverged"] if row["diverged"] else []
    parts += [f"{row['did_not_learn']} did not learn"] if row["did_not_learn"] else []
    return ", ".join(parts)


def step_cell(row: Row) -> str:
    if skipped(row):
        return f"{row['status']}: {row['reason']}" if row["reason"] else row["status"]
    if finite(row["step_median_s"]) is None:
        return ""
    if (finite(row["step_repeats"]) or 0) < 2:
        return ms(row["step_median_s"])
    return f"{ms(row['step_median_s'])} ({ms(row['step_low_s'])}–{ms(row['step_high_s'])})"


def rank_cell(row: Row) -> str:
    rank = finite(row["rank"])
    return "" if rank is None else f"{rank}=" if row["tied"] else str(rank)


def _memory_cell(row: Row) -> str:
    peak = finite(row["peak_rss_bytes"])
    if peak is None:
        return ""
    gpu = finite(row["gpu_peak_bytes"])
    return num(peak / MIB) + (f" (+ GPU {num(gpu / MIB)})" if gpu is not None else "")


def _repeats_cell(row: Row) -> str:
    repeats, spread, median = (finite(row[k]) for k in ("step_repeats", "step_spread_s", "step_median_s"))
    if repeats is None:
        return ""
    if spread is None or not median:
        return f"{repeats} × {row['step_rounds'] // repeats} rounds"
    return f"{repeats}, spread {num(100 * spread / median, 2)}%"


def _break_even_cell(row: Row) -> str:
    value = finite(row["break_even"])
    if value is None:
        return ""
    if math.isinf(value):
        return "—"
    return "at once" if value == 0 else f"{num(value)} steps"


def oracle_cell(row: Row) -> str:
    """'same (p=0.41)', 'differs (p=0.003)', 'oracle', or '—' when the test could not be made."""
    if row["is_oracle"]:
        return "oracle"
    p = finite(row["oracle_p"])
    if p is None:
        return "—"
    return f"{'differs' if p < ALPHA else 'same'} (p={p_text(p)})"


def kernel_cell(row: Row) -> str:
    """The code path: the backend's kernel; its compiler; the GPU model on a GPU row."""
    parts = [finite(row["kernel"]), finite(row["compile"]), finite(row["gpu"]) if row["device"] != "cpu" else None]
    return "; ".join(str(p) for p in parts if p)


def _text(key: str, format: Callable[[Any], str] = str) -> Callable[[Row], str]:
    return lambda row: "" if finite(row[key]) is None else format(row[key])


@dataclasses.dataclass(frozen=True)
class Column:
    """One column. `header` and `legend` may name {metric}, {about} and {trivial}: the run's task fills them in."""

    header: str
    cell: Callable[[Row], str]
    legend: str
    main: bool = False  # in the narrow main table (and the terminal summary); else in the details table
    key: bool = False  # names the row: in both tables
    varies: bool = False  # shown only when its value differs between rows (machine, size)
    numbers: bool = True  # right-aligned
    skipped: bool = False  # has a cell on a row without numbers (else '—')

    def title(self, metric: dict[str, str]) -> str:
        return self.header.format(metric=metric["label"], about=metric["about"])

    def explain(self, metric: dict[str, str]) -> str:
        return self.legend.format(metric=metric["label"], about=metric["about"], trivial=metric.get("trivial", ""))


def _floor_name() -> str:
    names = [f"{f[0]} {f[1]} on {device}" for device in DEVICE_ORDER if (f := floor(device))]
    return ", ".join(names) or "the floor backend"


REF = f"{REFERENCE[0]} {REFERENCE[1]}"
_KEY = {"main": True, "key": True, "numbers": False, "skipped": True}

COLUMNS: list[Column] = [
    Column("backend", lambda r: r["backend"], "registry name of the implementation", **_KEY),
    Column("mode", lambda r: r["mode"], "how it runs (backends.REGISTRY: eager, jit, compile, cuda-graph)", **_KEY),
    Column("device", lambda r: r["device"], "where the step runs", **_KEY),
    Column("machine", lambda r: r.get("label") or "", "the run the row comes from: its host (and name or path where "
           "those repeat) · CPU model (cpu rows) or GPU model (GPU rows)", varies=True, **_KEY),
    Column("size", lambda r: r["size"], "hidden units x batch streams x steps per window", varies=True, **_KEY),
    Column("model", lambda r: r["model"], "the recurrent cell (rnn, lstm, gru)", varies=True, **_KEY),
    Column("step (ms)", step_cell, "one train_step (forward, BPTT, Adam, state carried): the median over repeats of "
           "each repeat's median round, then (lowest–highest repeat median): the machine's drift between blocks taken "
           "in turn across cases, the run's noise", main=True, skipped=True),
    Column("rank", rank_cell, "by step time among the rows of the same run, device and size: 1 + the rows certainly "
           "faster (whose highest repeat median lies below this row's lowest); '=': tied with another row, their "
           "ranges overlap, so this run does not order them", main=True),
    Column(f"vs {REF}", _text("speedup", ratio), f"{REF}'s step median on the same device (same run, same size) / this "
           "row's: > 1 is faster", main=True),
    Column("× floor", _text("floor_ratio", ratio), f"this row's step median / the no-framework floor's "
           f"({_floor_name()}, same device, same run): what the framework costs over plain compiled code; blank where "
           "the floor did not run", main=True),
    Column("first step (ms)", _text("first_step_s", ms), "the first train_step on a fresh backend (tracing, "
           "compiling), kept out of the step median", main=True),
    Column("{metric}", metric_cell, "{about}: median [first–third quartile] over the learned seeds only",
           main=True),
    Column("outcome", outcome_cell, "per seed trained: learned (its {metric} better than {trivial}), did not learn "
           "(no better than that), diverged (a loss or the {metric} not finite or beyond the task's bounds); only the "
           "learned seeds make the {metric} column", main=True),
    Column("params", _text("params", integer), "trainable parameters as the framework counts them", main=True),
    Column("kernel / path", kernel_cell, "the backend's own description of its code path; its compiler; the GPU "
           "model on GPU rows", numbers=False),
    Column("predict (ms)", _text("predict_median_s", ms), "one forward-only call on one window, median as above"),
    Column("step IQR (ms)", _text("step_iqr_s", ms), "interquartile range of the rounds within a repeat (median over "
           "repeats): the noise within a block"),
    Column("repeats", _repeats_cell, "blocks of timed rounds, and (highest − lowest repeat median) / median"),
    Column("calls/round", _text("step_calls_per_round", integer), "train_step calls timed together in one round "
           "(several for fast rows: less timer overhead per call)"),
    Column("start-up (s)", _text("startup_s", num), "the case's worker process: interpreter, framework import, "
           "backend made"),
    Column("train run (s)", _text("train_run_s", num), "wall time of one training run (first step included), median "
           "over seeds that did not diverge"),
    Column("final loss", _text("final_loss", num), "training loss of the last step, median over seeds that did not "
           "diverge"),
    Column("peak mem (MiB)", _memory_cell, "peak RSS of the process that ran only this case (+ the GPU peak its "
           "framework's allocator handed out)"),
    Column("GPU/CPU", _text("step_gpu_cpu", ratio), "this GPU row's step median / the same backend and mode on the "
           "cpu: < 1, the GPU is faster"),
    Column("break-even", _break_even_cell, "for a mode other than the backend's default: steps after which its faster "
           "step has paid back its slower first step against the default mode on the same device ((first − "
           "default's first) / (default's step − step)); 'at once' when its first step is no slower; — when it never "
           "pays back"),
    Column("same as oracle", oracle_cell, f"two-sided Mann–Whitney U test (scipy) of this row's learned seeds against "
           f"{ORACLE[0]} {ORACLE[1]}'s {ORACLE[2]} row (same run and size): 'differs' at p < {ALPHA}; — with fewer "
           f"than {MIN_SEEDS} learned seeds on either side. {REF} trains both of nn.RNN's biases (the canonical model "
           "has one): that is the row where a difference is expected"),
    Column("notes", lambda r: "; ".join(r["notes"]), "failures, measurements cut short, memory errors, diverged seeds "
           "and the step where each diverged", numbers=False, skipped=True),
]  # fmt: skip


def main_columns(rows: list[Row]) -> list[Column]:
    return [c for c in shown(rows) if c.main]


def detail_columns(rows: list[Row]) -> list[Column]:
    return [c for c in shown(rows) if c.key or not c.main]


def shown(rows: list[Row]) -> list[Column]:
    """Columns to show: a `varies` column only when its value differs between rows."""
    return [c for c in COLUMNS if not c.varies or len({c.cell(r) for r in rows}) > 1]


def cells(row: Row, columns: list[Column]) -> list[str]:
    """A row's cell texts (unescaped): '—' for a column without a value on a row without numbers."""
    return [c.cell(row) if (c.skipped or not skipped(row)) else "—" for c in columns]


# The CSV: the case table's columns, seconds and bytes as plain numbers, one line per row, the run-level fields on
# every line (so that the CSVs of many runs stack). Derived texts are added as columns of their own.
CSV_COLUMNS: list[str] = [
    "backend", "mode", "device", "size", "hidden", "batch", "seq_len", "model", "status", "reason",
    "step_median_s", "step_low_s", "step_high_s", "step_spread_s", "step_iqr_s", "step_repeats", "step_rounds",
    "step_calls_per_round", "rank", "tied", "predict_median_s", "predict_low_s", "predict_high_s", "predict_spread_s",
    "predict_repeats", "predict_rounds", "speedup", "floor_ratio", "step_gpu_cpu", "predict_gpu_cpu", "first_step_s",
    "break_even", "metric_name", "metric_median", "metric_q1", "metric_q3", "seeds", "learned", "diverged",
    "did_not_learn", "outcome", "oracle_p", "oracle", "train_run_s", "final_loss", "peak_rss_bytes",
    "baseline_rss_bytes", "gpu_peak_bytes", "params", "framework", "kernel", "compile", "startup_s", "notes",
    "run", "path", "host", "cpu", "gpu", "cores", "commit", "dirty", "threads", "threads_mismatch", "versions",
    "options", "complete",
]  # fmt: skip
