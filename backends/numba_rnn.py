"""`numba`: the no-framework floor. Forward, backpropagation through time and Adam in one `@njit` function,
for each model (rnn, lstm, gru: the equations of backends/models.py, one train step and one forward each).

The same arithmetic as the numpy oracle (backends/numpy_rnn.py), in float32 like the frameworks, with
no framework between the Python call and the loops: what is left of a step is the arithmetic itself
and one Python-to-machine-code call. Every row of the tables is measured against it.

How it is written, for speed:
  - The weights, Adam's moments and the carried state live in flat float32 buffers, so a step
    unboxes few arrays; views of them give the matrices.
  - Matrix-vector products are written as row updates (a[:] += h[i] * W_hh[i, :]), loops whose
    inner body is contiguous and free of reductions, which LLVM vectorises without fast-math.
    The backward pass uses W_hh transposed once per step for the same reason.
  - error_model='numpy' drops the division-by-zero checks that stop Adam's update from vectorising.
  - tanh from exp in float64 (see _tanh): glibc's scalar tanhf, which np.tanh on a float32 becomes,
    was half the forward pass. Frameworks use their own vectorised tanh too.
  - No fastmath: IEEE arithmetic, as the frameworks. Bias corrections are float64 scalars, as PyTorch's.
  - The LSTM and GRU (five and three activations per unit and step) take theirs a gate block at a time, from
    an exp written without calls (see _exp_neg) that LLVM vectorises; their backward products W_h da sum
    rows in vectorised order (see _dot). The only fast-math flags are there: reassociation in _dot, fused
    multiply-adds in _exp_neg's polynomial. At hidden 32 these took the LSTM's step from about 35 us to 16.
  - Explicit loops, no slice assignments (hs[b, t, :] = prev): numba's broadcasting setitem made
    compiling take several seconds more.
  - Compiled once per process and model, at the first call (the rnn 2-3 s here, 5-6 s with the VM loaded;
    the LSTM and GRU 4-12 s loaded); the benchmark's first-step timing shows it. Only the test suite, whose
    many processes would compile the same kernels again, sets RNN_BENCH_NUMBA_CACHE=1 to share them on disk.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numba
import numpy as np
from numba import njit

from backends.base import Backend, Info
from backends.models import MODELS
from backends.task import TaskConfig

BETA1, BETA2 = 0.9, 0.999
_NJIT = {"cache": os.environ.get("RNN_BENCH_NUMBA_CACHE") == "1", "error_model": "numpy", "nogil": True}


@njit(**_NJIT)
def _views(p: np.ndarray, i: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """W_xh (i, n), W_hh (n, n), b_h (n,), W_hq (n,) and b_q (1,) as views of the flat buffer p."""
    a, b = i * n, i * n + n * n
    return p[:a].reshape((i, n)), p[a:b].reshape((n, n)), p[b : b + n], p[b + n : b + 2 * n], p[b + 2 * n :]


@njit(**_NJIT)
def _tanh(x: float) -> float:
    """tanh of a float32 in float64 from exp, rounded to float32: accurate to float32's last bit and about
    twice as fast as glibc's tanhf, which numba calls for np.tanh on a float32."""
    d = abs(np.float64(x))
    if d < 1e-4:  # 1 - e would cancel: the Taylor series is exact to float64 here
        r = d - d * d * d / 3.0
    else:
        e = math.exp(-2.0 * d)
        r = (1.0 - e) / (1.0 + e)
    return np.float32(r if x >= 0 else -r)


# exp(-d) without a function call, for the LSTM's and GRU's gates (five and three activations per unit and
# step, where the rnn has one): a loop that calls exp (scalar libm) ran at about 4.5 ns an element here, this
# one, vectorised, at about 2 ns (a call of 32 tanh 66 ns, 64 sigmoids 80 ns)
LOG2E = 1.4426950408889634
LN2_HI, LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10  # ln 2 = HI + LO, k * HI exact
C2, C3, C4, C5, C6, C7, C8, C9, C10 = (1.0 / math.factorial(k) for k in range(2, 11))


