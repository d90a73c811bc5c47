"""`triton`: the GPU floor. Forward, backpropagation through time and Adam in one Triton kernel launch.

The same arithmetic as the numba floor and the numpy oracle, in float32, as one `@triton.jit` kernel run
by a single program (one thread block): it loads the weights into registers once, runs the window forward,
then backward, accumulating every gradient in registers, and ends with Adam on every weight, so a training
step is one kernel launch plus the copy of the loss to the host (`.item()`, which waits for the GPU). At
hidden 32 a step is about 70 kFLOP: what limits it is the launch and the synchronisation, not arithmetic.

One program holds W_hh and its gradient as (hidden x hidden) register tiles, and forms each
matrix-vector product as a (streams x hidden x hidden) product reduced over one axis: three tiles of
about hidden^2 floats live at once, and a block has 64k registers. ptxas (sm_90a, Triton 3.9, compiled
here without a GPU) fits the kernel without spilling up to hidden 64 (hidden 32: 128 registers a thread at
1 warp; hidden 64: 114 at 16 warps); at hidden 128 it spills 0.5-1 KB a thread to local memory (cached in
L1) at any warp count, and at 256 6-17 KB a thread. So: hidden up to 64 in registers, up to HIDDEN_MAX =
128 with a small spill, and beyond that the backend is unavailable, saying so (more than one program would
be another design). Streams (batch) go in chunks of as many as keep the product tile at PRODUCT_TILE
floats; any batch and window length run: the hidden states of the window, which backpropagation reads
back, go to a scratch buffer in GPU memory, and a barrier orders the forward's writes before the
backward's reads within the one program.

The carried state, Adam's moments and the weights (one flat buffer: W_xh, W_hh, b_h, W_hq, b_q, as in the
numba backend) stay on the GPU; the step count and Adam's bias corrections are formed on the host in
float64 and passed as float32 arguments, as numba and PyTorch round them.

Without a GPU, `TRITON_INTERPRET=1` (set before triton is imported) runs the same kernel in Triton's
interpreter on PyTorch CPU tensors: the backend then loads for device "cuda" but computes on the CPU,
which checks the kernel's arithmetic (tests/test_triton.py) and says nothing about speed; its Info says so.
"""

# ruff: noqa: ANN001 - Triton reads a kernel parameter's annotation (tl.constexpr): the others stay bare

from __future__ import annotations

import math
import os

import numpy as np
import torch
import triton
import triton.language as tl

from backends._torch_common import BETAS, OnTorchDevice
from backends.base import Backend, BackendUnavailable, Info
from backends.task import WEIGHT_NAMES, TaskConfig

HIDDEN_MAX = 128  # the largest hidden size whose tiles one program keeps in registers (see the docstring)
PRODUCT_TILE = 16_384  # floats of the (streams x hidden x hidden) product tile: sets the streams per chunk
# a*b+c as one fused multiply-add, as nvcc compiles PyTorch's CUDA kernels; said explicitly because Triton
# 3.9 warns that its default changes in 3.10
FP_FUSION = True


def interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (read by triton at import, as here)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@triton.jit
def _tanh(a):
    # from exp, symmetric: portable across Triton versions and the interpreter (no libdevice)
    e = tl.exp(-2.0 * tl.abs(a))
    r = (1.0 - e) / (1.0 + e)
    return tl.where(a >= 0, r, -r)


