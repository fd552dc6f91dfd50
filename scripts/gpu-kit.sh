#!/usr/bin/env bash
# Gathers what scripts/gpu-session.sh needs on a GPU machine into .gpu/ (git-ignored): the release binaries, real
# copies of the plugins (links do not travel), the demo's mixture and the generator's training checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
rel=${1:-target/release}
ckpt=${2:-models/default/checkpoint}
rm -rf .gpu && mkdir -p .gpu/bin/plugins .gpu/gan-1
cp "$rel"/subspace "$rel"/subspace-bench "$rel"/world "$rel"/libsubspace_test_nodes.so .gpu/bin/
cp -L "$rel"/plugins/*.so .gpu/bin/plugins/
cp results/mixture.json results/mixture.safetensors .gpu/
cp "$ckpt"/{g,g_ema,d}.safetensors "$ckpt"/state.json .gpu/gan-1/
du -sh .gpu
