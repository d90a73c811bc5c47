"""Keras on JAX and on PyTorch (keras-jax, keras-torch), each checked in a fresh process of its own.

Keras picks its backend once per process, and this process runs Keras on TensorFlow (keras-simplernn),
so here keras-jax and keras-torch are refused with the reason, and the parity and contract suites skip
them. `test_parity_and_contract_in_a_process_of_its_own` runs those suites again for one Keras backend in
a subprocess with KERAS_BACKEND set as the registry modes declare (both subprocesses at once), together
with this file's `test_in_process_*` tests, which run only there. Parity is checked at the parity
suite's three sizes for every mode and every model (SimpleRNN, LSTM, GRU), with its tolerances.
"""

import importlib.util
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import backends
from backends import BackendUnavailable, TaskConfig
from backends.models import MODELS
from backends.task import window

ROOT = Path(__file__).resolve().parent.parent
KERAS = {"keras-jax": "jax", "keras-torch": "torch"}  # backend -> KERAS_BACKEND
INNER = "RNNBENCH_KERAS_INNER"  # set in the subprocess: the Keras backend it checks
PARITY_SIZES = ("seed-task", "batch3-h16", "h64-b4-s20")  # tests/test_parity.py's three sizes
# tests/test_parity.py's skip of a size it does not check for a mode and model (lstm and gru in a backend's
# other modes: one size only)
SIZE_SKIP = re.compile(r"^\S+ mode, \w+: parity at ")
INNER_TESTS = (
    "tests/test_parity.py::test_first_loss_and_predictions_match_oracle",
    "tests/test_parity.py::test_trajectory_matches_oracle",
    "tests/test_contract.py",
    "tests/test_keras_backends.py::test_in_process_plain_stateful_layer_loses_its_state_on_jax",
    "tests/test_keras_backends.py::test_in_process_stateful_lstm_and_gru_fail_in_backward_on_torch_by_default",
    "tests/test_keras_backends.py::test_in_process_info_says_what_compile_resolved_to",
    "tests/test_keras_backends.py::test_in_process_gpu_parity",
)


def inner(only: str | None = None) -> str:
    """The Keras backend this subprocess checks; skips unless in one (checking `only`, where given)."""
    name = os.environ.get(INNER)
    if name is None or (only and name != only):
        where = f"the {only} subprocess" if only else "the keras-jax and keras-torch subprocesses"
        pytest.skip(f"runs in {where} of test_parity_and_contract_in_a_process_of_its_own")
    return name


# ---- in this process ----


def test_registry_names_each_keras_backend_in_every_mode():
    for name, keras_backend in {"keras-simplernn": "tensorflow", **KERAS}.items():
        assert backends.modes(name)[0] == "train_on_batch", name  # the default: Keras as most of its users write it
        for mode in backends.modes(name):
            assert backends.mode_env(name, mode) == {"KERAS_BACKEND": keras_backend}, (name, mode)
    assert backends.modes("keras-jax") == ["train_on_batch", "stateless-jit"]


@pytest.mark.parametrize("name", KERAS)
def test_refused_where_keras_runs_on_another_backend(name):
    if os.environ.get("KERAS_BACKEND") == KERAS[name]:
        pytest.skip(f"KERAS_BACKEND={KERAS[name]} here: {name} may load in this process")
    with pytest.raises(BackendUnavailable) as err:
        backends.load(name)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{name}: "), message
    assert f"needs KERAS_BACKEND={KERAS[name]} set before Keras is imported" in message, message
    assert f"pip install -e '.[keras,{KERAS[name]}]'" in message, message


