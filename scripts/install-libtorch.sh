#!/usr/bin/env bash
# Installs libtorch 2.11.0 (from PyPI's torch==2.11.0 wheel) into a cache outside the repo and prints the torch
# package folder (it holds include/ and lib/). Re-uses the cache when it is complete. tch 0.24.0 needs exactly
# this libtorch version.
set -euo pipefail
version=2.11.0
cache="${SUBSPACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/subspace}"
dir="$cache/torch-$version"
marker="$dir/.complete"
if [ ! -f "$marker" ]; then
  echo "installing torch==$version into $dir (once; about 5 GB, a few minutes)" >&2
  rm -rf "$dir"
  mkdir -p "$cache"
  if python3 -m venv "$dir" >&2 2>/dev/null; then
    "$dir/bin/pip" install --quiet --disable-pip-version-check "torch==$version" >&2
  else
    # Debian without python3-venv: a plain --target install works as well.
    rm -rf "$dir"
    python3 -m pip install --quiet --disable-pip-version-check --target "$dir/site-packages" "torch==$version" >&2
  fi
  touch "$marker"
fi
found=$(find "$dir" -maxdepth 5 -type f -path '*/torch/version.py' | head -n 1)
[ -n "$found" ] || { echo "torch not found under $dir; remove it and retry" >&2; exit 1; }
dirname "$found"
