"""The PyTorch backends' modes on the CPU: the compile mode's one graph, its sharing between instances,
its arithmetic against eager mode, and the option checks, for every model.

A cold compile costs tens of seconds, so every compiled backend here uses the contract suite's
sizes (SMALL): in one pytest run they reuse the graphs compiled there, and alone this file compiles
six (torch-cell's step and torch-rnn's, for each model)."""

import dataclasses

import numpy as np
import pytest

import backends
from backends import TaskConfig
from backends.task import initial_weights, window

torch = pytest.importorskip("torch", reason="PyTorch is not installed")

from backends import _torch_common  # noqa: E402 - after the skip: it imports torch
from backends.base import Info  # noqa: E402
from backends.models import MODELS  # noqa: E402

SMALL = TaskConfig(batch_size=3, hidden_size=8, seq_len=5)  # test_contract's sizes: graphs compiled there are reused
WINDOWS = [window(SMALL, k) for k in range(6)]


def dynamo_graphs() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def trajectory(b, windows=WINDOWS):
    return [b.train_step(x, y) for x, y in windows]


def small(model: str) -> TaskConfig:
    return dataclasses.replace(SMALL, model=model)


@pytest.mark.parametrize("model", list(MODELS))
def test_cell_compile_step_is_exactly_one_graph(model):
    """Forward, gradients and Adam are one Dynamo graph with no graph break: every compile of
    torch-cell's step for the model in this process (this test's or an earlier test's) says so."""
    b = backends.load("torch-cell", small(model), mode="compile")
    b.train_step(*WINDOWS[0])
    assert b.compile_stats is not None and b.compile_stats.graph_breaks == 0
    step = b.step_function.__name__
    assert step == {"rnn": "cell_step", "lstm": "lstm_cell_step", "gru": "gru_cell_step"}[model]
    compiles = [stats for name, device, stats in _torch_common.COMPILE_LOG if name == step]
    assert compiles, f"no compile of {step} was recorded"
    assert all(stats.graphs == 1 and stats.graph_breaks == 0 for stats in compiles), compiles


