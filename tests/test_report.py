"""The report layer, from saved JSON only: rows, markdown, CSV, plots, compare, CLI and atomic writes.

Expected values are computed here from tests/data/sample_run itself, so the sample can be
replaced by a real run's files; cases the sample may lack (divergence, unavailability, known
ratios) are made by editing a copy.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import backends
from benchmarks import atomic, report
from benchmarks.report_data import mean_std_ci, t95

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = Path(__file__).resolve().parent / "data" / "sample_run"
PNG = b"\x89PNG\r\n\x1a\n"
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
OUTPUTS = ("comparison.md", "comparison.csv", "predictions.png", "loss_curves.png", "step_times.png")
HEADER = [
    "backend",
    "device",
    "kernel / path",
    "step median (ms)",
    "step IQR (ms)",
    "step repeats (ms)",
    "first step (ms)",
    "predict median (ms)",
    "held-out MSE",
    "MSE 95% CI",
    "train run (s)",
    "final loss",
    "params",
    "peak mem (MiB)",
    "speed-up vs torch-rnn",
    "GPU/CPU",
]

MSE = HEADER.index("held-out MSE")

Edit = Callable[[dict, dict], None]


def copy_run(dst: Path, edit: Edit | None = None) -> Path:
    """Copy the sample's JSON into dst, optionally editing (benchmark, run) first."""
    dst.mkdir(parents=True)
    bench = json.loads((SAMPLE / "benchmark.json").read_text())
    meta = json.loads((SAMPLE / "run.json").read_text()) if (SAMPLE / "run.json").exists() else {}
    if edit:
        edit(bench, meta)
    (dst / "benchmark.json").write_text(json.dumps(bench))
    (dst / "run.json").write_text(json.dumps(meta))
    return dst


def by_kind(bench: dict, kind: str) -> dict[tuple[str, str], dict]:
    out = {}
    for entry in bench["benchmarks"]:
        extra = entry.get("extra_info") or {}
        if extra.get("kind") == kind:
            out.setdefault((extra["backend"], extra["device"]), entry)
    return out


def repeats(bench: dict, kind: str) -> dict[tuple[str, str], list[dict]]:
    """Every repeat of each (backend, device), in repeat order."""
    out: dict[tuple[str, str], list[dict]] = {}
    for entry in bench["benchmarks"]:
        extra = entry.get("extra_info") or {}
        if extra.get("kind") == kind:
            out.setdefault((extra["backend"], extra["device"]), []).append(entry)
    return {k: sorted(v, key=lambda e: e["extra_info"].get("repeat", 0)) for k, v in out.items()}


def over_repeats(group: list[dict], stat: str) -> float:
    return statistics.median(e["stats"][stat] for e in group)


def table(md: str) -> tuple[list[str], list[list[str]]]:
    """Header cells and body rows of the markdown's results table."""
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    split = [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]] for line in lines]
    return split[0], split[1:]


def sample() -> dict:
    return json.loads((SAMPLE / "benchmark.json").read_text())


def sample_meta() -> dict:
    path = SAMPLE / "run.json"
    return json.loads(path.read_text()) if path.exists() else {}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    run_dir = copy_run(tmp_path_factory.mktemp("report") / "run")
    return run_dir, report.write_report(run_dir)


# ---- rows ----


def test_rows_cover_every_backend_and_device_in_order():
    bench, meta = sample(), sample_meta()
    keys = set()
    for kind in ("train_step", "predict", "training_run"):
        keys |= set(by_kind(bench, kind))
    keys |= {tuple(k.rsplit("@", 1)) for k in meta.get("unavailable", {})}
    rows = report.comparison_rows(report.load_run(SAMPLE))
    got = [(r.backend, r.device) for r in rows]
    assert sorted(got) == sorted(keys)
    assert ("noop", "cpu") not in got
    registered = [backends.names().index(b) for b, _ in got if b in backends.names()]
    assert registered == sorted(registered)
    for name in {b for b, _ in got}:
        positions = [i for i, (b, _) in enumerate(got) if b == name]
        assert positions == list(range(positions[0], positions[-1] + 1)), f"{name}'s rows are not adjacent"
        devices = [got[i][1] for i in positions]
        if "cpu" in devices and "cuda" in devices:
            assert devices.index("cpu") < devices.index("cuda")


