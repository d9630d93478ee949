"""TensorBoard scalars per generation (``log.tensorboard``): ``RUN_DIR/tensorboard/``.

``tensorboard --logdir RUN_DIR/tensorboard`` shows them live. TensorFlow is imported
(configured by :mod:`evonet.tf_utils`) when the run starts, not when evonet is imported.
A resumed run writes a new event file; TensorBoard drops the points of the first
session past the checkpoint it resumed from (their steps come again).
"""

from __future__ import annotations

import time
from pathlib import Path

from evonet.core.hooks import Hook

#: seconds between two flushes of the event file (TensorBoard reloads every 30 s by default);
#: a flush costs about 10 ms, which is a tenth of a fast generation
FLUSH_EVERY_S = 2.0

#: logbook field -> TensorBoard tag
TAGS = {
    "best": "fitness/best",
    "mean": "fitness/mean",
    "std": "fitness/std",
    "min": "fitness/min",
    "diversity": "population/diversity",
    "best_game": "games/best_game_score",
    "evals": "evaluations/per_generation",
    "failed": "evaluations/failed",
    "evals_per_s": "speed/evaluations_per_s",
    "env_steps_per_s": "speed/env_steps_per_s",
    "seconds": "speed/seconds_per_generation",
}


class TensorBoardLogger(Hook):
    """Loop hook writing the logbook record of every generation as scalars."""

    def __init__(self, logdir: str | Path):
        self.logdir = Path(logdir)
        self.writer = None
        self.tf = None
        self._flushed = 0.0

    def _open(self) -> None:
        from evonet.tf_utils import configure_tensorflow

        configure_tensorflow()
        import tensorflow as tf

        self.tf = tf
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.writer = tf.summary.create_file_writer(str(self.logdir))

    def on_start(self, info: dict) -> None:
        if self.writer is None:
            self._open()

    def on_generation(self, rec: dict, strategy) -> None:
        if self.writer is None:
            self._open()
        step = int(rec["gen"])
        with self.writer.as_default():
            for key, tag in TAGS.items():
                value = rec.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.tf.summary.scalar(tag, float(value), step=step)
            if "cache_hits" in rec:
                self.tf.summary.scalar("evaluations/cache_hits", float(rec["cache_hits"]), step=step)
        now = time.monotonic()
        if now - self._flushed >= FLUSH_EVERY_S:
            self.writer.flush()
            self._flushed = now

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def on_interrupt(self, state) -> None:
        self.close()

    def on_end(self, result) -> None:
        self.close()
