"""The ``evonet`` command line: run, resume, report, eval, watch, bench, config.

Every user error (bad config, bad argument, unreadable run directory) prints one line,
``evonet: error: ...``, and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from evonet.core.errors import ConfigError, EvonetError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints usage + message)
        raise ConfigError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _hidden_layers(text: str) -> tuple[int, ...]:
    parts = [t.strip() for t in text.split(",")]
    try:
        units = tuple(int(t) for t in parts)
    except ValueError:
        units = ()
    if not units or any(u < 1 for u in units):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive layer sizes such as 9,15, got {text!r}")
    return units


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="evonet", description="Neuroevolution and architecture search with DEAP, Keras and Ray.")
    from evonet import __version__

    p.add_argument("--version", action="version", version=f"evonet {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run an experiment (no CONFIG: the embedded defaults)")
    r.add_argument("config", nargs="?", help="experiment YAML, e.g. experiments/snake_weights.yaml")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set ga.population=64 (repeatable)")
    r.add_argument("--out", help="run directory (default: runs/NAME-seedS-TIMESTAMP)")
    r.add_argument("--quiet", action="store_true", help="no per-generation lines")
    r.add_argument("--address", help="run the evaluations on this Ray cluster (HOST:PORT); sets executor.kind=ray")
    r.add_argument("--workers", type=_positive_int, help="number of parallel workers (executor.workers)")

    rs = sub.add_parser("resume", help="continue a stopped, crashed or finished run from its latest checkpoint")
    rs.add_argument("run_dir", help="the run directory")
    rs.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="change a setting, e.g. --set ga.generations=200 (repeatable; see --force)")
    rs.add_argument("--force", action="store_true",
                    help="accept changed settings that change the results (seed, population, operators, ...)")
    rs.add_argument("--checkpoint", metavar="NAME", help="resume from this checkpoint instead of the latest, e.g. gen-000010")
    rs.add_argument("--quiet", action="store_true", help="no per-generation lines")
    rs.add_argument("--address", help="run the evaluations on this Ray cluster (HOST:PORT); sets executor.kind=ray")
    rs.add_argument("--workers", type=_positive_int, help="number of parallel workers (executor.workers)")

    rp = sub.add_parser("report", help="plots and a markdown summary of a run (finished, running or crashed)")
    rp.add_argument("run_dir", help="the run directory")
    rp.add_argument("--out", help="output directory (default RUN_DIR/report)")

    c = sub.add_parser("config", help="print the resolved config, or document every field")
    c.add_argument("config", nargs="?", help="experiment YAML (default: the embedded defaults)")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    c.add_argument("--fields", action="store_true", help="list every field with its type, default and doc")
    c.add_argument("--operators", action="store_true", help="list the DEAP operators and their parameters")

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

    b = sub.add_parser("bench", help="benchmarks")
    bsub = b.add_subparsers(dest="bench", required=True, parser_class=_Parser)
    bs = bsub.add_parser("snake", help="env-steps/s: seed-style Keras loop vs the vectorized engine")
    bs.add_argument("--json", action="store_true", help="print JSON only")
    bs.add_argument("--population", type=_positive_int, default=256)
    bs.add_argument("--games", type=_positive_int, default=8)
    br = bsub.add_parser("ray", help="Keras-training evals/s: in-process vs Ray on 1 and 2 workers (docs/ray.md)")
    br.add_argument("--json", action="store_true", help="print JSON only")
    br.add_argument("--evals", type=_positive_int, default=8, help="evaluations per executor (default 8)")
    br.add_argument("--epochs", type=_positive_int, help="training epochs per evaluation (default 48: about 2 s)")
    bq = bsub.add_parser("search", help="evonet's GA vs KerasTuner RandomSearch on digits (docs/search.md)")
    bq.add_argument("--json", action="store_true", help="print JSON only")
    bq.add_argument("--space", default="dense_classifier", help="search space (default dense_classifier)")
    bq.add_argument("--evaluations", type=_positive_int, default=40, help="trainings per method and seed (default 40)")
    bq.add_argument("--population", type=_positive_int, default=8, help="evonet's population (default 8)")
    bq.add_argument("--seeds", type=_positive_int, default=3, help="seeds per method (default 3)")
    bq.add_argument("--epochs", type=_positive_int, default=20, help="epochs cap per training (default 20)")
    return p


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

    try:
        return make_rules(name, width=board, height=board)
    except ValueError as exc:
        raise ConfigError(f"--board: {exc}") from None


def cmd_run(args) -> int:
    from evonet import config

    overrides = list(args.overrides)
    if args.address:
        overrides += ["executor.kind=ray", f"executor.address={args.address}"]
    if args.workers:
        overrides += [f"executor.workers={args.workers}"]
    cfg = config.load(args.config, overrides)
    from evonet.core.runner import run_experiment

    stream = open(os.devnull, "w") if args.quiet else sys.stdout
    run_experiment(cfg, args.out, stream=stream)
    return 0


def cmd_resume(args) -> int:
    overrides = list(args.overrides)
    if args.address:
        overrides += ["executor.kind=ray", f"executor.address={args.address}"]
    if args.workers:
        overrides += [f"executor.workers={args.workers}"]
    from evonet.core.runner import resume_experiment

    stream = open(os.devnull, "w") if args.quiet else sys.stdout
    resume_experiment(args.run_dir, overrides, force=args.force, stream=stream, checkpoint=args.checkpoint)
    return 0


def cmd_report(args) -> int:
    from evonet.report import write_report

    path = write_report(args.run_dir, args.out)
    print(f"wrote {path}")
    return 0


def cmd_config(args) -> int:
    from evonet import config

    if args.operators:
        from evonet.operators import describe_operators

        print(describe_operators())
        return 0
    if args.fields:
        for key, tp, default, text in config.describe():
            print(f"{key:28s} {tp:40s} default {default:18s} {text}")
        return 0
    print(config.dump_yaml(config.load(args.config, args.overrides)), end="")
    return 0


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
    out = play(agent.act, rules, seed, window=window, fps=args.fps, frames_dir=args.frames, gif=args.gif,
               max_frames=args.max_frames, label=label)
    print(f"{rules.name} {rules.width}x{rules.height}, evaluation seed {seed}{chosen}: score {out['score']} "
          f"in {out['steps']} steps ({out['death'] or 'stopped'})")
    return 0


def cmd_bench(args) -> int:
    if args.bench == "snake":
        from evonet.bench.snake import bench_snake

        result = bench_snake(population=args.population, games=args.games)
        print(json.dumps(result, indent=None if args.json else 2))
        return 0
    if args.bench == "ray":
        from evonet.bench.ray import bench_ray

        log = None if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
        result = bench_ray(evals=args.evals, epochs=args.epochs, log=log)
        print(json.dumps(result, indent=None if args.json else 2))
        return 0
    if args.bench == "search":
        from evonet.bench.search import bench_search

        log = None if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
        result = bench_search(space=args.space, evaluations=args.evaluations, population=args.population,
                              seeds=args.seeds, epochs=args.epochs, log=log)
        print(json.dumps(result, indent=None if args.json else 2, default=str))
        return 0
    raise ConfigError(f"unknown benchmark {args.bench!r}")


COMMANDS = {"run": cmd_run, "resume": cmd_resume, "report": cmd_report, "config": cmd_config, "eval": cmd_eval,
            "watch": cmd_watch, "bench": cmd_bench}


_SET_COMMANDS = ("run", "resume", "config")


def check_set_syntax(argv: list[str]) -> None:
    """``--set KEY VALUE`` (a space instead of ``=``) would take VALUE for the config path
    or an unknown argument: say what was meant, before anything else is read."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in _SET_COMMANDS:
        return
    for i, arg in enumerate(argv):
        if arg == "--":
            return
        if arg == "--set":
            key = argv[i + 1] if i + 1 < len(argv) else None
        elif arg.startswith("--set="):
            key = arg[len("--set="):]
        else:
            continue
        if key is None or "=" in key or key.startswith("-"):
            continue  # a missing value is argparse's to report
        j = i + 2 if arg == "--set" else i + 1
        after = argv[j] if j < len(argv) else None
        if after is not None and not after.startswith("-"):
            raise ConfigError(f"--set {key}: expected KEY=VALUE (got a space: write --set {key}={after})")
        raise ConfigError(f"--set {key}: expected KEY=VALUE, e.g. --set ga.population=64")


def main(argv: list[str] | None = None) -> int:
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        check_set_syntax(argv)
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except EvonetError as exc:
        print(f"evonet: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into e.g. `head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as exc:  # the runner saved a checkpoint and said how to resume
        print("evonet: interrupted", file=sys.stderr)
        return getattr(exc, "exit_code", 130)


if __name__ == "__main__":
    sys.exit(main())
