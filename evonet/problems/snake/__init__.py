"""The snake problem: weight vectors of a fixed network scored by the snake game.

``problem`` (:class:`SnakeWeightsProblem`), ``evaluate`` (the vectorized numba games),
``agent`` (saved agents: ``save_agent`` / ``load_agent``), ``train`` (networks trained on
the blog's heuristic games, the snake fitness of architecture search), ``config`` (the
``snake:`` section) and ``cli`` (``evonet eval``, ``evonet watch``, ``evonet bench snake``).
The game itself is :mod:`evonet.envs.snake`. See docs/snake.md.
"""