@pytest.mark.parametrize("name,framework", [("keras-torch", "torch"), ("keras-jax", "jax")])
def test_missing_framework_is_reported_with_the_extra(run_python, name, framework):
    result = run_python(
        f"""
        import os, sys
        os.environ["KERAS_BACKEND"] = {KERAS[name]!r}
        sys.modules[{framework!r}] = None  # what Python does for a module that cannot be imported
        import backends
        try:
            backends.load({name!r})
        except backends.BackendUnavailable as err:
            print(err)
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"{name}: cannot import its framework"), result.stdout
    assert framework in result.stdout and f"pip install -e '.[keras,{framework}]'" in result.stdout, result.stdout


@pytest.fixture(scope="module")
def inner_runs(tmp_path_factory):
    """pytest on INNER_TESTS for each Keras backend whose framework is installed, both at once; their
    return code, output tail and JUnit report. Keras on JAX compiles its steps anew for every model
    instance (about 1 s each here), identical programs for a size: XLA's compilation cache, in a folder
    of this run's own, compiles each once (55 s -> 31 s for keras-jax on the 2-core VM)."""
    if os.environ.get(INNER):
        pytest.skip("already in a subprocess")
    folder = tmp_path_factory.mktemp("keras")
    jax_cache = {
        "JAX_COMPILATION_CACHE_DIR": str(folder / "jax-cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
    }
    procs = {}
    for name, keras_backend in KERAS.items():
        if importlib.util.find_spec(keras_backend) is None or importlib.util.find_spec("keras") is None:
            continue  # the test says which is not installed; found but broken fails there
        report = folder / f"{name}.xml"
        env = {**os.environ, INNER: name, "RNNBENCH_BACKENDS": name, **backends.mode_env(name, "train_on_batch")}
        env.update(jax_cache if keras_backend == "jax" else {})
        cmd = [sys.executable, "-m", "pytest", *INNER_TESTS, "-q", "-p", "no:cacheprovider", "--benchmark-skip"]
        log = open(folder / f"{name}.log", "w")  # noqa: SIM115 - closed below, after the process ends
        proc = subprocess.Popen([*cmd, f"--junitxml={report}"], cwd=ROOT, env=env, stdout=log, stderr=log)
        procs[name] = (proc, log)
    out = {}
    for name, (proc, log) in procs.items():
        try:
            proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        report = folder / f"{name}.xml"
        tail = (folder / f"{name}.log").read_text()[-4000:]
        out[name] = (proc.returncode, tail, ET.parse(report).getroot() if report.exists() else None)
    return out


def outcomes(report):
    """{(test function, its parameter id): (passed | skipped | failure | error, message)} from a JUnit report."""
    out = {}
    for case in report.iter("testcase"):
        function, _, params = case.get("name").partition("[")
        kind = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        out[(function, params.rstrip("]"))] = (kind, next((c.get("message") or "" for c in case), ""))
    return out


def has(params, *parts):
    """Whether a parameter id such as 'seed-task-rnn-keras-jax-train_on_batch' holds every part, in any order."""
    return all(f"-{part}-" in f"-{params}-" for part in parts)


@pytest.mark.parametrize("name", KERAS)
def test_parity_and_contract_in_a_process_of_its_own(inner_runs, name):
    if name not in inner_runs:
        pytest.skip(f"not installed: keras or {KERAS[name]}")
    returncode, tail, report = inner_runs[name]
    assert returncode == 0 and report is not None, tail
    results = outcomes(report)
    default = backends.modes(name)[0]

    def may_skip(test: tuple[str, str], message: str) -> bool:
        """A model the backend lacks, an in-process test meant for the other Keras backend or for a GPU, a size
        the parity suite does not check for that mode and model, and lstm and gru in a backend's other modes,
        which the contract suite leaves to the parity suite."""
        function, params = test
        if "in_process" in function or message.startswith(f"{name} has no ") or SIZE_SKIP.match(message):
            return True
        return any(has(params, model) for model in ("lstm", "gru")) and not has(params, default)

    unexpected = {
        test: result
        for test, result in results.items()
        if result[0] != "passed" and not (result[0] == "skipped" and may_skip(test, result[1]))
    }
    assert not unexpected, unexpected
    if name == "keras-jax":  # the reason for the TrackedState layers still holds
        assert results[("test_in_process_plain_stateful_layer_loses_its_state_on_jax", "")][0] == "passed"
    if name == "keras-torch":  # the reason for use_cudnn=False still holds
        test = ("test_in_process_stateful_lstm_and_gru_fail_in_backward_on_torch_by_default", "")
        assert results[test][0] == "passed"

    def passed(function: str, *parts: str) -> list[str]:
        return [p for (f, p), r in results.items() if f == function and has(p, name, *parts) and r[0] == "passed"]

    for mode in backends.modes(name):
        for model in MODELS:
            # parity: the rnn in every mode and every model in the default mode at the three sizes; lstm and gru
            # in the other modes where the parity suite checks them (at least one size)
            every = model == "rnn" or mode == default
            for function in ("test_first_loss_and_predictions_match_oracle", "test_trajectory_matches_oracle"):
                ok = passed(function, model, mode)
                assert ok, (function, model, mode)
                if every:
                    assert all(any(has(p, size) for p in ok) for size in PARITY_SIZES), (function, model, mode)
            # the contract: the rnn in every mode, every model in the default mode
            if model == "rnn" or mode == default:
                for function in ("test_state_is_carried_and_reset", "test_converges_on_the_seed_task"):
                    assert passed(function, mode, model), (function, mode, model)
        assert passed("test_deterministic", mode), mode


# ---- in the subprocess of one Keras backend ----


def test_in_process_plain_stateful_layer_loses_its_state_on_jax():
    """Why keras-jax tracks the state variables itself: with the plain layers, Keras 3.15.1's JAX trainer
    starts every call from zeros. When this fails, Keras carries the state: drop the TrackedState layers."""
    inner("keras-jax")
    import keras

    from backends.keras_jax import TRACKED

    x = window(TaskConfig(batch_size=2, seq_len=5), 1)[0]
    carried = {}
    for layer in (keras.layers.SimpleRNN, keras.layers.LSTM, keras.layers.GRU, *TRACKED.values()):
        inputs = keras.Input(batch_shape=x.shape)
        model = keras.Model(inputs, keras.layers.Dense(1)(layer(4, return_sequences=True, stateful=True)(inputs)))
        model.compile(optimizer="adam", loss="mse")
        first = model.predict_on_batch(x)
        carried[layer.__name__] = not np.allclose(model.predict_on_batch(x), first)  # the state from the first call
    assert carried == {
        **{"SimpleRNN": False, "LSTM": False, "GRU": False},
        **{"TrackedStateSimpleRNN": True, "TrackedStateLSTM": True, "TrackedStateGRU": True},
    }


def test_in_process_stateful_lstm_and_gru_fail_in_backward_on_torch_by_default():
    """Why keras-torch gives LSTM and GRU use_cudnn=False: with Keras's default ("auto"), a stateful layer's
    training step fails in backward in Keras 3.15.1 (keras#23462, here on the CPU's optimized path); with
    False it trains. When the default stops failing, drop use_cudnn=False in backends/keras_torch.py."""
    inner("keras-torch")
    import keras

    x, y = window(TaskConfig(batch_size=2, seq_len=5), 1)
    outcome = {}
    for layer in (keras.layers.LSTM, keras.layers.GRU):
        for use_cudnn in ("auto", False):
            inputs = keras.Input(batch_shape=x.shape)
            rnn = layer(4, return_sequences=True, stateful=True, use_cudnn=use_cudnn)
            model = keras.Model(inputs, keras.layers.Dense(1)(rnn(inputs)))
            model.compile(optimizer="adam", loss="mse")
            try:
                for _ in range(2):  # the second step starts from the state the first one wrote
                    model.train_on_batch(x, y)
                outcome[(layer.__name__, use_cudnn)] = "trains"
            except RuntimeError as err:
                assert "modified by an inplace operation" in str(err), err
                outcome[(layer.__name__, use_cudnn)] = "in-place error"
    assert outcome == {
        ("LSTM", "auto"): "in-place error",
        ("LSTM", False): "trains",
        ("GRU", "auto"): "in-place error",
        ("GRU", False): "trains",
    }


def test_in_process_info_says_what_compile_resolved_to(make_backend):
    name = inner()
    for mode in backends.modes(name):
        info = make_backend((name, mode), TaskConfig(hidden_size=4)).info()
        assert info.mode == mode and info.framework.startswith(f"{KERAS[name]} ") and "/ keras 3." in info.framework
        if mode == "train_on_batch":  # "auto": XLA on JAX, eager on PyTorch
            assert f"jit_compile='auto' -> {name == 'keras-jax'}" in info.compile, info
        for model, layer in {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}.items():
            kernel = make_backend((name, mode), TaskConfig(hidden_size=4, model=model)).info().kernel
            assert re.match(rf"Keras {layer}\b", kernel), kernel
            assert ("use_cudnn=False" in kernel) == (name == "keras-torch" and model != "rnn"), kernel


def test_in_process_gpu_parity(make_backend):
    """Every mode and model on the GPU against the oracle: first loss, then six steps (the parity suite's
    tolerances)."""
    name = inner()
    for model in MODELS:
        config = TaskConfig(adam_eps=1e-16, batch_size=4, model=model)
        oracle = backends.load("numpy", config)
        expected = [oracle.train_step(*window(config, k)) for k in range(6)]
        for mode in backends.modes(name):
            b = make_backend((name, mode), config, "cuda")  # skips, saying why, where the framework sees no GPU
            got = [b.train_step(*window(config, k)) for k in range(6)]
            assert got[0] == pytest.approx(expected[0], abs=2e-6), (mode, model)
            np.testing.assert_allclose(got, expected, rtol=1e-4, err_msg=f"{mode} {model}")
