#!/usr/bin/env bash
# One prepared GPU session (the lent GPU machine has PyTorch, JAX with its CUDA plugin, pytest,
# pytest-benchmark 5.2.3 and matplotlib, no TensorFlow, no numba, no network): the GPU tests, then
# the CPU+GPU comparison of the PyTorch backends and jax-scan in every mode, then a GPU size sweep.
# At most six files land in $OUT (default ./gpu-out): nvidia-smi.txt, jax.txt, tests.txt, bench.txt,
# sweep.txt and runs.tgz, the run folders packed
# (the device tool brings back at most 8 files, 2 folders deep); unpack it into results/reference/
# afterwards. PY picks the interpreter (there: python3). Each step has its own time limit, so a
# hang cannot eat the machine's lease (at most 9 minutes in all, under the device tool's 10 per
# command); the benchmark is stopped with SIGINT, as Ctrl-C would, so what it measured is still
# saved (as an -incomplete run).
set -uo pipefail
OUT=${OUT:-gpu-out}
PY=${PY:-python3}
mkdir -p "$OUT"
RESULTS=$(mktemp -d)
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
# XLA aborts the whole process on a flag it does not know: try JAX alone first, and leave it out if it fails
BACKENDS=numpy,torch-rnn,torch-cell
TESTS=(tests/test_gpu.py tests/test_parity.py)
if timeout -k 10 60 "$PY" -c "import backends.jax_scan, jax; print(jax.devices())" >"$OUT/jax.txt" 2>&1; then
    BACKENDS=$BACKENDS,jax-scan
else
    echo "JAX failed to start: jax-scan left out" | tee -a "$OUT/jax.txt"
    TESTS+=(-k "not jax")
fi
timeout -k 10 150 "$PY" -m pytest "${TESTS[@]}" -q -rs --benchmark-skip -p no:cacheprovider \
    >"$OUT/tests.txt" 2>&1
echo "gpu tests exit $?" | tee -a "$OUT/tests.txt"
timeout -s INT -k 20 180 "$PY" -m pytest --benchmark-only -p no:cacheprovider --device=all --backends=$BACKENDS \
    --modes=all --seeds=10 --results-dir="$RESULTS" >"$OUT/bench.txt" 2>&1
echo "benchmark exit $?" | tee -a "$OUT/bench.txt"
# compiled modes recompile at every size (torch.compile took 70 s on that CPU): the sweep takes the
# modes that compile once or not at all, within its own budget
timeout -s INT -k 20 150 "$PY" -m benchmarks.sweep --device=all --backends=$BACKENDS --modes=eager,cuda-graph,jit,fast \
    --budget-s=110 --results-dir="$RESULTS" >"$OUT/sweep.txt" 2>&1
echo "sweep exit $?" | tee -a "$OUT/sweep.txt"
tar czf "$OUT/runs.tgz" -C "$RESULTS" .
tail -20 "$OUT/bench.txt"