def test_row_values_come_from_the_json():
    bench = sample()
    rows = {(r.backend, r.device): r for r in report.comparison_rows(report.load_run(SAMPLE))}
    steps = repeats(bench, "train_step")
    assert steps and all(len(group) == 2 for group in steps.values()), "the sample should have 2 repeats"
    for key, group in steps.items():
        row = rows[key]
        assert row.step_median == over_repeats(group, "median")
        assert row.step_iqr == over_repeats(group, "iqr")
        assert row.step_repeat_medians == [e["stats"]["median"] for e in group]
        assert row.step_spread == max(row.step_repeat_medians) - min(row.step_repeat_medians)
        assert row.step_noise == max(row.step_iqr, row.step_spread)
        assert row.step_min == min(e["stats"]["min"] for e in group)
        assert row.step_rounds == sum(e["stats"]["rounds"] for e in group)
        assert group[0]["extra_info"]["first_step_seconds"] is not None
        assert row.first_step == group[0]["extra_info"]["first_step_seconds"]
        assert group[1]["extra_info"]["first_step_seconds"] is None  # only a fresh backend's first call counts
        assert row.params == group[0]["extra_info"]["params"]
    for key, group in repeats(bench, "predict").items():
        assert rows[key].predict_median == over_repeats(group, "median")
    for key, entry in by_kind(bench, "training_run").items():
        extra, row = entry["extra_info"], rows[key]
        good = [m for m, d in zip(extra["held_out_mse"], extra["diverged"]) if not d and m is not None]
        assert row.seeds == len(extra["held_out_mse"])
        assert row.diverged == len(extra["held_out_mse"]) - len(good)
        assert row.peak_rss_bytes == extra["peak_rss_bytes"]
        kept = [s for s, d in zip(extra["train_seconds"], extra["diverged"]) if not d]
        assert row.train_run_mean == (pytest.approx(statistics.fmean(kept)) if kept else None)
        if len(good) >= 2 and len(good) - 1 in T95:
            std = statistics.stdev(good)
            assert row.mse_mean == pytest.approx(statistics.fmean(good))
            assert row.mse_std == pytest.approx(std)
            half = T95[len(good) - 1] * std / math.sqrt(len(good))
            expected = (max(row.mse_mean - half, 0.0), row.mse_mean + half)  # an MSE interval stops at 0
            assert (row.mse_ci_low, row.mse_ci_high) == pytest.approx(expected)


def test_speedup_and_gpu_cpu_follow_the_json():
    steps = {k: over_repeats(group, "median") for k, group in repeats(sample(), "train_step").items()}
    for row in report.comparison_rows(report.load_run(SAMPLE)):
        if (row.backend, row.device) not in steps:
            assert row.speedup is None and row.gpu_cpu is None
            continue
        ref = steps.get(("torch-rnn", row.device))
        expected = None if ref is None else ref / steps[(row.backend, row.device)]
        assert row.speedup == pytest.approx(expected)
        cpu = steps.get((row.backend, "cpu"))
        expected = steps[(row.backend, row.device)] / cpu if row.device == "cuda" and cpu else None
        assert row.gpu_cpu == pytest.approx(expected)


def _step_only(medians: dict[tuple[str, str], float]) -> Edit:
    def edit(bench: dict, meta: dict) -> None:
        template = next(iter(by_kind(bench, "train_step").values()))
        bench["benchmarks"] = []
        for (name, device), median in medians.items():
            entry = copy.deepcopy(template)
            entry["extra_info"].update(backend=name, device=device)
            entry["stats"].update(median=median, q1=median, q3=median, min=median, iqr=0.0)
            bench["benchmarks"].append(entry)
        meta["unavailable"] = {}

    return edit


