"""The models (cells) the task can train, declared once: canonical weight names and shapes, the carried
state, the parameter count and the work per step. Every backend maps these canonical weights onto its
framework's layout in its own file; the numpy oracle and the numba floor are written from the equations
below. With x_t the input, h the hidden state, σ the logistic sigmoid, and a head q_t = h_t W_hq + b_q:

    rnn   h' = tanh(x W_xh + h W_hh + b_h)
    lstm  [i f g o] = x W_x + h W_h + b            (gate order i, f, g, o: PyTorch's; one bias)
          c' = σ(f) c + σ(i) tanh(g),  h' = σ(o) tanh(c')
    gru   [r z n]_x = x W_x + b_x,  [r z n]_h = h W_h + b_h   (gate order r, z, n: PyTorch's; two biases)
          r = σ(r_x + r_h),  z = σ(z_x + z_h),  n = tanh(n_x + r (n_h))   (reset after the matmul)
          h' = (1 - z) n + z h

Gate blocks are columns of W_x / W_h in that order, each `hidden` wide. The GRU keeps both biases because
the reset gate multiplies the recurrent one (PyTorch's `nn.GRU` and Keras's `reset_after=True` GRU are this
model); the LSTM's two PyTorch biases are one bias here (PyTorch's `bias_hh` is held at zero where a
backend must match exactly).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Model:
    """One cell: its gates, its carried state and its canonical weights."""

    name: str
    gates: int  # blocks of `hidden` columns in the input and recurrent matrices
    state: tuple[str, ...]  # what is carried from window to window
    about: str

    def weight_shapes(self, input_size: int, hidden: int) -> dict[str, tuple[int, ...]]:
        """Canonical weight names and shapes, in a fixed order (the head last)."""
        g = self.gates * hidden
        if self.name == "rnn":
            cell = {"W_xh": (input_size, hidden), "W_hh": (hidden, hidden), "b_h": (hidden,)}
        elif self.name == "lstm":
            cell = {"W_x": (input_size, g), "W_h": (hidden, g), "b": (g,)}
        else:
            cell = {"W_x": (input_size, g), "W_h": (hidden, g), "b_x": (g,), "b_h": (g,)}
        return {**cell, "W_hq": (hidden, 1), "b_q": (1,)}

    def madds_per_step(self, input_size: int, hidden: int) -> int:
        """Multiply-adds of one time step of one stream, forward (the sweep's cost model)."""
        return self.gates * hidden * (input_size + hidden + 1) + hidden


MODELS: dict[str, Model] = {
    "rnn": Model("rnn", 1, ("h",), "vanilla tanh RNN (the seed's)"),
    "lstm": Model("lstm", 4, ("h", "c"), "LSTM, gates i f g o, one bias"),
    "gru": Model("gru", 3, ("h",), "GRU, gates r z n, reset after the recurrent matmul (PyTorch's form)"),
}


def model(name: object) -> Model:
    """The model called `name`; a one-line ValueError listing the known ones otherwise."""
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return MODELS[name]
