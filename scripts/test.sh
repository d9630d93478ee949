#!/usr/bin/env bash
# The test suite. Installs what it needs into .venv, keeps Keras, Ray and matplotlib out of
# the home directory, and runs the tests that start Ray inside a loopback-only network
# namespace (../shared/bin/loopback-only, or `unshare --net` directly) where the OS allows.
# Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
SCRATCH="$(mktemp -d -t evonet-tests.XXXXXX)"
trap 'rm -rf "$SCRATCH"' EXIT
# numba keys a cached function on its own file only, and the fused snake kernel inlines the engine's
# functions from the files beside it: the cache directory is keyed by all of their sources
SNAKE_SRC="$(cat "$ROOT"/evonet/envs/snake/*.py "$ROOT"/evonet/nn.py | sha256sum | cut -c1-16)"
export KERAS_HOME="$SCRATCH/keras" MPLCONFIGDIR="$SCRATCH/mpl" RAY_TMPDIR="$SCRATCH/ray" \
       NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$ROOT/.venv/numba-cache/$SNAKE_SRC}" \
       SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy PYTHONDONTWRITEBYTECODE=1 \
       KERAS_BACKEND=tensorflow   # whatever the caller's environment says; the JAX pass below sets its own

status=0
python -m pytest -m "not ray" "$@" || status=$?
[ $status -eq 5 ] && status=0   # no test selected is not a failure of the suite

# The search's training tests (marked `backends`) again on a second Keras backend, JAX on the
# CPU (docs/search.md, "Keras backends"); XLA's optimizations off: compiling dominates these
# tiny trainings. About 3 minutes on the 2-core development machine.
if python -c 'import jax' 2>/dev/null; then
  jstatus=0
  KERAS_BACKEND=jax XLA_FLAGS="--xla_backend_optimization_level=0 ${XLA_FLAGS:-}" \
    python -m pytest -m "backends and not ray" "$@" || jstatus=$?
  [ $jstatus -eq 5 ] && jstatus=0
  [ $jstatus -ne 0 ] && status=$jstatus
else
  echo "skipping the JAX pass: jax is not installed (pip install -e '.[jax]')" >&2
fi

if ls tests/ray 2>/dev/null | grep -q '^test_'; then
  mkdir -p "$RAY_TMPDIR"   # short path: Ray's unix sockets live below it
  LOOPBACK=()
  if [ -x "$ROOT/../shared/bin/loopback-only" ] && "$ROOT/../shared/bin/loopback-only" true 2>/dev/null; then
    LOOPBACK=("$ROOT/../shared/bin/loopback-only")
  elif unshare --net --map-root-user true 2>/dev/null; then
    LOOPBACK=(unshare --net --map-root-user -- bash -c 'ip link set lo up && exec "$@"' loopback)
  fi
  if [ ${#LOOPBACK[@]} -gt 0 ]; then
    rstatus=0
    "${LOOPBACK[@]}" python -m pytest -m ray "$@" || rstatus=$?
    [ $rstatus -eq 5 ] && rstatus=0
    [ $rstatus -ne 0 ] && status=$rstatus
  else
    echo "skipping the Ray tests: this OS allows no loopback-only network namespace (unshare --net)" >&2
  fi
fi
exit $status
