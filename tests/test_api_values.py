"""Values handed to the API from code rather than the command line: numpy scalars, fractions, masked
arrays, and arrays the caller changes after handing them over."""

import fractions

import numpy as np
import pytest

import backends
from backends import TaskConfig
from backends.task import window

SMALL = TaskConfig(batch_size=2, hidden_size=4, seq_len=3)


@pytest.mark.parametrize(
    "field,value,plain",
    [
        ("lr", fractions.Fraction(1, 50), 0.02),
        ("lr", np.float64(0.02), 0.02),
        ("lr", np.float32(0.02), float(np.float32(0.02))),  # the float32's exact value
        ("adam_eps", np.float16(1e-3), float(np.float16(1e-3))),
        ("lr", 1, 1.0),
        ("hidden_size", np.int64(16), 16),
        ("seed", np.uint32(2**32 - 1), 2**32 - 1),
        ("train_steps", np.int8(7), 7),
    ],
)
def test_config_numbers_become_plain_python_numbers(field, value, plain):
    got = getattr(TaskConfig(**{field: value}), field)
    assert type(got) is type(plain) and got == plain


def test_a_config_from_numpy_values_equals_the_plain_one():
    assert TaskConfig(lr=np.float64(0.02), hidden_size=np.int32(32)) == TaskConfig()
    assert hash(TaskConfig(seed=np.int64(3))) == hash(TaskConfig(seed=3))


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("hidden_size", fractions.Fraction(32, 1), "TaskConfig.hidden_size must be an int from 1 to 4096"),
        ("hidden_size", np.float64(32.0), "TaskConfig.hidden_size must be an int from 1 to 4096"),
        ("batch_size", np.bool_(True), "TaskConfig.batch_size must be an int from 1 to 4096"),
        ("seed", np.int64(-1), "TaskConfig.seed must be an int from 0 to 2**32 - 1"),
        ("lr", fractions.Fraction(10**400, 3), "TaskConfig.lr must be a finite number in (0, 1000]"),
        ("lr", np.float64(np.nan), "TaskConfig.lr must be a finite number in (0, 1000]"),
        ("lr", np.array(0.02), "TaskConfig.lr must be a finite number in (0, 1000]"),
        ("adam_eps", np.bool_(True), "TaskConfig.adam_eps must be a finite number in (0, 1000]"),
        ("lr", 1 + 0j, "TaskConfig.lr must be a finite number in (0, 1000]"),
    ],
)
def test_config_numbers_that_are_not_plain_are_refused_in_one_line(field, value, message):
    with pytest.raises(ValueError) as err:
        TaskConfig(**{field: value})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_numpy_backend_trains_with_a_fraction_lr_as_with_the_float():
    """The value reaches the framework as a float: the same losses as lr=0.02."""
    plain, fraction = (
        TaskConfig(seq_len=3, hidden_size=4),
        TaskConfig(seq_len=3, hidden_size=4, lr=fractions.Fraction(1, 50)),
    )
    losses = []
    for config in (plain, fraction):
        b = backends.load("numpy", config)
        losses.append([b.train_step(*window(config, k)) for k in range(3)])
    assert losses[0] == losses[1]


def test_a_masked_window_is_refused_in_one_line():
    b = backends.load("numpy", SMALL)
    x, y = window(SMALL, 0)
    x = np.ma.masked_array(x, mask=np.zeros_like(x, dtype=bool))
    x[0, 0, 0] = np.ma.masked
    x.data[0, 0, 0] = np.nan  # what the masked value hides: read as such, it trains to a NaN loss
    for call in (lambda: b.prepare(x, "x"), lambda: b.train_step(x, y), lambda: b.predict(x)):
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value).startswith("x is a numpy masked array") and "\n" not in str(err.value)
    assert np.isfinite(b.train_step(x.filled(0.0), y))  # filled explicitly by the caller: accepted


def test_prepare_does_not_alias_the_callers_array(case, make_backend):
    """Changing the source arrays after prepare() changes neither the prepared windows nor what they compute."""
    b = make_backend(case, SMALL)
    x, y = (a.copy() for a in window(SMALL, 1))
    px, py = b.prepare(x, "x"), b.prepare(y, "y")
    prepared_y = np.array(py.value, dtype=np.float32)  # the framework's array, read back
    b.reset_state()
    before = b.predict(px)
    x[:], y[:] = 5.0, -5.0
    b.reset_state()
    np.testing.assert_array_equal(b.predict(px), before)
    np.testing.assert_array_equal(np.array(py.value, dtype=np.float32), prepared_y)
    np.testing.assert_array_equal(prepared_y, window(SMALL, 1)[1])
