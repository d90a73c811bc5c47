import dataclasses
import math

import numpy as np
import pytest

from backends.task import Metric, Task, TaskConfig, eval_windows, initial_weights, train_windows, window


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

    def target(self, t):
        return np.sin(t + np.pi / 4)

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
