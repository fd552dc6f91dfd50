#!/usr/bin/env bash
# Prints a Python that has scikit-learn, for the bench's comparison section (examples/bench/sklearn_reference.py):
# the libtorch venv's (scripts/install-libtorch.sh), with scikit-learn installed into it from PyPI once.
set -euo pipefail
version=2.11.0
sklearn=1.9.1
cache="${SUBSPACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/subspace}"
dir="$cache/torch-$version"
if [ -x "$dir/bin/python" ]; then
  python="$dir/bin/python"
  if ! "$python" -c "import sklearn" 2>/dev/null; then
    echo "installing scikit-learn==$sklearn into $dir (once)" >&2
    "$dir/bin/pip" install --quiet --disable-pip-version-check "scikit-learn==$sklearn" >&2
  fi
else
  # Debian without python3-venv: libtorch was installed with --target; so is scikit-learn, behind a wrapper.
  python="$dir/bench-python"
  if [ ! -x "$python" ]; then
    echo "installing scikit-learn==$sklearn into $dir/site-packages (once)" >&2
    python3 -m pip install --quiet --disable-pip-version-check --target "$dir/site-packages" "scikit-learn==$sklearn" >&2
    printf '#!/bin/sh\nPYTHONPATH="%s/site-packages${PYTHONPATH:+:$PYTHONPATH}" exec python3 "$@"\n' "$dir" > "$python"
    chmod +x "$python"
  fi
fi
echo "$python"
