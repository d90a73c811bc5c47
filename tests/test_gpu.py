"""CUDA paths of the PyTorch backends in every mode, and jax-scan's GPU parity. On a machine without a
GPU the GPU cases skip, saying so; the checks that a CPU machine can make (clear refusals, the
undoing of the capture's warm-up) run everywhere."""

import time

import numpy as np
import pytest

import backends
from backends import BackendUnavailable, TaskConfig
from backends.base import DeviceUnsupported, Info
from backends.task import window

# batch 4 everywhere: one compiled graph per backend serves every compile-mode case below
CONFIG = TaskConfig(adam_eps=1e-16, batch_size=4)
TORCH = ["torch-rnn", "torch-cell"]


def cuda_modes(name):
    """The modes of `name` that may run on CUDA (those limited to other devices left out)."""
    return [m for m in backends.modes(name) if "cuda" in (backends.mode_devices(name, m) or ("cuda",))]


TORCH_GPU = [(name, mode) for name in TORCH for mode in cuda_modes(name)]
GPU_PARITY = [*TORCH_GPU, *[("jax-scan", mode) for mode in cuda_modes("jax-scan")]]


def ids(cases):
    return [f"{name}-{mode}" for name, mode in cases]


def cuda_or_skip():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    if not torch.cuda.is_available():
        pytest.skip(f"no CUDA GPU visible to PyTorch {torch.__version__}")
    return torch


def gpu_backend_or_skip(name, mode, config):
    """`name` in `mode` on the GPU with its parity options; skips, saying why, where its framework sees no GPU."""
    if name in TORCH:
        cuda_or_skip()
    try:
        return backends.load(name, config, "cuda", mode=mode, **backends.backend_class(name).parity_options)
    except BackendUnavailable as err:  # e.g. JAX without its CUDA plugin, or not installed
        pytest.skip(str(err))


def test_cases_cover_the_torch_modes():
    assert ("torch-rnn", "cuda-graph") in TORCH_GPU and ("torch-cell", "compile") in TORCH_GPU
    assert {"torch-rnn-graph", "torch-cell-graph"}.isdisjoint(backends.names())  # modes replaced the old names


def test_cuda_request_without_gpu_is_refused_not_run_on_cpu():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the refusal is for machines without one")
    with pytest.raises(BackendUnavailable, match="PyTorch sees no CUDA GPU"):
        backends.load("torch-rnn", CONFIG, "cuda")


@pytest.mark.parametrize("name", TORCH)
def test_graph_modes_are_cuda_only(name):
    pytest.importorskip("torch")
    with pytest.raises(DeviceUnsupported, match=f"{name}.*cuda-graph.* runs on cuda only, not cpu"):
        backends.load(name, CONFIG, "cpu", mode="cuda-graph")
    with pytest.raises(ValueError, match="cuda_graph=True needs device='cuda'"):
        backends.load(name, CONFIG, "cpu", cuda_graph=True)
    with pytest.raises(ValueError, match="compile and cuda_graph are separate modes"):
        backends.load(name, CONFIG, "cuda", mode="cuda-graph", compile=True)


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
@pytest.mark.parametrize("gpu_case", GPU_PARITY, ids=ids(GPU_PARITY))
def test_gpu_matches_oracle(gpu_case):
    b = gpu_backend_or_skip(*gpu_case, CONFIG)
    oracle = backends.load("numpy", CONFIG)
    ours = [b.train_step(*window(CONFIG, k)) for k in range(6)]
    ref = [oracle.train_step(*window(CONFIG, k)) for k in range(6)]
    np.testing.assert_allclose(ours, ref, rtol=1e-4)
    x = window(CONFIG, 6)[0]
    np.testing.assert_allclose(b.predict(x), oracle.predict(x), atol=2e-4)
    assert b.device_peak_bytes() > 0  # the weights and windows at least live in device memory
    info = b.info()
    assert isinstance(info, Info) and info.gpu and info.mode == gpu_case[1]


@pytest.mark.gpu
@pytest.mark.parametrize("name", TORCH)
@pytest.mark.parametrize("mode", ["cuda-graph", "compile"])
def test_fast_mode_equals_eager(name, mode):
    """Same losses as eager mode. The graph needs Adam(capturable=True), and the compile mode's Adam
    keeps its step count in a tensor: both form the bias correction on the device rather than in
    Python floats, hence the parity tolerances, not bit equality (the first step, before any Adam
    update matters, is held tighter). A predict and a reset_state between steps check that the
    graph follows the carried state."""
    cuda_or_skip()
    windows = [window(CONFIG, k) for k in range(10)]

    def session(backend):
        losses = [backend.train_step(x, y) for x, y in windows[:6]]
        if backend.mode == "cuda-graph":
            assert backend._graph is not None  # graph mode really replays a graph
        if backend.mode == "compile":  # one graph, compiled here or reused from an earlier test
            assert backend.compile_stats.graphs in (0, 1) and backend.compile_stats.graph_breaks == 0
        prediction = backend.predict(windows[6][0])
        losses += [backend.train_step(x, y) for x, y in windows[7:]]
        backend.reset_state()
        losses.append(backend.train_step(*windows[0]))
        return losses, prediction, backend.get_weights()

    losses_g, prediction_g, weights_g = session(backends.load(name, CONFIG, "cuda", mode=mode))
    losses_e, prediction_e, weights_e = session(backends.load(name, CONFIG, "cuda"))
    assert losses_g[0] == pytest.approx(losses_e[0], rel=1e-6)
    np.testing.assert_allclose(losses_g, losses_e, rtol=1e-4)
    np.testing.assert_allclose(prediction_g, prediction_e, atol=2e-4)
    for k, v in weights_g.items():
        np.testing.assert_allclose(v, weights_e[k], atol=2e-4, err_msg=k)


TIMED = [(name, mode) for name, mode in TORCH_GPU if mode != "compile"]


@pytest.mark.gpu
@pytest.mark.parametrize("gpu_case", TIMED, ids=ids(TIMED))
def test_timed_calls_wait_for_the_device(gpu_case):
    """A deliberately slow kernel queued by the step must show in the time the call takes
    (in the graph modes it is captured into the graph, so a replay must be waited for too).
    The compile mode's step does not call `forward`, so no slow kernel can be slipped into it;
    it returns the loss with .item() like the others."""
    torch = cuda_or_skip()
    b = backends.load(gpu_case[0], CONFIG, "cuda", mode=gpu_case[1])
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