@njit(fastmath={"contract"}, **_NJIT)
def _exp_neg(d: np.ndarray, e: np.ndarray, bits: np.ndarray, scale: np.ndarray, lo: int, hi: int) -> None:
    """e[j] = exp(-d[j]) for d[j] >= 0 and j in [lo, hi), in float64: exp(-d) = 2^-k exp(r) with k = round(d / ln 2),
    |r| <= ln 2 / 2, exp(r) by its Taylor series to r^10 (relative error under 1e-12, far below float32's 6e-8),
    2^-k written as the bits of a float64 (scale is bits.view(np.float64)). No function calls, so both loops
    vectorise; contract lets the polynomial's multiply-adds fuse (only here)."""
    for j in range(lo, hi):
        x = min(d[j], 708.0)  # exp(-708) is still a normal float64
        k = np.floor(x * LOG2E + 0.5)
        r = (k * LN2_HI - x) + k * LN2_LO
        q = C9 + r * C10
        q = C8 + r * q
        q = C7 + r * q
        q = C6 + r * q
        q = C5 + r * q
        q = C4 + r * q
        q = C3 + r * q
        q = C2 + r * q
        q = 1.0 + r * q
        e[j] = 1.0 + r * q
        bits[j] = (1023 - np.int64(k)) << 52
    for j in range(lo, hi):
        e[j] *= scale[j]


@njit(**_NJIT)
def _activate(
    a: np.ndarray,
    out: np.ndarray,
    tanh: bool,
    d: np.ndarray,
    e: np.ndarray,
    bits: np.ndarray,
    scale: np.ndarray,
    lo: np.uint64,
    hi: np.uint64,
) -> None:
    """out[j] = σ(a[j]) (or tanh(a[j]) when tanh) for j in [lo, hi): float32 in, float64 inside, rounded to
    float32 (exact to float32's last bit, as _tanh). d, e, bits (int64) and scale (bits.view(np.float64)) are
    scratch of a's length. lo and hi are unsigned: with a signed start numba's negative-index wraparound turns
    the loads into gathers (and slicing instead costs two atomic reference counts a slice)."""
    for j in range(lo, hi):
        d[j] = abs(np.float64(a[j])) * (2.0 if tanh else 1.0)
    _exp_neg(d, e, bits, scale, lo, hi)
    if tanh:  # (1 - e) / (1 + e) with e = exp(-2|x|); near 0, where 1 - e cancels, the Taylor series
        for j in range(lo, hi):
            x = 0.5 * d[j]
            t = (1.0 - e[j]) / (1.0 + e[j]) if x >= 1e-4 else x - x * x * x / 3.0
            out[j] = np.float32(t if a[j] >= 0 else -t)
    else:  # 1 / (1 + e) for x >= 0, e / (1 + e) below, with e = exp(-|x|)
        for j in range(lo, hi):
            out[j] = np.float32((1.0 if a[j] >= 0 else e[j]) / (1.0 + e[j]))


@njit(fastmath={"reassoc"}, **_NJIT)
def _dot(w: np.ndarray, v: np.ndarray, i: int) -> float:
    """Row i of w times v, summed in whatever order LLVM vectorises (reassociation is the only fast-math flag:
    BLAS sums in its own order too). The LSTM's and GRU's backward products W_h da have 4 or 3 hidden terms per
    output: as a row update over the hidden outputs (the rnn's way) the inner loop is too short to vectorise
    at hidden 32 (1.3 us a product here against 0.2 us so)."""
    s = np.float32(0.0)
    for j in range(v.size):
        s += w[i, j] * v[j]
    return s


@njit(**_NJIT)
def _adam(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, step: int, lr: float, eps: float) -> None:
    """Adam, as torch.optim.Adam: p -= lr * m_hat / (sqrt(v_hat) + eps), bias corrections in float64."""
    f32 = np.float32
    lr_hat = f32(lr / (1.0 - BETA1**step))
    sqrt_c2 = f32(math.sqrt(1.0 - BETA2**step))
    eps32 = f32(eps)
    b1, b2 = f32(BETA1), f32(BETA2)
    c1, c2 = f32(1.0 - BETA1), f32(1.0 - BETA2)
    for k in range(p.size):
        gk = g[k]
        m[k] = b1 * m[k] + c1 * gk
        v[k] = b2 * v[k] + c2 * gk * gk
        p[k] -= lr_hat * m[k] / (np.sqrt(v[k]) / sqrt_c2 + eps32)


