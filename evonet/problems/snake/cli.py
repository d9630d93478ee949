"""The snake problem's commands: ``evonet eval``, ``evonet watch``, ``evonet bench snake``."""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

from evonet.core.errors import ConfigError, EvonetError


def _positive_int(text: str) -> int:
    from evonet.cli import _positive_int as f

    return f(text)


def _nonneg_int(text: str) -> int:
    from evonet.cli import _nonneg_int as f

    return f(text)


def _positive_float(text: str) -> float:
    from evonet.cli import _positive_float as f

    return f(text)


def _hidden_layers(text: str) -> tuple[int, ...]:
    parts = [t.strip() for t in text.split(",")]
    try:
        units = tuple(int(t) for t in parts)
    except ValueError:
        units = ()
    if not units or any(u < 1 for u in units):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive layer sizes such as 9,15, got {text!r}")
    return units


def add_commands(sub, bsub, parser_class) -> None:
    """Add ``eval``, ``watch`` and ``bench snake`` to the ``evonet`` parser."""
    e = sub.add_parser("eval", help="benchmark table of a run's best agent on evaluation seeds")
    e.add_argument("run_dir", help="a run directory, an agent.json / agent.keras file, or a built-in policy: "
                   "'heuristic' (the blog's), 'random', or 'supervised' (the blog's 9-15 network trained on the "
                   "heuristic's games first)")
    e.add_argument("--rules", choices=["classic", "theailearner"],
                   help="rule set (default: the agent's; heuristic, random: classic; supervised: theailearner)")
    e.add_argument("--board", type=int, help="board side (default: the agent's; theailearner: 50)")
    e.add_argument("--games", type=_positive_int, default=1000, help="number of games (default 1000)")
    e.add_argument("--seed-start", type=_nonneg_int, default=0, help="first evaluation seed (default 0)")
    e.add_argument("--json", action="store_true", help="print JSON instead of the table")
    from evonet.problems.snake.train import SUPERVISED_DEFAULTS as SD

    sg = e.add_argument_group("supervised only (evonet eval supervised)")
    sg.add_argument("--hidden", type=_hidden_layers, help="hidden layer sizes (default 9,15: the blog's network)")
    sg.add_argument("--data-games", type=_positive_int,
                    help=f"heuristic games recorded as training data, on training seeds (default {SD['data_games']})")
    sg.add_argument("--epochs", type=_positive_int, help=f"training epochs at most (default {SD['epochs']}; "
                    f"early stopping after {SD['patience']} without progress, best epoch kept)")
    sg.add_argument("--batch-size", type=_positive_int, help=f"training batch size (default {SD['batch_size']})")
    sg.add_argument("--learning-rate", type=_positive_float, help=f"Adam's learning rate (default {SD['learning_rate']})")
    sg.add_argument("--seed", type=_nonneg_int, help="training seed: data games' seeds, initial weights, shuffling "
                    "(default 0)")
    sg.add_argument("--out", metavar="DIR", help="save the trained network as an agent (agent.json + agent.keras) "
                    "in DIR, a new or empty directory, for evonet eval DIR / evonet watch DIR")

    w = sub.add_parser("watch", help="watch a run's best agent play (pygame window, frames or GIF)")
    w.add_argument("run_dir", help="a run directory or an agent.json / agent.keras file")
    w.add_argument("--seed", type=_nonneg_int, help="evaluation seed of the game (default: a median game of the "
                   "agent: of its benchmark table in best/eval.json, else of evaluation seeds 0..100)")
    w.add_argument("--rules", choices=["classic", "theailearner"], help="rule set (default: the agent's)")
    w.add_argument("--board", type=int, help="board side (default: the agent's)")
    w.add_argument("--fps", type=_positive_int, default=15, help="frames per second in the window")
    w.add_argument("--frames", metavar="DIR", help="write a PNG per step into DIR (no window)")
    w.add_argument("--gif", metavar="FILE", help="write an animated GIF (no window)")
    w.add_argument("--max-frames", type=_positive_int, help="stop after this many steps")

    e.set_defaults(func=cmd_eval)
    w.set_defaults(func=cmd_watch)
    bs = bsub.add_parser("snake", help="env-steps/s: seed-style Keras loop vs the vectorized and fused engines")
    bs.add_argument("--json", action="store_true", help="print JSON only")
    bs.add_argument("--population", type=_positive_int, default=256)
    bs.add_argument("--games", type=_positive_int, default=8)
    bs.set_defaults(func=cmd_bench_snake)


