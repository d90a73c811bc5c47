"""The `triton` backend (the GPU floor): one kernel launch per step, checked against the numpy oracle.

Its registry entry is CUDA-only, so the parity and contract suites (CPU cases) do not load it. Here the
kernel runs in a fresh process: under Triton's interpreter (TRITON_INTERPRET=1, which triton reads when
it is first imported: this suite's process imports many frameworks and must not switch triton for them)
on the CPU everywhere triton is installed, and compiled on the GPU where there is one. Each child process
runs every size and prints what the backend returned; the oracle's figures and the assertions are here.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import backends
from backends import DeviceUnsupported, TaskConfig
from backends.task import window

STEPS = 6
# the README's three parity sizes, then two that exercise the kernel's masks and chunks: hidden 20 pads to
# a 32-wide tile and batch 5 to an 8-stream chunk; hidden 100 pads to 128, one stream a chunk, three chunks
SIZES = {
    "seed-task": TaskConfig(adam_eps=1e-16),
    "batch3-h16": TaskConfig(adam_eps=1e-16, batch_size=3, hidden_size=16, seq_len=7, seed=3),
    "h64-b4-s20": TaskConfig(adam_eps=1e-16, batch_size=4, hidden_size=64, seq_len=20, seed=5),
    "h20-b5-s4": TaskConfig(adam_eps=1e-16, batch_size=5, hidden_size=20, seq_len=4, seed=7),
    "h100-b3-s5": TaskConfig(adam_eps=1e-16, batch_size=3, hidden_size=100, seq_len=5, seed=9),
}

needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None or importlib.util.find_spec("torch") is None,
    reason="triton (or PyTorch) is not installed: pip install -e '.[triton,torch]'",
)

CHILD = """
import json, sys, time
import numpy as np
import backends
from backends import BackendUnavailable, TaskConfig
from backends.task import window

start, out = time.perf_counter(), {"sizes": {}}
steps, sizes = json.loads(sys.argv[1])
for name, fields in sizes.items():
    config = TaskConfig(**fields)
    b = backends.load("triton", config, "cuda")
    x, y = window(config, 0)
    first = {"predictions": b.predict(x).tolist()}
    b.reset_state()
    first["loss"] = b.train_step(x, y)
    b = backends.load("triton", config, "cuda")
    losses = [b.train_step(*window(config, k)) for k in range(steps)]
    out["sizes"][name] = {
        "first": first,
        "losses": losses,
        "weights": {k: v.tolist() for k, v in b.get_weights().items()},
        "after": b.predict(window(config, steps)[0]).tolist(),
    }

# the contract at the seed's size: types, state carried and reset, prepared windows, weights owned
config = TaskConfig()
b = backends.load("triton", config, "cuda")
x, y = window(config, 0)
px, py = b.prepare(x, "x"), b.prepare(y, "y")
loss = b.train_step(px, py)
p1, p2 = b.predict(x), b.predict(x)
b.reset_state()
weights = b.get_weights()
weights["W_hh"][...] = 9.0  # a returned copy: the backend's weights must not change
mine = backends.load("numpy", config).get_weights()
b.set_weights(mine)
mine["W_hh"][...] = 9.0  # the caller's dict after set_weights: the backend must not see this either
fresh = backends.load("triton", config, "cuda")
out["contract"] = {
    "loss_type": type(loss).__name__,
    "prediction": [str(p1.dtype), list(p1.shape)],
    "state_carried": bool(np.abs(p1 - p2).max() > 1e-6),
    "weights_kept": bool((b.get_weights()["W_hh"] != 9.0).all()),
    "set_weights_restarts": [b.train_step(x, y), fresh.train_step(x, y)],
    "info": [b.info().mode, b.info().kernel, b.info().gpu],
}
try:
    backends.load("triton", TaskConfig(hidden_size=256), "cuda")
    out["too_big"] = ""
except BackendUnavailable as err:
    out["too_big"] = str(err)
out["seconds"] = time.perf_counter() - start
print(json.dumps(out))
"""


def run_child(interpret: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    sizes = {name: {f: getattr(c, f) for f in ("adam_eps", "batch_size", "hidden_size", "seq_len", "seed")}
             for name, c in SIZES.items()}  # fmt: skip
    cmd = [sys.executable, "-c", textwrap.dedent(CHILD), json.dumps([STEPS, sizes])]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=["interpreter", "gpu"])
def run(request):
    """The child's report: the kernel under Triton's interpreter on the CPU, or compiled on a CUDA GPU."""
    if request.param == "gpu":
        request.applymarker(pytest.mark.gpu)
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip(f"no CUDA GPU visible to PyTorch {torch.__version__}: the compiled kernel is not run")
    return run_child(interpret=request.param == "interpreter")


@needs_triton
@pytest.mark.parametrize("size", list(SIZES))
def test_first_loss_and_predictions_match_oracle(run, size):
    config, got = SIZES[size], run["sizes"][size]["first"]
    oracle = backends.load("numpy", config)
    x, y = window(config, 0)
    np.testing.assert_allclose(np.array(got["predictions"]), oracle.predict(x), rtol=0, atol=2e-6)
    oracle.reset_state()
    assert got["loss"] == pytest.approx(oracle.train_step(x, y), abs=2e-6)


@needs_triton
@pytest.mark.parametrize("size", list(SIZES))
def test_trajectory_matches_oracle(run, size):
    config, got = SIZES[size], run["sizes"][size]
    oracle = backends.load("numpy", config)
    expected = [oracle.train_step(*window(config, k)) for k in range(STEPS)]
    np.testing.assert_allclose(got["losses"], expected, rtol=1e-4)
    for k, v in oracle.get_weights().items():
        np.testing.assert_allclose(np.array(got["weights"][k]), v, rtol=0, atol=2e-4, err_msg=k)
    x = window(config, STEPS)[0]
    np.testing.assert_allclose(np.array(got["after"]), oracle.predict(x), rtol=0, atol=2e-4)


@needs_triton
def test_contract(run):
    c = run["contract"]
    assert c["loss_type"] == "float"
    assert c["prediction"] == ["float32", [1, 10, 1]]
    assert c["state_carried"]  # the second predict starts from the state the first left
    assert c["weights_kept"]
    restarted, fresh = c["set_weights_restarts"]
    assert restarted == fresh  # set_weights: the canonical weights again, zero state, fresh Adam
    mode, kernel, gpu = c["info"]
    assert mode == "kernel" and "one Triton kernel launch" in kernel
    assert (gpu is None) == ("interpreter" in kernel)


@needs_triton
def test_hidden_beyond_one_program_is_unavailable(run):
    assert run["too_big"].startswith("triton: hidden_size 256 does not fit one program's registers")
    assert "up to 128" in run["too_big"]


def test_registered_as_the_floor_on_cuda_only():
    assert "triton" in backends.floor_backends()
    assert backends.mode_devices("triton", "kernel") == ("cuda",)
    with pytest.raises(DeviceUnsupported, match=r"triton \(kernel\) runs on cuda only, not cpu"):
        backends.load("triton", TaskConfig(), "cpu")
