import dataclasses
import math

import numpy as np
import pytest

from backends.task import (
    SIN_TO_COS,
    Metric,
    Task,
    TaskConfig,
    Thresholds,
    eval_windows,
    initial_weights,
    train_windows,
    window,
)


def test_defaults_are_the_seeds():
    c = TaskConfig()
    assert (c.seq_len, c.input_size, c.hidden_size, c.batch_size) == (10, 1, 32, 1)
    assert (c.lr, c.adam_eps, c.train_steps, c.seed) == (0.02, 1e-8, 300, 0)
    assert c.param_count == 32 + 32 * 32 + 32 + 32 + 1


@pytest.mark.parametrize(
    "field,value",
    [
        ("seq_len", 0),
        ("hidden_size", -3),
        ("batch_size", 1.5),
        ("train_steps", True),
        ("input_size", 2),
        ("lr", math.nan),
        ("lr", -0.1),
        ("adam_eps", math.inf),
        ("seed", -1),
        ("eval_windows", "10"),
    ],
)
def test_invalid_config_names_field_and_value(field, value):
    with pytest.raises(ValueError) as err:
        TaskConfig(**{field: value})
    assert field in str(err.value) and repr(value) in str(err.value)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TaskConfig().lr = 0.1


def test_stream_zero_is_the_seeds_windows():
    c = TaskConfig(batch_size=4)
    for k in (0, 1, 299):
        steps = np.linspace(k * np.pi, (k + 1) * np.pi, 10, dtype=np.float32)
        x, y = window(c, k)
        assert x.shape == y.shape == (4, 10, 1) and x.dtype == y.dtype == np.float32
        np.testing.assert_array_equal(x[0, :, 0], np.sin(steps))
        np.testing.assert_array_equal(y[0, :, 0], np.cos(steps))


def test_streams_have_distinct_phases():
    x, _ = window(TaskConfig(batch_size=4), 3)
    assert len({tuple(np.round(row[:, 0], 5)) for row in x}) == 4


def test_held_out_windows_follow_training():
    c = TaskConfig(train_steps=7, eval_windows=3)
    assert len(list(train_windows(c))) == 7
    held = eval_windows(c)
    assert len(held) == 3
    np.testing.assert_array_equal(held[0][0], window(c, 7)[0])


def test_initial_weights_depend_on_seed_only():
    a, b, c = initial_weights(TaskConfig()), initial_weights(TaskConfig(lr=0.1)), initial_weights(TaskConfig(seed=1))
    for name, shape in TaskConfig().weight_shapes.items():
        assert a[name].shape == shape and a[name].dtype == np.float32
        np.testing.assert_array_equal(a[name], b[name])
        assert not np.array_equal(a[name], c[name])
        assert np.abs(a[name]).max() <= 1 / math.sqrt(32)


class SinShift(Task):
    """A second task, defined only here: predict sin(t + pi/4) from sin(t), scored by mean absolute error."""

    name = "sin-shift"
    metric = Metric("held_out_mae", "held-out MAE", "mean absolute error on the held-out windows")
    target_label = "sin(t + π/4)"
    # repeating the input is off by sin(t + π/4) - sin(t): mean |.| = (4/π) sin(π/8) = 0.487, better than 0's 2/π
    thresholds = Thresholds(4 / math.pi * math.sin(math.pi / 8), "repeating the input sin(t)", 2.0, 1000.0)

    def target(self, t):
        return np.sin(t + np.pi / 4)

    def trivial_prediction(self, t):
        return self.source(t)

    def score(self, predictions, targets):
        return float(np.mean(np.abs(predictions.astype(np.float64) - targets)))


def test_a_second_task_runs_through_the_harness_and_reaches_the_table(tmp_path):
    """The task seam: no edit outside this test makes the harness train on it and the report show its metric."""
    from backends import load
    from backends.training import run_training
    from benchmarks import options, records
    from benchmarks.harness import run_all
    from benchmarks.plan import make_plan
    from benchmarks.report import render

    raw = {"backends": "numpy", "seeds": "2", "train_steps": "40", "rounds": "3", "repeats": "1", "memory": "no"}
    opts = options.parse(raw)
    writer = records.Writer(tmp_path)
    run_all(opts, make_plan(opts), writer, task=SinShift(), progress=lambda line: None)
    writer.close()
    got = records.read(tmp_path)
    assert got.start.task["metric"]["name"] == "held_out_mae"
    expected = run_training(load("numpy", dataclasses.replace(opts.config, seed=1)), SinShift()).metric
    assert got.of(records.Training)[1].metric == pytest.approx(expected, rel=1e-12)
    target = got.of(records.HeldOut)[0].target
    np.testing.assert_allclose(target[:3], np.sin(np.array(got.of(records.HeldOut)[0].t[:3]) + np.pi / 4), atol=1e-5)
    render(tmp_path)
    table = (tmp_path / "comparison.md").read_text()
    assert "held-out MAE" in table and "held-out MSE" not in table


@pytest.mark.parametrize("task", [SIN_TO_COS, SinShift()], ids=lambda task: task.name)
def test_the_declared_trivial_metric_is_what_the_trivial_predictor_scores(task):
    """Over long windows (whole periods, up to the windows' ends) the task's trivial predictor scores the
    value its thresholds declare."""
    config = TaskConfig(seq_len=10_000, eval_windows=3, batch_size=3)
    points = np.stack([task.times(config, k) for k in task.held_out_indices(config)])[..., None]
    targets = np.stack([y for _, y in task.held_out_windows(config)])
    scored = task.score(task.trivial_prediction(points).astype(np.float32), targets)
    assert scored == pytest.approx(task.thresholds.trivial, abs=1e-3)


def test_a_second_task_judges_outcomes_by_its_own_thresholds():
    from backends import load
    from backends.training import outcome_of, run_training

    task = SinShift()
    assert task.describe()["thresholds"]["trivial_about"] == "repeating the input sin(t)"
    between = (task.thresholds.trivial + SIN_TO_COS.thresholds.trivial) / 2  # its trivial MAE is 0.487
    assert outcome_of([0.5], between, task) == "did-not-learn" and outcome_of([0.5], between, SIN_TO_COS) == "learned"
    assert outcome_of([0.5], 3.0, task) == "diverged" and outcome_of([0.5], 3.0, SIN_TO_COS) == "did-not-learn"
    outcomes = {}
    for lr, steps in ((0.02, 300), (1e-12, 300), (1e3, 1)):
        result = run_training(load("numpy", TaskConfig(lr=lr, train_steps=steps)), task)
        outcomes[lr] = (result.outcome, result.metric)
    assert outcomes[0.02][0] == "learned" and outcomes[0.02][1] < task.thresholds.trivial / 4
    assert outcomes[1e-12][0] == "did-not-learn"
    assert outcomes[1e3][0] == "diverged" and outcomes[1e3][1] > task.thresholds.metric_bound
