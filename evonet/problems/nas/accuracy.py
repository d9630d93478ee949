"""Validation-accuracy fitness for hyperparameter genomes: build, train, score.

:func:`train_genome` takes a canonical genome (:mod:`evonet.problems.nas.space`), the data
(:class:`evonet.data.datasets.Dataset`) and the budgets, seeds Keras from ``seed``, trains
on the training split, scores on the validation split and returns an
:class:`~evonet.problems.base.EvalResult`. It never raises: a model over the parameter
budget (checked before training), a NaN or infinite loss, an out-of-memory error or any
exception gives a failed result (``error`` set, worst fitness) so the search goes on. The
test split is not touched here (the problem's ``finalize`` uses it once, for the best).

Training input is shuffled every epoch from the seed and cut on one thread, so each training
keeps one core busy and the same (genome, seed) gives the same result on a backend: on
TensorFlow :func:`one_thread_batches` (a ``tf.data`` pipeline on one private thread), on JAX
and PyTorch :func:`epoch_batches` (a ``keras.utils.PyDataset`` of numpy batches, no
TensorFlow import). The backend itself runs one thread (:mod:`evonet.keras_backend`).
:func:`refit_genome` retrains a chosen genome on the training and validation splits together
for the best epoch count of its search training (:func:`train_and_refit` does both steps for
a search's final model).

:func:`cross_validate_fold` is one fold of the k-fold cross-validation that picks a search's
final best among its hall of fame (``search.final_folds``): the training and validation
splits together are cut into :func:`stratified_folds`, the genome trains its full schedule
(no early stopping) on all folds but one and is scored on that one. Pooled over the folds,
every one of those examples is predicted once, by a model that never saw it: a resolution
of ``1 / (train + validation)`` instead of ``1 / validation``.

(:mod:`evonet.problems.nas.keras_train` is the fixed dense classifier of the Ray benchmark.)
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
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


def one_thread_batches(keras, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int | None = None):
    """``(x, y)`` as a batched ``tf.data`` dataset that runs on one thread (TensorFlow backend).

    Given numpy arrays, Keras's TensorFlow backend builds its own ``tf.data`` pipeline with
    a thread pool and autotuning outside TensorFlow's thread settings, so a "one-thread"
    training keeps more than one core busy, and two workers on two cores lose about a third
    of their speed to each other (measured with ``evonet bench ray``). This pipeline has a
    private one-thread pool and no autotuning. With ``seed`` the examples are reshuffled every epoch in an
    order that depends only on ``seed``. None on other backends (:func:`epoch_batches` there).
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    options.deterministic = True
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if seed is not None:
        ds = ds.shuffle(len(x), seed=int(seed) % (2**31), reshuffle_each_iteration=True)
    return ds.batch(int(batch_size)).with_options(options)


_EPOCH_BATCHES: dict[int, type] = {}