def test_second_instance_reuses_the_compiled_step():
    """Instances of the same sizes share the compiled graph (Dynamo's counters do not move), and
    each keeps its own weights, Adam state and hidden state: interleaved, both follow eager mode."""
    first = backends.load("torch-cell", SMALL, mode="compile")
    first.train_step(*WINDOWS[0])  # compiles here unless an earlier test did
    first.set_weights(initial_weights(SMALL))
    graphs = dynamo_graphs()
    second = backends.load("torch-cell", SMALL, mode="compile")
    eager = backends.load("torch-cell", SMALL)
    losses_first, losses_second = [], []
    for x, y in WINDOWS:
        losses_first.append(first.train_step(x, y))
        losses_second.append(second.train_step(x, y))
    assert dynamo_graphs() == graphs
    assert second.compile_stats.graphs == 0 and second.compile_stats.graph_breaks == 0
    expected = trajectory(eager)
    np.testing.assert_allclose(losses_first, expected, rtol=1e-5)
    np.testing.assert_allclose(losses_second, expected, rtol=1e-5)
    for k, v in second.get_weights().items():
        np.testing.assert_allclose(v, eager.get_weights()[k], rtol=0, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("name", ["torch-rnn", "torch-cell"])
def test_compile_follows_eager(name, model):
    """Same arithmetic as torch.optim.Adam in eager mode, through predict, reset_state and set_weights
    (torch-rnn as benchmarked: both biases trained)."""
    config = small(model)

    def session(b):
        losses = trajectory(b, WINDOWS[:3])
        prediction = b.predict(WINDOWS[3][0])
        losses += trajectory(b, WINDOWS[3:])
        b.reset_state()
        losses += trajectory(b, WINDOWS[:1])
        b.set_weights(initial_weights(config))  # a fresh start: Adam's moments and step back to zero
        losses += trajectory(b, WINDOWS[:2])
        return losses, prediction, b.get_weights()

    graphs = dynamo_graphs()
    compiled = backends.load(name, config, mode="compile")
    losses_c, prediction_c, weights_c = session(compiled)
    losses_e, prediction_e, weights_e = session(backends.load(name, config))
    assert compiled.compile_stats.graphs in (0, 1) and compiled.compile_stats.graph_breaks == 0
    assert dynamo_graphs() - graphs == compiled.compile_stats.graphs  # nothing compiled after the first step
    np.testing.assert_allclose(losses_c, losses_e, rtol=1e-5)
    assert losses_c[-2:] == pytest.approx(losses_c[:2], rel=1e-6)  # set_weights restarted Adam
    np.testing.assert_allclose(prediction_c, prediction_e, rtol=0, atol=1e-5)
    for k, v in weights_c.items():
        np.testing.assert_allclose(v, weights_e[k], rtol=0, atol=1e-5, err_msg=k)


def test_compile_leaves_dynamo_settings_as_they_were():
    """The Dynamo settings the compile mode needs are set only around its first call, and so is oneDNN's
    switch that torch-rnn's LSTM is traced without (see TorchRNN.trace_context)."""
    config = torch._dynamo.config
    before = {k: getattr(config, k) for k in ("trace_autograd_ops", "allow_rnn", "recompile_limit")}
    mkldnn = torch.backends.mkldnn.enabled
    for name in ("torch-rnn", "torch-cell"):
        for model in MODELS:
            backends.load(name, small(model), mode="compile").train_step(*WINDOWS[0])
    assert {k: getattr(config, k) for k in before} == before
    assert torch.backends.mkldnn.enabled == mkldnn


def test_info_names_mode_and_compiler():
    for name in ("torch-rnn", "torch-cell"):
        eager, compiled = backends.load(name, SMALL), backends.load(name, SMALL, mode="compile")
        assert isinstance(eager.info(), Info)
        assert (eager.info().mode, eager.info().compile, eager.info().gpu) == ("eager", "", None)
        info = compiled.info()
        assert info.mode == "compile" and info.framework.startswith("torch ")
        assert info.compile.startswith("inductor, fullgraph") and "cpp_wrapper" in info.compile
        assert ("allow_rnn" in info.compile) == (name == "torch-rnn")


@pytest.mark.parametrize("model", list(MODELS))
def test_torch_rnn_kernel_names_its_module(model):
    b = backends.load("torch-rnn", small(model))
    assert b.info().kernel.startswith(f"ATen {model.upper()}, "), b.info().kernel
    compiled = backends.load("torch-rnn", small(model), mode="compile")
    assert compiled.info().kernel.startswith(f"nn.{model.upper()} traced by Dynamo"), compiled.info().kernel


@pytest.mark.parametrize("mode", ["eager", "compile"])
@pytest.mark.parametrize("name", ["torch-rnn", "torch-cell"])
def test_backend_owns_its_weights(name, mode):
    """Changing the arrays given to set_weights afterwards changes nothing in the backend."""
    b = backends.load(name, SMALL, mode=mode)
    given = initial_weights(TaskConfig(batch_size=3, hidden_size=8, seq_len=5, seed=4))
    b.set_weights(given)
    expected = {k: v.copy() for k, v in given.items()}
    for v in given.values():
        v[...] = 7.0
    for k, v in b.get_weights().items():
        np.testing.assert_array_equal(v, expected[k], err_msg=k)


def test_fused_adam_follows_eager():
    fused = backends.load("torch-cell", SMALL, fused=True)
    assert fused.info().kernel.endswith("fused Adam")
    np.testing.assert_allclose(trajectory(fused), trajectory(backends.load("torch-cell", SMALL)), rtol=1e-5)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"mode": "compile", "cuda_graph": True}, "compile and cuda_graph are separate modes"),
        ({"mode": "compile", "fused": True}, "fused applies to torch.optim.Adam"),
        ({"cuda_graph": True}, "cuda_graph=True needs device='cuda'"),
    ],
)
def test_conflicting_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        backends.load("torch-cell", SMALL, **options)


def test_compile_option_must_be_a_bool():
    with pytest.raises(TypeError, match="option compile must be True or False"):
        backends.load("torch-rnn", SMALL, compile="yes")
