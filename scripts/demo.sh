#!/usr/bin/env bash
# The main job on the embedded defaults: evolve a snake-playing Keras network with DEAP
# (experiments/snake_weights.yaml), then print its benchmark table. Extra arguments go to
# `evonet run`, e.g. scripts/demo.sh --set ga.generations=10
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
exec evonet run experiments/snake_weights.yaml "$@"