def epoch_batches(keras, x: np.ndarray, y: np.ndarray, batch_size: int, order_of=None):
    """``(x, y)`` as a ``keras.utils.PyDataset`` of numpy batches (JAX and PyTorch backends).

    Epoch ``e`` visits the examples in the order ``order_of(e)`` (a permutation; None: as
    given), cut into ``batch_size`` batches in the training thread itself: no worker threads,
    no ``tf.data``, so a training keeps one core busy and the same ``order_of`` gives the same
    batches. ``fit`` must get the dataset's :meth:`callback` too: it tells the dataset the
    (absolute) epoch that starts, which Keras does not (it also opens an epoch of its own to
    look at the first batch before training)."""
    cls = _EPOCH_BATCHES.get(id(keras))
    if cls is None:
        class EpochBatches(keras.utils.PyDataset):
            def __init__(self, x, y, batch_size, order_of):
                super().__init__(workers=1, use_multiprocessing=False)  # no enqueuer thread
                self.x, self.y, self.batch_size = x, y, int(batch_size)
                self.order_of, self.epoch, self.order = order_of, 0, None

            def __len__(self):
                return -(-len(self.x) // self.batch_size)

            def set_epoch(self, epoch: int) -> None:
                self.epoch, self.order = int(epoch), None

            def callback(self):
                dataset = self

                class SetEpoch(keras.callbacks.Callback):
                    def on_epoch_begin(self, epoch, logs=None):
                        dataset.set_epoch(epoch)

                return SetEpoch()

            def __getitem__(self, i):
                if self.order is None and self.order_of is not None:
                    self.order = np.asarray(self.order_of(self.epoch))
                part = slice(i * self.batch_size, (i + 1) * self.batch_size)
                if self.order is None:
                    return self.x[part], self.y[part]
                idx = self.order[part]
                return self.x[idx], self.y[idx]

        cls = _EPOCH_BATCHES[id(keras)] = EpochBatches
    return cls(x, y, batch_size, order_of)


def fit_model(genome: dict, model_kind: str, inputs, x, y, validation, budget: TrainBudget, seed: int,
              epochs: int | None = None):
    """Build, check the parameter budget, train. Returns (model, params, history, epochs run).

    The data go through :func:`one_thread_batches` on TensorFlow, :func:`epoch_batches` on
    JAX and PyTorch (one core per training, the epoch orders from ``seed``). ``validation``:
    ``(x_val, y_val)`` for early stopping, or None (no early stopping: every epoch runs).
    ``epochs`` overrides the genome's epochs (still capped by ``budget.epochs``). Raises
    :class:`TooManyParameters` before training and :class:`NonFiniteLoss` after.
    """
    from evonet.keras_backend import seed_keras
    from evonet.problems.nas.models import build_model, epochs_of, gene, learning_rate_at
    from evonet.tf_utils import import_keras

    keras = import_keras()
    seed_keras(keras, int(seed) % (2**31))
    user = not isinstance(model_kind, str)  # a user's build function (evonet.hp.UserModel)
    model = model_kind.build(genome) if user else build_model(genome, model_kind, inputs)
    params = int(model.count_params())
    if params > budget.max_params:
        raise TooManyParameters(f"{params} parameters > max_params {budget.max_params}")
    if epochs is None:
        epochs = schedule_epochs(genome, model_kind, budget.epochs)
    epochs = max(1, min(int(epochs), int(budget.epochs)))
    callbacks = [_stop_on_nan(keras)]
    if validation is not None and budget.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=budget.patience,
                                                       min_delta=budget.min_delta, restore_best_weights=True))
    if not user and gene(genome, "lr_schedule") != "constant":
        total = epochs_of(genome, budget.epochs)  # the schedule of the genome, also when refitting fewer epochs
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda e, lr: learning_rate_at(genome, e, total)))
    batch = int(model_kind.batch_size) if user else int(gene(genome, "batch_size"))
    train = one_thread_batches(keras, x, y, batch, seed=int(seed) + 1)
    if train is None:  # JAX, PyTorch: numpy batches, every epoch's order from the seed
        n = len(x)
        train = epoch_batches(keras, x, y, batch, lambda e: epoch_order(int(seed) + 1, e, n))
        hist = model.fit(train, validation_data=validation, validation_batch_size=512, epochs=epochs,
                         callbacks=[train.callback(), *callbacks], verbose=0, shuffle=False)
    else:
        val = None if validation is None else one_thread_batches(keras, validation[0], validation[1], 512)
        hist = model.fit(train, validation_data=val, epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False)
    losses = hist.history.get("loss", [])
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    if bad or not losses:
        raise NonFiniteLoss(f"non-finite loss at epoch {bad[0] + 1 if bad else 1}")
    return model, params, hist.history, len(losses)


