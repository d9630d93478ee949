"""Validation-accuracy fitness for hyperparameter genomes: build, train, score.

:func:`train_genome` takes a canonical genome (:mod:`evonet.space`), the data
(:class:`evonet.data.datasets.Dataset`) and the budgets, seeds Keras from ``seed``, trains
on the training split, scores on the validation split and returns an
:class:`~evonet.problems.base.EvalResult`. It never raises: a model over the parameter
budget (checked before training), a NaN or infinite loss, an out-of-memory error or any
exception gives a failed result (``error`` set, worst fitness) so the search goes on. The
test split is not touched here (the problem's ``finalize`` uses it once, for the best).

(:mod:`evonet.evaluators.keras_train` is the fixed dense classifier of the Ray benchmark.)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from evonet.problems.base import EvalResult


@dataclass(frozen=True)
class TrainBudget:
    """Per-training limits: epochs cap, early-stopping patience (0: off), parameter cap."""

    epochs: int = 20
    patience: int = 3
    max_params: int = 1_000_000
    min_delta: float = 0.0


def failed(error: str, seconds: float = 0.0, **metrics) -> EvalResult:
    return EvalResult(fitness=float("-inf"), weight=0, metrics=dict(metrics), error=error, seconds=seconds)


class NonFiniteLoss(Exception):
    """Training produced a NaN or infinite loss."""


class TooManyParameters(Exception):
    """The model is over the parameter budget (raised before training)."""


def _stop_on_nan(keras):
    """Stop training at the end of an epoch whose loss is NaN or infinite (silently,
    unlike ``keras.callbacks.TerminateOnNaN``, which prints)."""

    class StopOnNaN(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.model.stop_training = True

    return StopOnNaN()


def fit_model(genome: dict, model_kind: str, inputs, x, y, validation, budget: TrainBudget, seed: int):
    """Build, check the parameter budget, train. Returns (model, params, history, epochs run).

    Raises :class:`TooManyParameters` before training and :class:`NonFiniteLoss` after.
    """
    from evonet.models import build_model, epochs_of, gene, learning_rate_at
    from evonet.tf_utils import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(int(seed) % (2**31))
    model = build_model(genome, model_kind, inputs)
    params = int(model.count_params())
    if params > budget.max_params:
        raise TooManyParameters(f"{params} parameters > max_params {budget.max_params}")
    epochs = epochs_of(genome, budget.epochs)
    callbacks = [_stop_on_nan(keras)]
    if validation is not None and budget.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=budget.patience,
                                                       min_delta=budget.min_delta, restore_best_weights=True))
    if gene(genome, "lr_schedule") != "constant":
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda e, lr: learning_rate_at(genome, e, epochs)))
    hist = model.fit(x, y, validation_data=validation, epochs=epochs, batch_size=int(gene(genome, "batch_size")),
                     callbacks=callbacks, verbose=0, shuffle=True)
    losses = hist.history.get("loss", [])
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    if bad or not losses:
        raise NonFiniteLoss(f"non-finite loss at epoch {bad[0] + 1 if bad else 1}")
    return model, params, hist.history, len(losses)


def _message(exc: BaseException) -> str:
    msg = " ".join(f"{type(exc).__name__}: {exc}".split())
    return msg if len(msg) <= 300 else msg[:297] + "..."


def train_genome(genome: dict, model_kind: str, data, budget: TrainBudget, seed: int,
                 keep_model: bool = False) -> tuple[EvalResult, Any]:
    """Train ``genome`` on ``data``'s training split, score it on the validation split.

    Returns ``(result, model)``; ``model`` is ``None`` unless ``keep_model`` (and the
    training succeeded). ``result.fitness`` is the validation accuracy; metrics hold
    ``params``, ``epochs`` (run, after early stopping), ``val_loss``, ``train_accuracy``.
    """
    start = time.perf_counter()
    try:
        from evonet.tf_utils import import_keras

        import_keras().backend.clear_session()
        try:
            model, params, hist, epochs = fit_model(genome, model_kind, data.input_spec(), data.x_train,
                                                    data.y_train, (data.x_val, data.y_val), budget, seed)
        except (NonFiniteLoss, TooManyParameters) as exc:
            return failed(str(exc), time.perf_counter() - start), None
        val_loss, val_acc = model.evaluate(data.x_val, data.y_val, verbose=0, batch_size=512)
        if not (math.isfinite(val_loss) and math.isfinite(val_acc)):
            return failed("non-finite validation loss", time.perf_counter() - start, params=float(params)), None
        result = EvalResult(
            fitness=float(val_acc), weight=1,
            metrics={"params": float(params), "epochs": float(epochs), "val_loss": float(val_loss),
                     "train_accuracy": float(hist.get("accuracy", [float("nan")])[-1])},
            seconds=time.perf_counter() - start,
        )
        return result, (model if keep_model else None)
    except Exception as exc:  # noqa: BLE001 - out of memory, bad shapes, anything: a failed evaluation
        return failed(_message(exc), time.perf_counter() - start), None


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of a trained model on (x, y) (argmax of the outputs)."""
    pred = np.asarray(model.predict(x, verbose=0, batch_size=512))
    return float(np.mean(np.argmax(pred, axis=-1) == np.asarray(y)))
