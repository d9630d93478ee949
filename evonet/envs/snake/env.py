"""The snake game as a Gymnasium environment: ``SnakeEnv`` and ``register_envs()``.

The env wraps the plain-Python reference game (:class:`~evonet.envs.snake.reference.SnakeGame`),
so a seed and a list of actions give exactly the trajectory of the reference game (and of
the batched engine, which is tested against it). Evolution itself does not go through this
class (it uses the batched engine); the env is for other tools, for checks and for viewing.

Episode end, following Gymnasium's terminated / truncated split:

* ``terminated``: the snake died (wall or body; under ``theailearner`` the "blocked ahead"
  check too) or won (no free cell left for an apple). These are states of the game.
* ``truncated``: the game ended by a clock: starvation (``classic``: W*H consecutive steps
  without eating) or the step limit (``theailearner``: 2000 steps). Neither counter is part
  of the observation, so for a learner these are time limits, after which the value of the
  last state should be bootstrapped, not taken as zero.

``info["death"]`` names the cause either way (as the reference game reports it).

Example::

    import gymnasium as gym
    from evonet.envs.snake.env import register_envs

    register_envs()
    env = gym.make("evonet/Snake-v0", rules="classic", width=10, height=10, observation="blog7")
    obs, info = env.reset(seed=0)          # seed 0 = evaluation game 0 of the benchmark
    terminated = truncated = False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    print(info["score"], info["steps"], info["death"])
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from evonet.envs.snake.observations import check_observation, n_features, observe
from evonet.envs.snake.reference import DEATHS, SnakeGame
from evonet.envs.snake.rules import Rules, make_rules

ENV_ID = "evonet/Snake-v0"

#: Deaths that end the game by a clock rather than by the snake's state (-> truncated).
TRUNCATING_DEATHS = frozenset({"starved", "step_limit"})
assert TRUNCATING_DEATHS <= set(DEATHS)

_SEED_BOUND = 2**64  # game seeds are uint64


def observation_bounds(observation: str, rules: Rules) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise ``(low, high)`` (float32) of observation set ``observation`` under ``rules``.

    The bounds follow the definitions in :mod:`evonet.envs.snake.observations`: flags,
    inverse distances and region fractions lie in [0, 1], unit vectors in [-1, 1]. The one
    feature without a rule-independent bound is the length / (W*H) (``vision``, ``cycle``): under
    ``theailearner`` (apples may land on the body) the snake can outgrow a small board, so
    its bound there is ``max(1, (start length + max_steps) / (W*H))``.
    """
    n = n_features(observation)
    low = np.zeros(n, dtype=np.float64)
    high = np.ones(n, dtype=np.float64)
    if observation == "blog7":
        low[3:7] = -1.0  # apple direction, heading
    elif observation in ("vision", "cycle"):
        if observation == "vision":
            low[30:34] = -1.0  # apple and tail directions in the snake's frame
        if not rules.classic:
            assert rules.max_steps is not None  # theailearner always has a step limit
            high[-1] = max(1.0, (rules.start_length + rules.max_steps) / rules.n_cells)
    elif observation == "lookahead":
        low[3:5] = -1.0  # the apple's direction in the snake's frame
    else:  # pragma: no cover - a new observation set needs its bounds written here
        raise NotImplementedError(f"no observation bounds for {observation!r}")
    return low.astype(np.float32), high.astype(np.float32)