@triton.jit
def _step_kernel(
    p_ptr,  # weights, flat: W_xh (H), W_hh (H*H), b_h (H), W_hq (H), b_q (1)
    m_ptr,  # Adam's first moments, same layout
    v_ptr,  # Adam's second moments
    h_ptr,  # carried state (B, H), read at the start and written at the end
    x_ptr,  # input window (B, T, 1)
    y_ptr,  # target window (B, T, 1); unused when not TRAIN
    hs_ptr,  # scratch (B, T+1, H): the window's hidden states, read back by the backward pass
    q_ptr,  # (B, T): predictions, or when TRAIN the errors q - y
    loss_ptr,  # (1,): the window's MSE
    B,
    T,
    scale,  # 2 / (B * T): d loss / d q per error
    lr_hat,  # lr / (1 - beta1^step)
    sqrt_c2,  # sqrt(1 - beta2^step)
    eps,
    H: tl.constexpr,
    HB: tl.constexpr,  # H rounded up to a power of two (tile width)
    BB: tl.constexpr,  # streams per chunk
    TRAIN: tl.constexpr,
):
    j = tl.arange(0, HB)
    jm = j < H
    rb = tl.arange(0, BB)
    o_hh = H
    o_bh = H + H * H
    o_hq = 2 * H + H * H
    o_bq = 3 * H + H * H
    m_hh = jm[:, None] & jm[None, :]
    idx_hh = j[:, None] * H + j[None, :]
    w_xh = tl.load(p_ptr + j, mask=jm, other=0.0)
    w_hh = tl.load(p_ptr + o_hh + idx_hh, mask=m_hh, other=0.0)  # [i, j]: row i feeds unit j
    b_h = tl.load(p_ptr + o_bh + j, mask=jm, other=0.0)
    w_hq = tl.load(p_ptr + o_hq + j, mask=jm, other=0.0)
    b_q = tl.load(p_ptr + o_bq)
    g_xh = tl.zeros((HB,), tl.float32)
    g_hh = tl.zeros((HB, HB), tl.float32)
    g_bh = tl.zeros((HB,), tl.float32)
    g_hq = tl.zeros((HB,), tl.float32)
    g_bq = tl.sum(tl.zeros((BB,), tl.float32), axis=0)
    sq_err = tl.zeros((BB,), tl.float32)
    for c in range(0, B, BB):
        rows = c + rb
        bm = rows < B
        m_bh = bm[:, None] & jm[None, :]
        idx_h = rows[:, None] * H + j[None, :]
        idx_hs = rows[:, None] * ((T + 1) * H) + j[None, :]
        h = tl.load(h_ptr + idx_h, mask=m_bh, other=0.0)
        if TRAIN:
            tl.store(hs_ptr + idx_hs, h, mask=m_bh)
        for t in range(T):
            xt = tl.load(x_ptr + rows * T + t, mask=bm, other=0.0)
            a = xt[:, None] * w_xh[None, :] + b_h[None, :] + tl.sum(h[:, :, None] * w_hh[None, :, :], axis=1)
            h = _tanh(a)
            q = tl.sum(h * w_hq[None, :], axis=1) + b_q
            if TRAIN:
                tl.store(hs_ptr + idx_hs + (t + 1) * H, h, mask=m_bh)
                yt = tl.load(y_ptr + rows * T + t, mask=bm, other=0.0)
                err = tl.where(bm, q - yt, 0.0)
                sq_err += err * err
                tl.store(q_ptr + rows * T + t, err, mask=bm)
            else:
                tl.store(q_ptr + rows * T + t, q, mask=bm)
        tl.store(h_ptr + idx_h, h, mask=m_bh)
        if TRAIN:
            tl.debug_barrier()  # the forward's stores, made by other threads, before the backward's loads
            dh = tl.zeros((BB, HB), tl.float32)  # what h_t passes back from step t+1
            for k in range(T):
                t = T - 1 - k
                dq = scale * tl.load(q_ptr + rows * T + t, mask=bm, other=0.0)
                ht = tl.load(hs_ptr + idx_hs + (t + 1) * H, mask=m_bh, other=0.0)
                hp = tl.load(hs_ptr + idx_hs + t * H, mask=m_bh, other=0.0)
                xt = tl.load(x_ptr + rows * T + t, mask=bm, other=0.0)
                g_bq += tl.sum(dq, axis=0)
                g_hq += tl.sum(ht * dq[:, None], axis=0)
                da = (dh + dq[:, None] * w_hq[None, :]) * (1.0 - ht * ht)
                g_bh += tl.sum(da, axis=0)
                g_xh += tl.sum(xt[:, None] * da, axis=0)
                g_hh += tl.sum(hp[:, :, None] * da[:, None, :], axis=0)
                dh = tl.sum(da[:, None, :] * w_hh[None, :, :], axis=2)
    if TRAIN:
        tl.store(loss_ptr, tl.sum(sq_err, axis=0) / (B * T))
        # Adam, as torch.optim.Adam: p -= lr_hat * m / (sqrt(v) / sqrt_c2 + eps)
        _adam(p_ptr, m_ptr, v_ptr, j, jm, w_xh, g_xh, lr_hat, sqrt_c2, eps)
        _adam(p_ptr, m_ptr, v_ptr, o_hh + idx_hh, m_hh, w_hh, g_hh, lr_hat, sqrt_c2, eps)
        _adam(p_ptr, m_ptr, v_ptr, o_bh + j, jm, b_h, g_bh, lr_hat, sqrt_c2, eps)
        _adam(p_ptr, m_ptr, v_ptr, o_hq + j, jm, w_hq, g_hq, lr_hat, sqrt_c2, eps)
        first = j < 1  # b_q as the first lane of a tile, so that one _adam serves every weight
        _adam(p_ptr, m_ptr, v_ptr, o_bq + j, first, tl.where(first, b_q, 0.0), g_bq, lr_hat, sqrt_c2, eps)


@triton.jit
def _adam(p_ptr, m_ptr, v_ptr, offs, mask, p, g, lr_hat, sqrt_c2, eps):
    m = 0.9 * tl.load(m_ptr + offs, mask=mask, other=0.0) + 0.1 * g
    v = 0.999 * tl.load(v_ptr + offs, mask=mask, other=0.0) + 0.001 * g * g
    tl.store(m_ptr + offs, m, mask=mask)
    tl.store(v_ptr + offs, v, mask=mask)
    tl.store(p_ptr + offs, p - lr_hat * m / (tl.sqrt(v) / sqrt_c2 + eps), mask=mask)


