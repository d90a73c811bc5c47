#!/usr/bin/env bash
# One prepared GPU session (the lent GPU machine has PyTorch, JAX with its CUDA plugin, pytest
# and pytest-benchmark, no TensorFlow, no network): the GPU tests, then the CPU+GPU comparison
# of the PyTorch backends and jax-scan. Everything lands in $OUT (default ./gpu-out); copy
# $OUT/results/runs/* to results/reference/ afterwards.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
python -m pytest tests/test_gpu.py tests/test_parity.py -q -rs --benchmark-skip -p no:cacheprovider \
    >"$OUT/tests.txt" 2>&1
echo "gpu tests exit $?" | tee -a "$OUT/tests.txt"
python -m pytest --benchmark-only -p no:cacheprovider --device=all \
    --backends=numpy,torch-rnn,torch-cell,torch-rnn-graph,torch-cell-graph,jax-scan \
    --results-dir="$OUT/results" >"$OUT/bench.txt" 2>&1
echo "benchmark exit $?" | tee -a "$OUT/bench.txt"
tail -20 "$OUT/bench.txt"
