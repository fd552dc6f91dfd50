#!/usr/bin/env bash
# Runs examples/presets/gpu-check.json with --device cuda using only the built binaries (target/release) and the
# machine's own PyTorch 2.11 libraries, and prints the device of every tensor output and the node timings.
# On the GPU machines: LD_LIBRARY_PATH=/opt/torch/.venv/lib/python3.12/site-packages/torch/lib scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release}"
out="${OUT:-/tmp}/gpu-check"
mkdir -p "$out"
echo "== libraries the host resolves"
ldd "$bin/subspace" | grep -E "libtorch_cuda|libc10_cuda|libcudart" || echo "libtorch_cuda is NOT linked"
echo "== run on cuda"
"$bin/subspace" --device cuda run examples/presets/gpu-check.json --out "$out"
echo "== the same graph on cpu, for comparison"
"$bin/subspace" --device cpu run examples/presets/gpu-check.json --out "$out/cpu"