def schedule_epochs(genome: dict, model_kind, cap: int) -> int:
    """A genome's full training schedule: its ``epochs`` gene capped by ``cap`` (built-in
    models); ``cap`` for a user's build function (its hyperparameter names mean nothing here)."""
    from evonet.problems.nas.models import epochs_of

    return epochs_of(genome, cap) if isinstance(model_kind, str) else max(1, int(cap))


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
        keras = import_keras()
        val = one_thread_batches(keras, data.x_val, data.y_val, 512)
        if val is None:
            scores = model.evaluate(data.x_val, data.y_val, verbose=0, batch_size=512, return_dict=True)
        else:
            scores = model.evaluate(val, verbose=0, return_dict=True)
        val_loss, val_acc = float(scores["loss"]), float(scores["accuracy"])
        if not (math.isfinite(val_loss) and math.isfinite(val_acc)):
            return failed("non-finite validation loss", time.perf_counter() - start, params=float(params)), None
        result = EvalResult(
            fitness=float(val_acc), weight=1,
            metrics={"params": float(params), "epochs": float(epochs), "best_epoch": float(best_epoch(hist, budget)),
                     "val_loss": float(val_loss), "train_accuracy": float(hist.get("accuracy", [float("nan")])[-1])},
            seconds=time.perf_counter() - start,
        )
        return result, (model if keep_model else None)
    except Exception as exc:  # noqa: BLE001 - out of memory, bad shapes, anything: a failed evaluation
        return failed(_message(exc), time.perf_counter() - start), None


def best_epoch(history: dict, budget: TrainBudget) -> int:
    """The epoch (1-based) whose weights a training kept: with early stopping (restored best
    weights) the first epoch of best validation accuracy, otherwise the last epoch."""
    acc = history.get("val_accuracy") or []
    losses = history.get("loss") or []
    if budget.patience > 0 and acc:
        return int(np.argmax(acc)) + 1
    return max(1, len(losses))


def refit_genome(genome: dict, model_kind: str, data, budget: TrainBudget, seed: int,
                 epochs: int) -> tuple[EvalResult, Any]:
    """Retrain ``genome`` from scratch on the training *and* validation splits together.

    The standard last step of a hyperparameter search: once the validation split has chosen
    the genome, its images are training data too. There is no data left for early stopping,
    so the training runs ``epochs`` epochs (the best epoch of the search's training,
    :func:`best_epoch`, i.e. ``result.metrics["best_epoch"]``) under the genome's own
    learning-rate schedule, seeded by ``seed``. The test split is not touched. Returns
    ``(result, model)``: ``result.fitness`` is the accuracy on the (seen) training data,
    ``metrics``: ``params``, ``epochs``, ``train_examples``; ``model`` is None on failure.
    """
    start = time.perf_counter()
    try:
        from evonet.tf_utils import import_keras

        import_keras().backend.clear_session()
        x = np.concatenate([data.x_train, data.x_val])
        y = np.concatenate([data.y_train, data.y_val])
        try:
            model, params, hist, ran = fit_model(genome, model_kind, data.input_spec(), x, y, None, budget, seed,
                                                 epochs=epochs)
        except (NonFiniteLoss, TooManyParameters) as exc:
            return failed(str(exc), time.perf_counter() - start), None
        result = EvalResult(fitness=float(hist.get("accuracy", [float("nan")])[-1]), weight=1,
                            metrics={"params": float(params), "epochs": float(ran), "train_examples": float(len(y))},
                            seconds=time.perf_counter() - start)
        return result, model
    except Exception as exc:  # noqa: BLE001
        return failed(_message(exc), time.perf_counter() - start), None


