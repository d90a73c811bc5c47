"""Names the harness and the report share, said once: the timed operations, the devices in table order and
how each is drawn, a case's label, a size's parts and work, and which modes compile again at every size.
Imports no framework (the registry's device list only)."""

from __future__ import annotations

import dataclasses

from backends import DEVICES

OPS: tuple[str, ...] = ("train_step", "predict")  # the timed operations, in table order
DEVICE_ORDER: tuple[str, ...] = DEVICES  # tables and plots list devices in the registry's order

# Modes whose step is traced or compiled for its shapes: each new size pays its compile again (torch.compile
# took 12-72 s per size on the 2-core VM). The others run the same code at any size (numba compiles once
# per dtype signature, and the sizes share one).
COMPILES_PER_SIZE: frozenset[str] = frozenset(
    {"compile", "cuda-graph", "jit", "fast", "function", "xla", "xla-concrete", "train_on_batch", "stateless-jit"}
)


@dataclasses.dataclass(frozen=True)
class DeviceStyle:
    """How a device's rows are drawn: a GPU row stands out from a cpu row by shape and line as well as colour."""

    marker: str
    colour: str
    line: str


DEVICE_STYLE: dict[str, DeviceStyle] = {
    "cpu": DeviceStyle("o", "tab:blue", "-"),
    "cuda": DeviceStyle("D", "tab:orange", "--"),
}
OTHER_STYLE = DeviceStyle("s", "tab:gray", ":")


def style(device: str) -> DeviceStyle:
    return DEVICE_STYLE.get(device, OTHER_STYLE)


def device_rank(device: str) -> int:
    """A device's place in tables: DEVICE_ORDER first, any other after them."""
    return DEVICE_ORDER.index(device) if device in DEVICE_ORDER else len(DEVICE_ORDER)


def case_label(backend: str, mode: str, device: str) -> str:
    """'torch-rnn eager @cuda': how tables, plots and progress lines name a case (its size apart)."""
    return f"{backend} {mode} @{device}"


def compiles_per_size(mode: str) -> bool:
    """Whether a mode compiles again at every new size (see COMPILES_PER_SIZE)."""
    return mode in COMPILES_PER_SIZE


def size_parts(size: str) -> tuple[int, int, int]:
    """'32x1x10' -> (hidden, batch, seq_len)."""
    hidden, batch, seq_len = (int(p) for p in size.split("x"))
    return hidden, batch, seq_len


def work(size: str | tuple[int, int, int]) -> float:
    """Multiply-adds of one step of the vanilla RNN, roughly: batch x seq_len x its madds per step (hidden x
    (hidden + input + output + bias)); sizes are ordered and scaled by it whatever the cell."""
    from backends.models import MODELS

    hidden, batch, seq_len = size_parts(size) if isinstance(size, str) else size
    return float(batch * seq_len * MODELS["rnn"].madds_per_step(1, hidden))
