"""CUDA paths of the PyTorch backends, and jax-scan's GPU parity. On a machine without a GPU the GPU
cases skip, saying so; the checks that a CPU machine can make (clear refusals,
the undoing of the capture's warm-up) run everywhere."""

import time

import numpy as np
import pytest

import backends
from backends import BackendUnavailable, TaskConfig
from backends.base import DeviceUnsupported
from backends.task import window

CONFIG = TaskConfig(adam_eps=1e-16)
TORCH_GPU = ["torch-rnn", "torch-cell", "torch-rnn-graph", "torch-cell-graph"]
GPU_PARITY = [*TORCH_GPU, "jax-scan"]


def cuda_or_skip():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    if not torch.cuda.is_available():
        pytest.skip(f"no CUDA GPU visible to PyTorch {torch.__version__}")
    return torch


def gpu_backend_or_skip(name, config):
    """`name` on the GPU with its parity options; skips, saying why, where its framework sees no GPU."""
    if name in TORCH_GPU:
        cuda_or_skip()
    try:
        return backends.load(name, config, "cuda", **backends.backend_class(name).parity_options)
    except BackendUnavailable as err:  # e.g. JAX without its CUDA plugin, or not installed
        pytest.skip(str(err))


def test_cuda_request_without_gpu_is_refused_not_run_on_cpu():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the refusal is for machines without one")
    with pytest.raises(BackendUnavailable, match="PyTorch sees no CUDA GPU"):
        backends.load("torch-rnn", CONFIG, "cuda")


def test_graph_modes_are_cuda_only():
    pytest.importorskip("torch")
    with pytest.raises(DeviceUnsupported, match="torch-rnn-graph runs on cuda only, not cpu"):
        backends.load("torch-rnn-graph", CONFIG, "cpu")
    with pytest.raises(ValueError, match="cuda_graph=True needs device='cuda'"):
        backends.load("torch-cell", CONFIG, "cpu", cuda_graph=True)


@pytest.mark.parametrize("name", ["torch-rnn", "torch-cell"])
def test_capture_warm_up_is_undone(name):
    """Capturing a CUDA graph first runs the step a few times; `_restore` must undo that completely
    (weights, carried state, Adam's moments and step count), or the graph mode would train from
    other weights than eager mode. The mechanism is the same on every device, so this runs on the CPU."""
    pytest.importorskip("torch")
    config = TaskConfig(batch_size=2)
    windows = [window(config, k) for k in range(6)]
    b, fresh = backends.load(name, config), backends.load(name, config)
    for backend in (b, fresh):
        backend.predict(windows[0][0])  # a carried state that is not zero
    saved = b._snapshot()
    for x, y in windows[:3]:
        b.train_step(x, y)
    b._restore(saved)
    np.testing.assert_array_equal([b.train_step(*w) for w in windows[1:]], [fresh.train_step(*w) for w in windows[1:]])
    for k, v in b.get_weights().items():
        np.testing.assert_array_equal(v, fresh.get_weights()[k], err_msg=k)


@pytest.mark.gpu
@pytest.mark.parametrize("name", GPU_PARITY)
def test_gpu_matches_oracle(name):
    b = gpu_backend_or_skip(name, CONFIG)
    oracle = backends.load("numpy", CONFIG)
    ours = [b.train_step(*window(CONFIG, k)) for k in range(6)]
    ref = [oracle.train_step(*window(CONFIG, k)) for k in range(6)]
    np.testing.assert_allclose(ours, ref, rtol=1e-4)
    x = window(CONFIG, 6)[0]
    np.testing.assert_allclose(b.predict(x), oracle.predict(x), atol=2e-4)
    assert b.device_peak_bytes() > 0  # the weights and windows at least live in device memory


@pytest.mark.gpu
@pytest.mark.parametrize("eager,graph", [("torch-rnn", "torch-rnn-graph"), ("torch-cell", "torch-cell-graph")])
def test_cuda_graph_equals_eager(eager, graph):
    """Same losses as eager mode. The graph needs Adam(capturable=True), which keeps its bias
    correction in float32 on the device rather than in Python floats: hence the parity tolerances,
    not bit equality (the first step, before any Adam update matters, is held tighter). A predict
    and a reset_state between steps check that the captured graph follows the carried state."""
    cuda_or_skip()
    config = TaskConfig(batch_size=4)
    windows = [window(config, k) for k in range(10)]

    def session(backend):
        losses = [backend.train_step(x, y) for x, y in windows[:6]]
        assert (backend._graph is not None) == backend.cuda_graph  # graph mode really replays a graph
        prediction = backend.predict(windows[6][0])
        losses += [backend.train_step(x, y) for x, y in windows[7:]]
        backend.reset_state()
        losses.append(backend.train_step(*windows[0]))
        return losses, prediction, backend.get_weights()

    losses_g, prediction_g, weights_g = session(backends.load(graph, config, "cuda"))
    losses_e, prediction_e, weights_e = session(backends.load(eager, config, "cuda"))
    assert losses_g[0] == pytest.approx(losses_e[0], rel=1e-6)
    np.testing.assert_allclose(losses_g, losses_e, rtol=1e-4)
    np.testing.assert_allclose(prediction_g, prediction_e, atol=2e-4)
    for k, v in weights_g.items():
        np.testing.assert_allclose(v, weights_e[k], atol=2e-4, err_msg=k)


@pytest.mark.gpu
@pytest.mark.parametrize("name", TORCH_GPU)
def test_timed_calls_wait_for_the_device(name):
    """A deliberately slow kernel queued by the step must show in the time the call takes
    (in the graph modes it is captured into the graph, so a replay must be waited for too)."""
    torch = cuda_or_skip()
    b = backends.load(name, CONFIG, "cuda")
    x, y = b.prepare(window(CONFIG, 0)[0], "x"), b.prepare(window(CONFIG, 0)[1], "y")
    forward = b.forward
    b.forward = lambda xs, h: (torch.cuda._sleep(200_000_000), forward(xs, h))[1]  # ~0.1 s of GPU spinning
    b.train_step(x, y)  # the first call captures the graph, slow kernel included
    sleep_seconds = _sleep_seconds(torch)
    for call in (lambda: b.train_step(x, y), lambda: b.predict(x)):
        start = time.perf_counter()
        call()
        assert time.perf_counter() - start > 0.5 * sleep_seconds


def _sleep_seconds(torch) -> float:
    """How long torch.cuda._sleep(200M cycles) takes on this GPU, measured with CUDA events."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.cuda._sleep(200_000_000)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000