def test_speedup_and_gpu_cpu_known_values(tmp_path):
    medians = {
        ("numpy", "cpu"): 5e-4,
        ("torch-rnn", "cpu"): 1e-3,
        ("torch-rnn", "cuda"): 4e-4,
        ("torch-cell", "cuda"): 8e-4,
    }
    run = report.load_run(copy_run(tmp_path / "a", _step_only(medians)))
    rows = {(r.backend, r.device): r for r in report.comparison_rows(run)}
    assert rows[("numpy", "cpu")].speedup == pytest.approx(2.0)
    assert rows[("torch-rnn", "cuda")].speedup == pytest.approx(1.0)
    assert rows[("torch-cell", "cuda")].speedup == pytest.approx(0.5)
    assert rows[("torch-rnn", "cuda")].gpu_cpu == pytest.approx(0.4)
    assert rows[("torch-cell", "cuda")].gpu_cpu is None  # no cpu row to divide by
    assert rows[("numpy", "cpu")].gpu_cpu is None
    _, body = table(report.comparison_markdown(run, list(rows.values())))
    assert "2.00×" in next(r for r in body if r[:2] == ["numpy", "cpu"])
    del medians[("torch-rnn", "cpu")], medians[("torch-rnn", "cuda")]
    run = report.load_run(copy_run(tmp_path / "b", _step_only(medians)))
    assert all(r.speedup is None for r in report.comparison_rows(run))  # no torch-rnn: blank, not an error


def _repeat_medians(key: tuple[str, str], medians: list[float]) -> Edit:
    """Give `key`'s train_step one repeat per median, each with a tiny IQR."""

    def edit(bench: dict, meta: dict) -> None:
        template = repeats(bench, "train_step")[key][0]
        bench["benchmarks"] = [e for e in bench["benchmarks"] if e not in repeats(bench, "train_step")[key]]
        for i, median in enumerate(medians):
            entry = copy.deepcopy(template)
            entry["extra_info"]["repeat"] = i
            entry["stats"].update(median=median, q1=median * 0.99, q3=median * 1.01, iqr=median * 0.02, min=median)
            bench["benchmarks"].append(entry)

    return edit


def test_drift_between_repeats_is_shown_and_counts_as_noise(tmp_path):
    key = next(iter(repeats(sample(), "train_step")))
    drifting = report.load_run(copy_run(tmp_path / "A", _repeat_medians(key, [1.5e-3, 1.0e-3, 1.1e-3])))
    steady = report.load_run(copy_run(tmp_path / "B", _repeat_medians(key, [1.3e-3, 1.3e-3, 1.3e-3])))
    row = next(r for r in report.comparison_rows(drifting) if (r.backend, r.device) == key)
    assert row.step_median == 1.1e-3 and row.step_spread == pytest.approx(0.5e-3)
    cells = next(c for c in table(report.comparison_markdown(drifting, [row]))[1])
    assert cells[HEADER.index("step repeats (ms)")] == "1.00–1.50"
    line = next(csv.DictReader(io.StringIO(report.comparison_csv([row]))))
    assert (line["step_repeats"], float(line["step_spread_s"])) == ("3", pytest.approx(0.5e-3))
    # 1.1 -> 1.3 ms is 18%, far beyond either IQR (2%) but inside A's drift between repeats
    compared = [line for line in report.compare_markdown(drifting, steady).splitlines() if "step median" in line]
    ours = next(line for line in compared if line.startswith(f"| {key[0]} | {key[1]} |"))
    assert "| 1.182 |" in ours and "changed" not in ours


def test_gpu_rows_name_their_kernel_and_gpu_model(tmp_path):
    def edit(bench: dict, meta: dict) -> None:
        _step_only({("torch-rnn", "cpu"): 1e-3, ("torch-rnn", "cuda"): 4e-4})(bench, meta)
        for entry in bench["benchmarks"]:
            on_gpu = entry["extra_info"]["device"] == "cuda"
            info = {"kernel": "cuDNN RNN", "gpu": "NVIDIA H200"} if on_gpu else {"kernel": "ATen RNN"}
            entry["extra_info"]["info"] = {**info, "mode": "eager"}

    rows = {r.device: r for r in report.comparison_rows(report.load_run(copy_run(tmp_path / "run", edit)))}
    assert rows["cuda"].kernel == "cuDNN RNN; eager; on NVIDIA H200"
    assert rows["cpu"].kernel == "ATen RNN; eager"


