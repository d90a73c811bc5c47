"""python -m benchmarks.report: render a run, compare runs, merge runs. Bad input: one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import runs
from benchmarks.records import RecordError
from benchmarks.report import write

COMMANDS = ("render", "compare", "merge")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage and exits 2: one line is enough
        raise RecordError(f"{self.prog}: {message}")


def parser() -> argparse.ArgumentParser:
    top = _Parser(
        prog="python -m benchmarks.report",
        description="Tables and plots from saved runs. Without a command: render RUN_DIR.",
        epilog="python -m benchmarks.report COMMAND --help for each command",
    )
    sub = top.add_subparsers(dest="command", metavar="{render,compare,merge}", parser_class=_Parser)
    render = sub.add_parser(
        "render",
        help="the report of a run folder (the default command): comparison.md or, for a sweep, sweep.md",
        description="Write a run folder's report into it: comparison.md, comparison.csv, summary.txt and the plots; "
        "for a size sweep (its records say so) sweep.md, sweep.csv and the sweep's plots.",
    )
    render.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                        help="run folder (default: results/latest, else the newest run in results/runs)")  # fmt: skip
    render.add_argument(
        "--out", metavar="DIR", help="write there instead of into the run folder (never into another run)"
    )
    render.add_argument("--no-plots", action="store_true", help="tables only (plots take seconds each)")
    compare = sub.add_parser(
        "compare",
        help="B against A: changes beyond the run-to-run noise",
        description=(
            "Compare run(s) B against run(s) A per case: step and predict medians, first step, peak memory and "
            "the held-out metric. Give several runs per side, comma-separated (A1,A2 B1,B2; a run named twice "
            "counts once): the spread of their values is the run-to-run noise and a change must exceed it. With "
            "one run per side the spread between repeats inside each run and a relative threshold decide. Each "
            "time is judged twice: in absolute time, and against how the machine moved as a whole (the floor's "
            "ratio, else the median ratio over the cases). A sweep is compared at the sizes both sides measured."
        ),
    )
    compare.add_argument("a", metavar="RUN_A", help="run folder(s) A, comma-separated")
    compare.add_argument("b", metavar="RUN_B", help="run folder(s) B, comma-separated")
    compare.add_argument(
        "--out", metavar="FILE", help="markdown file to write (default: results/compare-B-vs-A.md); never inside a run"
    )
    merge = sub.add_parser(
        "merge",
        help="runs of several machines in one table and one plot",
        description=(
            "One table and one step-time plot of several runs, rows labelled by machine; each row's speed-up is "
            "against its own run's torch-rnn eager on the same device. A sweep's sizes are rows of their own."
        ),
    )
    merge.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    merge.add_argument("--out", metavar="DIR", help="output folder (default: results/merged); never inside a run")
    return top


def _recovered(run_dir: Path) -> Path:
    """A `.partial` folder whose run has died is first labelled (renamed) by `runs.recover`."""
    if not run_dir.name.endswith(runs.PARTIAL) or run_dir.parent.name != "runs":
        return run_dir
    for folder in runs.recover(run_dir.parent.parent):
        if folder.name.startswith(run_dir.name.removesuffix(runs.PARTIAL)):
            print(f"{run_dir}: left by a run that was killed; labelled {folder.name}")
            return folder
    return run_dir


def main(argv: list[str] | None = None) -> int:
    """The CLI; returns the exit status (2 for bad input, with one line on stderr)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or (args[0] not in COMMANDS and args[0] not in ("-h", "--help")):
        args.insert(0, "render")
    try:
        ns = parser().parse_args(args)
        if ns.command == "compare":
            from benchmarks.report import compare

            text, path = compare.write_compare(_runs(ns.a), _runs(ns.b), ns.out)
            print(text, end="")
            print(f"wrote {path}")
        elif ns.command == "merge":
            from benchmarks.report import merge

            for path in merge.write_merge([Path(r) for r in ns.runs], ns.out):
                print(f"wrote {path}")
        else:
            run_dir = _recovered(Path(ns.run_dir)) if ns.run_dir else None
            if run_dir is None:  # the benchmark's runs and the sweep's
                for root in (write.RESULTS_DIR, write.RESULTS_DIR / runs.SWEEPS):
                    for folder in runs.recover(root, write.render):
                        print(f"{folder}: left by a run that was killed; labelled and rendered")
            run_dir = run_dir or write.newest_run()
            written, summary = write.render(run_dir, ns.out, plots=not ns.no_plots)
            print("\n".join(summary))
            for path in written:
                print(f"wrote {path}")
        return 0
    except RecordError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except OSError as err:  # the inputs were fine but an output could not be written (read-only, disk full)
        print(f"error: cannot write the report: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    except Exception as err:  # records that pass their types yet make no sense to the report: one line still
        given = " ".join(a for a in args[1:] if not a.startswith("-")) or "the newest run"
        text = " ".join(str(err).split())
        print(f"error: unexpected content in {given} ({type(err).__name__}: {text})", file=sys.stderr)
        return 2


def _runs(text: str) -> list[Path]:
    paths = [Path(p) for p in text.split(",") if p.strip()]
    if not paths:
        raise RecordError(f"no run folder in {text!r}")
    return paths


if __name__ == "__main__":
    sys.exit(main())