def train_and_refit(genome: dict, model_kind: str, data, budget: TrainBudget, seed: int,
                    searched: EvalResult | None = None,
                    full_schedule: bool = False, epochs: int | None = None) -> tuple[EvalResult, EvalResult, Any]:
    """The final model of a search: ``(validation result, refit result, model)``.

    The validation result is the search's (``searched``, when it holds the best epoch) or
    the same training again (:func:`train_genome`, same seed: the same figures); the model
    is then :func:`refit_genome` on training + validation data for its best epoch, or with
    ``full_schedule`` for the genome's own epochs (capped by ``budget.epochs``): the
    training that :func:`cross_validate_fold` measured; ``epochs`` (the cross-validated epoch
    count, :func:`pool_folds` ``by_epoch``) overrides both. On a failure ``model`` is None and
    the failed result says why. The test split is not touched.
    """
    val = searched
    if val is None or val.error is not None or "best_epoch" not in val.metrics:
        val, _ = train_genome(genome, model_kind, data, budget, seed)
        if val.error is not None:
            return val, val, None
    if epochs is None:
        epochs = schedule_epochs(genome, model_kind, budget.epochs) if full_schedule else int(val.metrics["best_epoch"])
    refit, model = refit_genome(genome, model_kind, data, budget, seed, epochs)
    return val, refit, model


def stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The fold (0..k-1) of every example: each class shuffled by ``seed`` and dealt out in
    turn, so every fold holds about ``1/k`` of each class. A pure function of (y, k, seed)."""
    y = np.asarray(y)
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(y), dtype=np.int64)
    start = 0
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        folds[idx] = (start + np.arange(idx.size)) % k  # classes continue the turn: folds stay even
        start += idx.size
    return folds


def cross_validate_fold(genome: dict, model_kind: str, data, budget: TrainBudget, seed: int, folds: int,
                        fold: int, split_seed: int, by_epoch: bool = False) -> EvalResult:
    """Fold ``fold`` of a ``folds``-fold cross-validation of ``genome`` on ``data``'s training
    and validation splits together (:func:`stratified_folds` with ``split_seed``: the same
    folds for every genome).

    The genome trains its full schedule (its epochs, capped by ``budget.epochs``; no early
    stopping: there is no data left to stop on) on the other folds, seeded by ``seed``, and is
    scored on this one. ``fitness``: the fold's accuracy; ``metrics``: ``correct`` and
    ``examples`` (to pool the folds), ``fold``, ``params``, ``epochs``; with ``by_epoch`` the
    held-out fold is also scored after every epoch (it only watches: no early stopping) and
    ``metrics["correct_by_epoch"]`` lists those counts, for :func:`pool_folds` to pick the
    epoch count. Never raises; the test split is not touched.
    """
    start = time.perf_counter()
    try:
        from evonet.tf_utils import import_keras

        keras = import_keras()
        keras.backend.clear_session()
        x = np.concatenate([data.x_train, data.x_val])
        y = np.concatenate([data.y_train, data.y_val])
        where = stratified_folds(y, folds, split_seed)
        held = where == fold
        try:
            watch = (x[held], y[held]) if by_epoch else None
            watch_budget = TrainBudget(budget.epochs, 0, budget.max_params, budget.min_delta)  # watch, never stop
            model, params, hist, ran = fit_model(genome, model_kind, data.input_spec(), x[~held], y[~held], watch,
                                                 watch_budget, seed,
                                                 epochs=schedule_epochs(genome, model_kind, budget.epochs))
        except (NonFiniteLoss, TooManyParameters) as exc:
            return failed(str(exc), time.perf_counter() - start, fold=float(fold))
        pred = np.asarray(model.predict(x[held], verbose=0, batch_size=512))
        if not np.all(np.isfinite(pred)):
            return failed("non-finite predictions on the held-out fold", time.perf_counter() - start, fold=float(fold))
        correct = int(np.sum(np.argmax(pred, axis=-1) == y[held]))
        n = int(held.sum())
        metrics = {"correct": float(correct), "examples": float(n), "fold": float(fold),
                   "params": float(params), "epochs": float(ran)}
        if by_epoch:
            acc = list(hist.get("val_accuracy") or [])
            if len(acc) != ran:
                return failed("the held-out fold was not scored every epoch", time.perf_counter() - start,
                              fold=float(fold))
            metrics["correct_by_epoch"] = [float(round(a * n)) for a in acc[:-1]] + [float(correct)]
        return EvalResult(fitness=correct / n, weight=1, metrics=metrics, seconds=time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001
        return failed(_message(exc), time.perf_counter() - start, fold=float(fold))


def pool_folds(results: list[EvalResult], by_epoch: bool = False) -> EvalResult:
    """One cross-validation result from its folds: accuracy over all held-out examples
    (``weight``: the number of folds). A failed fold fails the whole (its error kept).

    With ``by_epoch`` (folds scored every epoch, ``cross_validate_fold(by_epoch=True)``) the
    epoch count is cross-validated too: ``metrics["cv_best_epoch"]`` is the first epoch of best
    pooled accuracy and ``fitness`` the pooled accuracy there (the refit trains that many
    epochs); ``metrics["cv_accuracy_by_epoch"]`` holds the pooled curve."""
    bad = next((r for r in results if r.error is not None), None)
    seconds = float(sum(r.seconds for r in results))
    if bad is not None or not results:
        return failed(bad.error if bad is not None else "no folds", seconds, cv_folds=float(len(results)))
    correct = sum(r.metrics["correct"] for r in results)
    n = sum(r.metrics["examples"] for r in results)
    metrics = {"cv_folds": float(len(results)), "cv_correct": float(correct), "cv_examples": float(n),
               "params": results[0].metrics["params"], "epochs": results[0].metrics["epochs"]}
    for r in results:
        metrics[f"fold_{int(r.metrics['fold'])}"] = float(r.fitness)
    fitness = correct / n
    if by_epoch:
        curves = [r.metrics.get("correct_by_epoch") for r in results]
        if any(c is None for c in curves) or len({len(c) for c in curves}) != 1:
            return failed("cross-validation by epoch needs every fold scored every epoch", seconds,
                          cv_folds=float(len(results)))
        pooled = np.sum(np.asarray(curves, dtype=np.float64), axis=0)
        best = int(np.argmax(pooled))  # the first epoch of the best pooled accuracy
        metrics["cv_accuracy_by_epoch"] = [float(c / n) for c in pooled]
        metrics["cv_best_epoch"] = float(best + 1)
        metrics["cv_correct"] = float(pooled[best])
        for r, c in zip(results, curves):
            metrics[f"fold_{int(r.metrics['fold'])}"] = float(c[best] / r.metrics["examples"])
        fitness = float(pooled[best] / n)
    return EvalResult(fitness=fitness, weight=len(results), metrics=metrics, seconds=seconds)


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of a trained model on (x, y) (argmax of the outputs)."""
    pred = np.asarray(model.predict(x, verbose=0, batch_size=512))
    return float(np.mean(np.argmax(pred, axis=-1) == np.asarray(y)))


