#!/usr/bin/env bash
# The GPU check (docs/gpu.md): `evonet bench gpu` on a machine with an NVIDIA GPU, without
# TensorFlow and Ray, from a source checkout. Keras, DEAP and Gymnasium come from the wheels
# of scripts/gpu_wheels.sh (no network needed) when the machine's Python lacks them; Keras
# runs on JAX. Writes gpu_check.json and gpu_check.md into OUT (default ./gpu-check).
#   bash scripts/gpu_check.sh                 # the full check (about 8 minutes on an H200)
#   bash scripts/gpu_check.sh --quick         # a small one (the test suite runs it on CPUs)
# Extra arguments go to `evonet bench gpu`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
WHEELS="${EVONET_GPU_WHEELS:-$ROOT/.gpu-wheels}"
OUT="${OUT:-$ROOT/gpu-check}"
mkdir -p "$OUT"
SITE="$(mktemp -d -t evonet-gpu.XXXXXX)"
trap 'rm -rf "$SITE"' EXIT
missing="$("$PY" - <<'PYEOF'
import importlib.util
need = {"keras": "keras", "namex": "namex", "optree": "optree", "deap": "deap",
        "gymnasium": "gymnasium", "farama_notifications": "farama-notifications"}
print(" ".join(pip for mod, pip in need.items() if importlib.util.find_spec(mod) is None))
PYEOF
)"
if [ -n "$missing" ]; then
  [ -d "$WHEELS" ] || { echo "gpu_check: $missing missing and no wheels in $WHEELS (run scripts/gpu_wheels.sh where PyPI is reachable)" >&2; exit 2; }
  echo "gpu_check: installing $missing from $WHEELS into $SITE" >&2
  "$PY" -m pip install -q --no-index --no-deps --find-links "$WHEELS" --target "$SITE" $missing >&2
fi
export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND="${KERAS_BACKEND:-jax}" KERAS_HOME="$SITE/keras" MPLCONFIGDIR="$SITE/mpl"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$SITE/numba}" TF_CPP_MIN_LOG_LEVEL=3
DATA=()
[ -f "$WHEELS/mnist_5k.csv.gz" ] && DATA=(--data-path "$WHEELS/mnist_5k.csv.gz")
exec "$PY" -m evonet bench gpu --out "$OUT" "${DATA[@]}" "$@"
