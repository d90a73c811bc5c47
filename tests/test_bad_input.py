"""Every bad input gets a one-line error naming what is wrong and what is allowed, before anything runs."""

import json
from fractions import Fraction

import numpy as np
import pytest

import backends
from backends import TaskConfig
from backends.base import check_weights
from backends.task import initial_weights, window
from benchmarks import options, records
from benchmarks.plan import make_plan


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"seeds": "0"}, "--seeds must be in [1, 1000], got '0'"),
        ({"seeds": "²"}, "--seeds must be an integer, got '²'"),
        ({"threads": "²"}, "--threads must be an integer, got '²'"),
        ({"threads": "two"}, "--threads must be an integer, got 'two'"),
        ({"rounds": "99999999999999999999"}, "--rounds must be in [1, 1e+06]"),
        ({"repeats": "100000"}, "--repeats must be in [1, 1000]"),
        ({"train_steps": "99999999999"}, "--train-steps must be in [1, 1e+06]"),
        ({"hidden_size": "-4"}, "--hidden-size must be in [1, 4096], got '-4'"),
        ({"hidden_size": "100000"}, "--hidden-size must be in [1, 4096]"),
        ({"batch_size": "1.5"}, "--batch-size must be an integer, got '1.5'"),
        ({"lr": "nan"}, "--lr must be a finite number, got 'nan'"),
        ({"lr": "10e400"}, "--lr must be a finite number, got '10e400'"),
        ({"lr": "0"}, "--lr must be in [1e-12, 1000], got '0'"),
        ({"min_round_us": "-1"}, "--min-round-us must be in [0, 1e+06]"),
        ({"device": "tpu"}, "--device must be one of auto, cpu, cuda, all, got 'tpu'"),
        ({"backends": "caffe"}, "--backends: unknown caffe; known: numpy"),
        ({"backends": ","}, "--backends: unknown ','"),
        ({"modes": "turbo"}, "--modes: unknown turbo; known: all, default"),
        ({"memory": "maybe"}, "--memory must be yes or no, got 'maybe'"),
        ({"results_dir": ""}, "--results-dir must name a folder, got ''"),
        ({"results_dir": "/proc/x"}, "is not writable"),
        ({"bogus": "1"}, "unknown option(s) bogus; known: backends"),
    ],
)
def test_bad_option_is_one_line_naming_it(raw, message):
    with pytest.raises(options.OptionError) as err:
        options.parse(raw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_results_dir_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(options.OptionError, match="is a file, not a folder"):
        options.parse({"results_dir": str(tmp_path / "file" / "results")})


def test_int_options_accept_what_int_accepts():
    assert options.parse({"seeds": " 12 ", "rounds": "1_000"}).seeds == 12


def test_combination_that_leaves_no_case_is_refused():
    opts = options.parse({"backends": "numpy", "device": "cuda"})
    with pytest.raises(options.OptionError, match="no case to measure: --backends=numpy"):
        make_plan(opts)


def test_cuda_only_mode_on_the_cpu_is_no_case():
    opts = options.parse({"backends": "torch-rnn", "modes": "cuda-graph", "device": "cpu"})
    with pytest.raises(options.OptionError, match="no case to measure"):
        make_plan(opts)


def test_every_option_default_parses_and_task_defaults_come_from_taskconfig():
    opts = options.defaults()
    assert opts.config == TaskConfig()
    assert {o.name for o in options.OPTIONS if o.task} <= {f for f in TaskConfig.__dataclass_fields__}


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"lr": 10**400}, "TaskConfig.lr must be a finite number"),
        ({"lr": "0.1"}, "TaskConfig.lr must be a finite number"),
        ({"hidden_size": 5000}, "TaskConfig.hidden_size must be an int from 1 to 4096, got 5000"),
        ({"seed": -1}, "TaskConfig.seed must be an int from 0"),
        ({"batch_size": True}, "TaskConfig.batch_size must be an int"),
        ({"hidden_size": Fraction(32, 1)}, "TaskConfig.hidden_size must be an int from 1 to 4096, got Fraction"),
        ({"lr": np.bool_(True)}, "TaskConfig.lr must be a finite number in (0, 1000], got np.True_"),
        ({"lr": np.array([0.02])}, "TaskConfig.lr must be a finite number in (0, 1000], got array"),
    ],
)
def test_taskconfig_errors_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        TaskConfig(**kwargs)


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda: backends.load(["numpy"]), ValueError, "unknown backend \\['numpy'\\]; known backends"),
        (lambda: backends.load("numpy", mode="turbo"), ValueError, "numpy: unknown mode 'turbo'; modes: eager"),
        (lambda: backends.load("numpy", config={"hidden_size": 3}), TypeError, "config must be a TaskConfig"),
        (lambda: backends.load("numpy", device=0), ValueError, "device must be one of cpu, cuda, got 0"),
        (lambda: backends.load("torch-rnn", freeze_bias_hh="no"), TypeError, "freeze_bias_hh must be True or False"),
    ],
)
def test_load_checks_its_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_weights_finite_in_float64_but_not_float32_are_refused():
    weights = initial_weights(TaskConfig())
    weights["W_hh"] = weights["W_hh"].astype(np.float64)
    weights["W_hh"][0, 0] = 1e300
    with pytest.raises(ValueError, match="weights\\['W_hh'\\] contains NaN or inf, or values beyond float32"):
        check_weights(weights, TaskConfig())


def test_a_prepared_window_from_another_backend_is_refused():
    config = TaskConfig()
    a, b = backends.load("numpy", config), backends.load("numpy", config)
    x, y = window(config, 0)
    with pytest.raises(ValueError, match="x was prepared by another backend instance"):
        b.train_step(a.prepare(x, "x"), b.prepare(y, "y"))


def test_a_record_of_the_wrong_type_names_its_field():
    case = {"backend": "numpy", "mode": "eager", "device": "cpu", "size": "32x1x10"}
    training = {"kind": "training", "case": case, "seed": 0, "losses": [0.5], "metric": "0.1"}
    training |= {"diverged_step": None, "seconds": 1.0}
    with pytest.raises(records.RecordError, match=r"line 3 \(training\)\.metric: must be a finite number, got '0.1'"):
        records.from_json(json.loads(json.dumps(training)), "records.jsonl, line 3")
    with pytest.raises(records.RecordError, match="unknown kind 'nonsense'"):
        records.from_json({"kind": "nonsense"})