# ----------------------------------------------------------------------------- multi-fidelity

#: the first bytes of every training state (an .npz archive with these arrays)
STATE_FORMAT = "evonet-training-state-1"


class BadState(Exception):
    """Bytes that are not an evonet training state, or one that does not fit the genome's model."""


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The sample order of (absolute, 0-based) ``epoch`` of a rung training: a function of
    (seed, epoch) only, so training continued from a saved state sees the batches a single
    training would have seen."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 7_919, int(epoch)])).permutation(n)


def _torch_rng_callback(keras, state: np.ndarray | None):
    """On the PyTorch backend, a callback that carries PyTorch's global random state across
    rungs (None on the other backends): Keras's dropout draws its masks from it there (an
    unseeded ``Dropout`` takes PyTorch's fast path) and each epoch's data loader draws a seed
    from it, where the other backends keep all of a training's random state in the model.
    ``state`` (a continued training's) is put back as its first epoch begins; ``.state`` is
    the state at the end of the last epoch: the state the next epoch would begin with."""
    if keras.backend.backend() != "torch":
        return None
    import torch

    class TorchRandomState(keras.callbacks.Callback):
        def __init__(self, state):
            super().__init__()
            self.state, self.pending = state, state is not None

        def on_epoch_begin(self, epoch, logs=None):
            if self.pending:
                torch.set_rng_state(torch.from_numpy(np.asarray(self.state, dtype=np.uint8).copy()))
                self.pending = False

        def on_epoch_end(self, epoch, logs=None):
            self.state = torch.get_rng_state().numpy().copy()

    return TorchRandomState(state)


