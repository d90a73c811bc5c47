"""The fast modes and the new backends (jax-scan fast, keras-simplernn and tf-cell XLA and concrete
modes, the numba floor) beyond the shared contract: each owns its weights, jax-scan's fast mode
says whether synchronous dispatch was applied, tf-cell's Adam places epsilon as PyTorch does."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import backends
from backends import TaskConfig
from backends.task import initial_weights, window

OURS = ("jax-scan", "keras-simplernn", "tf-cell", "tflearn", "numba")
TINY = TaskConfig(batch_size=2, hidden_size=4, seq_len=3, adam_eps=1e-16)
CASES = [(name, mode) for name in OURS for mode in backends.modes(name)]


def losses(b: backends.Backend, config: TaskConfig, steps: int = 3) -> list[float]:
    return [b.train_step(*window(config, k)) for k in range(steps)]


@pytest.fixture(scope="module")
def oracle_losses():
    b = backends.load("numpy", TINY)
    return losses(b, TINY)


@pytest.mark.parametrize("ours", CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_backend_owns_its_weights_and_windows(ours, make_backend, oracle_losses):
    """Changing the arrays given to set_weights or prepare, or those get_weights returned, afterwards
    changes nothing; and info() names the mode and its compiler."""
    b = make_backend(ours, TINY)
    info = b.info()
    assert info.mode == ours[1] and info.framework and info.kernel and info.compile, info
    given = initial_weights(TINY)
    b.set_weights(given)
    for value in given.values():  # the caller reuses its arrays
        value[...] = 7.0
    got = b.get_weights()
    for k, v in initial_weights(TINY).items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)
    snapshot = {k: v.copy() for k, v in got.items()}
    prepared = []
    for k in range(3):
        x, y = window(TINY, k)
        prepared.append((b.prepare(x, "x"), b.prepare(y, "y")))
        x[...], y[...] = 5.0, 5.0  # nor does a window stay in use once prepared
    first = b.train_step(*prepared[0])
    for k, v in got.items():  # what get_weights returned is not the buffer the step updates in place
        np.testing.assert_array_equal(v, snapshot[k], err_msg=k)
        v[...] = -7.0
    rest = [b.train_step(x, y) for x, y in prepared[1:]]
    np.testing.assert_allclose([first, *rest], oracle_losses, rtol=1e-4)


def test_numba_is_the_floor(make_backend):
    assert backends.floor_backends() == ["numba", "triton"]  # the CPU's floor and the GPU's
    info = make_backend("numba", TINY).info()
    assert "floor" in info.kernel and "error_model=numpy" in info.compile and info.framework.startswith("numba ")


@pytest.mark.parametrize("eps", [1e-8, 1e-3])
def test_tf_cell_adam_places_epsilon_as_pytorch(make_backend, eps):
    """The hand-written Adam matches the oracle (torch.optim.Adam's rule) at any epsilon, not only a tiny one."""
    config = TaskConfig(batch_size=2, hidden_size=8, seq_len=5, adam_eps=eps)
    expected = losses(backends.load("numpy", config), config, 6)
    np.testing.assert_allclose(losses(make_backend("tf-cell", config), config, 6), expected, rtol=1e-4)


def test_tf_steps_are_traced_once(make_backend):
    """set_weights and reset_state assign the variables the traced steps read: no retrace."""
    for name in ("keras-simplernn", "tf-cell"):
        b = make_backend((name, "function"), TINY)
        losses(b, TINY, 2)
        b.set_weights(initial_weights(TINY))
        b.predict(window(TINY, 0)[0])
        b.reset_state()
        losses(b, TINY, 2)
        assert b._train_fn.experimental_get_tracing_count() == 1, name


SYNC_PROBE = """
    import json
    import backends
    from backends.task import window

    config = backends.TaskConfig(batch_size=2, hidden_size=4, seq_len=3, adam_eps=1e-16)
    first = {first!r}
    if first == "jax":  # JAX runs something before the backend's module is imported
        import jax.numpy as jnp
        float(jnp.ones(2).sum())
    made = {{}}
    for mode in first.split(",") if first != "jax" else ["fast"]:
        made[mode] = backends.load("jax-scan", config, mode=mode)
    oracle = backends.load("numpy", config)
    expected = [oracle.train_step(*window(config, k)) for k in range(3)]
    fast = made["fast"]
    got = [fast.train_step(*window(config, k)) for k in range(3)]
    out = {{m: {{"sync": b.sync_dispatch, "compile": b.info().compile}} for m, b in made.items()}}
    out["close"] = max(abs(a - b) / abs(b) for a, b in zip(got, expected)) < 1e-4
    print(json.dumps(out))
"""


PROBES = {
    "fast,jit": (True, "synchronous CPU dispatch (jax_cpu_enable_async_dispatch=False set by a jax-scan fast"),
    "jit,fast": (False, "async CPU dispatch; synchronous dispatch could not be applied"),
    "jax": (False, "synchronous dispatch could not be applied: JAX had already run in this process"),
}


@pytest.fixture(scope="module")
def sync_probes():
    """The three probes, each in its own fresh interpreter, run side by side."""
    pytest.importorskip("jax")
    procs = {
        first: subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(SYNC_PROBE.format(first=first))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for first in PROBES
    }
    return {first: (*p.communicate(timeout=300), p.returncode) for first, p in procs.items()}


@pytest.mark.parametrize("first", list(PROBES))
def test_jax_fast_records_whether_synchronous_dispatch_was_applied(sync_probes, first):
    sync, says = PROBES[first]
    stdout, stderr, returncode = sync_probes[first]
    assert returncode == 0, stderr[-3000:]
    out = json.loads(stdout.strip().splitlines()[-1])
    assert out.pop("close") is True
    assert out["fast"]["sync"] is sync
    assert says in out["fast"]["compile"], out["fast"]["compile"]
    if "jit" in out:  # the setting is process-wide: the jit backend says what it runs with too
        assert out["jit"]["sync"] is sync
        assert ("synchronous CPU dispatch (" in out["jit"]["compile"]) is sync, out["jit"]["compile"]
