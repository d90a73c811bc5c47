"""The registry's errors; no numpy or framework import, so the package loads before any BLAS does."""


def one_line(err: BaseException) -> str:
    """'Type: message', first line only: how errors are quoted in messages, tables and run.json."""
    return f"{type(err).__name__}: {err}".splitlines()[0]


class BackendUnavailable(RuntimeError):
    """The backend's framework (or the requested device) cannot be used here; the message says why."""


class DeviceUnsupported(BackendUnavailable):
    """The backend does not run on the requested device at all (e.g. a CUDA-graph mode on the CPU)."""
