"""The upgrade chain: schema-1 run folders (benchmark.json + run.json) to schema-2 records (every field's
mapping, the old backend names, malformed input as one-line errors naming the file and the field), schema 2
to 3 (planned cases, outcomes) on the committed schema-2 sample, and the reader applying the chain."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import backends
from backends.task import SIN_TO_COS
from benchmarks import migrate, records
from benchmarks.records import (
    Block,
    Case,
    Finish,
    FirstStep,
    HeldOut,
    Loaded,
    Memory,
    Overhead,
    RecordError,
    Skipped,
    Training,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = Path(__file__).resolve().parent / "data" / "sample_run"
SAMPLE_2 = Path(__file__).resolve().parent / "data" / "sample_records"
REFERENCE = ROOT / "results" / "reference"
SCHEMA_1 = sorted(
    p for p in REFERENCE.iterdir() if (p / "benchmark.json").is_file() and not (p / records.FILE).exists()
)

Edit = Callable[[dict, dict], None]


def bench() -> dict:
    return json.loads((SAMPLE / "benchmark.json").read_text())


def meta() -> dict:
    return json.loads((SAMPLE / "run.json").read_text())


def copy_run(dst: Path, edit: Edit | None = None, run_json: bool = True) -> Path:
    dst.mkdir(parents=True)
    b, m = bench(), meta()
    if edit:
        edit(b, m)
    (dst / "benchmark.json").write_text(json.dumps(b))
    if run_json:
        (dst / "run.json").write_text(json.dumps(m))
    return dst


def entries(b: dict, kind: str) -> list[dict]:
    return [e for e in b["benchmarks"] if (e.get("extra_info") or {}).get("kind") == kind]


def case(extra: dict, size: str = "32x1x10") -> Case:
    backend, mode = migrate.case_names(extra["backend"])
    return Case(backend, mode, extra["device"], size)


@pytest.fixture(scope="module")
def run() -> records.RunRecords:
    return records.read(SAMPLE)  # no records.jsonl: read() upgrades it


def test_start_machine_and_finish(run):
    b, m = bench(), meta()
    assert run.migrated_from == 1 and not run.torn
    start = run.start
    assert start.schema == records.SCHEMA and start.started == m["started"] and start.argv == m["argv"]
    assert start.options == m["options"]
    assert start.task == migrate.SCHEMA_1_TASK  # the task as schema 1 knew it: today's seed task
    assert {k: SIN_TO_COS.describe()[k] for k in start.task} == start.task
    assert start.config == entries(b, "train_step")[0]["extra_info"]["config"]
    info, commit = b["machine_info"], b["commit_info"]
    machine = run.machine
    assert (machine.host, machine.cpu, machine.cores) == (info["node"], info["cpu_model"], info["cores"])
    assert machine.os == info["os"] and machine.python.startswith(info["python_version"])
    assert (machine.gpu, machine.gpu_driver) == (info["gpu"], info["gpu_driver"])
    assert machine.frameworks == info["frameworks"]
    assert machine.threads["requested"] == info["threads"]["requested"]
    assert (machine.commit, machine.dirty) == (commit["id"], commit["dirty"])
    assert run.finish == Finish(m["finished"], m["complete"], m["exitstatus"], "")
    assert run.complete


def test_blocks_first_steps_and_loaded(run):
    b = bench()
    blocks = run.of(Block)
    timed = entries(b, "train_step") + entries(b, "predict")
    assert len(blocks) == len(timed) > 0
    for block, entry in zip(blocks, [e for e in b["benchmarks"] if e in timed]):
        extra = entry["extra_info"]
        assert block.case == case(extra) and block.op == extra["kind"] and block.repeat == extra.get("repeat", 0)
        assert block.seconds == entry["stats"]["data"] and block.calls_per_round == entry["stats"]["iterations"]
    firsts = [e["extra_info"] for e in entries(b, "train_step") if e["extra_info"]["first_step_seconds"] is not None]
    assert [(f.case, f.seconds) for f in run.of(FirstStep)] == [(case(x), x["first_step_seconds"]) for x in firsts]
    loaded = {r.case: r for r in run.of(Loaded)}
    assert len(loaded) == len(run.of(Loaded))  # once per case
    for entry in entries(b, "train_step"):
        extra = entry["extra_info"]
        got = loaded[case(extra)]
        assert got.params == extra["params"] and got.info["kernel"] == extra["info"]["kernel"]
        assert got.info["mode"] == case(extra).mode  # the registry mode, not schema 1's text
    (overhead,) = run.of(Overhead)
    assert overhead.seconds == entries(b, "harness_overhead")[0]["stats"]["data"]


def test_training_held_out_and_memory(run):
    b = bench()
    trainings = run.of(Training)
    for entry in entries(b, "training_run"):
        extra = entry["extra_info"]
        mine = [t for t in trainings if t.case == case(extra)]
        assert [t.seed for t in mine] == extra["seeds"]
        assert [t.metric for t in mine] == extra["held_out_mse"]
        assert [t.seconds for t in mine] == extra["train_seconds"]
        assert [t.losses for t in mine] == extra["loss_curves"]
        assert [t.diverged_step for t in mine] == [None] * len(mine)
        assert mine[0].predictions == extra["held_out"]["prediction"]
        assert all(t.predictions is None for t in mine[1:])
        (memory,) = [r for r in run.of(Memory) if r.case == case(extra)]
        assert (memory.peak_rss_bytes, memory.baseline_rss_bytes) == (
            extra["peak_rss_bytes"],
            extra["baseline_rss_bytes"],
        )
        assert memory.gpu_peak_bytes == extra["gpu_peak_bytes"] and memory.error is None
    (held,) = run.of(HeldOut)
    first = entries(b, "training_run")[0]["extra_info"]["held_out"]
    assert (held.size, held.t, held.target) == ("32x1x10", first["t"], first["target"])


def test_unavailable_and_failed_become_skipped(run):
    m = meta()
    assert m["unavailable"] and m["failed"], "the sample should hold both"
    got = {(s.case.backend, s.case.mode, s.case.device): s for s in run.of(Skipped)}
    assert got[("jax-scan", "jit", "cpu")].status == "unavailable"
    assert got[("torch-rnn", "cuda-graph", "cuda")].reason == m["unavailable"]["torch-rnn-graph@cuda"]
    failed = got[("keras-simplernn", "xla", "cpu")]
    assert (failed.status, failed.where) == ("failed", "train_step")
    assert failed.reason == m["failed"]["keras-simplernn-xla@cpu"].removeprefix("test_train_step: ")


@pytest.mark.parametrize("name", sorted(migrate.SCHEMA_1_NAMES))
def test_schema_1_names_are_registered_modes(name):
    backend, mode = migrate.case_names(name)
    assert mode in backends.modes(backend)
    if name in backends.REGISTRY:  # a plain name was its backend's one way to run then
        assert backend == name


def test_schema_1_names_mean_what_those_runs_ran_whatever_the_registry_says_today():
    """keras-simplernn's plain name was its tf.function step (the info text of those runs says so), whichever
    mode the registry puts first now: the upgrade step holds the meaning, not today's default."""
    run = records.read(SAMPLE)
    (keras,) = [r for r in run.of(Loaded) if r.case.backend == "keras-simplernn" and r.case.mode == "function"]
    extra = next(e["extra_info"] for e in bench()["benchmarks"] if (e.get("extra_info") or {}).get("backend")
                 == "keras-simplernn" and (e.get("extra_info") or {}).get("info"))  # fmt: skip
    assert extra["info"]["mode"] == "tf.function" and keras.info["kernel"] == extra["info"]["kernel"]


