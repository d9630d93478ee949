"""Checkpoints: exact strategy state, safe formats, atomic writes, and one-line errors for
corrupt, truncated or foreign checkpoints (with nothing overwritten)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from evonet.core.hooks import Hook
from evonet import config, seeding
from evonet.checkpoint import (
    Checkpointer,
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    split_arrays,
    join_arrays,
)
from evonet.cli import main
from evonet.executors import LocalExecutor
from evonet.loop import LoopState, run_evolution
from evonet.problems import make_problem
from evonet.strategy import GeneticAlgorithm

TIMING = {"seconds", "evals_per_s", "env_steps_per_s", "elapsed", "utilization"}


def make(overrides):
    cfg = config.load(None, ["ga.algorithm=mu_plus_lambda", "ga.population=10", "snake.games=2", "ga.final_games=4", "ga.hall_of_fame=3",
                             *overrides])
    problem = make_problem(cfg)
    genomes = problem.init_genomes(seeding.generator(cfg.seed, seeding.PURPOSE_INIT), cfg.ga.population)
    ga = GeneticAlgorithm(cfg.ga, genomes, problem.low, problem.up,
                          seeding.generator(cfg.seed, seeding.PURPOSE_STRATEGY))
    return cfg, problem, ga


def strip(logbook):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in logbook]


@pytest.mark.parametrize("algorithm", ["simple", "mu_plus_lambda"])
@pytest.mark.parametrize("every", [1, 3])
def test_continuing_from_a_checkpoint_is_exact(tmp_path, algorithm, every):
    ov = [f"ga.algorithm={algorithm}"]
    _, problem, ga = make(ov)
    full = run_evolution(ga, problem, LocalExecutor(), 7, 2, 4)

    _, problem, ga = make(ov)
    ck = Checkpointer(tmp_path, problem, "run-1", every=every)
    with pytest.raises(KeyboardInterrupt):
        class StopAt4(Hook):  # Ctrl-C once generation 4 is complete
            def after_generation(self, state, strategy):
                if strategy.generation == 4:
                    raise KeyboardInterrupt
        run_evolution(ga, problem, LocalExecutor(), 7, 2, 4, hooks=[ck, StopAt4()])
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.generation == 4  # written on the interrupt even when not due (every=3)

    _, problem, ga2 = make(ov)
    ga2.set_state(ckpt.state["strategy"])
    resumed = run_evolution(ga2, problem, LocalExecutor(), 7, 2, 4,
                            start_state=LoopState.from_dict(ckpt.state["loop"]))
    assert strip(resumed.logbook) == strip(full.logbook)
    np.testing.assert_array_equal(resumed.best_genome, full.best_genome)
    assert resumed.best_fitness == full.best_fitness
    assert resumed.evaluations == full.evaluations


def test_strategy_state_round_trips_through_json_and_npz(tmp_path):
    _, problem, ga = make(["ga.algorithm=mu_plus_lambda"])
    run_evolution(ga, problem, LocalExecutor(), 3, 2, 4)
    state = ga.get_state()
    save_checkpoint(tmp_path, {"generation": ga.generation, "run_id": "x", "strategy": state})
    back = load_checkpoint(tmp_path).state["strategy"]
    np.testing.assert_array_equal(back["population"]["genomes"], state["population"]["genomes"])
    assert back["population"]["genomes"].dtype == np.float64  # genes leave float32 after crossover
    assert back["population"]["fitness"] == state["population"]["fitness"]
    assert back["rng"] == state["rng"] and back["alias"] == state["alias"] and back["hof"]["games"] == state["hof"]["games"]
    _, _, ga2 = make(["ga.algorithm=mu_plus_lambda"])
    ga2.set_state(back)
    assert ga2.rng.bit_generator.state == ga.rng.bit_generator.state
    assert [list(i) for i in ga2.hof] == [list(i) for i in ga.hof]
    assert [i.fitness.values for i in ga2.population] == [i.fitness.values for i in ga.population]
    # the same object twice in the population stays one object (its fitness pools both games)
    ids = [id(i) for i in ga.population]
    assert [ids.index(x) for x in ids] == [[id(i) for i in ga2.population].index(id(j)) for j in ga2.population]


def test_arrays_split_from_json_and_nothing_pickled():
    state = {"a": np.arange(3.0), "b": [{"c": np.zeros((2, 2), np.int32)}], "d": 1, "e": np.float64(2.5)}
    js, arrays = split_arrays(state)
    assert js["a"] == {"__array__": "a"} and set(arrays) == {"a", "b/0/c"} and js["e"] == 2.5
    json.dumps(js)
    back = join_arrays(js, arrays)
    np.testing.assert_array_equal(back["b"][0]["c"], state["b"][0]["c"])
    with pytest.raises(TypeError):
        split_arrays({"x": np.array([object()], dtype=object)})


def _save(run_dir: Path, gen: int, keep: int = 2, run_id: str = "run-1"):
    return save_checkpoint(run_dir, {"generation": gen, "run_id": run_id, "x": np.arange(gen + 1.0)}, keep=keep)


def test_keep_the_last_n_and_the_pointer(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "run-1"}))
    for gen in range(5):
        _save(tmp_path, gen)
    assert [name for _, name in list_checkpoints(tmp_path)] == ["gen-000003", "gen-000004"]
    assert json.loads((tmp_path / "checkpoints" / "latest").read_text())["checkpoint"] == "gen-000004"
    manifest = json.loads((tmp_path / "checkpoints" / "gen-000004" / "manifest.json").read_text())
    for rel, entry in manifest["files"].items():
        data = (tmp_path / "checkpoints" / "gen-000004" / rel).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    # an interrupted write leaves only a temporary directory: ignored, then cleaned up
    (tmp_path / "checkpoints" / ".tmp-gen-000005-1-ab").mkdir()
    assert load_checkpoint(tmp_path).generation == 4
    _save(tmp_path, 5, keep=1)
    assert [name for _, name in list_checkpoints(tmp_path)] == ["gen-000005"]
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
    # rewinding (resume from an older checkpoint) replaces the same generation atomically
    _save(tmp_path, 5)
    np.testing.assert_array_equal(load_checkpoint(tmp_path).state["x"], np.arange(6.0))


def _digest(path: Path) -> dict:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _flip(path: Path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path):
    path.write_bytes(path.read_bytes()[:-7])


def _foreign_manifest(path: Path):
    path.write_text(json.dumps({"format": "something-else", "files": {}}))


@pytest.mark.parametrize("damage, rel, message", [
    (_flip, "arrays.npz", "SHA-256 does not match"),
    (_truncate, "arrays.npz", "truncated or corrupt"),
    (_truncate, "state.json", "truncated or corrupt"),
    (_truncate, "manifest.json", "unreadable checkpoint manifest"),
    (_foreign_manifest, "manifest.json", "not an evonet checkpoint"),
    (lambda p: p.unlink(), "arrays.npz", "missing"),
])
def test_damaged_checkpoint_is_a_one_line_error_and_names_a_good_one(tmp_path, damage, rel, message):
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "run-1"}))
    _save(tmp_path, 0)
    _save(tmp_path, 1)
    damage(tmp_path / "checkpoints" / "gen-000001" / rel)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path)
    text = str(err.value)
    assert message in text and "\n" not in text
    assert "--checkpoint gen-000000" in text  # the previous good checkpoint is intact
    assert load_checkpoint(tmp_path, "gen-000000").generation == 0


def test_foreign_run_and_missing_checkpoints(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "run-1"}))
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _save(other, 3, run_id="run-2")
    shutil.copytree(other / "checkpoints", tmp_path / "checkpoints")  # copied from another run
    with pytest.raises(CheckpointError, match="belongs to another run"):
        load_checkpoint(tmp_path)
    (tmp_path / "checkpoints" / "latest").write_text("{not json")
    with pytest.raises(CheckpointError, match="pointer"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no such run directory"):
        load_checkpoint(tmp_path / "missing")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from evonet.runner import run_experiment

    out = tmp_path_factory.mktemp("ckrun") / "run"
    cfg = config.load(None, ["ga.population=8", "ga.generations=3", "snake.games=2", "ga.final_games=4",
                             "ga.hall_of_fame=3", "eval_games=0", "log.tensorboard=false",
                             "checkpoint.every=2"])
    run_experiment(cfg, out, stream=io.StringIO())
    return out


def test_run_directory_checkpoints(finished_run):
    # every=2: generations 0 and 2, and the last one (3); the last two kept
    assert [name for _, name in list_checkpoints(finished_run)] == ["gen-000002", "gen-000003"]
    summary = json.loads((finished_run / "summary.json").read_text())
    assert summary["checkpoints"]["written"] == 3 and summary["checkpoints"]["bytes"] > 0
    ckpt = load_checkpoint(finished_run)
    assert ckpt.generation == 3 and len(ckpt.state["loop"]["logbook"]) == 4
    assert ckpt.manifest["run_id"] == json.loads((finished_run / "run.json").read_text())["run_id"]


@pytest.mark.parametrize("damage", ["corrupt", "foreign", "no-config"])
def test_resume_of_a_damaged_run_exits_2_and_writes_nothing(tmp_path, finished_run, capsys, damage):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    (run_dir / "summary.json").unlink()  # as if it crashed in its final stage
    if damage == "corrupt":
        _flip(run_dir / "checkpoints" / "gen-000003" / "state.json")
    elif damage == "foreign":
        (run_dir / "run.json").write_text(json.dumps({"run_id": "someone-else"}))
    else:
        (run_dir / "config.yaml").unlink()
    before = _digest(run_dir)
    assert main(["resume", str(run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evonet: error:"), err
    assert _digest(run_dir) == before


def test_a_full_disk_stops_the_run_with_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import errno

    import evonet.checkpoint as ck_mod

    _, problem, ga = make([])
    real = ck_mod._write_file

    def write(path, data):
        if ".tmp-gen-000002" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(ck_mod, "_write_file", write)
    with pytest.raises(CheckpointError) as err:
        run_evolution(ga, problem, LocalExecutor(), 5, 0, 4, hooks=[Checkpointer(tmp_path, problem, "r")])
    assert "No space left on device" in str(err.value) and "previous one is intact" in str(err.value)
    assert load_checkpoint(tmp_path).generation == 1
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def _untimed(obj):
    """A checkpoint's state without its clock readings (and what they feed)."""
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if k not in TIMING | {"busy", "wall"}}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def test_the_background_writer_writes_what_a_synchronous_write_writes(tmp_path):
    """Checkpoints written by the writer thread while the next generation runs are the same
    files (but their creation time) as synchronous writes, every generation of the run."""
    import evonet.checkpoint as ck_mod

    dirs = {}
    for background in (True, False):
        _, problem, ga = make([])
        run_dir = tmp_path / f"bg{background}"
        seen = []

        class Keep(Hook):  # every checkpoint on disk, as each generation ends
            def after_generation(self, state, strategy):
                ck.wait()
                seen.append(sorted(p.name for p in (run_dir / "checkpoints").glob("gen-*")))

        ck = Checkpointer(run_dir, problem, "r", keep=10, background=background)
        run_evolution(ga, problem, LocalExecutor(), 4, 0, 4, hooks=[ck, Keep()])
        assert ck.written == 4 and len(ck.seconds) == 5 and ck._thread is None
        assert seen[-1] == [ck_mod.checkpoint_name(g) for g in range(5)]
        dirs[background] = run_dir
    for gen in range(5):
        a, b = (dirs[bg] / "checkpoints" / ck_mod.checkpoint_name(gen) for bg in (True, False))
        assert (a / "arrays.npz").read_bytes() == (b / "arrays.npz").read_bytes(), gen
        sa, sb = (_untimed(json.loads((d / "state.json").read_text())) for d in (a, b))
        assert sa == sb and sa["generation"] == gen
        ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
        assert ma["files"]["arrays.npz"] == mb["files"]["arrays.npz"] and ma["generation"] == mb["generation"] == gen
    assert load_checkpoint(dirs[True]).generation == 4