def test_statistics_helpers():
    assert t95(4) == 2.776 and t95(30) == 2.042 and t95(35) == 2.042 and t95(10_000) == 1.960
    assert mean_std_ci([]) == (None, None, None, None)
    assert mean_std_ci([2.0]) == (2.0, None, None, None)
    mean, std, low, high = mean_std_ci([1.0, 2.0, 3.0])
    assert (mean, std) == (2.0, 1.0) and high - mean == pytest.approx(4.303 / math.sqrt(3))


# ---- markdown, CSV, plots ----


def test_markdown_has_every_row_column_and_machine_line(written):
    run_dir, _ = written
    md = (run_dir / "comparison.md").read_text()
    rows = report.comparison_rows(report.load_run(run_dir))
    header, body = table(md)
    assert header == HEADER
    assert len(body) == len(rows)
    for cells, row in zip(body, rows):
        assert len(cells) == len(HEADER)
        assert cells[:2] == [row.backend, row.device]
        if row.status == "unavailable":
            assert cells[2].startswith("unavailable: ")
        elif row.step_median is not None:
            assert float(cells[3].replace(",", "")) == pytest.approx(row.step_median * 1e3, rel=0.01)
    for label in ("- CPU:", "- threads:", "- OS:", "- Python:", "- frameworks:", "- GPU:", "## Columns"):
        assert label in md
    overhead = next(e for e in sample()["benchmarks"] if (e.get("extra_info") or {}).get("kind") == "harness_overhead")
    line = next(line for line in md.splitlines() if line.startswith("harness overhead per timed call:"))
    assert f"{overhead['stats']['median'] * 1e6:.2f} µs = " in line and "% of the fastest backend's step (" in line


def test_diverged_and_unavailable_rows_of_the_sample_render(written):
    run_dir, _ = written
    rows = report.comparison_rows(report.load_run(run_dir))
    _, body = table((run_dir / "comparison.md").read_text())
    for row, cells in zip(rows, body):
        if row.status == "unavailable":
            assert cells[2] == f"unavailable: {' '.join(row.reason.split())}".replace("|", "\\|")
        elif row.status == "diverged":
            assert cells[MSE] == f"diverged ({row.seeds}/{row.seeds} seeds)"
        elif row.status == "partly-diverged":
            assert cells[MSE].endswith(f"({row.diverged}/{row.seeds} diverged)") and " ± " in cells[MSE]


@pytest.mark.parametrize("how", ["some", "all", "all-but-one"])
def test_diverged_seeds(tmp_path, how):
    target: list[tuple[str, str]] = []

    def edit(bench: dict, meta: dict) -> None:
        key, entry = next(iter(by_kind(bench, "training_run").items()))
        extra, n = entry["extra_info"], len(entry["extra_info"]["seeds"])
        if n < 3:
            extra["seeds"] = list(range(5))
            extra["held_out_mse"] = [0.002, 0.003, 0.004, 0.005, 0.006]
            extra["final_loss"], extra["diverged"] = [0.001] * 5, [False] * 5
            n = 5
        extra["train_seconds"] = [float(i + 1) for i in range(n)]
        bad = {"all": range(n), "some": (1, n - 1), "all-but-one": range(1, n)}[how]
        for i in bad:
            extra["diverged"][i], extra["held_out_mse"][i], extra["final_loss"][i] = True, None, None
            extra["train_seconds"][i] = 0.01  # a diverged run stops early
        extra["held_out"]["prediction"] = None if 0 in bad else extra["held_out"]["prediction"]
        target.append(key)

    run = report.load_run(copy_run(tmp_path / "run", edit))
    rows = report.comparison_rows(run)
    row = next(r for r in rows if (r.backend, r.device) == target[0])
    extra = by_kind(run.bench, "training_run")[target[0]]["extra_info"]
    n = len(extra["seeds"])
    cells = next(c for c in table(report.comparison_markdown(run, rows))[1] if tuple(c[:2]) == target[0])
    line = next(r for r in csv.DictReader(io.StringIO(report.comparison_csv(rows))) if r["backend"] == row.backend)
    kept_seconds = [s for s, d in zip(extra["train_seconds"], extra["diverged"]) if not d]
    if how == "all":
        assert row.status == "diverged" and row.mse_mean is None and row.train_run_mean is None
        assert cells[MSE] == f"diverged ({n}/{n} seeds)"
        assert line["status"] == "diverged" and line["heldout_mse_mean"] == ""
        return
    rest = [m for m in extra["held_out_mse"] if m is not None]
    assert row.status == "partly-diverged" and row.mse_mean == pytest.approx(statistics.fmean(rest))
    assert row.train_run_mean == pytest.approx(statistics.fmean(kept_seconds))  # cut-short runs left out
    assert line["status"] == "partly-diverged" and float(line["heldout_mse_mean"]) == pytest.approx(row.mse_mean)
    bad = 2 if how == "some" else n - 1
    assert line["diverged_seeds"] == str(bad)
    assert cells[MSE].endswith(f"({bad}/{n} diverged)")
    if how == "all-but-one":
        assert cells[MSE].startswith(f"{report._fmt(rest[0])} (n=1) (")  # n counts the seeds in the mean