def test_an_unknown_schema_1_name_keeps_mode_default():
    assert migrate.case_names("ghost") == ("ghost", "default")


def test_old_names_live_only_in_the_upgrade_step():
    """Names from before modes: known to the upgrade chain, nowhere in the report."""
    report = ROOT / "benchmarks" / "report"
    for old in ("torch-rnn-graph", "torch-cell-graph", "keras-simplernn-xla", "OLD_NAMES"):
        for file in report.glob("*.py"):
            assert old not in file.read_text(), (old, file.name)


def test_gpu_reference_run_maps_old_names_and_thread_mismatch():
    run = records.read(REFERENCE / "h200-20261127-234442")
    cases = {(c.backend, c.mode, c.device) for c in run.cases()}
    assert {
        ("torch-rnn", "cuda-graph", "cuda"),
        ("torch-cell", "cuda-graph", "cuda"),
        ("jax-scan", "jit", "cuda"),
    } <= cases
    assert "torch-rnn-graph" not in {c.backend for c in run.cases()}
    assert run.machine.threads["mismatch"] == ["openblas (blas): 16 threads"]  # numpy's BLAS ran 16 threads


def _diverge(b: dict, m: dict) -> None:
    extra = entries(b, "training_run")[1]["extra_info"]
    extra["diverged"][1], extra["held_out_mse"][1] = True, None
    extra["loss_curves"][1] = extra["loss_curves"][1][:17] + [None]
    extra["held_out_mse"][2] = None  # no finite metric but not flagged: diverged all the same


