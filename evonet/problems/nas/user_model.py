"""Architecture search over a user's own Keras model family (define-by-run, :mod:`evonet.problems.nas.hp`).

:class:`UserModelProblem` is a :class:`~evonet.problems.hyperparams.HyperparamProblem` whose
search space was discovered from a build function (:func:`evonet.hp.discover`) and whose
data are the user's arrays (:func:`evonet.data.datasets.from_arrays`). Everything else is
the hyperparameter search's: the evaluation cache by canonical hash (the active names),
the training seeds by hash, the one-thread trainer with early stopping, NSGA-II on
(accuracy, parameters), the final refit on training + validation data or the k-fold
cross-validation of the hall of fame, checkpoints and ``evonet resume``.

A genome's model is ``build_fn(hp)`` with ``hp`` replaying the genome's values
(:class:`evonet.hp.UserModel`), compiled as the user compiled it; trained for the search's
``epochs`` with ``batch_size``. A build function that raises, or returns anything but a
compiled ``keras.Model`` with an accuracy metric, gives a failed evaluation (its error
recorded in ``failures.jsonl``); the search goes on.
"""

from __future__ import annotations

import dataclasses

from evonet.problems.nas.accuracy import TrainBudget
from evonet.problems.nas.hp import UserModel, UserSearchSpace
from evonet.problems.nas.problem import HyperparamProblem


class UserModelProblem(HyperparamProblem):
    """A user's build function and arrays; see the module doc."""

    def __init__(self, space: UserSearchSpace, dataset, budget: TrainBudget, run_seed: int = 0,
                 objectives: str = "accuracy", final_folds: int = 0, batch_size: int = 32,
                 cv_epochs: str = "full", backend: str | None = None, ensemble: int = 1):
        super().__init__(space, None, budget, run_seed, objectives, dataset=dataset, final_folds=final_folds,
                         cv_epochs=cv_epochs, backend=backend, ensemble=ensemble)
        self.data = dataset  # tasks carry the shared handle (share_data); this only if never shared
        self.batch_size = int(batch_size)
        self._model = UserModel(space.builder, tuple(space.genes), self.batch_size)

    @property
    def model_kind(self):
        return self._model

    def describe(self) -> dict:
        out = super().describe()
        out.update(genome="hyperparameters", model="user build function",
                   build_function=getattr(self.space.builder, "__qualname__", repr(self.space.builder)),
                   batch_size=self.batch_size, discovery=self.space.discovery)
        return out

    def banner(self) -> str:
        d = self.dataset
        obj = ", NSGA-II on (accuracy, parameters)" if self.multi else ""
        return (f"user build function {self.space.name} with {self.n_genes} hyperparameters "
                f"({', '.join(g.name for g in self.space.genes)}), arrays ({len(d.y_train)} train / "
                f"{len(d.y_val)} validation), fitness = validation accuracy{obj}, at most {self.budget.epochs} "
                f"epochs, batch size {self.batch_size}, patience {self.budget.patience}, "
                f"max {self.budget.max_params} parameters")

    def title(self) -> str:
        return f"{self.space.name} on arrays"

    def finalize(self, store, result, stream) -> dict:
        out = super().finalize(store, result, stream)
        best = out["best"]
        store.write_json("best/hyperparameters.json", best["genome"])
        if self.space.unseen:
            best["undiscovered_hyperparameters"] = dict(self.space.unseen)
            store.write_json("best/summary.json", best)
        return out


def budget_of(epochs: int, patience: int, max_params: int) -> TrainBudget:
    return dataclasses.replace(TrainBudget(), epochs=int(epochs), patience=int(patience), max_params=int(max_params))