def test_cut_short_and_memory_failures_are_noted_on_the_row(tmp_path):
    """An interrupted run's partial measurement, or a memory child that failed, must not pass for a normal row."""

    def edit(bench: dict, meta: dict) -> None:
        (name, device), step = next(iter(by_kind(bench, "train_step").items()))
        training = by_kind(bench, "training_run")[(name, device)]
        meta["options"] = {**meta.get("options", {}), "rounds": step["stats"]["rounds"] + 7, "repeats": 2}
        meta["options"]["seeds"] = len(training["extra_info"]["seeds"]) + 1
        training["extra_info"].update(peak_rss_bytes=None, error="MemoryError: child died")

    run = report.load_run(copy_run(tmp_path / "run", edit))
    rows = report.comparison_rows(run)
    rounds, seeds = run.meta["options"]["rounds"], run.meta["options"]["seeds"]
    row = next(r for r in rows if r.step_rounds is not None)
    assert f"step timed over {2 * (rounds - 7)} of {2 * rounds} rounds" in row.notes
    assert f"accuracy over {seeds - 1} of {seeds} seeds" in row.notes
    assert "peak mem not measured: MemoryError: child died" in row.notes
    cells = next(c for c in table(report.comparison_markdown(run, rows))[1] if c[:2] == [row.backend, row.device])
    assert cells[2] == f"{row.kernel}; {row.notes}"
    summary = report.summary_lines(rows)
    assert summary[summary.index(next(s for s in summary if s.startswith(row.backend))) + 1].strip() == row.notes
    line = next(r for r in csv.DictReader(io.StringIO(report.comparison_csv(rows))) if r["backend"] == row.backend)
    assert line["notes"] == row.notes


def test_rows_an_interrupted_run_never_reached_say_so(tmp_path):
    def edit(bench: dict, meta: dict) -> None:
        meta["complete"] = False
        bench["benchmarks"] = [e for e in bench["benchmarks"] if e["extra_info"]["kind"] != "training_run"]

    rows = report.comparison_rows(report.load_run(copy_run(tmp_path / "run", edit)))
    timed = [r for r in rows if r.step_median is not None]
    assert timed and all(r.notes == "accuracy not measured before the run stopped" for r in timed)
    assert all(r.notes == "" for r in rows if r.status in ("unavailable", "failed"))


def test_overhead_line_without_any_timed_backend(tmp_path):
    def edit(bench: dict, meta: dict) -> None:
        bench["benchmarks"] = [e for e in bench["benchmarks"] if e["extra_info"]["kind"] == "harness_overhead"]

    run = report.load_run(copy_run(tmp_path / "run", edit))
    median = run.bench["benchmarks"][0]["stats"]["median"]
    line = report.overhead_line(run, report.comparison_rows(run))
    assert line == f"harness overhead per timed call: {median * 1e6:.2f} µs (no backend step was timed)"