def num_warps_for(hidden_block: int, streams: int) -> int:
    """Warps of the one program: about 1k floats of the product tile per warp, 1 to 16."""
    return max(1, min(16, streams * hidden_block * hidden_block // 1024))


class TritonRNN(OnTorchDevice, Backend):
    """The canonical model as one Triton kernel launch per step: the floor on the GPU."""

    name = "triton"

    def __init__(self, config: TaskConfig, device: str = "cuda", num_warps: int = 0) -> None:
        super().__init__(config, device)
        if config.hidden_size > HIDDEN_MAX:
            raise BackendUnavailable(
                f"triton: hidden_size {config.hidden_size} does not fit one program's registers; "
                f"this kernel runs hidden_size up to {HIDDEN_MAX}"
            )
        if config.input_size != 1:
            raise ValueError(f"triton: the kernel takes input_size 1, got {config.input_size}")
        if isinstance(num_warps, bool) or not isinstance(num_warps, int) or not 0 <= num_warps <= 32:
            raise ValueError(f"triton: num_warps must be an int from 1 to 32, or 0 for the default; got {num_warps!r}")
        if not interpreting() and not torch.cuda.is_available():
            raise BackendUnavailable(
                f"triton: PyTorch sees no CUDA GPU (torch {torch.__version__}); TRITON_INTERPRET=1 runs the "
                "kernel in Triton's CPU interpreter, for checking only"
            )
        self.torch_device = torch.device("cpu" if interpreting() else "cuda")
        n, batch, seq_len = config.hidden_size, config.batch_size, config.seq_len
        self.hidden_block = triton.next_power_of_2(n)
        self.streams = min(triton.next_power_of_2(batch), max(1, PRODUCT_TILE // self.hidden_block**2))
        self.num_warps = num_warps or num_warps_for(self.hidden_block, self.streams)
        sizes = [math.prod(config.weight_shapes[k]) for k in WEIGHT_NAMES]
        self._offsets = dict(zip(WEIGHT_NAMES, np.cumsum([0, *sizes[:-1]]).tolist()))
        zeros = {"dtype": torch.float32, "device": self.torch_device}
        self.p = torch.zeros(sum(sizes), **zeros)
        self.m = torch.zeros_like(self.p)
        self.v = torch.zeros_like(self.p)
        self.h = torch.zeros(batch, n, **zeros)
        self.hs = torch.empty(batch, seq_len + 1, n, **zeros)  # scratch: the window's hidden states
        self.q = torch.empty(batch, seq_len, **zeros)
        self.loss = torch.zeros(1, **zeros)
        self.step = 0

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        flat = np.concatenate([weights[k].ravel() for k in WEIGHT_NAMES])
        self.p.copy_(torch.from_numpy(flat))  # into this backend's own buffer
        self.m.zero_()
        self.v.zero_()
        self.step = 0

    def _get_weights(self) -> dict[str, np.ndarray]:
        flat = self.p.cpu().numpy()
        out = {}
        for k, shape in self.config.weight_shapes.items():
            start = self._offsets[k]
            out[k] = flat[start : start + math.prod(shape)].reshape(shape).copy()
        return out

    def reset_state(self) -> None:
        self.h.zero_()

    def _to_native(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.torch_device)  # a copy on the GPU

    def _launch(self, x: torch.Tensor, y: torch.Tensor, train: bool, lr_hat: float, sqrt_c2: float) -> None:
        c = self.config
        _step_kernel[(1,)](
            self.p, self.m, self.v, self.h, x, y, self.hs, self.q, self.loss,
            c.batch_size, c.seq_len, 2.0 / (c.batch_size * c.seq_len), lr_hat, sqrt_c2, c.adam_eps,
            H=c.hidden_size, HB=self.hidden_block, BB=self.streams, TRAIN=train, num_warps=self.num_warps,
            enable_fp_fusion=FP_FUSION,
        )  # fmt: skip

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        self.step += 1
        beta1, beta2 = BETAS  # bias corrections in float64, rounded to float32 at the launch
        lr_hat = self.config.lr / (1.0 - beta1**self.step)
        self._launch(x, y, True, lr_hat, math.sqrt(1.0 - beta2**self.step))
        return self.loss.item()  # waits for the GPU

    def _predict(self, x: torch.Tensor) -> np.ndarray:
        self._launch(x, x, False, 0.0, 1.0)
        # a copy of its own even on the CPU (interpreter), where .cpu() would hand out the reused buffer
        return self.q.to("cpu", copy=True).numpy().reshape(self.config.batch_size, self.config.seq_len, 1)

    def info(self) -> Info:
        cuda = self.torch_device.type == "cuda"
        where = "one program" if cuda else "Triton's CPU interpreter (TRITON_INTERPRET=1), for checking only"
        return Info(
            framework=f"triton {triton.__version__} (no framework; torch {torch.__version__} holds the buffers)",
            kernel=f"the floor: forward, BPTT and Adam in one Triton kernel launch, {where}, float32",
            mode=self.mode,
            gpu=torch.cuda.get_device_name(self.torch_device) if cuda else None,
            compile=f"triton.jit, {self.num_warps} warps, {self.streams} streams a chunk, fp fusion {FP_FUSION}"
            + (" (compiled at the first call)" if cuda else " (interpreted)"),
        )
