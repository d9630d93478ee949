"""The equal-budget benchmark: every method's search stopped at the wall-clock budget, the same
refit / test protocol, the JSON schema, the table and the plot; bad arguments are one line."""

from __future__ import annotations

import json

import pytest

from evonet.bench import budget as b
from evonet.cli import main


@pytest.mark.parametrize("argv, fragment", [
    (["--budget-s", "0"], "--budget-s: must be > 0"),
    (["--budget-s", "5", "--methods", "evonet,nope"], "--methods: unknown method 'nope'"),
    (["--budget-s", "5", "--seeds", "0,x"], "--seeds: expected comma-separated integers"),
    (["--budget-s", "5", "--seeds", "1,1"], "--seeds: expected distinct integers"),
    (["--budget-s", "5", "--dataset", "cifar"], "--dataset: unknown dataset 'cifar'"),
])
def test_bad_arguments_are_one_line_errors(capsys, argv, fragment):
    assert main(["bench", "search", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err


def test_the_optuna_adapter_asks_the_trial_for_the_declared_ranges():
    optuna = pytest.importorskip("optuna")
    trial = optuna.trial.FixedTrial({"layers": 2, "units_0": 32, "units_1": 100, "activation": "elu",
                                     "dropout": True, "rate": 0.2, "lr": 0.001})
    hp = b.OptunaHP(trial)
    build = b.build_function("digits", (8, 8), 10)
    model = build(hp)
    assert hp.values == {"layers": 2, "units_0": 32, "activation": "elu", "dropout": True, "rate": 0.2,
                         "units_1": 100, "lr": 0.001}
    assert model.count_params() > 0
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):  # every suggestion within the declared range and on its scale
        t = study.ask()
        b.build_function("digits", (8, 8), 10)(b.OptunaHP(t))
        assert 1 <= t.params["layers"] <= 3 and 16 <= t.params["units_0"] <= 256 and 1e-4 <= t.params["lr"] <= 1e-2
        assert t.distributions["units_0"].log and t.distributions["lr"].log
        assert t.params["activation"] in ("relu", "elu", "tanh") and t.params["dropout"] in (False, True)


def test_a_tiny_budget_run_gives_the_json_the_table_and_the_plot(tmp_path, capsys):
    pytest.importorskip("optuna")
    pytest.importorskip("keras_tuner")
    methods = "evonet,kt_random,optuna_tpe_hyperband"
    # 25 s: a method's first epoch ends 8-13 s after its start on a loaded 2-core machine (TensorFlow's start-up)
    assert main(["bench", "search", "--budget-s", "25", "--seeds", "0", "--dataset", "digits", "--epochs", "3",
                 "--methods", methods, "--parallel", "2", "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["budget_s"] == 25 and out["dataset"] == "digits" and out["seeds"] == [0]
    assert set(out["methods"]) == set(methods.split(","))
    assert out["machine"]["cpus"] >= 1 and out["machine"]["cpu"]  # the figures compare within one machine
    for name, r in out["methods"].items():
        assert set(r) >= {"test_accuracy", "median_test_accuracy", "median_val_accuracy", "trainings",
                          "epochs_trained", "utilization"}
        assert 0.1 < r["median_test_accuracy"] <= 1 and r["trainings"][0] >= 1 and r["epochs_trained"][0] >= 1
        assert 0 < r["utilization"][0] <= 1
        row = json.loads((tmp_path / f"{name}-seed0.json").read_text())
        assert row["trace"] and all(t <= 25 for t, _ in row["trace"])  # nothing after the budget counts
        assert [a for _, a in row["trace"]] == sorted(a for _, a in row["trace"])  # best so far
    assert (tmp_path / "best_val_vs_time.png").stat().st_size > 5000
    assert "| method | median test |" in (tmp_path / "table.md").read_text()


def test_seconds_to_reach_reads_the_median_best_so_far_curve():
    from evonet.bench.budget import seconds_to_reach, table

    result = {"budget_s": 100.0, "dataset": "digits", "epochs": 3, "seeds": [0, 1, 2], "methods": {
        "kt_hyperband": {"median_val_accuracy": 0.9, "traces": [[[50.0, 0.9]], [[60.0, 0.95]], [[80.0, 0.85]]]},
        "fast": {"median_val_accuracy": 0.95, "traces": [[[10.0, 0.91]], [[20.0, 0.92]], [[90.0, 0.99]]]},
        "slow": {"median_val_accuracy": 0.8, "traces": [[[5.0, 0.8]], [[5.0, 0.8]], [[5.0, 0.95]]]},
    }}
    reach = seconds_to_reach(result)
    # fast: the median of three seeds crosses 0.9 once two of them have a result (at 20 s)
    assert reach["fast"] == 20.0 and reach["slow"] is None and reach["kt_hyperband"] == 60.0
    assert seconds_to_reach({**result, "methods": {"fast": result["methods"]["fast"]}}) == {}
    for m, t in reach.items():
        result["methods"][m].update(seconds_to_hyperband_val=t, median_test_accuracy=0.9, test_accuracy=[0.9],
                                    trainings=[1], epochs_trained=[1], utilization=[1.0])
    text = table(result)
    assert "| slow | 0.9000 | 0.9000 | 0.8000 | 1 | 1 | 1.00 | never |" in text and "| fast |" in text


def test_a_failed_run_does_not_stop_the_others_and_a_rerun_keeps_what_finished(tmp_path, capsys):
    from evonet.bench import budget as b
    from evonet.core.errors import RunFailed

    kept = {"method": "kt_random", "seed": 0, "dataset": "digits", "budget_s": 5.0, "epochs": 2,
            "test_accuracy": 0.9, "val_accuracy": 0.91, "values": {}, "best_epoch": 2, "trainings": 3,
            "epochs_trained": 6, "utilization": 0.8, "search_s": 5.1, "trace": [[1.0, 0.91]]}
    (tmp_path / "kt_random-seed0.json").write_text(json.dumps(kept))
    with pytest.raises(RunFailed) as err:  # "no_such" fails in its subprocess; kt_random seed 0 is kept
        b.bench_budget(5.0, [0], "digits", ["kt_random", "no_such"], epochs=2, out=tmp_path)
    assert "1 of 2 runs failed (no_such seed 0: KeyError" in str(err.value) and "\n" not in str(err.value)
    assert json.loads((tmp_path / "kt_random-seed0.json").read_text()) == kept  # nothing written is lost
    result = b.bench_budget(5.0, [0], "digits", ["kt_random"], epochs=2, out=tmp_path)
    assert result["methods"]["kt_random"]["test_accuracy"] == [0.9]  # kept, not run again


def test_the_refit_builds_what_a_method_trained_even_past_its_declared_range():
    from evonet.bench.budget import FixedHP, build_function

    model = build_function("digits", (8, 8), 10)(FixedHP({"layers": 1, "units_0": 257, "activation": "elu",
                                                           "dropout": False, "lr": 0.001}))
    assert [layer.units for layer in model.layers if hasattr(layer, "units")] == [257, 10]
    hp = FixedHP({})
    assert (hp.Int("n", 3, 9), hp.Float("f", 0.5, 1.0, default=0.7), hp.Choice("c", ["a", "b"]),
            hp.Boolean("b")) == (3, 0.7, "a", False)