def test_unavailable_row_renders_with_its_reason(tmp_path):
    def edit(bench: dict, meta: dict) -> None:
        meta.setdefault("unavailable", {})["ghost@cuda"] = "ghost | needs\na GPU"

    run = report.load_run(copy_run(tmp_path / "run", edit))
    rows = report.comparison_rows(run)
    row = next(r for r in rows if r.backend == "ghost")
    assert (row.device, row.status, row.step_median) == ("cuda", "unavailable", None)
    cells = next(c for c in table(report.comparison_markdown(run, rows))[1] if c[0] == "ghost")
    assert cells[2] == "unavailable: ghost \\| needs a GPU" and len(cells) == len(HEADER)
    line = next(r for r in csv.DictReader(io.StringIO(report.comparison_csv(rows))) if r["backend"] == "ghost")
    assert line["status"] == "unavailable" and line["reason"] == "ghost | needs\na GPU" and line["step_median_s"] == ""


def test_failed_benchmarks_render_as_failed_rows(tmp_path):
    def edit(bench: dict, meta: dict) -> None:
        meta["failed"] = {
            "ghost@cpu": "test_train_step: RuntimeError: boom",
            "numpy@cpu": "test_predict: KeyError: 'x'",
        }

    run = report.load_run(copy_run(tmp_path / "run", edit))
    rows = {(r.backend, r.device): r for r in report.comparison_rows(run)}
    ghost, numpy_row = rows[("ghost", "cpu")], rows[("numpy", "cpu")]
    assert (ghost.status, ghost.reason, ghost.step_median) == ("failed", "test_train_step: RuntimeError: boom", None)
    assert numpy_row.status == "ok" and numpy_row.step_median is not None  # measured parts stay
    cells = {c[0]: c for c in table(report.comparison_markdown(run, list(rows.values())))[1]}
    assert cells["ghost"][2] == "failed: test_train_step: RuntimeError: boom"
    assert cells["numpy"][2].endswith("; failed: test_predict: KeyError: 'x'")