BUILTIN_POLICIES = ("heuristic", "random", "supervised")
_SUPERVISED_OPTIONS = ("hidden", "data_games", "epochs", "batch_size", "learning_rate", "seed", "out")


def _resolve_rules(agent, rules: str | None, board: int | None):
    name = rules or agent.rules["name"]
    if board is None:
        if agent is not None and name == agent.rules["name"]:
            board = int(agent.rules["width"])
        else:
            board = 50 if name == "theailearner" else 10
    from evonet.envs.snake.rules import make_rules

    from evonet.envs.snake.observations import check_observation

    try:
        rules = make_rules(name, width=board, height=board)
        if agent is not None:  # the agent's observation set must exist on this board
            check_observation(agent.observation, rules.width, rules.height)
    except ValueError as exc:
        raise ConfigError(f"--board: {exc}") from None
    return rules


def cmd_eval(args) -> int:
    import numpy as np

    from evonet.core import seeding
    from evonet.problems.snake.evaluate import evaluate_weights, format_summary, summarize
    from evonet.problems.snake.agent import load_agent

    try:
        seeds = seeding.evaluation_game_seeds(args.games, args.seed_start)
    except ValueError as exc:
        raise ConfigError(f"--seed-start: {exc}") from None
    builtin = args.run_dir in BUILTIN_POLICIES and not Path(args.run_dir).exists()
    if not (builtin and args.run_dir == "supervised"):
        for name in _SUPERVISED_OPTIONS:
            if getattr(args, name) is not None:
                raise ConfigError(f"--{name.replace('_', '-')}: only for `evonet eval supervised`")
    elif args.run_dir == "supervised":
        return _eval_supervised(args, seeds)
    if builtin:
        from evonet.problems.snake.evaluate import play_policy, random_policy

        rules = _resolve_rules(None, args.rules or "classic", args.board)
        if args.run_dir == "heuristic":
            res = play_policy(rules, seeds, "heuristic")
        else:  # uniform random actions, drawn from a generator seeded by the first game seed
            res = play_policy(rules, seeds, random_policy(np.random.default_rng(args.seed_start)))
        scores, steps, won, observation = res.scores, res.steps, res.won, None
    else:
        agent = load_agent(args.run_dir)
        rules = _resolve_rules(agent, args.rules, args.board)
        res = evaluate_weights(agent.spec, np.asarray(agent.weights, np.float32)[None], rules, agent.observation,
                               seeds[None])
        scores, steps, won, observation = res.scores[0], res.steps[0], res.won[0], agent.observation
    summary = summarize(scores, steps, won, rules)
    desc = f"evaluation seeds {args.seed_start}..{args.seed_start + args.games - 1}"
    if args.json:
        who = {"policy": args.run_dir} if builtin else {"agent": args.run_dir, "observation": observation}
        print(json.dumps({"rules": rules.name, "board": f"{rules.width}x{rules.height}", "seeds": desc,
                          **who, **summary}, indent=2, default=float))
    else:
        print(format_summary(summary, rules, desc))
    return 0