def pack_state(model, epoch: int, history: dict, torch_rng: np.ndarray | None = None) -> bytes:
    """A training state as portable bytes: an ``.npz`` (no pickles) of the format tag, the
    epoch reached, the per-epoch history and every variable of the model (weights, batch-norm
    statistics, random-generator states of dropout and augmentation) and of its optimizer
    (iteration counter, learning rate, moments); on the PyTorch backend also ``torch_rng``,
    PyTorch's global random state (:func:`_torch_rng_callback`)."""
    import io

    arrays = {"format": np.array(STATE_FORMAT), "epoch": np.array(int(epoch), dtype=np.int64)}
    if torch_rng is not None:
        arrays["torch_rng"] = np.asarray(torch_rng, dtype=np.uint8)
    for key in ("val_accuracy", "val_loss", "loss", "accuracy"):
        arrays[f"history_{key}"] = np.asarray(history.get(key, []), dtype=np.float64)
    model_vars = [np.asarray(v.numpy()) for v in model.variables]
    opt_vars = [np.asarray(v.numpy()) for v in model.optimizer.variables]
    arrays["n_model"] = np.array(len(model_vars), dtype=np.int64)
    arrays["n_optimizer"] = np.array(len(opt_vars), dtype=np.int64)
    for i, v in enumerate(model_vars):
        arrays[f"m{i}"] = v
    for i, v in enumerate(opt_vars):
        arrays[f"o{i}"] = v
    import zipfile

    buf = io.BytesIO()  # np.savez's layout, with a fixed timestamp: the same state, the same bytes
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, value in arrays.items():
            with zf.open(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    return buf.getvalue()


def unpack_state(state: bytes) -> tuple[int, dict, list, list]:
    """``(epoch, history, model variables, optimizer variables)`` of :func:`pack_state`'s bytes."""
    return _unpack(state)[:4]


def _unpack(state: bytes) -> tuple[int, dict, list, list, np.ndarray | None]:
    """:func:`unpack_state` and the PyTorch random state (None: none saved)."""
    import io
    import zipfile

    try:
        with np.load(io.BytesIO(state), allow_pickle=False) as z:
            if "format" not in z.files or str(z["format"]) != STATE_FORMAT:
                raise BadState("state: not an evonet training state")
            epoch = int(z["epoch"])
            history = {k: [float(v) for v in z[f"history_{k}"]] for k in ("val_accuracy", "val_loss", "loss",
                                                                            "accuracy")}
            model_vars = [z[f"m{i}"] for i in range(int(z["n_model"]))]
            opt_vars = [z[f"o{i}"] for i in range(int(z["n_optimizer"]))]
            rng = z["torch_rng"] if "torch_rng" in z.files else None
    except BadState:
        raise
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile, TypeError):
        raise BadState("state: not an evonet training state (unreadable bytes)") from None
    return epoch, history, model_vars, opt_vars, rng


def _assign(variables, arrays: list, what: str) -> None:
    if len(arrays) != len(variables) or any(tuple(a.shape) != tuple(v.shape) for a, v in zip(arrays, variables)):
        raise BadState(f"state: its {len(arrays)} {what} variables do not fit the genome's {what} "
                       f"({len(variables)} variables); a state of another genome?")
    for v, a in zip(variables, arrays):
        v.assign(a)


def _restore(model, model_vars: list, opt_vars: list) -> None:
    _assign(model.variables, model_vars, "model")
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    _assign(model.optimizer.variables, opt_vars, "optimizer")


#: how many models a process keeps alive after their rung (0: none); see :func:`train_genome_rung`
LIVE_MODELS = 16
_LIVE: "OrderedDict[tuple, Any]" = OrderedDict()


