"""Multi-fidelity training continues from a saved state: 0 -> 1 -> 3 epochs gives exactly the
weights of 0 -> 3 (every model and optimizer variable travels in the state, every epoch's
batches come from (seed, epoch)); states are portable bytes; bad states fail cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evonet.problems.nas import accuracy
from evonet.problems.nas.accuracy import TrainBudget, train_genome_rung
from evonet.problems.nas.space import SearchSpace, resolve_space_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():
    from evonet.data.datasets import DataRef, load_dataset

    d = load_dataset(DataRef("digits"))
    import dataclasses

    return dataclasses.replace(d, x_train=d.x_train[:400], y_train=d.y_train[:400], x_val=d.x_val[:200],
                               y_val=d.y_val[:200])


def genome(**genes):
    space = SearchSpace.load(resolve_space_path("dense_classifier"))
    g = space.defaults()
    g.update({"n_layers": 1, "units_1": 24, "batch_size": 64, **genes})
    return space.canonical(space.encode(g))


BUDGET = TrainBudget(epochs=6, patience=0, max_params=100_000)


def weights_of(state: bytes) -> list:
    from evonet.problems.nas.accuracy import unpack_state

    _, _, model_vars, opt_vars = unpack_state(state)
    return model_vars + opt_vars


@pytest.fixture(params=[4, 0], ids=["live-model", "rebuilt-from-state"])
def live(request):
    """Continuations on the live model of the same process, or rebuilt from the state."""
    old = accuracy.keep_live_models(request.param)
    yield request.param
    accuracy.keep_live_models(old)


@pytest.mark.backends
@pytest.mark.parametrize("genes", [
    {"dropout": 0.3},                                              # dropout's random state continues
    {"dropout": 0.0, "lr_schedule": "cosine", "batch_norm": True},  # the schedule's absolute epoch
])
def test_continued_training_equals_one_straight_training(digits, genes, live):
    g = genome(**genes)
    straight, s3 = train_genome_rung(g, "mlp", digits, BUDGET, 11, 3)
    first, s1 = train_genome_rung(g, "mlp", digits, BUDGET, 11, 1)
    other, _ = train_genome_rung(genome(units_1=40), "mlp", digits, BUDGET, 12, 1)  # another model between
    assert (accuracy._live_key(g, 11, s1) in accuracy._LIVE) == bool(live)
    cont, s13 = train_genome_rung(g, "mlp", digits, BUDGET, 11, 3, state=s1)
    assert accuracy._live_key(g, 11, s1) not in accuracy._LIVE
    assert straight.error is None and cont.error is None
    assert first.metrics["epochs"] == 1 and cont.metrics["from_epoch"] == 1 and cont.metrics["epochs_trained"] == 2
    assert cont.fitness == straight.fitness and cont.metrics == {**straight.metrics, "from_epoch": 1.0,
                                                                 "epochs_trained": 2.0}
    a, b = weights_of(s3), weights_of(s13)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    again, s3b = train_genome_rung(g, "mlp", digits, BUDGET, 11, 3)
    assert s3b == s3 and again.fitness == straight.fitness  # deterministic, byte for byte


def test_a_live_model_is_kept_only_for_its_own_state_and_within_the_limit(digits, live):
    g = genome(dropout=0.1)
    _, s1 = train_genome_rung(g, "mlp", digits, BUDGET, 4, 1)
    _, s2 = train_genome_rung(g, "mlp", digits, BUDGET, 4, 2, state=s1)
    # s1 again (its model went on to epoch 2): rebuilt from s1, the same bits as the first time
    again, s2b = train_genome_rung(g, "mlp", digits, BUDGET, 4, 2, state=s1)
    assert s2b == s2 and again.metrics["from_epoch"] == 1
    for seed in range(6):
        train_genome_rung(g, "mlp", digits, BUDGET, 100 + seed, 1)
    assert len(accuracy._LIVE) <= live and accuracy._live_key(g, 4, s2) not in accuracy._LIVE
    end, s6 = train_genome_rung(g, "mlp", digits, BUDGET, 4, 6, state=s2b)  # the schedule's end: not kept
    assert end.metrics["epochs"] == 6 and accuracy._live_key(g, 4, s6) not in accuracy._LIVE


def test_a_state_made_in_another_process_continues_here(digits, tmp_path):
    g = genome(dropout=0.2)
    code = f"""
import sys, dataclasses, numpy as np
sys.path.insert(0, {str(ROOT)!r})
from tests.test_fidelity_train import genome, BUDGET
from evonet.data.datasets import DataRef, load_dataset
from evonet.problems.nas.accuracy import train_genome_rung
d = load_dataset(DataRef("digits"))
d = dataclasses.replace(d, x_train=d.x_train[:400], y_train=d.y_train[:400], x_val=d.x_val[:200], y_val=d.y_val[:200])
res, state = train_genome_rung(genome(dropout=0.2), "mlp", d, BUDGET, 5, 1)
open({str(tmp_path / 's1')!r}, "wb").write(state)
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=180)
    cont, s = train_genome_rung(g, "mlp", digits, BUDGET, 5, 2, state=(tmp_path / "s1").read_bytes())
    here, s2 = train_genome_rung(g, "mlp", digits, BUDGET, 5, 2)
    assert cont.error is None and all(np.array_equal(x, y) for x, y in zip(weights_of(s), weights_of(s2)))


def test_the_genome_schedule_caps_the_rung_and_bad_states_fail_cleanly(digits):
    g = genome(epochs=2) if "epochs" in genome() else genome()
    res, state = train_genome_rung(g, "mlp", digits, TrainBudget(epochs=2, patience=0, max_params=100_000), 3, 5)
    assert res.error is None and res.metrics["epochs"] == 2  # the budget's cap (search.epochs) stops it
    bad, none = train_genome_rung(g, "mlp", digits, BUDGET, 3, 3, state=b"not a state")
    assert none is None and bad.error == "state: not an evonet training state (unreadable bytes)"
    other, none = train_genome_rung(genome(units_1=40), "mlp", digits, BUDGET, 3, 3, state=state)
    assert none is None and "do not fit the genome's model" in other.error
    big, none = train_genome_rung(genome(units_1=512, n_layers=3), "mlp", digits,
                                  TrainBudget(epochs=2, patience=0, max_params=1000), 3, 1)
    assert none is None and "parameters > max_params 1000" in big.error