def _eval_supervised(args, seeds) -> int:
    """``evonet eval supervised``: the seed blog's supervised baseline, trained, then scored."""
    from evonet.problems.snake.evaluate import format_summary, summarize
    from evonet.problems.snake.train import BLOG_HIDDEN, SUPERVISED_DEFAULTS, supervised_baseline

    rules = _resolve_rules(None, args.rules or "theailearner", args.board)  # checks --board before any work
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out: {out} exists and is not an empty directory")
    opts = {k: getattr(args, k) for k in ("data_games", "epochs", "batch_size", "learning_rate")}
    opts = {k: SUPERVISED_DEFAULTS[k] if v is None else v for k, v in opts.items()}
    seed = 0 if args.seed is None else args.seed
    try:
        sup = supervised_baseline(rules.name, rules.width, seeds, hidden=args.hidden or BLOG_HIDDEN, seed=seed,
                                  **opts)
    except ValueError as exc:
        raise EvonetError(f"supervised: {exc}") from None
    res, t = sup["results"], sup["training"]
    summary = summarize(res.scores[0], res.steps[0], res.won[0], rules)
    desc = f"evaluation seeds {args.seed_start}..{args.seed_start + args.games - 1}"
    rules_meta = {"name": rules.name, "width": rules.width, "height": rules.height}
    if out is not None:
        from evonet.problems.snake.agent import save_agent

        save_agent(out, sup["spec"], sup["weights"], t["observation"], rules_meta,
                   extra={"policy": "supervised", "training": t,
                          "eval": {"seeds": desc, **{k: summary[k] for k in ("games", "mean", "ci95", "max")}}})
        sup["model"].save(out / "model.keras")  # the trained Keras model itself, softmax output included
    if args.json:
        print(json.dumps({"rules": rules.name, "board": f"{rules.width}x{rules.height}", "seeds": desc,
                          "policy": "supervised", "training": t, **summary,
                          **({"out": str(out)} if out is not None else {})}, indent=2, default=float))
        return 0
    rows = [
        ("network", f"{t['network']} ({t['activation']}, softmax), Adam lr {t['learning_rate']:g}, "
                    f"batch {t['batch_size']}, {t['params']} parameters"),
        ("training data", f"{t['training_steps']} steps of the heuristic in {t['data_games']} games on training "
                          f"seeds (seed {t['seed']}), {rules.name} {rules.board}"),
        ("training", f"{t['epochs_run']} epochs (at most {t['epochs']}), imitation accuracy "
                     f"{t['imitation_accuracy']:.4f} on 10% held out, {t['train_seconds']:.1f} s"),
    ]
    width = max(15, *(len(k) for k, _ in rows))
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))
    print(format_summary(summary, rules, desc))
    if out is not None:
        print(f"agent saved in {out} (evonet eval {out}, evonet watch {out})")
    return 0


def cmd_watch(args) -> int:
    from evonet.envs.snake.render import play
    from evonet.problems.snake.agent import load_agent

    agent = load_agent(args.run_dir)
    rules = _resolve_rules(agent, args.rules, args.board)
    window = not (args.frames or args.gif)
    seed, chosen = args.seed, ""
    if seed is None:
        from evonet.problems.snake.agent import representative_seed

        seed, why = representative_seed(agent, rules)
        chosen = " (median game)"
        print(f"showing evaluation seed {seed}: {why}; watch another game with --seed N", flush=True)
    label = f"{Path(args.run_dir).resolve().name}  evaluation seed {seed}{chosen}"
    act = functools.partial(agent.act, rules=rules.name)  # observe under the rules played (lookahead)
    out = play(act, rules, seed, window=window, fps=args.fps, frames_dir=args.frames, gif=args.gif,
               max_frames=args.max_frames, label=label)
    print(f"{rules.name} {rules.width}x{rules.height}, evaluation seed {seed}{chosen}: score {out['score']} "
          f"in {out['steps']} steps ({out['death'] or 'stopped'})")
    return 0


def cmd_bench_snake(args) -> int:
    from evonet.bench.snake import bench_snake

    result = bench_snake(population=args.population, games=args.games)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0
