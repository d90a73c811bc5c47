import pytest

import backends
from backends import BackendUnavailable, TaskConfig


def test_names_lists_the_seed_backends():
    assert {"numpy", "torch-rnn", "torch-cell"} <= set(backends.names())


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="unknown backend 'caffe'.*numpy.*torch-rnn"):
        backends.load("caffe")


def test_unknown_option_lists_allowed_ones():
    with pytest.raises(ValueError, match="unknown option.*bogus.*allowed: none"):
        backends.load("numpy", bogus=1)


def test_bad_device_is_rejected():
    with pytest.raises(ValueError, match="device must be one of cpu, cuda, got 'tpu'"):
        backends.load("numpy", device="tpu")


def test_cpu_only_backend_refuses_cuda():
    with pytest.raises(BackendUnavailable, match=r"numpy \(eager\) runs on cpu only"):
        backends.load("numpy", TaskConfig(), "cuda")


def test_importing_backends_imports_no_framework(run_python):
    result = run_python(
        """
        import sys, backends
        backends.names()
        loaded = [m for m in ("torch", "tensorflow", "keras", "tflearn", "jax") if m in sys.modules]
        print(loaded)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_missing_framework_is_reported_with_the_extra(run_python):
    result = run_python(
        """
        import sys
        sys.modules["torch"] = None  # what Python does for a module that cannot be imported
        import backends
        try:
            backends.load("torch-rnn")
        except backends.BackendUnavailable as err:
            print(err)
        print(backends.load("numpy").train_step.__name__)
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "torch-rnn: cannot import its framework" in lines[0]
    assert "pip install -e '.[torch]'" in lines[0]
    assert lines[1] == "train_step"


def test_gpu_frameworks_are_told_not_to_reserve_the_gpu_unless_the_user_said(run_python):
    result = run_python(
        """
        import os
        os.environ.pop("XLA_PYTHON_CLIENT_PREALLOCATE", None)
        os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] = "false"  # the user's choice
        import backends
        print(os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"], os.environ["TF_FORCE_GPU_ALLOW_GROWTH"])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["false", "false"]