class SnakeEnv(gym.Env[np.ndarray, np.int64]):
    """Snake (the benchmark's rule sets) as a Gymnasium environment.

    Args:
        rules: ``"classic"`` or ``"theailearner"``, or a :class:`~evonet.envs.snake.rules.Rules`
            (then ``width`` and ``height`` are ignored).
        width, height: the board; ``None`` takes the rule set's default (10 x 10 classic,
            50 x 50 theailearner). ``height`` defaults to ``width``.
        observation: the observation set (a key of
            :data:`~evonet.envs.snake.observations.OBSERVATIONS`: ``"blog7"`` or ``"vision"``),
            see :mod:`evonet.envs.snake.observations`.
        render_mode: ``None``, ``"rgb_array"`` (``render()`` returns an ``(H, W, 3)`` uint8
            frame) or ``"human"`` (a pygame window, updated on every ``reset`` and ``step``).

    Spaces: actions ``Discrete(3)`` (0 turn left, 1 straight, 2 turn right, relative to the
    heading); observations a float32 ``Box`` with the observation set's bounds.

    Reward: the change in score on the step, i.e. 1.0 when an apple is eaten, else 0.0
    (also under ``theailearner``, whose score counts the initial length).

    Seeding: ``reset(seed=s)`` plays game seed ``s`` (the same game as
    ``SnakeGame(rules, s)``; evaluation seeds are 0, 1, ...). ``reset()`` without a seed
    draws the game seed from ``self.np_random`` (a uint64), so a seeded reset followed by
    unseeded ones gives a reproducible sequence of games.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 15}

    def __init__(
        self,
        rules: str | Rules = "classic",
        width: int | None = None,
        height: int | None = None,
        observation: str = "blog7",
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(rules, Rules):
            self.rules = rules
        else:
            self.rules = make_rules(rules, width, height)
        check_observation(observation, self.rules.width, self.rules.height)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.observation = observation
        self.render_mode = render_mode
        low, high = observation_bounds(observation, self.rules)
        self.observation_space = spaces.Box(low=low, high=high, dtype=np.float32)
        self.action_space = spaces.Discrete(3)
        self.game_seed: int | None = None
        self._game: SnakeGame | None = None
        self._renderer: Any = None  # a SnakeRenderer, made on the first render

    # -- Gymnasium API ------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new game: game seed ``seed``, or one drawn from ``self.np_random``."""
        if seed is not None:
            seed = int(seed)  # also numpy integers, e.g. from evonet.seeding.evaluation_game_seeds
        super().reset(seed=seed)
        if seed is not None:
            game_seed = seed
        else:
            game_seed = int(self.np_random.integers(0, _SEED_BOUND, dtype=np.uint64))
        self.game_seed = game_seed
        self._game = SnakeGame(self.rules, game_seed)
        if self.render_mode == "human":
            self._render_frame()
        return self._obs(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """One move: ``action`` 0 (turn left), 1 (straight) or 2 (turn right)."""
        game = self._game
        if game is None:
            raise RuntimeError("call reset() before step()")
        if game.done:
            raise RuntimeError("the game is over; call reset() to start a new one")
        a = int(action)
        if not self.action_space.contains(a):
            raise ValueError(f"invalid action {action!r}; actions are 0, 1, 2")
        before = game.score
        game.step(a)
        reward = float(game.score - before)
        terminated = truncated = False
        if game.done:
            truncated = game.death in TRUNCATING_DEATHS
            terminated = not truncated
        if self.render_mode == "human":
            self._render_frame()
        return self._obs(), reward, terminated, truncated, self._info()

    def render(self) -> np.ndarray | None:
        """``rgb_array``: the current frame, ``(H, W, 3)`` uint8. ``human``: draw the window."""
        if self.render_mode is None:
            gym.logger.warn(
                "render() was called without a render_mode; "
                'make the env with render_mode="rgb_array" or "human"'
            )
            return None
        if self._game is None:
            raise RuntimeError("call reset() before render()")
        frame = self._render_frame()
        return frame if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        """Close the window (if any). Safe to call more than once."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # -- helpers ------------------------------------------------------------------------------

    @property
    def game(self) -> SnakeGame:
        """The underlying reference game (after ``reset``)."""
        if self._game is None:
            raise RuntimeError("call reset() first")
        return self._game

    def _obs(self) -> np.ndarray:
        g = self.game
        obs = observe(self.observation, g.body, g.apple, g.heading, self.rules.width, self.rules.height,
                      rules=self.rules.name)
        return np.array(obs, dtype=np.float32, copy=True)

    def _info(self) -> dict[str, Any]:
        g = self.game
        return {
            "score": int(g.score),
            "steps": int(g.steps),
            "length": len(g.body),
            "death": g.death,
            "won": bool(g.won),
            "game_seed": self.game_seed,
        }

    def _render_frame(self) -> np.ndarray | None:
        from evonet.envs.snake.render import SnakeRenderer

        if self._renderer is None:
            self._renderer = SnakeRenderer(
                self.rules.width,
                self.rules.height,
                headless=self.render_mode != "human",
                ruleset=self.rules.name,
            )
        renderer = self._renderer
        renderer.draw(self.game.snapshot(), f"seed {self.game_seed}   |   obs {self.observation}")
        if self.render_mode == "human":
            renderer.events()  # keep the window responsive
            renderer.tick(self.metadata["render_fps"])
            return None
        return renderer.to_array()


def register_envs() -> None:
    """Register ``"evonet/Snake-v0"`` with Gymnasium (does nothing if it already is)."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="evonet.envs.snake.env:SnakeEnv")
