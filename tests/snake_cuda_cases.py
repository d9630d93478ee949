"""The CUDA snake engine's test cases (tests/test_snake_cuda.py) and the script that plays
them under numba's CUDA simulator.

``NUMBA_ENABLE_CUDASIM=1 python -m tests.snake_cuda_cases`` plays every case with
:func:`evonet.envs.snake.cuda.play_mlp_cuda` (numba reads the variable when it is first
imported, hence a process of its own), the end-to-end paths (``evaluate_weights(device=
"cuda")``, the problem built from a config with ``snake.device: cuda``) and the device
resolution, and prints one JSON object; the test process plays the same games on the CPU's
fused engine and compares them game for game. Light: no pytest."""

from __future__ import annotations

import json
import sys
import time

import numpy as np

#: (hidden, activation, output activation) of the networks, per observation set (as in
#: tests/test_snake_fused.py: every activation, a softmax output, no hidden layer, two layers)
NETWORKS = [
    ("blog7", (9, 15), "tanh", "linear"),
    ("vision", (16,), "tanh", "linear"),
    ("blog7", (6,), "relu", "softmax"),
    ("vision", (5, 4), "sigmoid", "linear"),
    ("blog7", (8,), "elu", "tanh"),
    ("blog7", (8,), "selu", "linear"),
    ("vision", (8,), "leaky_relu", "relu"),
    ("blog7", (), "linear", "linear"),
    ("cycle", (8,), "tanh", "linear"),
    ("lookahead", (8,), "tanh", "linear"),
]


def _cases() -> list[dict]:
    cases = []
    for rules in ("classic", "theailearner"):
        for i, (obs, hidden, act, out) in enumerate(NETWORKS):
            cases.append({"id": f"{rules}-{obs}-{'-'.join(map(str, hidden)) or 'none'}-{act}-{out}",
                          "rules": rules, "board": 8 if rules == "classic" else 12, "observation": obs,
                          "hidden": hidden, "activation": act, "output_activation": out,
                          "weights": ["normal", 1 + i, 0.8], "nets": 3, "games": 2, "seed0": 1000 + 10 * i,
                          "threads_per_block": 4 if i % 2 else 128,
                          # theailearner's random networks often circle to the step limit: 400, not 2000
                          "max_steps": 400 if rules == "theailearner" else None})
    # long games: the heuristic-like blog7 network (scores above 10: many apples, long bodies,
    # the classic apple search over a full board) on both rule sets, and the flagship vision
    # network (a won game) with the flood fill's mark base restarted every 16 observations
    cases.append({"id": "classic10-blog7-heuristic-long", "rules": "classic", "board": 10, "observation": "blog7",
                  "hidden": (9, 15), "activation": "tanh", "output_activation": "linear",
                  "weights": ["heuristic"], "nets": 2, "games": 2, "seed0": 0, "threads_per_block": 128})
    cases.append({"id": "theailearner50-blog7-heuristic-long", "rules": "theailearner", "board": 50,
                  "observation": "blog7", "hidden": (9, 15), "activation": "tanh", "output_activation": "linear",
                  "weights": ["heuristic"], "nets": 1, "games": 2, "seed0": 7, "threads_per_block": 128})
    cases.append({"id": "classic10-vision-flagship-long-markreset", "rules": "classic", "board": 10,
                  "observation": "vision", "hidden": (16,), "activation": "tanh", "output_activation": "linear",
                  "weights": ["flagship"], "nets": 1, "games": 1, "seed0": 3, "threads_per_block": 128,
                  "mark_limit": 64})
    return cases


CASES = _cases()


def build(case: dict):
    """``(spec, weights (P, n_params) float32, rules, observation, seeds (P, G) uint64)`` of a case."""
    import dataclasses

    from evonet import nn
    from evonet.envs.snake.observations import OBSERVATIONS
    from evonet.envs.snake.rules import make_rules

    obs = case["observation"]
    spec = nn.MLPSpec(OBSERVATIONS[obs], tuple(case["hidden"]), 3, activation=case["activation"],
                      output_activation=case["output_activation"])
    kind = case["weights"][0]
    if kind == "normal":
        _, seed, scale = case["weights"]
        weights = np.random.default_rng(seed).normal(0.0, scale, size=(case["nets"], spec.n_params))
    else:
        from evonet.bench.snake import flagship_weights, heuristic_like_weights

        one = heuristic_like_weights() if kind == "heuristic" else flagship_weights(1)[0]
        weights = np.tile(one, (case["nets"], 1))
    seeds = np.arange(case["nets"] * case["games"], dtype=np.uint64).reshape(case["nets"], case["games"])
    rules = make_rules(case["rules"], case["board"])
    if case.get("max_steps"):
        rules = dataclasses.replace(rules, max_steps=int(case["max_steps"]))
    return spec, weights.astype(np.float32), rules, obs, seeds + np.uint64(case["seed0"])


def results_dict(res) -> dict:
    return {"scores": np.asarray(res.scores).tolist(), "steps": np.asarray(res.steps).tolist(),
            "deaths": np.asarray(res.deaths).tolist(), "won": np.asarray(res.won).tolist(),
            "env_steps": int(res.env_steps)}


#: the config of the end-to-end check (a problem built from it, one task of 3 genomes)
CONFIG = ["snake.rules=classic", "snake.board=8", "snake.observation=blog7", "network.hidden=[6]",
          "snake.games=3", "snake.device=cuda"]


def problem_fitness(device: str) -> list[float]:
    """Fitness of 3 seeded genomes through the problem built from :data:`CONFIG` (``snake.device``
    set to ``device``): the path of ``evonet run``."""
    from evonet import config
    from evonet.problems.snake.problem import SnakeWeightsProblem, evaluate_snake_task

    cfg = config.load(None, CONFIG[:-1] + [f"snake.device={device}"])
    problem = SnakeWeightsProblem.from_config(cfg)
    genomes = np.random.default_rng(5).normal(0.0, 1.0, size=(3, problem.n_genes))
    task = problem.make_tasks(genomes, 0, [0, 1, 2], 3)[0]
    assert task.device == device
    return [r.fitness for r in evaluate_snake_task(task)]


def main() -> int:
    from evonet.envs.snake import cuda
    from evonet.problems.snake.config import resolve_device
    from evonet.problems.snake.evaluate import evaluate_weights

    out = {"simulator": cuda.SIMULATOR, "status": list(cuda.cuda_status()),
           "resolve": {d: resolve_device(d) for d in ("auto", "cpu", "cuda")}, "cases": {}}
    for case in CASES:
        spec, weights, rules, obs, seeds = build(case)
        if case.get("mark_limit"):
            cuda._MARK_LIMIT = int(case["mark_limit"])
            cuda._kernel.cache_clear()
        start = time.perf_counter()
        res = cuda.play_mlp_cuda(spec, weights, rules, obs, seeds, threads_per_block=case["threads_per_block"])
        out["cases"][case["id"]] = {**results_dict(res), "seconds": time.perf_counter() - start}
        if case.get("mark_limit"):
            cuda._MARK_LIMIT = 1 << 30
            cuda._kernel.cache_clear()
    spec, weights, rules, obs, seeds = build(CASES[0])
    out["evaluate_weights"] = results_dict(evaluate_weights(spec, weights, rules, obs, seeds, device="cuda"))
    out["problem_fitness"] = problem_fitness("cuda")
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
