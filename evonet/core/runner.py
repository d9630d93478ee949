"""``evonet run`` and ``evonet resume``: wire a validated config into problem, strategy,
executor, loop and store.

The run directory gets the console output (``run.log``), the logbook, failed
evaluations and evaluation times as the run goes, and a checkpoint after every
generation (``checkpoint.every``). Ctrl-C finishes the current generation, saves a
checkpoint and exits with code 130 (a second Ctrl-C abandons the generation: the last
complete one is saved); SIGTERM (a pre-empted job) abandons the generation at the next
task boundary (the handler only sets a flag that the loop checks, so library code that
swallows exceptions cannot swallow it) and exits with 143. ``evonet resume RUN_DIR`` continues from the checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator, TextIO

import numpy as np

from evonet.core.hooks import Hook
from evonet import config as config_mod
from evonet.core import seeding
from evonet.core.checkpoint import Checkpointer
from evonet.core.errors import ConfigError
from evonet.executors import make_executor
from evonet.core.loop import RunResult, run_evolution
from evonet.core.progress import ProgressBar, choose_mode
from evonet.core.stopping import StoppingRules
from evonet.core.config import make_problem
from evonet.core.store import RunStore, atomic_write_bytes, default_run_dir
from evonet.strategies.ga import make_strategy


class ConsoleLogger(Hook):
    """One line per generation: the loop's figures, then the problem's own
    (``problem.progress_text``: best game and env steps per second, cache hits, ...);
    ``digits``: decimals of the fitness (4 for accuracies)."""

    def __init__(self, stream: TextIO, generations: int, problem=None, digits: int = 2):
        self.stream = stream
        self.width = len(str(generations))
        self.generations = generations
        self.problem = problem
        self.digits = digits

    def on_generation(self, rec: dict, strategy) -> None:
        d = self.digits
        extra = self.problem.progress_text(rec) if self.problem is not None else ""
        self.stream.write(
            f"gen {rec['gen']:>{self.width}}/{self.generations}  evals {rec['evals']:>5}  "
            f"best {rec['best']:7.{d}f}  mean {rec['mean']:7.{d}f}  std {rec['std']:6.{d}f}  "
            f"{rec['seconds']:6.2f} s  {rec['evals_per_s']:8.1f} evals/s"
            + (f"  {extra}" if extra else "") + (f"  failed {rec['failed']}" if rec["failed"] else "")
            + "\n"
        )
        self.stream.flush()


class StoreLogger(Hook):
    """Appends each generation to ``logbook.jsonl``, its failed evaluations to
    ``failures.jsonl`` and its evaluation times to ``eval_times.jsonl``."""

    def __init__(self, store: RunStore):
        self.store = store
        self._t0, self._elapsed0 = time.perf_counter(), 0.0

    def on_start(self, info: dict) -> None:
        self._t0, self._elapsed0 = time.perf_counter(), float(info.get("elapsed") or 0.0)

    def on_generation(self, rec: dict, strategy) -> None:
        self.store.append_jsonl("logbook.jsonl", rec)

    def on_job(self, job, result) -> None:
        """Asynchronous runs: one line per told job in ``jobs.jsonl`` (member, rung, budget,
        the job it continues, fitness, error, seconds, the problem's figures)."""
        self.store.append_jsonl("jobs.jsonl", {
            "job": job.id, "member": job.member, "rung": job.rung, "budget": job.budget, "parent": job.parent,
            "t": round(self._elapsed0 + time.perf_counter() - self._t0, 3),  # evolution seconds when told
            "fitness": float(result.fitness) if result.error is None else None, "error": result.error,
            "seconds": round(float(result.seconds), 4), "cached": bool(result.metrics.get("cached")),
            "metrics": {k: float(v) for k, v in result.metrics.items() if k != "cached"},
        })

    def after_generation(self, state, strategy) -> None:
        gen = state.logbook[-1]["gen"]
        new = []
        for failure in reversed(state.failures):
            if failure["generation"] != gen:
                break
            new.append(failure)
        for failure in reversed(new):
            self.store.append_jsonl("failures.jsonl", failure)
        self.store.append_jsonl("eval_times.jsonl",
                                {"gen": gen, "seconds": [round(float(r.seconds), 6) for r in state.results]})


class RunLog:
    """The console stream, copied into ``RUN_DIR/run.log``; ``file_only`` writes the log alone."""

    def __init__(self, stream: TextIO, path: Path):
        self.stream = stream
        self.file = open(path, "a", encoding="utf-8")
        self.file_only = _FileOnly(self.file)

    def write(self, text: str) -> None:
        self.stream.write(text)
        self.file.write(text)

    def flush(self) -> None:
        self.stream.flush()
        self.file.flush()

    def isatty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()


class _FileOnly:
    def __init__(self, fh):
        self.fh = fh

    def write(self, text: str) -> None:
        if not self.fh.closed:
            self.fh.write(text)

    def flush(self) -> None:
        if not self.fh.closed:
            self.fh.flush()


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (a pre-empted job): the run stops like a second Ctrl-C, exit 143."""

    exit_code = 143


class SignalGuard(Hook):
    """Loop hook and signal handlers: the first Ctrl-C lets the current generation finish
    (its checkpoint is written), then stops; a second Ctrl-C, or Ctrl-C after the last
    generation, stops at once (the loop saves the last complete generation).

    SIGTERM only sets ``terminated``: an exception raised from a signal handler can land
    inside library code (a TensorFlow/Keras callback) that swallows it. The loop checks
    the flag through this hook (:meth:`check`) before a generation, as every task of its
    evaluations finishes (``on_evaluations``) and after it, so SIGTERM abandons the
    generation under way at the next task boundary and the run ends with
    :class:`Terminated` and the last complete generation's checkpoint. After the last
    generation (no more check points) SIGTERM raises at once."""

    def __init__(self, notice: TextIO):
        self.notice = notice
        self.requested = False
        self.terminated = False
        self.evolving = True

    def _handler(self, signum, frame):
        if signum == getattr(signal, "SIGTERM", None):
            self.terminated = True
            if not self.evolving:
                raise Terminated()
            return
        if self.requested or not self.evolving:
            raise KeyboardInterrupt()
        self.requested = True
        self.notice.write("\nCtrl-C: stopping after this generation, with a checkpoint "
                          "(press Ctrl-C again to stop at once)\n")
        self.notice.flush()

    def should_stop(self) -> bool:
        """Whether the run is to stop at once (SIGTERM arrived)."""
        return self.terminated

    def check(self) -> None:
        """Raise :class:`Terminated` once SIGTERM has arrived (a cheap check point)."""
        if self.terminated:
            raise Terminated()

    def on_generation_start(self, generation: int, n_evaluations: int) -> None:
        self.check()

    def on_evaluations(self, done: int, total: int) -> None:
        self.check()

    def after_generation(self, state, strategy) -> None:
        if state.last:
            self.evolving = False
        self.check()
        if self.requested:
            raise KeyboardInterrupt()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        saved = {}
        for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
            if sig is not None:
                saved[sig] = signal.signal(sig, self._handler)
        try:
            yield
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)


#: a problem given as an object (the Python API: user functions, data) is saved here with
#: cloudpickle, so ``evonet resume RUN_DIR`` can rebuild it without the script that made it
PROBLEM_PICKLE = "problem.pkl"


def run_experiment(cfg, out: str | Path | None = None, stream: TextIO = sys.stdout,
                   problem=None) -> tuple[Path, RunResult]:
    """Run a validated experiment; returns the run directory and the result.

    ``problem``: a ready problem object (the Python API builds one around user functions);
    by default the one ``cfg`` describes. A given problem is pickled into the run directory
    (``problem.pkl``) so that ``evonet resume`` continues the run."""
    given = problem is not None
    if problem is None:
        problem = make_problem(cfg)
    # the executor first: a bad executor setup (unreachable cluster, missing GPUs, ...)
    # fails with a one-line error before the run directory exists
    executor = make_executor(cfg)
    with executor:
        return _run(cfg, problem, executor, out, stream, given)


def pickle_problem(problem) -> bytes:
    """A problem given as an object, pickled for the run directory (cloudpickle: functions
    defined in a script or a notebook travel by value)."""
    import cloudpickle

    try:
        return cloudpickle.dumps(problem)
    except Exception as exc:  # noqa: BLE001 - whatever the user's objects raise
        raise ConfigError(f"the problem cannot be pickled for the run directory ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())}); user functions must be picklable") from None


def load_problem(path: Path):
    """The problem :func:`save_problem` wrote (the modules its functions use must import)."""
    import cloudpickle

    try:
        with open(path, "rb") as fh:
            return cloudpickle.load(fh)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"{path}: cannot load the run's problem ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())})") from None


def load_start_genome(cfg, problem) -> np.ndarray | None:
    """``ga.start_from`` as a float64 genome of the problem's length, checked before the run
    directory exists; None when it is unset. A run directory means its ``best/genome.npz``."""
    where = cfg.ga.start_from
    if where is None:
        return None
    path = Path(where).expanduser()
    if path.is_dir():
        path = path / "best" / "genome.npz"
    if not path.is_file():
        raise ConfigError(f"ga.start_from: {path}: no such file (a run directory with best/genome.npz, or a genome .npz)")
    try:
        with np.load(path, allow_pickle=False) as data:
            genome = np.asarray(data["genome"], dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - zip, npz and key errors alike: one line
        raise ConfigError(f"ga.start_from: {path}: not a genome file ({type(exc).__name__}: {exc})") from None
    n = getattr(problem, "n_genes", None)
    if genome.ndim != 1 or (n is not None and genome.size != n):
        raise ConfigError(f"ga.start_from: {path} holds a genome of shape {list(genome.shape)}; this run's genome "
                          f"has {n} genes")
    if not np.all(np.isfinite(genome)):
        raise ConfigError(f"ga.start_from: {path}: the genome holds non-finite values")
    low, up = np.broadcast_to(problem.low, genome.shape), np.broadcast_to(problem.up, genome.shape)
    outside = int(np.sum((genome < low) | (genome > up)))
    if outside:
        raise ConfigError(f"ga.start_from: {path}: {outside} genes lie outside this run's bounds "
                          f"[{float(np.min(low)):g}, {float(np.max(up)):g}] (ga.bound)")
    return genome


def start_population(cfg, genomes: np.ndarray, start: np.ndarray | None) -> np.ndarray:
    """The initial genomes with ``ga.start_from`` in them: CMA-ES centres its distribution
    on the mean of its initial genomes, so every row is the start genome; the GAs' first
    population holds it as its first member, beside the random ones."""
    if start is None:
        return genomes
    genomes = np.array(genomes, dtype=np.float64, copy=True)
    if cfg.ga.algorithm == "cma_es":
        genomes[:] = start
    else:
        genomes[0] = start
    return genomes


def initial_size(cfg) -> int:
    """Random genomes drawn at the start: the population; aging evolution's warm-up also
    covers the jobs that may be out before ``population`` results are in."""
    if cfg.ga.algorithm == "aging":
        return cfg.ga.population + max(cfg.ga.lag, cfg.executor.workers)
    return cfg.ga.population


class FileStates:
    """Multi-fidelity training states in the run store: ``RUN_DIR/fidelity/job-N.state``
    (written atomically; removed once the run is complete)."""

    def __init__(self, store: RunStore):
        self.dir = store.file("fidelity")

    def put(self, job: int, state: bytes) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.dir / f"job-{int(job):08d}.state", state)

    def get(self, job: int) -> bytes | None:
        try:
            return (self.dir / f"job-{int(job):08d}.state").read_bytes()
        except FileNotFoundError:
            return None

    def clear(self) -> int:
        """Delete every state; returns the bytes freed."""
        import shutil

        if not self.dir.is_dir():
            return 0
        freed = sum(p.stat().st_size for p in self.dir.iterdir() if p.is_file())
        shutil.rmtree(self.dir, ignore_errors=True)
        return freed


def _run(cfg, problem, executor, out, stream, given: bool = False) -> tuple[Path, RunResult]:
    cfg, auto = config_mod.resolve_algorithm(cfg, problem)  # config.yaml records the strategy auto chose
    config_mod.check_fidelity(cfg, problem)  # the rung schedule against the problem, before anything is written
    start = load_start_genome(cfg, problem)  # ga.start_from, before anything is written
    pickled = pickle_problem(problem) if given else None  # before the run directory exists
    store = RunStore.create(out or default_run_dir(cfg.name, cfg.seed))
    if pickled is not None:
        atomic_write_bytes(store.file(PROBLEM_PICKLE), pickled)
    store.write_text("config.yaml", config_mod.dump_yaml(cfg))
    store.write_json("problem.json", problem.describe())
    store.write_json("run.json", _new_run_info())
    t_start = time.perf_counter()

    genomes = problem.init_genomes(seeding.generator(cfg.seed, seeding.PURPOSE_INIT), initial_size(cfg))
    genomes = start_population(cfg, genomes, start)
    strategy = make_strategy(
        cfg.ga, genomes, problem.low, problem.up, seeding.generator(cfg.seed, seeding.PURPOSE_STRATEGY),
        weights=problem.weights,  # multi-objective problems (NSGA-II)
        similar=problem.same_genome,  # hyperparameter genomes: one network, one entry
        key=problem.genome_key, integer_budgets=problem.fidelity_integer,
    )
    store.acquire_lock()
    store.claim_lock()
    out_log = RunLog(stream, store.file("run.log"))
    try:
        out_log.write(
            f"evonet run {cfg.name}: seed {cfg.seed}, {problem.banner()}, {cfg.ga.algorithm}"
            f"{' (' + config_mod.auto_reason(cfg, problem) + ')' if auto else ''} population "
            f"{cfg.ga.population}, {cfg.ga.generations} generations{_async_text(cfg, strategy)}"
            f"{'' if start is None else ', starting from ' + str(cfg.ga.start_from)}\n"
            f"  run directory: {store.path}\n"
        )
        out_log.flush()
        return _evolve(cfg, problem, executor, store, strategy, out_log, stream, t_start)
    finally:
        out_log.close()
        store.release_lock()


def resume_experiment(run_dir: str | Path, overrides: list[str] | None = None, force: bool = False,
                      stream: TextIO = sys.stdout, checkpoint: str | None = None) -> tuple[Path, RunResult]:
    """Continue a run from its latest checkpoint (or ``checkpoint``); see :mod:`evonet.resume`.

    Everything is checked before anything is written: a refused resume leaves the run
    directory untouched."""
    from evonet.core.resume import prepare_resume

    lock = RunStore(run_dir)
    if (Path(run_dir) / "config.yaml").is_file():
        lock.acquire_lock()  # no other process may write the run while it is checked and resumed
    try:
        plan = prepare_resume(run_dir, overrides, force, checkpoint)
        lock.claim_lock()
        return _resume(plan, stream)
    finally:
        lock.release_lock()


def _resume(plan, stream: TextIO) -> tuple[Path, RunResult]:
    from evonet.core.resume import describe_diffs, is_safe

    cfg, store = plan.cfg, plan.store
    executor = make_executor(cfg)
    with executor:
        plan.commit()
        t_start = time.perf_counter()
        out_log = RunLog(stream, store.file("run.log"))
        try:
            out_log.write(
                f"evonet resume {cfg.name}: from generation {plan.generation} of {cfg.ga.generations} "
                f"(checkpoint {plan.checkpoint.name}), seed {cfg.seed}, {plan.problem.banner()}\n"
                f"  run directory: {store.path}\n"
            )
            if plan.diffs:
                forced = [d for d in plan.diffs if not is_safe(d[0])]
                out_log.write(f"  changed: {describe_diffs(plan.diffs)}"
                              + (f" (forced: {', '.join(k for k, _, _ in forced)})" if forced else "") + "\n")
            out_log.flush()
            return _evolve(cfg, plan.problem, executor, store, plan.strategy, out_log, stream, t_start,
                           start_state=plan.loop_state)
        finally:
            out_log.close()


def _async_text(cfg, strategy) -> str:
    if cfg.ga.algorithm != "aging":
        return ""
    if cfg.ga.mode == "greedy":
        text = ", greedy asynchronous (results as they arrive: NOT reproducible)"
    else:
        text = f", reproducible asynchronous (lag {cfg.ga.lag})"
    if strategy.budgets is not None:
        fid = cfg.ga.fidelity
        text += (f", rungs {'/'.join(f'{b:g}' for b in strategy.budgets)} (reduction factor "
                 f"{fid['reduction_factor']:g}, {int(fid['brackets'])} bracket{'s' if fid['brackets'] > 1 else ''})")
    return text


def _new_run_info() -> dict:
    from evonet import __version__, blas

    return {"run_id": uuid.uuid4().hex, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "evonet": __version__,
            "blas": blas.describe()}  # the kernels CMA-ES's linear algebra ran on (evonet.blas)


def _read_run_info(store: RunStore) -> dict:
    try:
        info = json.loads(store.file("run.json").read_text())
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _evolve(cfg, problem, executor, store: RunStore, strategy, out_log: RunLog, stream: TextIO, t_start: float,
            start_state=None) -> tuple[Path, RunResult]:
    """Hooks, signals, the loop (fresh or resumed) and the end of a run."""
    run_info = _read_run_info(store)
    generations = cfg.ga.generations
    mode = choose_mode(cfg.log.progress, stream)
    bar = None
    digits = problem.fitness_digits
    if mode == "bar":
        bar = ProgressBar(stream, generations, cfg.stop.max_seconds, cfg.stop.max_evaluations, digits=digits)
        hooks: list = [ConsoleLogger(out_log.file_only, generations, problem, digits), bar]
    else:  # run.log always has the generation lines
        hooks = [ConsoleLogger(out_log if mode == "lines" else out_log.file_only, generations, problem, digits)]
    hooks.append(StoreLogger(store))
    if cfg.log.tensorboard:
        from evonet.tblog import TensorBoardLogger

        hooks.append(TensorBoardLogger(store.file("tensorboard")))
    checkpointer = None
    if strategy.resumable:
        checkpointer = Checkpointer(store.path, problem, run_info.get("run_id"), cfg.checkpoint.every,
                                    cfg.checkpoint.keep)
        hooks.append(checkpointer)
    else:
        out_log.write(f"note: ga.algorithm {cfg.ga.algorithm} writes no checkpoints; this run cannot be resumed\n")
    guard = SignalGuard(sys.stderr)
    hooks.append(guard)  # last: it may end the run once the checkpoint of a generation is written
    try:
        with guard.installed():
            with executor:  # closed after evolution: the workers are not needed for the rest
                problem.share_data(executor)  # data every evaluation needs: sent once
                if getattr(strategy, "asynchronous", False):
                    from evonet.core.async_loop import run_async

                    result = run_async(
                        strategy, problem, executor, generations, cfg.executor.chunk, cfg.ga.final_games, hooks,
                        start_state=start_state, stopping=StoppingRules.from_config(cfg.stop),
                        mode=cfg.ga.mode, lag=cfg.ga.lag, period=cfg.ga.population, states=FileStates(store),
                    )
                else:
                    result = run_evolution(
                        strategy, problem, executor, generations, cfg.executor.chunk, cfg.ga.final_games, hooks,
                        start_state=start_state, stopping=StoppingRules.from_config(cfg.stop),
                    )
            guard.evolving = False
            guard.check()  # SIGTERM during the final choice, swallowed there
            return _finish(cfg, problem, store, result, out_log, t_start, run_info, checkpointer)
    except KeyboardInterrupt as exc:
        if bar is not None:
            bar.finish()
        what = "SIGTERM" if isinstance(exc, Terminated) else "interrupted"
        if checkpointer is not None and checkpointer.written is not None:
            text = (f"{what}: generation {checkpointer.written} is saved (checkpoints/gen-{checkpointer.written:06d}); "
                    f"continue with: evonet resume {store.path}\n")
        else:
            text = f"{what} before the first generation was saved; nothing to resume\n"
        out_log.file_only.write(text)
        out_log.flush()
        sys.stderr.write(text)
        sys.stderr.flush()
        raise


def _finish(cfg, problem, store: RunStore, result: RunResult, out_log: RunLog, t_start: float, run_info: dict,
            checkpointer) -> tuple[Path, RunResult]:
    store.write_csv("logbook.csv", result.logbook)
    store.plot_fitness(result.logbook, title=f"{cfg.name}: {problem.title()}, seed {cfg.seed}")
    store.write_json("best/candidates.json", result.candidates)
    stop = result.stop or {}
    if stop.get("rule") not in (None, "generations"):
        out_log.write(f"stopped: {stop['reason']}\n")
    how = problem.final_choice(result)
    util = (f", worker utilization {result.utilization:.2f} ({cfg.executor.workers} worker"
            f"{'s' if cfg.executor.workers != 1 else ''})") if result.utilization is not None else ""
    out_log.write(f"best of hall of fame: {how}; evolution took {result.elapsed:.1f} s{util}\n")
    summary = {
        "name": cfg.name,
        "seed": cfg.seed,
        "generations": cfg.ga.generations,
        "generations_done": int(result.logbook[-1]["gen"]) if result.logbook else 0,
        "stopped": stop,
        "evaluations": int(result.evaluations),
        "evolve_seconds": round(result.elapsed, 2),
        "final_fitness": result.best_fitness,
        "final_games": result.best_games,
        "failures": len(result.failures),
    }
    if checkpointer is not None and checkpointer.seconds:
        summary["checkpoints"] = {
            "written": len(checkpointer.seconds),
            "mean_seconds": round(sum(checkpointer.seconds) / len(checkpointer.seconds), 4),
            "bytes": checkpointer.bytes,
        }
    if result.utilization is not None:
        summary["utilization"] = result.utilization
        summary["workers"] = int(cfg.executor.workers)
    if cfg.ga.algorithm == "aging":
        summary["asynchronous"] = {"mode": cfg.ga.mode, "lag": cfg.ga.lag}
    if run_info.get("resumes"):
        summary["resumes"] = run_info["resumes"]
    summary.update(problem.finalize(store, result, out_log))
    freed = FileStates(store).clear()  # the run is complete: no training continues
    if freed:
        summary["fidelity_state_bytes"] = freed
    summary["total_seconds"] = round(time.perf_counter() - t_start, 2)
    store.write_json("summary.json", summary)
    out_log.write(f"wrote {store.path}\n")
    out_log.flush()
    return store.path, result