def _live_key(genome: dict, seed: int, state: bytes, model_kind="mlp") -> tuple:
    """A live model's key: its state's hash, the genome, the seed and the kind of model (by
    name, not identity: a task's model kind arrives as a fresh copy on a Ray worker)."""
    kind = model_kind if isinstance(model_kind, str) else (
        type(model_kind).__name__, getattr(getattr(model_kind, "build_fn", None), "__qualname__", ""),
        getattr(model_kind, "batch_size", None))
    return (hashlib.sha256(state).hexdigest(), repr(sorted(genome.items())), int(seed), repr(kind))


def keep_live_models(n: int) -> int:
    """Keep up to ``n`` trained models alive in this process for their next rung (0: keep
    none, every continuation rebuilds its model from the state); returns the previous limit."""
    global LIVE_MODELS
    old, LIVE_MODELS = LIVE_MODELS, max(0, int(n))
    _evict()
    return old


def _evict() -> None:
    while len(_LIVE) > LIVE_MODELS:  # the oldest first
        _LIVE.popitem(last=False)


def train_genome_rung(genome: dict, model_kind, data, budget: TrainBudget, seed: int, to_epoch: int,
                      state: bytes | None = None) -> tuple[EvalResult, bytes | None]:
    """Train ``genome`` up to epoch ``to_epoch`` (a multi-fidelity rung), continuing ``state``.

    ``state``: bytes from an earlier call's return (:func:`pack_state`: every model and
    optimizer variable, the epoch reached, the history); None: from the first epoch. The model
    is rebuilt from the genome (seeded by ``seed``: the same architecture), the state's
    variables are assigned, and training goes on from the state's epoch to
    ``min(to_epoch, the genome's own schedule)``, one epoch at a time: every epoch's sample
    order comes from :func:`epoch_order` and the learning-rate schedule from the absolute
    epoch, so 0 -> 1 -> 3 gives exactly the weights of 0 -> 3 (tests/test_fidelity_train.py).
    No early stopping: the rungs are the early stopping. One thread, as every training.

    A process keeps its last :data:`LIVE_MODELS` trained models alive, keyed by (the hash of
    the state they returned, genome, seed, model kind): a continuation of one of them on the same process
    trains that model on (its variables are the state's, and its traced training and
    validation functions are reused), which saves the build, the restore and the tracing of
    every rung but the first; anywhere else the model is rebuilt from the state. Both give
    the same bits (tests/test_fidelity_train.py).

    Returns ``(result, state)``: ``result.fitness`` is the best validation accuracy over all
    epochs so far; metrics ``params``, ``epochs`` (reached), ``from_epoch``, ``epochs_trained``
    (in this call), ``best_epoch`` (1-based), ``val_loss`` (at the best epoch),
    ``train_accuracy`` (last epoch). Never raises: a failed result (state None) says what
    went wrong (too many parameters, a non-finite loss, a state that is not one or does not
    fit the genome's model).
    """
    start = time.perf_counter()
    try:
        from evonet.keras_backend import seed_keras
        from evonet.problems.nas.models import build_model, gene, learning_rate_at
        from evonet.tf_utils import import_keras

        keras = import_keras()
        user = not isinstance(model_kind, str)
        live = None
        if state is not None and LIVE_MODELS > 0:
            live = _LIVE.pop(_live_key(genome, seed, state, model_kind), None)
        if live is None:
            keras.backend.clear_session()
        seed_keras(keras, int(seed) % (2**31))
        if live is not None:
            model = live
        else:
            model = model_kind.build(genome) if user else build_model(genome, model_kind, data.input_spec())
        params = int(model.count_params())
        if params > budget.max_params:
            return failed(f"{params} parameters > max_params {budget.max_params}", time.perf_counter() - start), None
        total = schedule_epochs(genome, model_kind, budget.epochs)
        target = max(1, min(int(to_epoch), total))
        history: dict = {"val_accuracy": [], "val_loss": [], "loss": [], "accuracy": []}
        from_epoch = 0
        rng = None
        if state is not None:
            try:
                from_epoch, history, model_vars, opt_vars, rng = _unpack(state)
                if live is None:
                    _restore(model, model_vars, opt_vars)
            except BadState as exc:
                return failed(str(exc), time.perf_counter() - start), None
        torch_rng = _torch_rng_callback(keras, rng)
        schedule = not user and gene(genome, "lr_schedule") != "constant"
        batch = int(model_kind.batch_size) if user else int(gene(genome, "batch_size"))
        x, y, n = data.x_train, data.y_train, len(data.y_train)
        if target > from_epoch:
            # one fit call for the epochs of this rung: every epoch's batches from epoch_order,
            # the schedule's learning rate from the absolute epoch; on TensorFlow XLA off (a rung
            # is short: its compile time would outweigh the training; JAX always compiles, and
            # eager JAX would be far slower)
            tf_backend = keras.backend.backend() == "tensorflow"
            if tf_backend:
                model.jit_compile = False
            callbacks = [_stop_on_nan(keras)] + ([] if torch_rng is None else [torch_rng])
            if schedule:
                callbacks.append(keras.callbacks.LearningRateScheduler(
                    lambda e, lr: float(learning_rate_at(genome, e, total))))
            orders = [epoch_order(seed, e, n) for e in range(from_epoch, target)]
            steps = -(-n // batch)
            if tf_backend:
                validation = one_thread_batches(keras, data.x_val, data.y_val, 512)
                train = None
                for order in orders:
                    part = one_thread_batches(keras, x[order], y[order], batch)
                    train = part if train is None else train.concatenate(part)
                hist = model.fit(train, epochs=target, initial_epoch=from_epoch, steps_per_epoch=steps, shuffle=False,
                                 verbose=0, validation_data=validation, callbacks=callbacks)
            else:  # JAX, PyTorch: the same epoch orders, numpy batches
                train = epoch_batches(keras, x, y, batch, lambda e: orders[e - from_epoch])
                train.set_epoch(from_epoch)
                hist = model.fit(train, epochs=target, initial_epoch=from_epoch, shuffle=False, verbose=0,
                                 validation_data=(data.x_val, data.y_val), validation_batch_size=512,
                                 callbacks=[train.callback(), *callbacks])
            for key in history:
                vals = hist.history.get(key, [])
                history[key].extend(float(v) for v in vals)
                history[key].extend([float("nan")] * (target - from_epoch - len(vals)))
            bad = [i for i, v in enumerate(history["loss"]) if not math.isfinite(v)]
            if bad:
                return failed(f"non-finite loss at epoch {bad[0] + 1}", time.perf_counter() - start,
                              params=float(params)), None
        acc = history["val_accuracy"]
        if not acc or not all(math.isfinite(a) for a in acc):
            return failed("non-finite validation accuracy", time.perf_counter() - start, params=float(params)), None
        best = int(np.argmax(acc))
        result = EvalResult(
            fitness=float(acc[best]), weight=1,
            metrics={"params": float(params), "epochs": float(len(acc)), "from_epoch": float(from_epoch),
                     "epochs_trained": float(len(acc) - from_epoch), "best_epoch": float(best + 1),
                     "val_loss": float(history["val_loss"][best]), "train_accuracy": float(history["accuracy"][-1])},
            seconds=time.perf_counter() - start)
        packed = pack_state(model, len(acc), history, None if torch_rng is None else torch_rng.state)
        if LIVE_MODELS > 0 and len(acc) < total:  # a model at the end of its schedule goes no further
            _LIVE[_live_key(genome, seed, packed, model_kind)] = model
            _evict()
        return result, packed
    except Exception as exc:  # noqa: BLE001 - out of memory, bad shapes, anything: a failed evaluation
        return failed(_message(exc), time.perf_counter() - start), None
