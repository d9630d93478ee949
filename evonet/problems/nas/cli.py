"""Architecture search's commands: ``evonet bench search`` and ``evonet bench ray``."""

from __future__ import annotations

import json
import sys


def _positive_int(text: str) -> int:
    from evonet.cli import _positive_int as f

    return f(text)


def add_commands(sub, bsub, parser_class) -> None:
    """Add ``bench ray`` and ``bench search`` to the ``evonet`` parser."""
    br = bsub.add_parser("ray", help="Keras-training evals/s: in-process vs Ray on 1 and 2 workers (docs/ray.md)")
    br.add_argument("--json", action="store_true", help="print JSON only")
    br.add_argument("--evals", type=_positive_int, default=8, help="evaluations per executor (default 8)")
    br.add_argument("--epochs", type=_positive_int, help="training epochs per evaluation (default 48: about 2 s)")
    bq = bsub.add_parser("search", help="evonet's GA vs KerasTuner RandomSearch on digits (docs/search.md)")
    bq.add_argument("--json", action="store_true", help="print JSON only")
    bq.add_argument("--space", default="dense_classifier", help="search space (default dense_classifier)")
    bq.add_argument("--evaluations", type=_positive_int, default=40, help="trainings per method and seed (default 40)")
    bq.add_argument("--population", type=_positive_int, default=8, help="evonet's population (default 8)")
    bq.add_argument("--seeds", default="3", help="a count of seeds (0..N-1, default 3) or a comma-separated list")
    bq.add_argument("--budget-s", type=float, default=None,
                    help="equal wall-clock budget per search (s): every method of --methods, one core each")
    bq.add_argument("--dataset", default="digits", help="--budget-s: digits or mnist5k")
    bq.add_argument("--methods", default=None, help="--budget-s: comma-separated methods (default all)")
    bq.add_argument("--parallel", type=_positive_int, default=1, help="--budget-s: searches at once (one per core)")
    bq.add_argument("--out", default=None, help="--budget-s: directory for the JSON, table and plot")
    bq.add_argument("--epochs", type=_positive_int, default=None, help="epochs cap per training (default 20; with --budget-s 10)")
    br.set_defaults(func=cmd_bench_ray)
    bq.set_defaults(func=cmd_bench_search)


def cmd_bench_ray(args) -> int:
    from evonet.bench.ray import bench_ray

    log = None if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
    result = bench_ray(evals=args.evals, epochs=args.epochs, log=log)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


def cmd_bench_search(args) -> int:
    from evonet.bench.search import bench_search

    log = None if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
    if args.budget_s is not None:
        from evonet.bench import budget as b

        seeds = b.parse_seeds(args.seeds)
        if "," not in args.seeds:  # a count: seeds 0 .. N-1
            seeds = list(range(max(1, seeds[0])))
        result = b.bench_budget(args.budget_s, seeds, args.dataset, b.check_methods(args.methods),
                                epochs=args.epochs or 10, parallel=args.parallel, out=args.out, log=log)
        if args.json:
            print(json.dumps({k: v for k, v in result.items() if k != "out"}
                             | {"methods": {m: {k: v for k, v in r.items() if k != "traces"}
                                            for m, r in result["methods"].items()}}))
        else:
            print(b.table(result) + f"\nwrote {result['out']}")
        return 0
    try:
        args.seeds = int(args.seeds)
    except ValueError:
        from evonet.core.errors import ConfigError

        raise ConfigError(f"--seeds: without --budget-s, a number of seeds, got {args.seeds!r}") from None
    result = bench_search(space=args.space, evaluations=args.evaluations, population=args.population,
                          seeds=args.seeds, epochs=args.epochs or 20, log=log)
    print(json.dumps(result, indent=None if args.json else 2, default=str))
    return 0