@njit(**_NJIT)
def _forward(p: np.ndarray, x: np.ndarray, h: np.ndarray, hs: np.ndarray, q: np.ndarray) -> None:
    """Fill hs (batch, seq_len+1, hidden) from h and q (batch, seq_len); h becomes the last state."""
    batch, seq_len, i_size = x.shape
    n = h.shape[1]
    w_xh, w_hh, b_h, w_hq, b_q = _views(p, i_size, n)
    a = np.empty(n, np.float32)  # own buffers, not views of hs: no possible aliasing in the inner loops
    prev = np.empty(n, np.float32)
    for b in range(batch):
        for j in range(n):
            prev[j] = h[b, j]
            hs[b, 0, j] = prev[j]
        for t in range(seq_len):
            for j in range(n):
                a[j] = b_h[j]
            for i in range(i_size):
                xi = x[b, t, i]
                for j in range(n):
                    a[j] += xi * w_xh[i, j]
            for i in range(n):
                hi = prev[i]
                for j in range(n):
                    a[j] += hi * w_hh[i, j]
            acc = b_q[0]
            for j in range(n):
                hj = _tanh(a[j])
                prev[j] = hj
                hs[b, t + 1, j] = hj
                acc += hj * w_hq[j]
            q[b, t] = acc
        for j in range(n):
            h[b, j] = prev[j]


@njit(**_NJIT)
def _train_step(
    p: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    step: int,
    lr: float,
    eps: float,
    x: np.ndarray,
    y: np.ndarray,
    h: np.ndarray,
) -> float:
    """One Adam step on one window: forward, BPTT (h0 held constant), Adam on p with moments m, v.
    The loss is the MSE over the window (accumulated in float64); h becomes the last hidden state."""
    batch, seq_len, i_size = x.shape
    n = h.shape[1]
    f32 = np.float32
    hs = np.empty((batch, seq_len + 1, n), f32)
    q = np.empty((batch, seq_len), f32)
    _forward(p, x, h, hs, q)
    w_xh, w_hh, b_h, w_hq, b_q = _views(p, i_size, n)
    w_hh_t = np.empty((n, n), f32)  # rows of W_hh^T: the backward products as row updates too
    for i in range(n):
        for j in range(n):
            w_hh_t[j, i] = w_hh[i, j]
    g = np.zeros_like(p)
    g_xh, g_hh, g_bh, g_hq, g_bq = _views(g, i_size, n)
    scale = 2.0 / (batch * seq_len)
    loss = 0.0
    da = np.empty(n, f32)
    dh = np.empty(n, f32)
    one, scale32 = f32(1.0), f32(scale)
    for b in range(batch):
        for j in range(n):
            dh[j] = 0.0  # what h_t passes back from step t+1
        for t in range(seq_len - 1, -1, -1):
            err = q[b, t] - y[b, t, 0]
            loss += float(err) * float(err)
            dq = scale32 * err
            g_bq[0] += dq
            ht = hs[b, t + 1]
            for j in range(n):
                g_hq[j] += ht[j] * dq
                da[j] = (dh[j] + dq * w_hq[j]) * (one - ht[j] * ht[j])
                g_bh[j] += da[j]
            for i in range(i_size):
                xi = x[b, t, i]
                for j in range(n):
                    g_xh[i, j] += xi * da[j]
            prev = hs[b, t]
            for i in range(n):
                hi = prev[i]
                for j in range(n):
                    g_hh[i, j] += hi * da[j]
            for j in range(n):
                dh[j] = 0.0
            for j in range(n):
                dj = da[j]
                for i in range(n):
                    dh[i] += dj * w_hh_t[j, i]
    _adam(p, g, m, v, step, lr, eps)
    return loss / (batch * seq_len)


