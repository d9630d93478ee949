"""Snake agents: saving, loading and playing evolved networks.

An agent on disk is a pair of files in one directory:

* ``agent.keras``: the Keras model (a ``Sequential`` of ``Dense`` layers);
* ``agent.json``: what the model needs to play::

      {"format": "evonet-snake-agent", "version": 1,
       "observation": "<name in evonet.envs.snake.observations.OBSERVATIONS>",
       "rules": {"name": ..., "width": ..., "height": ...},
       "network": MLPSpec.to_dict(), ...extra keys}

A run directory keeps its final agent in ``RUN_DIR/best/``. :func:`load_agent` accepts
any of these paths. The loaded :class:`Agent` plays on the weights read from
``agent.keras`` in NumPy (no Keras call per step, and no TensorFlow import at all for a
plain dense model), with the fused engine's fixed-order forward pass
(:func:`evonet.envs.snake.fused.forward_fixed`), so a watched game is move for move the game
the evaluation played; :meth:`Agent.outputs` is :func:`evonet.nn.forward`.

Actions are relative to the heading: 0 turn left, 1 go straight, 2 turn right.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from evonet.core.errors import EvonetError
from evonet.core.store import _jsonable
from evonet.nn import MLPSpec, act_greedy, forward, unflatten

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = [
    "AGENT_FORMAT",
    "AGENT_VERSION",
    "AGENT_JSON",
    "AGENT_KERAS",
    "ACTIONS",
    "AgentLoadError",
    "Agent",
    "save_agent",
    "load_agent",
]

AGENT_FORMAT = "evonet-snake-agent"
AGENT_VERSION = 1
AGENT_JSON = "agent.json"
AGENT_KERAS = "agent.keras"
#: Meaning of the action indices returned by :meth:`Agent.act`.
ACTIONS = ("left", "straight", "right")
_RESERVED = ("format", "version", "observation", "rules", "network")


class AgentLoadError(EvonetError):
    """An agent path is missing, corrupt or not an evonet snake agent."""


def _one_line(text: object, limit: int = 200) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _observations() -> dict[str, int]:
    from evonet.envs.snake.observations import OBSERVATIONS

    return OBSERVATIONS


def _check_observation(observation: str, spec: MLPSpec) -> str | None:
    """Why ``observation`` cannot feed ``spec``, or None."""
    known = _observations()
    if observation not in known:
        return f"unknown observation {observation!r}; choose from {', '.join(known)}"
    if known[observation] != spec.n_inputs:
        return f"observation {observation!r} has {known[observation]} features but the network takes {spec.n_inputs} inputs"
    return None


def _check_rules(rules: Any) -> str | None:
    if not isinstance(rules, dict):
        return f"rules must be a mapping, got {type(rules).__name__}"
    for key in ("name", "width", "height"):
        if key not in rules:
            return f"rules: missing {key!r}"
    if not isinstance(rules["name"], str):
        return f"rules.name must be a string, got {rules['name']!r}"
    for key in ("width", "height"):
        v = rules[key]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            return f"rules.{key} must be an integer >= 1, got {v!r}"
    return None


@dataclass(eq=False)
class Agent:
    """A snake-playing network: observation encoding, rules it was trained on, weights.

    Attributes:
        observation: name of the observation encoding (see
            ``evonet.envs.snake.observations.OBSERVATIONS``).
        rules: ``{"name", "width", "height", ...}`` of the game it was trained on.
        spec: the network's architecture.
        weights: flat float32 weights, shape ``(spec.n_params,)``.
        path: the ``agent.json`` it was loaded from, if any.
        keras_path: the ``agent.keras`` it was loaded from, if any.
        info: every other key of ``agent.json`` (the ``extra`` of :func:`save_agent`).
    """

    observation: str
    rules: dict
    spec: MLPSpec
    weights: np.ndarray
    path: Path | None = None
    keras_path: Path | None = None
    info: dict = field(default_factory=dict)
    _model: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.weights = np.ascontiguousarray(self.weights, dtype=np.float32)
        if self.weights.shape != (self.spec.n_params,):
            raise ValueError(
                f"expected {self.spec.n_params} weights for {self.spec.sizes}, got shape {self.weights.shape}"
            )
        self.rules = dict(self.rules)
        self._layers = unflatten(self.spec, self.weights)
        from evonet.problems.snake.evaluate import pick_engine

        self._exact = pick_engine(self.spec) == "fused"  # act like the engine evaluate_weights picks

    @property
    def model(self) -> "keras.Model":
        """The Keras model (loaded from ``keras_path`` on first use, else built)."""
        if self._model is None:
            if self.keras_path is not None:
                from evonet.tf_utils import import_keras

                self._model = import_keras().saving.load_model(self.keras_path, compile=False)
            else:
                from evonet.genomes.weights import to_keras

                self._model = to_keras(self.spec, self.weights)
        return self._model

    def observe(
        self,
        body: Sequence[tuple[int, int]],
        apple: tuple[int, int] | None,
        heading: tuple[int, int],
        width: int,
        height: int,
        rules: str | None = None,
    ) -> np.ndarray:
        """The agent's observation vector (float32, ``(spec.n_inputs,)``) of a game state,
        computed under the rule set ``rules`` (default: the agent's own; ``lookahead`` is the
        one set that depends on it)."""
        from evonet.envs.snake.observations import observe

        return observe(self.observation, body, apple, heading, width, height, rules=rules or self.rules["name"])

    def outputs(self, obs: np.ndarray) -> np.ndarray:
        """Network outputs for observations of shape (..., n_inputs): (..., n_outputs)."""
        x = np.asarray(obs, dtype=np.float32)
        if x.shape[-1:] != (self.spec.n_inputs,):
            raise ValueError(f"expected observations with {self.spec.n_inputs} features, got shape {x.shape}")
        flat = x.reshape(-1, self.spec.n_inputs)
        return forward(self.spec, self._layers, flat).reshape(*x.shape[:-1], self.spec.n_outputs)

    def act(
        self,
        body: Sequence[tuple[int, int]],
        apple: tuple[int, int] | None,
        heading: tuple[int, int],
        width: int,
        height: int,
        rules: str | None = None,
    ) -> int:
        """The action for one game state: 0 left, 1 straight, 2 right (relative to heading).

        ``body`` lists the snake's cells ``(x, y)`` head first, ``apple`` is ``(x, y)``
        (``None`` once the game is won), ``heading`` the unit step ``(dx, dy)``; ``y``
        grows towards the south. The signature matches the ``agent_act`` callback of
        :func:`evonet.envs.snake.render.play`.
        Ties between outputs go to the lowest action index. ``rules`` names the rule set of
        the game being played when it is not the agent's own (see :meth:`observe`).
        """
        obs = self.observe(body, apple, heading, width, height, rules)
        return int(self.act_batch(obs))

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        """Actions for observations of shape (N, n_inputs): int64 array of shape (N,).

        A single observation vector (n_inputs,) gives a 0-d array.
        """
        x = np.asarray(obs, dtype=np.float32)
        if x.shape[-1:] != (self.spec.n_inputs,):
            raise ValueError(f"expected observations with {self.spec.n_inputs} features, got shape {x.shape}")
        flat = x.reshape(-1, self.spec.n_inputs)
        if self._exact:
            from evonet.envs.snake.fused import forward_fixed

            actions = np.argmax(forward_fixed(self.spec, self.weights, flat), axis=-1)
        else:
            actions = act_greedy(self.spec, self._layers, flat)
        return actions.astype(np.int64).reshape(x.shape[:-1])


# ----------------------------------------------------------------------------- saving


def _write_text_atomic(path: Path, text: str) -> None:
    from evonet.core.store import mkstemp_for

    fd, tmp = mkstemp_for(path, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_agent(
    directory: str | os.PathLike,
    spec: MLPSpec,
    flat: np.ndarray,
    observation: str,
    rules: dict,
    extra: dict | None = None,
) -> Path:
    """Write ``directory/agent.keras`` and ``directory/agent.json``; returns the json path.

    ``rules`` needs ``name`` (str), ``width`` and ``height`` (ints >= 1); further keys are
    kept. ``extra`` adds top-level keys to ``agent.json`` (fitness, run seed, ...) and
    may not use the reserved ones. Each file is written to a temporary file and moved
    into place with ``os.replace``; the model goes first, so an ``agent.json`` always has
    its ``agent.keras`` beside it.

    Raises:
        ValueError: bad weights, rules, observation (unknown, or feature count different
            from ``spec.n_inputs``) or extra keys.
    """
    from evonet.genomes.weights import save_keras

    flat = np.asarray(flat, dtype=np.float32)
    if flat.shape != (spec.n_params,):
        raise ValueError(f"expected {spec.n_params} weights for {spec.sizes}, got shape {flat.shape}")
    problem = _check_rules(rules) or _check_observation(observation, spec)
    if problem:
        raise ValueError(problem)
    extra = dict(extra or {})
    clash = [k for k in extra if k in _RESERVED]
    if clash:
        raise ValueError(f"extra may not set reserved agent.json keys: {', '.join(clash)}")
    rules_out = {"name": rules["name"], "width": int(rules["width"]), "height": int(rules["height"])}
    rules_out.update({k: v for k, v in rules.items() if k not in rules_out})
    doc = {
        "format": AGENT_FORMAT,
        "version": AGENT_VERSION,
        "observation": observation,
        "rules": rules_out,
        "network": spec.to_dict(),
        **extra,
    }
    text = json.dumps(doc, indent=2, default=_jsonable) + "\n"  # fails before any write
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_keras(directory / AGENT_KERAS, spec, flat)
    json_path = directory / AGENT_JSON
    _write_text_atomic(json_path, text)
    return json_path


# ----------------------------------------------------------------------------- loading


def _resolve(path: Path) -> Path:
    """The agent.json that ``path`` designates."""
    if not path.exists():
        raise AgentLoadError(f"{path}: no such file or directory")
    if path.is_dir():
        for candidate in (path / AGENT_JSON, path / "best" / AGENT_JSON):
            if candidate.is_file():
                return candidate
        raise AgentLoadError(f"{path}: no {AGENT_JSON} in it or in {path / 'best'}")
    if path.suffix == ".json":
        return path
    if path.suffix == ".keras":
        json_path = path.with_suffix(".json")
        if not json_path.is_file():
            raise AgentLoadError(f"{path}: no {json_path.name} next to it")
        return json_path
    raise AgentLoadError(f"{path}: expected a run directory, an agent directory, {AGENT_JSON} or {AGENT_KERAS}")


def load_agent(path: str | os.PathLike) -> Agent:
    """Load an agent from a run directory (its ``best/``), an agent directory, or the
    ``agent.json`` / ``agent.keras`` file itself.

    The weights come from the ``.keras`` file (read without TensorFlow for plain dense
    models); ``agent.json`` gives the observation, rules and expected network, which
    must match the model.

    Raises:
        AgentLoadError: one line, for missing, unreadable, corrupt or foreign files, a
            model that does not match ``agent.json``, or an unknown observation.
    """
    from evonet.genomes.weights import load_keras_weights

    json_path = _resolve(Path(path))
    try:
        text = json_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AgentLoadError(f"{json_path}: cannot read: {_one_line(e)}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise AgentLoadError(f"{json_path}: corrupt agent file (invalid JSON: {e.msg} at line {e.lineno})") from None
    if not isinstance(doc, dict) or "format" not in doc:
        raise AgentLoadError(f"{json_path}: not an evonet snake agent (no 'format' field)")
    if doc["format"] != AGENT_FORMAT:
        raise AgentLoadError(f"{json_path}: not an evonet snake agent (format {doc['format']!r}, expected {AGENT_FORMAT!r})")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise AgentLoadError(f"{json_path}: corrupt agent file (version {version!r})")
    if version > AGENT_VERSION:
        raise AgentLoadError(
            f"{json_path}: agent format version {version} is newer than this evonet reads ({AGENT_VERSION}); upgrade evonet"
        )
    for key in ("observation", "rules", "network"):
        if key not in doc:
            raise AgentLoadError(f"{json_path}: corrupt agent file (missing {key!r})")
    try:
        spec = MLPSpec.from_dict(doc["network"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise AgentLoadError(f"{json_path}: corrupt agent file (network: {_one_line(e)})") from None
    problem = _check_rules(doc["rules"])
    if problem is None and not isinstance(doc["observation"], str):
        problem = f"observation must be a string, got {doc['observation']!r}"
    if problem is None:
        problem = _check_observation(doc["observation"], spec)
    if problem:
        raise AgentLoadError(f"{json_path}: {problem}")

    keras_path = json_path.with_suffix(".keras")
    if not keras_path.is_file():
        raise AgentLoadError(f"{json_path}: missing {keras_path.name} next to it")
    try:
        keras_spec, weights = load_keras_weights(keras_path)
    except Exception as e:  # Keras raises many kinds for unreadable files
        raise AgentLoadError(f"{keras_path}: cannot load the model: {_one_line(e)}") from None
    if keras_spec.sizes != spec.sizes or keras_spec.activations() != spec.activations():
        raise AgentLoadError(
            f"{keras_path}: model {keras_spec.sizes} ({keras_spec.activation}/{keras_spec.output_activation}) does not"
            f" match {json_path.name} {spec.sizes} ({spec.activation}/{spec.output_activation})"
        )
    info = {k: v for k, v in doc.items() if k not in _RESERVED}
    return Agent(
        observation=doc["observation"],
        rules=doc["rules"],
        spec=spec,
        weights=weights,
        path=json_path,
        keras_path=keras_path,
        info=info,
    )


# ----------------------------------------------------------------------------- watch: which game

WATCH_FALLBACK_GAMES = 101  # evaluation seeds 0..100 when no per-seed table is stored (odd: a true median)


def median_game(scores) -> int:
    """Index of a median game of ``scores``: the lower median of the scores sorted with
    their index (ties: the smallest index), so its score is the median for an odd count."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.size == 0:
        raise ValueError("no games")
    order = np.lexsort((np.arange(scores.size), scores))
    return int(order[(scores.size - 1) // 2])


def _stored_scores(agent: Agent, rules) -> tuple[list, int, Path] | None:
    """The per-seed scores of the agent's benchmark table (``eval.json`` beside ``agent.json``,
    i.e. ``RUN_DIR/best/eval.json``) when it was played under ``rules``."""
    where = agent.path or agent.keras_path
    if where is None:
        return None
    path = Path(where).parent / "eval.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    scores, start, meta = doc.get("scores"), doc.get("seed_start", 0), doc.get("rules")
    if (not isinstance(scores, list) or not scores or not all(isinstance(x, (int, float)) for x in scores)
            or isinstance(start, bool) or not isinstance(start, int) or start < 0 or not isinstance(meta, dict)):
        return None
    if (meta.get("name"), meta.get("width"), meta.get("height")) != (rules.name, rules.width, rules.height):
        return None
    if doc.get("observation", agent.observation) != agent.observation:
        return None
    return scores, start, path


def representative_seed(agent: Agent, rules) -> tuple[int, str]:
    """The evaluation seed ``evonet watch`` shows by default, and why: the median game of
    the agent's benchmark table (``best/eval.json``, played under these rules) when it
    holds per-seed scores, else the median game of evaluation seeds 0..100, played now."""
    stored = _stored_scores(agent, rules)
    if stored is not None:
        scores, start, path = stored
        i = median_game(scores)
        return start + i, (f"a median game (score {scores[i]:g}) of its {len(scores)} benchmark games in "
                           f"{path.parent.name}/{path.name}")
    from evonet.core import seeding
    from evonet.problems.snake.evaluate import evaluate_weights

    seeds = seeding.evaluation_game_seeds(WATCH_FALLBACK_GAMES)
    res = evaluate_weights(agent.spec, agent.weights[None], rules, agent.observation, seeds[None])
    i = median_game(res.scores[0])
    return int(seeds[i]), (f"a median game (score {res.scores[0][i]:g}) of evaluation seeds "
                           f"0..{WATCH_FALLBACK_GAMES - 1}")