def test_diverged_seeds(tmp_path):
    run = records.read(copy_run(tmp_path / "run", _diverge))
    extra = entries(bench(), "training_run")[1]["extra_info"]
    mine = [t for t in run.of(Training) if t.case == case(extra)]
    assert (mine[1].metric, mine[1].diverged_step, mine[1].losses[-1]) == (None, 17, None)
    assert (mine[2].metric, mine[2].diverged_step) == (None, len(extra["loss_curves"][2]) - 1)
    assert mine[0].diverged_step is None and mine[0].metric == extra["held_out_mse"][0]


def test_summary_statistics_only(tmp_path):
    def edit(b: dict, m: dict) -> None:
        del entries(b, "train_step")[0]["stats"]["data"]

    run = records.read(copy_run(tmp_path / "run", edit))
    stats = entries(bench(), "train_step")[0]["stats"]
    seconds = run.of(Block)[0].seconds
    assert seconds == [stats[k] for k in ("min", "q1", "median", "q3", "max")]
    # numpy's linear quantiles of the five give back the median and quartiles exactly
    assert list(np.percentile(seconds, [25, 50, 75])) == pytest.approx([stats["q1"], stats["median"], stats["q3"]])
    assert "summary statistics only" in run.finish.note


def test_without_run_json_and_interrupted(tmp_path):
    run = records.read(copy_run(tmp_path / "bare", run_json=False))
    assert run.start.options == {} and run.of(Skipped) == []
    assert run.complete and "no run.json" in run.finish.note

    def stopped(b: dict, m: dict) -> None:
        m["complete"], m["exitstatus"] = False, 2

    assert not records.read(copy_run(tmp_path / "stopped", stopped)).complete

    def old(b: dict, m: dict) -> None:
        del m["options"]["repeats"]

    assert records.read(copy_run(tmp_path / "old", old)).start.options["repeats"] == 1  # one block per backend then


def _set(path: str, value: object, file: str = "bench") -> Edit:
    """Set a field: 'training.held_out_mse' (every training entry's extra_info), 'stats.data' (the first
    train_step's stats), 'first', 'benchmarks', 'machine.cores', or a run.json key."""

    def edit(b: dict, m: dict) -> None:
        if file == "meta":
            m[path] = value
            return
        where, _, field = path.partition(".")
        if where == "training":
            for e in entries(b, "training_run"):
                e["extra_info"][field] = copy.deepcopy(value)
        elif where == "step":
            entries(b, "train_step")[0]["extra_info"][field] = value
        elif where == "stats":
            entries(b, "train_step")[0]["stats"][field] = value
        elif where == "machine":
            b["machine_info"][field] = value
        else:
            b[where] = value

    return edit


