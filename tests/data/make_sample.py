"""Make tests/data/sample_records/records.jsonl (schema 2) from the committed H200 reference run, so that the
report's tests meet every kind of row: cpu and cuda rows, non-default modes (break-even), the numba floor,
an unavailable, a failed and an over-budget case, a predict block that failed on a measured case, a seed
that diverged, a memory child that failed and a block cut short.

    .venv/bin/python tests/data/make_sample.py

What is real and what is made up: every row but numba's comes from results/reference/h200-20261127-234442
(upgraded by benchmarks.migrate, blocks cut to their first 40 rounds, numbers rounded to 4 digits). The
numba row is numpy's with the times scaled by 0.06 (the same math; only the × floor column needs it). The
skipped cases, the divergence of torch-cell eager @cuda seed 3 at step 187, the failed memory child of
torch-cell eager @cpu, the failed predict repeat of jax-scan jit @cuda and the 25-round block of torch-cell
eager @cuda are edits.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from benchmarks import migrate, records
from benchmarks.records import Block, Case, FirstStep, Loaded, Memory, Skipped, Start, Training

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "results" / "reference" / "h200-20261127-234442"
OUT = Path(__file__).resolve().parent / "sample_records" / records.FILE
ROUNDS = 40
SIZE = "32x1x10"


def _r(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.4g}")


def main() -> None:
    run = migrate.upgrade(SOURCE)
    out: list[object] = []
    numpy_case = Case("numpy", "eager", "cpu", SIZE)
    numba = Case("numba", "njit", "cpu", SIZE)
    cell_cuda = Case("torch-cell", "eager", "cuda", SIZE)
    jax_cuda = Case("jax-scan", "jit", "cuda", SIZE)
    extra: list[object] = []
    for record in run.records:
        if isinstance(record, Start):
            options = {
                "backends": ["numpy", "torch-rnn", "torch-cell", "jax-scan", "keras-simplernn", "tf-cell", "tflearn",
                             "numba"],
                "modes": ["all"], "device": "all", "seeds": 5, "train_steps": 300, "hidden_size": 32, "seq_len": 10,
                "batch_size": 1, "lr": 0.02, "threads": 1, "rounds": ROUNDS, "repeats": 3, "warmup_rounds": 20,
                "min_round_us": 0.0, "memory": True, "fresh_caches": True, "results_dir": "results",
            }  # fmt: skip
            record = dataclasses.replace(record, options=options)
        elif isinstance(record, Block):
            rounds = 25 if (record.case, record.op, record.repeat) == (cell_cuda, "train_step", 2) else ROUNDS
            if (record.case, record.op, record.repeat) == (jax_cuda, "predict", 2):
                extra.append(
                    Skipped(jax_cuda, "failed", "RuntimeError: CUDA error: launch failure", "predict block, repeat 2")
                )
                continue
            record = dataclasses.replace(record, seconds=[_r(v) for v in record.seconds[:rounds]])
            if record.case == numpy_case:
                extra.append(dataclasses.replace(record, case=numba, seconds=[_r(v * 0.06) for v in record.seconds]))
        elif isinstance(record, Training):
            losses = [_r(v) for v in record.losses]
            metric = _r(record.metric)
            predictions = [_r(v) for v in record.predictions] if record.predictions else None
            diverged = None
            if record.case == cell_cuda and record.seed == 3:
                losses = losses[:187] + [None] * (len(losses) - 187)
                metric, diverged = None, 187
            record = dataclasses.replace(record, losses=losses, metric=metric, diverged_step=diverged,
                                         predictions=predictions)  # fmt: skip
            if record.case == numpy_case:
                extra.append(dataclasses.replace(record, case=numba, seconds=_r(record.seconds * 0.06)))
        elif isinstance(record, Loaded) and record.case == numpy_case:
            info = {"framework": "numba 0.68.1", "kernel": "the floor: forward, BPTT and Adam in one @njit function",
                    "mode": "njit", "compile": "numba njit (compiled at the first call)"}  # fmt: skip
            extra.append(Loaded(numba, info, record.params))
        elif isinstance(record, FirstStep) and record.case == numpy_case:
            extra.append(FirstStep(numba, 2.5))
        elif isinstance(record, Memory):
            if record.case == Case("torch-cell", "eager", "cpu", SIZE):
                record = Memory(record.case, None, None, None, "the memory child took over 600 s")
            elif record.case == numpy_case:
                extra.append(dataclasses.replace(record, case=numba))
        if isinstance(record, records.Finish):
            out += extra
            out += [
                Skipped(Case("keras-simplernn", "function", "cuda", SIZE), "unavailable",
                        "keras-simplernn: TensorFlow sees no GPU (tensorflow-cpu is installed)"),
                Skipped(Case("tflearn", "session", "cpu", SIZE), "unavailable",
                        "tflearn: cannot import its framework (ModuleNotFoundError: No module named 'tensorflow'); "
                        "install it with: pip install -e '.[tf]'"),
                Skipped(Case("tf-cell", "function", "cpu", SIZE), "failed",
                        "RuntimeError: boom | a pipe\nand a second line", "train_step block, repeat 0"),
                Skipped(Case("torch-cell", "compile", "cpu", SIZE), "over-budget",
                        "the first step took 95 s, over the 60 s budget for one case"),
            ]  # fmt: skip
            record = dataclasses.replace(record, note="")
        out.append(record)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(records.to_json(r), allow_nan=False, separators=(",", ":")) for r in out]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(lines)} records)")


if __name__ == "__main__":
    main()