def test_csv_parses_with_the_same_rows(written):
    run_dir, _ = written
    rows = report.comparison_rows(report.load_run(run_dir))
    with open(run_dir / "comparison.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert [(r["backend"], r["device"]) for r in lines] == [(r.backend, r.device) for r in rows]
    for line, row in zip(lines, rows):
        assert line["status"] in ("ok", "partly-diverged", "diverged", "unavailable")
        assert line["status"] == row.status
        for name in ("step_median_s", "predict_median_s", "heldout_mse_mean", "peak_rss_bytes", "speedup_vs_torch_rnn"):
            assert line[name] == "" or math.isfinite(float(line[name]))
        assert (float(line["step_median_s"]) if line["step_median_s"] else None) == row.step_median


def test_plots_are_pngs_and_linked(written):
    run_dir, paths = written
    assert sorted(p.name for p in paths) == sorted(OUTPUTS)
    md = (run_dir / "comparison.md").read_text()
    for name in OUTPUTS[2:]:
        data = (run_dir / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000
        assert f"]({name})" in md
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(("benchmark.json", "run.json", *OUTPUTS))


def test_run_without_run_json_still_reports(tmp_path):
    run_dir = copy_run(tmp_path / "run")
    (run_dir / "run.json").unlink()
    run = report.load_run(run_dir)
    assert run.meta == {}
    assert all(r.status != "unavailable" for r in report.comparison_rows(run))
    assert "## Results" in report.comparison_markdown(run, report.comparison_rows(run))


# ---- compare ----


def _scaled(key: tuple[str, str], factor: float) -> Edit:
    def edit(bench: dict, meta: dict) -> None:
        for entry in repeats(bench, "train_step")[key]:
            for name in ("min", "max", "mean", "stddev", "median", "iqr", "q1", "q3"):
                entry["stats"][name] *= factor

    return edit


def test_compare_flags_a_real_change_only(tmp_path, capsys):
    rows = {(r.backend, r.device): r for r in report.comparison_rows(report.load_run(SAMPLE))}
    # the least noisy backend: a 2x change must stand out of its noise (IQR or spread between repeats)
    key = min((k for k, r in rows.items() if r.step_median), key=lambda k: rows[k].step_noise / rows[k].step_median)
    assert rows[key].step_noise < 0.5 * rows[key].step_median, "sample too noisy for this test"
    a, b, same = copy_run(tmp_path / "A"), copy_run(tmp_path / "B", _scaled(key, 2.0)), copy_run(tmp_path / "C")

    assert report.main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    flagged = [line for line in out.splitlines() if "changed" in line and line.startswith("| ")]
    assert len(flagged) == 1
    assert flagged[0].startswith(f"| {key[0]} | {key[1]} | step median (ms) |") and "| 2.000 |" in flagged[0]
    assert (b / "compare-A.md").read_text() in out

    assert report.main(["compare", str(a), str(same)]) == 0
    out = capsys.readouterr().out
    assert "| 1.000 |" in out and not [line for line in out.splitlines() if "**changed**" in line]
    assert (same / "compare-A.md").exists()


def test_compare_with_a_run_from_before_repeats(tmp_path):
    """A run without the repeats option timed one block: against a --repeats=1 run that is no difference."""

    def old(bench: dict, meta: dict) -> None:
        meta["options"].pop("repeats", None)
        for entry in bench["benchmarks"]:
            entry["extra_info"].pop("repeat", None)

    def one_repeat(bench: dict, meta: dict) -> None:
        meta["options"]["repeats"] = 1

    a, b = report.load_run(copy_run(tmp_path / "A", old)), report.load_run(copy_run(tmp_path / "B", one_repeat))
    assert a.options["repeats"] == 1
    assert "Settings differ" not in report.compare_markdown(a, b)
    assert "Settings differ: repeats 1 → 2" in report.compare_markdown(a, report.load_run(SAMPLE))


def test_compare_shows_rows_without_numbers_and_changes_it_cannot_judge(tmp_path):
    def edit_a(bench: dict, meta: dict) -> None:
        meta.setdefault("unavailable", {})["ghost@cuda"] = "ghost | needs a GPU"

    def edit_b(bench: dict, meta: dict) -> None:
        meta["failed"] = {"numpy@cpu": "test_predict: KeyError: 'x'"}
        for entry in by_kind(bench, "training_run").values():  # one seed: the MSE has no spread
            extra = entry["extra_info"]
            for field in ("seeds", "held_out_mse", "final_loss", "diverged", "train_seconds", "loss_curves"):
                extra[field] = extra[field][:1]

    a, b = report.load_run(copy_run(tmp_path / "A", edit_a)), report.load_run(copy_run(tmp_path / "B", edit_b))
    lines = report.compare_markdown(a, b).splitlines()
    assert "| ghost | cuda | status | unavailable: ghost \\| needs a GPU | not run |  |  |" in lines
    assert "| numpy | cpu | status | measured | measured; failed: test_predict: KeyError: 'x' |  |  |" in lines
    both = [line for line in lines if "| held-out MSE mean |" in line and "| not " not in line]
    assert both and all(line.endswith("| no spread |") for line in both), both


# ---- CLI ----


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.report", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_cli_writes_the_report(tmp_path):
    run_dir = copy_run(tmp_path / "run")
    done = _cli(str(run_dir))
    assert done.returncode == 0, done.stderr
    assert [line.removeprefix("wrote ") for line in done.stdout.splitlines()] == [str(run_dir / n) for n in OUTPUTS]


def _retype_training(field: str, value: object) -> Edit:
    def edit(bench: dict, meta: dict) -> None:
        for entry in by_kind(bench, "training_run").values():
            entry["extra_info"][field] = value

    return edit


def _bad_folders(tmp_path: Path) -> dict[str, list[str]]:
    empty = tmp_path / "empty"
    empty.mkdir()
    malformed = copy_run(tmp_path / "malformed")
    (malformed / "benchmark.json").write_text('{"benchmarks": [')
    wrong = copy_run(tmp_path / "wrong")
    (wrong / "benchmark.json").write_text('{"machine_info": {}}')
    bad_meta = copy_run(tmp_path / "bad_meta")
    (bad_meta / "run.json").write_text("[1, 2]")
    deep = copy_run(tmp_path / "deep", _retype_training("held_out_mse", 5))
    curve = copy_run(tmp_path / "curve", _retype_training("loss_curves", [["not a number"]]))
    good = copy_run(tmp_path / "good")
    return {
        "wrong type deep inside": [str(deep)],
        "a loss curve of text": [str(curve)],
        "missing folder": [str(tmp_path / "nope")],
        "no benchmark.json": [str(empty)],
        "malformed JSON": [str(malformed)],
        "not pytest-benchmark JSON": [str(wrong)],
        "run.json not an object": [str(bad_meta)],
        "two folders without compare": [str(good), str(good)],
        "unknown option": ["--frobnicate"],
        "compare with one folder": ["compare", str(good)],
        "compare with a missing folder": ["compare", str(good), str(tmp_path / "nope")],
    }


def test_cli_bad_arguments_exit_2_with_one_line(tmp_path):
    for case, args in _bad_folders(tmp_path).items():
        done = _cli(*args)
        assert done.returncode == 2, case
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: "), (case, done.stderr)
        assert "Traceback" not in done.stderr and done.stdout == "", case


def test_cli_without_runs_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    assert report.main([]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_newest_run(tmp_path):
    runs = tmp_path / "runs"
    for name in ("20260101-000000-a", "20260102-000000-b", "20260103-000000-c.partial", "20260104-000000-d-incomplete"):
        copy_run(runs / name)
    (runs / "20260105-000000-e").mkdir()  # no benchmark.json: not a run
    assert report.newest_run(tmp_path) == (runs / "20260102-000000-b").resolve()
    (tmp_path / "index.json").write_text(json.dumps({"runs": ["20260101-000000-a"], "latest": "20260101-000000-a"}))
    assert report.newest_run(tmp_path) == (runs / "20260101-000000-a").resolve()
    (tmp_path / "latest").symlink_to(Path("runs") / "20260104-000000-d-incomplete")
    assert report.newest_run(tmp_path) == (runs / "20260104-000000-d-incomplete").resolve()
    with pytest.raises(report.RunError):
        report.newest_run(tmp_path / "nothing")


# ---- atomic writes ----


def _fail(*args: object, **kwargs: object) -> None:
    raise OSError("simulated crash")


@pytest.mark.parametrize("where", ["replace", "fsync"])
def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch, where):
    target = tmp_path / "table.md"
    target.write_text("old")
    monkeypatch.setattr(os, where, _fail)
    with pytest.raises(OSError, match="simulated crash"):
        atomic.write_text(target, "new " * 10_000)
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.md"]


def test_atomic_write_replaces_and_keeps_the_mode(tmp_path):
    target = tmp_path / "data.bin"
    assert atomic.write_bytes(target, b"one") == target
    assert target.read_bytes() == b"one" and target.stat().st_mode & 0o777 == 0o644
    target.chmod(0o664)
    atomic.write_text(target, "two")
    assert target.read_text() == "two" and target.stat().st_mode & 0o777 == 0o664
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_interrupted_report_keeps_the_old_report(tmp_path, monkeypatch):
    run_dir = copy_run(tmp_path / "run")
    (run_dir / "comparison.md").write_text("old report")
    monkeypatch.setattr(os, "replace", _fail)
    with pytest.raises(OSError):
        report.write_report(run_dir)
    monkeypatch.undo()
    assert (run_dir / "comparison.md").read_text() == "old report"
    assert sorted(p.name for p in run_dir.iterdir()) == ["benchmark.json", "comparison.md", "run.json"]


def test_tables_without_matplotlib(tmp_path):
    """The GPU machine may lack matplotlib: the tables must still be written, the plots skipped with a note."""
    run = tmp_path / "run"
    shutil.copytree(Path(__file__).parent / "data" / "sample_run", run)
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from benchmarks.report import main; sys.exit(main([sys.argv[1]]))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "matplotlib is not installed" in result.stderr
    assert (run / "comparison.md").exists() and (run / "comparison.csv").exists()
    assert not list(run.glob("*.png"))