MALFORMED = {
    "metric as a string": (
        _set("training.held_out_mse", ["0.1", 0.2, 0.3]),
        "held_out_mse[0]: must be a finite number",
    ),
    "round time as text": (_set("stats.data", [0.1, "x"]), "stats.data[1]: must be a finite number"),
    "negative first step": (_set("step.first_step_seconds", -0.5), "first_step_seconds: must not be negative"),
    "repeat as text": (_set("step.repeat", "1"), "extra_info.repeat: must be an integer"),
    "params as float": (_set("step.params", 1.5), "extra_info.params: must be an integer"),
    "loss as text": (_set("training.loss_curves", [["x"]]), "loss_curves[0][0]: must be a number or null"),
    "diverged as text": (_set("training.diverged", ["no"]), "diverged[0]: must be true or false"),
    "seeds not a list": (_set("training.seeds", 3), "extra_info.seeds: must be a list"),
    "cores as text": (_set("machine.cores", "2"), "machine_info.cores: must be an integer"),
    "benchmarks not a list": (_set("benchmarks", {}), "field 'benchmarks' must be a list"),
    "options not an object": (_set("options", [1], "meta"), "run.json: options: must be an object"),
    "unavailable a list": (_set("unavailable", ["x"], "meta"), "run.json: unavailable: must be an object"),
    "complete as text": (_set("complete", "yes", "meta"), "run.json: complete: must be true or false"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_input_names_the_file_and_field(tmp_path, name):
    edit, message = MALFORMED[name]
    folder = copy_run(tmp_path / "run", edit)
    with pytest.raises(RecordError) as err:
        records.read(folder)
    text = str(err.value)
    assert message in text and "\n" not in text
    assert str(folder) in text


def test_unreadable_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RecordError, match="not a run folder"):
        records.read(empty)
    broken = copy_run(tmp_path / "broken")
    (broken / "benchmark.json").write_text('{"benchmarks": [')
    with pytest.raises(RecordError, match="benchmark.json: cannot read it"):
        records.read(broken)
    (broken / "benchmark.json").write_text("[1]")
    with pytest.raises(RecordError, match="must be a JSON object"):
        records.read(broken)


def test_cli_on_malformed_input_is_one_line(tmp_path):
    folder = copy_run(tmp_path / "run", _set("training.held_out_mse", ["0.1"]))
    done = subprocess.run([sys.executable, "-m", "benchmarks.report", str(folder)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "held_out_mse[0]" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("folder", SCHEMA_1, ids=lambda p: p.name)
def test_every_schema_1_reference_run_upgrades(folder):
    run = records.read(folder)
    b = json.loads((folder / "benchmark.json").read_text())
    assert run.migrated_from == 1 and run.complete
    assert len(run.of(Block)) == len(entries(b, "train_step")) + len(entries(b, "predict"))
    seeds = sum(len(e["extra_info"]["seeds"]) for e in entries(b, "training_run"))
    assert len(run.of(Training)) == seeds


# ---- schema 2 -> 3, and the chain ----


def _objects(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / records.FILE).read_text().splitlines() if line.strip()]


def test_schema_2_to_3_on_the_committed_schema_2_sample():
    before = _objects(SAMPLE_2)
    assert before[0]["kind"] == "start" and before[0]["schema"] == 2
    after = migrate.schema_2_to_3(before)
    assert len(after) == len(before) and [o["kind"] for o in after] == [o["kind"] for o in before]  # lines kept
    mentioned = list(dict.fromkeys(json.dumps(o["case"], sort_keys=True) for o in before if "case" in o))
    assert after[0]["schema"] == 3 and [json.dumps(c, sort_keys=True) for c in after[0]["cases"]] == mentioned
    for old, new in zip(before, after):
        if old["kind"] == "training":
            if old["diverged_step"] is not None or old["metric"] is None:
                assert new["outcome"] == "diverged"
            else:
                assert new["outcome"] == ("learned" if old["metric"] < 0.5 else "did-not-learn")
        elif old["kind"] == "loaded":
            assert new["startup_seconds"] is None
        elif old["kind"] != "start":
            assert new == old
    assert before[0]["schema"] == 2 and "cases" not in before[0]  # the input is left as it was


@pytest.mark.parametrize(
    "metric,step,trivial,outcome",
    [(0.01, None, 0.5, "learned"), (0.5, None, 0.5, "did-not-learn"), (0.573, None, 0.5, "did-not-learn"),
     (2.5e7, None, 0.5, "did-not-learn"), (None, None, 0.5, "diverged"), (0.01, 3, 0.5, "diverged"),
     (float("nan"), None, 0.5, "diverged"), (0.9, None, None, "learned")],
)  # fmt: skip
def test_outcome_of(metric, step, trivial, outcome):
    assert migrate.outcome_of(metric, step, trivial) == outcome


def test_the_chain_reaches_the_records_schema():
    assert migrate.NEWEST == records.SCHEMA
    assert sorted(migrate.STEPS) == list(range(2, records.SCHEMA))  # one step per schema, none skipped


def test_read_applies_the_chain_to_both_old_layouts():
    two, one = records.read(SAMPLE_2), records.read(SAMPLE)
    assert (two.migrated_from, one.migrated_from) == (2, 1)
    for run in (one, two):
        assert run.start.schema == records.SCHEMA and run.start.cases == run.cases()
        assert all(t.outcome in migrate.OUTCOMES for t in run.of(Training))
    diverged = [t for t in two.of(Training) if t.diverged_step is not None]
    assert diverged and {t.outcome for t in diverged} == {"diverged"}
    assert two.where[0] == f"{SAMPLE_2 / records.FILE}, line 1"
    assert one.where[2] == f"{SAMPLE / 'benchmark.json'} (upgraded), record 3"


def test_a_run_of_the_current_schema_is_read_as_written(tmp_path):
    run = records.read(SAMPLE_2)
    writer = records.Writer(tmp_path)
    for record in run.records:
        writer.write(record)
    writer.close()
    again = records.read(tmp_path)
    assert again.migrated_from is None and again.records == run.records


def test_records_imports_nothing_above_it():
    code = "import sys, benchmarks.records\nprint(sorted(m for m in sys.modules if m.startswith(('bench', 'backend'))))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "['benchmarks', 'benchmarks.migrate', 'benchmarks.records']", done.stderr
