"""TensorFlow backends living beside the others: one process mixing frameworks, a missing TensorFlow,
and tflearn's import patches staying contained (see backends/_tflearn_compat.py).

The mixing and leak checks run in a fresh subprocess, so tflearn is imported there for the first
time, after Keras has already run, whatever the rest of the suite imported in this process.
"""

import importlib.util
import json
import sys

import pytest

import backends
from backends import BackendUnavailable, TaskConfig, threads
from backends.base import Info

TF_NAMES = ("keras-simplernn", "tf-cell", "tflearn")


MIXED = """
    import json
    import sys

    import backends
    from backends import TaskConfig
    from backends.task import window

    def eager():
        tf = sys.modules.get("tensorflow")
        return tf.executing_eagerly() if tf else None

    def leak_probe():
        import tensorflow as tf
        from PIL import Image
        from tensorflow.python.util import nest

        return {"Image": set(dir(Image)), "nest": set(dir(nest)), "disable": tf.compat.v1.disable_v2_behavior}

    config = TaskConfig(adam_eps=1e-16)
    oracle = backends.load("numpy", config)
    out = {"expected": [oracle.train_step(*window(config, k)) for k in range(3)], "runs": []}
    for name in ("torch-rnn", "keras-simplernn", "tflearn", "keras-simplernn", "tf-cell", "torch-cell"):
        before = leak_probe() if name == "tflearn" else None
        b = backends.load(name, config, **backends.backend_class(name).parity_options)
        losses = [b.train_step(*window(config, k)) for k in range(3)]
        b.predict(window(config, 3)[0])
        out["runs"].append({"name": name, "losses": losses, "eager": eager()})
        if before:
            after = leak_probe()
            out["new_attributes"] = {k: sorted(after[k] - before[k]) for k in ("Image", "nest")}
            out["disable_v2_behavior_restored"] = after["disable"] is before["disable"]
    print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def mixed(run_python):
    """Run torch-rnn, keras-simplernn, tflearn, keras-simplernn, tf-cell, torch-cell in that order in one fresh
    process."""
    missing = [m for m in ("tensorflow", "tflearn", "torch") if importlib.util.find_spec(m) is None]
    if missing:  # found but broken is a failure below, not a skip
        pytest.skip(f"not installed: {', '.join(missing)}")
    result = run_python(MIXED)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_mixed_frameworks_in_one_process_match_the_oracle(mixed):
    assert [r["name"] for r in mixed["runs"]] == [
        "torch-rnn",
        "keras-simplernn",
        "tflearn",
        "keras-simplernn",
        "tf-cell",
        "torch-cell",
    ]
    for run in mixed["runs"]:
        assert run["losses"][0] == pytest.approx(mixed["expected"][0], abs=2e-6), run["name"]
        assert run["losses"] == pytest.approx(mixed["expected"], rel=1e-4), run["name"]


def test_tensorflow_stays_eager_after_tflearn(mixed):
    assert [r["eager"] for r in mixed["runs"]] == [None, True, True, True, True, True]


def test_tflearn_patches_do_not_leak(mixed):
    """The two names added for tflearn's import are removed again; disable_v2_behavior is the original."""
    assert mixed["new_attributes"] == {"Image": [], "nest": []}
    assert mixed["disable_v2_behavior_restored"] is True


def test_failed_tflearn_import_restores_everything(monkeypatch):
    tf = pytest.importorskip("tensorflow")
    from PIL import Image
    from tensorflow.python.util import nest

    from backends._tflearn_compat import import_tflearn

    disable = tf.compat.v1.disable_v2_behavior
    before = (set(dir(Image)), set(dir(nest)))
    monkeypatch.setitem(sys.modules, "tflearn", None)  # what Python does for a module that cannot be imported
    with pytest.raises(ImportError, match=r"tflearn does not import on tensorflow .*\(.*tflearn"):
        import_tflearn()
    assert (set(dir(Image)), set(dir(nest))) == before
    assert tf.compat.v1.disable_v2_behavior is disable
    assert tf.executing_eagerly()


def test_missing_tensorflow_is_reported_with_the_extra(run_python):
    result = run_python(
        f"""
        import sys
        sys.modules["tensorflow"] = None  # what Python does for a module that cannot be imported
        import backends
        for name in {TF_NAMES!r}:
            try:
                backends.load(name)
            except backends.BackendUnavailable as err:
                print(err)
        from backends.task import window
        x, y = window(backends.TaskConfig(), 0)
        print(backends.load("numpy").train_step(x, y) > 0)
        try:
            import torch
        except ImportError:
            print(True)  # torch not installed here either: nothing to check
        else:
            print(backends.load("torch-rnn").train_step(x, y) > 0)
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 5, result.stdout
    for name, line in zip(TF_NAMES, lines):
        assert line.startswith(f"{name}: cannot import its framework"), line
        assert "tensorflow" in line and "pip install -e '.[tf]'" in line, line
    assert lines[3:] == ["True", "True"]


def test_modes_options_devices_and_info(make_backend):
    tf = pytest.importorskip("tensorflow")
    config = TaskConfig(hidden_size=4)
    assert backends.modes("keras-simplernn") == ["train_on_batch", "function", "xla", "xla-concrete"]
    assert backends.modes("tf-cell") == ["function", "xla", "xla-concrete"]
    for name in ("keras-simplernn", "tf-cell"):
        assert {backends.mode_env(name, m).get("KERAS_BACKEND") for m in backends.modes(name)} == {
            "tensorflow" if name == "keras-simplernn" else None
        }
        for mode, compiler, call in (
            ("function", "TF graph", "through tf.function"),
            ("xla", "XLA", "through tf.function"),
            ("xla-concrete", "XLA", "ConcreteFunction called directly"),
        ):
            info = make_backend((name, mode), config).info()
            assert isinstance(info, Info) and info.mode == mode and info.gpu is None, info
            assert info.framework.startswith("tensorflow ") and info.compile.startswith(compiler), info
            assert call in info.compile, info
        with pytest.raises(TypeError, match="option jit_compile must be True or False"):
            make_backend(name, config, jit_compile="yes")
        with pytest.raises(ValueError, match="unknown mode 'xla-graph'"):
            make_backend((name, "xla-graph"), config)
    info = make_backend("keras-simplernn", config).info()  # the default: Keras as most of its users write it
    assert info.mode == "train_on_batch" and "compile(Adam, 'mse') + train_on_batch" in info.kernel, info
    xla = bool(tf.config.list_physical_devices("GPU"))  # what jit_compile="auto" resolves to on TensorFlow
    assert info.compile.endswith(f"jit_compile='auto' -> {xla})"), info
    with pytest.raises(ValueError, match="train_on_batch is its own mode"):
        make_backend("keras-simplernn", config, train_on_batch=True, jit_compile=True)
    info = make_backend("tflearn", config).info()
    assert "tflearn 0.5.0" in info.framework and info.mode == "session"
    n = threads.count() or 0
    assert threads.settings()["frameworks"]["tensorflow-v1-session"] == {"intra_op": n, "inter_op": n}
    with pytest.raises(BackendUnavailable, match="tflearn.* runs on cpu only"):
        backends.load("tflearn", config, "cuda")
    if not tf.config.list_physical_devices("GPU"):
        for name in ("keras-simplernn", "tf-cell"):
            with pytest.raises(BackendUnavailable, match=f"{name}: TensorFlow sees no GPU"):
                backends.load(name, config, "cuda")
