#!/usr/bin/env bash
# One prepared GPU session (the lent GPU machine has PyTorch with its Triton, JAX with its CUDA plugin,
# pytest, pytest-benchmark 5.2.3 and matplotlib, no TensorFlow, no numba, no network): the Triton floor's
# parity (compiled on the GPU, and in the interpreter) and the launch+sync probe first, then the GPU tests,
# the CPU+GPU comparison of the PyTorch backends, jax-scan and the Triton floor in every mode, then a GPU
# size sweep. At most seven files land in $OUT (default ./gpu-out): nvidia-smi.txt, jax.txt, tests.txt
# (the triton tests' output first), probe.txt, bench.txt, sweep.txt and runs.tgz, the run folders packed
# (the device tool brings back at most 8 files, 2 folders deep); unpack it into results/reference/
# afterwards. PY picks the interpreter (there: python3). Each step has its own time limit, so a hang
# cannot eat the machine's lease (45+60+45+120+165+100 s: under 9 minutes in all, under the device tool's
# 10 per command); the benchmark is stopped with SIGINT, as Ctrl-C would, so what it measured is still
# saved (as an -incomplete run).
set -uo pipefail
OUT=${OUT:-gpu-out}
PY=${PY:-python3}
mkdir -p "$OUT"
RESULTS=$(mktemp -d)
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
# Every case runs in a worker process of its own: if XLA aborts (it does on a flag it does not know), only
# jax-scan's rows fail, with the reason, and the run goes on. jax.txt says what JAX sees, for the record.
BACKENDS=numpy,torch-rnn,torch-cell,jax-scan
MODES=eager,cuda-graph,jit,fast  # the sweep's: those that do not recompile at every size
TESTS=(tests/test_gpu.py tests/test_parity.py)
timeout -k 10 45 "$PY" -c "import jax; print(jax.devices())" >"$OUT/jax.txt" 2>&1
echo "jax exit $?" >>"$OUT/jax.txt"
# The Triton floor: its parity compiled on this GPU (and in the interpreter) before anything else loads the GPU
if "$PY" -c "import triton" >/dev/null 2>&1; then
    BACKENDS=$BACKENDS,triton
    MODES=$MODES,kernel
    timeout -k 10 60 "$PY" -m pytest tests/test_triton.py -q -rs --benchmark-skip -p no:cacheprovider \
        >"$OUT/tests.txt" 2>&1
    echo "triton tests exit $?" | tee -a "$OUT/tests.txt"
    # What one kernel launch and one synchronisation cost here (the floor's own limit), and where the floor's
    # step goes: wall time of a step, GPU time of its kernel, and the step at each warp count
    # (a file, not stdin: triton.jit reads the kernel's source from it)
    PROBE=$(mktemp --suffix=.py)
    cat >"$PROBE" <<'EOF'
import statistics
import time

import torch
import triton

import backends
from backends import TaskConfig
from backends.task import window


@triton.jit
def _empty(p):
    pass


def us(samples):
    return f"{statistics.median(samples) * 1e6:8.2f} us (q1 {sorted(samples)[len(samples) // 4] * 1e6:.2f})"


def timed(call, n=2000, warm=200):
    """Seconds per call, one sample a call (each call waits for the GPU itself)."""
    for _ in range(warm):
        call()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def launch_only(n=2000):
    """The host's side of a launch: the time to return from it, the GPU drained between launches."""
    out = []
    for _ in range(n):
        torch.cuda.synchronize()
        start = time.perf_counter()
        _empty[(1,)](buf)
        out.append(time.perf_counter() - start)
    return out


def run(label, part):
    try:
        part()
    except Exception as err:  # one part failing must not hide the others
        print(f"{label}: failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")


print(f"triton {triton.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name()}")
buf = torch.zeros(1, device="cuda")
_empty[(1,)](buf)
torch.cuda.synchronize()
run("sync", lambda: print("torch.cuda.synchronize(), nothing queued:", us(timed(torch.cuda.synchronize))))
run("launch", lambda: print("empty Triton kernel, launch only:        ", us(launch_only())))
run("launch+sync", lambda: print("empty Triton kernel + synchronize():     ",
                                 us(timed(lambda: (_empty[(1,)](buf), torch.cuda.synchronize())))))
run("launch+item", lambda: print("empty Triton kernel + 1-float .item():   ",
                                 us(timed(lambda: (_empty[(1,)](buf), buf.item())))))


def floor(config, warps):
    b = backends.load("triton", config, "cuda", num_warps=warps)
    x, y = window(config, 0)
    px, py = b.prepare(x, "x"), b.prepare(y, "y")
    wall = timed(lambda: b.train_step(px, py), n=1000, warm=50)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(200):  # back to back: the GPU's time per kernel where it exceeds the launch rate
        b._launch(px.value, py.value, True, 0.02, 1.0)
    end.record()
    end.synchronize()
    gpu = start.elapsed_time(end) / 200 * 1000
    size = f"{config.hidden_size}x{config.batch_size}x{config.seq_len}"
    print(f"floor {size} {b.num_warps:2d} warps: step {us(wall)}; 200 kernels back to back {gpu:.2f} us each")


for config in (TaskConfig(), TaskConfig(hidden_size=64, batch_size=4, seq_len=20)):
    for warps in (0, 1, 2, 4, 8, 16):  # 0: the backend's default
        run(f"floor {config.hidden_size} {warps}", lambda config=config, warps=warps: floor(config, warps))


def profile():
    config = TaskConfig()
    b = backends.load("triton", config, "cuda")
    x, y = window(config, 0)
    px, py = b.prepare(x, "x"), b.prepare(y, "y")
    for _ in range(20):
        b.train_step(px, py)
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(100):
            b.train_step(px, py)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


run("profile", profile)
EOF
    PYTHONPATH=$PWD timeout -k 10 45 "$PY" "$PROBE" >"$OUT/probe.txt" 2>&1
    echo "probe exit $?" | tee -a "$OUT/probe.txt"
else
    echo "triton does not import: the Triton floor left out" | tee "$OUT/tests.txt" "$OUT/probe.txt"
fi
timeout -k 10 120 "$PY" -m pytest "${TESTS[@]}" -q -rs --benchmark-skip -p no:cacheprovider >>"$OUT/tests.txt" 2>&1
echo "gpu tests exit $?" | tee -a "$OUT/tests.txt"
timeout -s INT -k 20 165 "$PY" -m pytest --benchmark-only -p no:cacheprovider --device=all --backends=$BACKENDS \
    --modes=all --seeds=10 --results-dir="$RESULTS" >"$OUT/bench.txt" 2>&1
echo "benchmark exit $?" | tee -a "$OUT/bench.txt"
# compiled modes recompile at every size (torch.compile took 70 s on that CPU): the sweep takes the
# modes that compile once or not at all (the Triton kernel compiles once a size, in a second or two)
timeout -s INT -k 20 100 "$PY" -m benchmarks.sweep --device=all --backends=$BACKENDS --modes=$MODES \
    --budget-s=70 --results-dir="$RESULTS" >"$OUT/sweep.txt" 2>&1
echo "sweep exit $?" | tee -a "$OUT/sweep.txt"
tar czf "$OUT/runs.tgz" -C "$RESULTS" .
tail -20 "$OUT/bench.txt"