@njit(**_NJIT)
def _predict(p: np.ndarray, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    batch, seq_len, _ = x.shape
    hs = np.empty((batch, seq_len + 1, h.shape[1]), np.float32)
    q = np.empty((batch, seq_len), np.float32)
    _forward(p, x, h, hs, q)
    return q.reshape((batch, seq_len, 1))


# ---- LSTM: [i f g o] = x W_x + h W_h + b; c' = σ(f) c + σ(i) tanh(g); h' = σ(o) tanh(c') ----


@njit(**_NJIT)
def _lstm_views(p: np.ndarray, i: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """W_x (i, 4n), W_h (n, 4n), b (4n,), W_hq (n,) and b_q (1,) as views of the flat buffer p."""
    g = 4 * n
    a, b = i * g, i * g + n * g
    return p[:a].reshape((i, g)), p[a:b].reshape((n, g)), p[b : b + g], p[b + g : b + g + n], p[b + g + n :]


@njit(**_NJIT)
def _lstm_forward(
    p: np.ndarray,
    x: np.ndarray,
    h: np.ndarray,
    c: np.ndarray,
    hs: np.ndarray,
    cs: np.ndarray,
    acts: np.ndarray,
    tcs: np.ndarray,
    q: np.ndarray,
) -> None:
    """Fill hs and cs (batch, seq_len+1, hidden) from h and c, the activated gates acts (batch, seq_len,
    4 hidden: σ(i), σ(f), tanh(g), σ(o)), tcs = tanh(c') (batch, seq_len, hidden) and q (batch, seq_len);
    h and c become the last state."""
    batch, seq_len, i_size = x.shape
    n = h.shape[1]
    w_x, w_h, bias, w_hq, b_q = _lstm_views(p, i_size, n)
    a = np.empty(4 * n, np.float32)  # the gates' pre-activations, then (act) their activations
    act = np.empty(4 * n, np.float32)
    cj = np.empty(n, np.float32)
    tc = np.empty(n, np.float32)
    d, e, bits = np.empty(4 * n), np.empty(4 * n), np.empty(4 * n, np.int64)  # _activate's scratch
    scale = bits.view(np.float64)
    u0, u1, u2, u3, u4 = np.uint64(0), np.uint64(n), np.uint64(2 * n), np.uint64(3 * n), np.uint64(4 * n)
    prev = np.empty(n, np.float32)
    for b in range(batch):
        for j in range(n):
            prev[j] = h[b, j]
            hs[b, 0, j] = prev[j]
            cs[b, 0, j] = c[b, j]
        for t in range(seq_len):
            for j in range(4 * n):
                a[j] = bias[j]
            for i in range(i_size):
                xi = x[b, t, i]
                for j in range(4 * n):
                    a[j] += xi * w_x[i, j]
            for i in range(n):
                hi = prev[i]
                for j in range(4 * n):
                    a[j] += hi * w_h[i, j]
            _activate(a, act, False, d, e, bits, scale, u0, u2)  # i, f
            _activate(a, act, True, d, e, bits, scale, u2, u3)  # g
            _activate(a, act, False, d, e, bits, scale, u3, u4)  # o
            for j in range(4 * n):
                acts[b, t, j] = act[j]
            for j in range(n):
                cj[j] = act[n + j] * cs[b, t, j] + act[j] * act[2 * n + j]
                cs[b, t + 1, j] = cj[j]
            _activate(cj, tc, True, d, e, bits, scale, u0, u1)
            acc = b_q[0]
            for j in range(n):
                hj = act[3 * n + j] * tc[j]
                tcs[b, t, j] = tc[j]
                prev[j] = hj
                hs[b, t + 1, j] = hj
                acc += hj * w_hq[j]
            q[b, t] = acc
        for j in range(n):
            h[b, j] = prev[j]
            c[b, j] = cs[b, seq_len, j]


@njit(**_NJIT)
def _lstm_train_step(
    p: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    step: int,
    lr: float,
    eps: float,
    x: np.ndarray,
    y: np.ndarray,
    h: np.ndarray,
    c: np.ndarray,
) -> float:
    """One Adam step of the LSTM on one window (as _train_step); h and c become the last state."""
    batch, seq_len, i_size = x.shape
    n = h.shape[1]
    g4 = 4 * n
    f32 = np.float32
    hs = np.empty((batch, seq_len + 1, n), f32)
    cs = np.empty((batch, seq_len + 1, n), f32)
    acts = np.empty((batch, seq_len, g4), f32)
    tcs = np.empty((batch, seq_len, n), f32)
    q = np.empty((batch, seq_len), f32)
    _lstm_forward(p, x, h, c, hs, cs, acts, tcs, q)
    w_x, w_h, bias, w_hq, b_q = _lstm_views(p, i_size, n)
    g = np.zeros_like(p)
    g_x, g_h, g_b, g_hq, g_bq = _lstm_views(g, i_size, n)
    scale32 = f32(2.0 / (batch * seq_len))
    one = f32(1.0)
    loss = 0.0
    da = np.empty(g4, f32)
    dh = np.empty(n, f32)  # what h_t gets back from step t+1
    dc = np.empty(n, f32)  # what c_t gets back from step t+1
    for b in range(batch):
        for j in range(n):
            dh[j] = 0.0
            dc[j] = 0.0
        for t in range(seq_len - 1, -1, -1):
            err = q[b, t] - y[b, t, 0]
            loss += float(err) * float(err)
            dq = scale32 * err
            g_bq[0] += dq
            for j in range(n):
                g_hq[j] += hs[b, t + 1, j] * dq
                ig, fg, gg, og = acts[b, t, j], acts[b, t, n + j], acts[b, t, 2 * n + j], acts[b, t, 3 * n + j]
                tc = tcs[b, t, j]
                dhj = dh[j] + dq * w_hq[j]
                dcj = dc[j] + dhj * og * (one - tc * tc)
                da[j] = dcj * gg * ig * (one - ig)
                da[n + j] = dcj * cs[b, t, j] * fg * (one - fg)
                da[2 * n + j] = dcj * ig * (one - gg * gg)
                da[3 * n + j] = dhj * tc * og * (one - og)
                dc[j] = dcj * fg
            for j in range(g4):
                g_b[j] += da[j]
            for i in range(i_size):
                xi = x[b, t, i]
                for j in range(g4):
                    g_x[i, j] += xi * da[j]
            for i in range(n):
                hi = hs[b, t, i]
                for j in range(g4):
                    g_h[i, j] += hi * da[j]
            for i in range(n):
                dh[i] = _dot(w_h, da, i)
    _adam(p, g, m, v, step, lr, eps)
    return loss / (batch * seq_len)


@njit(**_NJIT)
def _lstm_predict(p: np.ndarray, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> np.ndarray:
    batch, seq_len, _ = x.shape
    n = h.shape[1]
    hs = np.empty((batch, seq_len + 1, n), np.float32)
    cs = np.empty((batch, seq_len + 1, n), np.float32)
    acts = np.empty((batch, seq_len, 4 * n), np.float32)
    tcs = np.empty((batch, seq_len, n), np.float32)
    q = np.empty((batch, seq_len), np.float32)
    _lstm_forward(p, x, h, c, hs, cs, acts, tcs, q)
    return q.reshape((batch, seq_len, 1))


# ---- GRU: r = σ(r_x + r_h), z = σ(z_x + z_h), n = tanh(n_x + r n_h), h' = (1 - z) n + z h ----


@njit(**_NJIT)
def _gru_views(
    p: np.ndarray, i: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """W_x (i, 3n), W_h (n, 3n), b_x (3n,), b_h (3n,), W_hq (n,) and b_q (1,) as views of the flat buffer p."""
    g = 3 * n
    a, b = i * g, i * g + n * g
    return (
        p[:a].reshape((i, g)),
        p[a:b].reshape((n, g)),
        p[b : b + g],
        p[b + g : b + 2 * g],
        p[b + 2 * g : b + 2 * g + n],
        p[b + 2 * g + n :],
    )


@njit(**_NJIT)
def _gru_forward(
    p: np.ndarray, x: np.ndarray, h: np.ndarray, hs: np.ndarray, acts: np.ndarray, hn: np.ndarray, q: np.ndarray
) -> None:
    """Fill hs (batch, seq_len+1, hidden) from h, the gates acts (batch, seq_len, 3 hidden: r, z, n), hn
    (batch, seq_len, hidden: n_h, which r multiplies) and q (batch, seq_len); h becomes the last state."""
    batch, seq_len, i_size = x.shape
    n = h.shape[1]
    w_x, w_h, b_x, b_h, w_hq, b_q = _gru_views(p, i_size, n)
    ax = np.empty(3 * n, np.float32)
    ah = np.empty(3 * n, np.float32)
    pre = np.empty(3 * n, np.float32)  # the gates' pre-activations, then (act) their activations
    act = np.empty(3 * n, np.float32)
    d, e, bits = np.empty(3 * n), np.empty(3 * n), np.empty(3 * n, np.int64)  # _activate's scratch
    scale = bits.view(np.float64)
    u0, u2, u3 = np.uint64(0), np.uint64(2 * n), np.uint64(3 * n)  # the gate blocks' bounds, unsigned
    prev = np.empty(n, np.float32)
    for b in range(batch):
        for j in range(n):
            prev[j] = h[b, j]
            hs[b, 0, j] = prev[j]
        for t in range(seq_len):
            for j in range(3 * n):
                ax[j] = b_x[j]
                ah[j] = b_h[j]
            for i in range(i_size):
                xi = x[b, t, i]
                for j in range(3 * n):
                    ax[j] += xi * w_x[i, j]
            for i in range(n):
                hi = prev[i]
                for j in range(3 * n):
                    ah[j] += hi * w_h[i, j]
            for j in range(2 * n):
                pre[j] = ax[j] + ah[j]
            _activate(pre, act, False, d, e, bits, scale, u0, u2)  # r, z
            for j in range(n):
                pre[2 * n + j] = ax[2 * n + j] + act[j] * ah[2 * n + j]
            _activate(pre, act, True, d, e, bits, scale, u2, u3)  # n
            acc = b_q[0]
            for j in range(n):
                z, nj = act[n + j], act[2 * n + j]
                acts[b, t, j], acts[b, t, n + j], acts[b, t, 2 * n + j] = act[j], z, nj
                hn[b, t, j] = ah[2 * n + j]
                hj = (np.float32(1.0) - z) * nj + z * prev[j]
                prev[j] = hj
                hs[b, t + 1, j] = hj
                acc += hj * w_hq[j]
            q[b, t] = acc
        for j in range(n):
            h[b, j] = prev[j]


@njit(**_NJIT)
def _gru_train_step(
    p: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    step: int,
    lr: float,
    eps: float,
    x: np.ndarray,
    y: np.ndarray,
    h: np.ndarray,
) -> float:
    """One Adam step of the GRU on one window (as _train_step); h becomes the last state."""
    batch, seq_len, i_size = x.shape
    n = h.shape[1]
    g3 = 3 * n
    f32 = np.float32
    hs = np.empty((batch, seq_len + 1, n), f32)
    acts = np.empty((batch, seq_len, g3), f32)
    hn = np.empty((batch, seq_len, n), f32)
    q = np.empty((batch, seq_len), f32)
    _gru_forward(p, x, h, hs, acts, hn, q)
    w_x, w_h, b_x, b_h, w_hq, b_q = _gru_views(p, i_size, n)
    g = np.zeros_like(p)
    g_x, g_h, g_bx, g_bh, g_hq, g_bq = _gru_views(g, i_size, n)
    scale32 = f32(2.0 / (batch * seq_len))
    one = f32(1.0)
    loss = 0.0
    dx = np.empty(g3, f32)  # gradient of x W_x + b_x
    dw = np.empty(g3, f32)  # gradient of h W_h + b_h
    dh = np.empty(n, f32)  # what h_t gets back from step t+1
    for b in range(batch):
        for j in range(n):
            dh[j] = 0.0
        for t in range(seq_len - 1, -1, -1):
            err = q[b, t] - y[b, t, 0]
            loss += float(err) * float(err)
            dq = scale32 * err
            g_bq[0] += dq
            for j in range(n):
                g_hq[j] += hs[b, t + 1, j] * dq
                r, z, nj = acts[b, t, j], acts[b, t, n + j], acts[b, t, 2 * n + j]
                dhj = dh[j] + dq * w_hq[j]
                dan = dhj * (one - z) * (one - nj * nj)
                dar = dan * hn[b, t, j] * r * (one - r)
                daz = dhj * (hs[b, t, j] - nj) * z * (one - z)
                dx[j], dx[n + j], dx[2 * n + j] = dar, daz, dan
                dw[j], dw[n + j], dw[2 * n + j] = dar, daz, dan * r
                dh[j] = dhj * z  # the direct path h -> h'; the W_h path is added below
            for j in range(g3):
                g_bx[j] += dx[j]
                g_bh[j] += dw[j]
            for i in range(i_size):
                xi = x[b, t, i]
                for j in range(g3):
                    g_x[i, j] += xi * dx[j]
            for i in range(n):
                hi = hs[b, t, i]
                for j in range(g3):
                    g_h[i, j] += hi * dw[j]
            for i in range(n):
                dh[i] += _dot(w_h, dw, i)
    _adam(p, g, m, v, step, lr, eps)
    return loss / (batch * seq_len)


@njit(**_NJIT)
def _gru_predict(p: np.ndarray, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    batch, seq_len, _ = x.shape
    n = h.shape[1]
    hs = np.empty((batch, seq_len + 1, n), np.float32)
    acts = np.empty((batch, seq_len, 3 * n), np.float32)
    hn = np.empty((batch, seq_len, n), np.float32)
    q = np.empty((batch, seq_len), np.float32)
    _gru_forward(p, x, h, hs, acts, hn, q)
    return q.reshape((batch, seq_len, 1))


# each model's (train step, predict): their state arguments follow the model's state (h, or h and c)
KERNELS = {
    "rnn": (_train_step, _predict),
    "lstm": (_lstm_train_step, _lstm_predict),
    "gru": (_gru_train_step, _gru_predict),
}


class NumbaRNN(Backend):
    """The canonical models in float32 machine code: the floor the frameworks are measured against."""

    name = "numba"
    models = tuple(MODELS)

    def __init__(self, config: TaskConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
        shapes = config.weight_shapes
        sizes = [math.prod(shape) for shape in shapes.values()]
        self._offsets = dict(zip(shapes, np.cumsum([0, *sizes[:-1]]).tolist()))
        self.p = np.zeros(sum(sizes), np.float32)  # the canonical weights, flat and in their declared order
        self.m = np.zeros_like(self.p)
        self.v = np.zeros_like(self.p)
        self.step = 0
        # the carried state: one (batch, hidden) buffer per name in the model's state, changed in place
        self.state = tuple(
            np.zeros((config.batch_size, config.hidden_size), np.float32) for _ in MODELS[config.model].state
        )
        self._train, self._forward = KERNELS[config.model]

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        for k, start in self._offsets.items():  # copied into this backend's own buffer
            self.p[start : start + weights[k].size] = weights[k].ravel()
        self.m[:] = 0.0
        self.v[:] = 0.0
        self.step = 0

    def _get_weights(self) -> dict[str, np.ndarray]:
        out = {}
        for k, shape in self.config.weight_shapes.items():
            start = self._offsets[k]
            out[k] = self.p[start : start + math.prod(shape)].reshape(shape).copy()
        return out

    def reset_state(self) -> None:
        for s in self.state:
            s[:] = 0.0

    def _to_native(self, array: np.ndarray) -> Any:
        return array.copy()  # C-contiguous, and the caller's later changes do not reach it

    def _train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        self.step += 1
        return self._train(self.p, self.m, self.v, self.step, self.config.lr, self.config.adam_eps, x, y, *self.state)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return self._forward(self.p, x, *self.state)

    def info(self) -> Info:
        return Info(
            framework=f"numba {numba.__version__} (no framework)",
            kernel="the floor: forward, BPTT and Adam in one @njit function, float32, no framework",
            mode=self.mode,
            compile="numba njit, error_model=numpy, no fastmath, cache=False (compiled at the first call)",
        )
