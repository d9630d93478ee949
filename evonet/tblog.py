"""TensorBoard scalars per generation (``log.tensorboard``): ``RUN_DIR/tensorboard/``.

``tensorboard --logdir RUN_DIR/tensorboard`` shows them live. The event file is written by
:class:`PlainEventWriter` (TFRecord framing, ``Event`` protos with ``simple_value`` scalars,
encoded by hand), which TensorBoard reads as it reads ``tf.summary``'s: no run imports
TensorFlow to log (a snake run never imports it at all, a search on JAX or PyTorch neither). A resumed run writes a new event file; TensorBoard drops the points of the first
session past the checkpoint it resumed from (their steps come again).
"""

from __future__ import annotations

import os
import socket
import struct
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


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of TFRecord files."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1  # int64 as protobuf encodes it
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _message(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def encode_event(wall_time: float, step: int, scalars=(), file_version: str | None = None) -> bytes:
    """A serialized ``tensorflow.Event``: wall_time (1), step (2), file_version (3) and a
    ``Summary`` (5) of ``Value`` s with tag (1) and simple_value (2)."""
    out = b"\x09" + struct.pack("<d", float(wall_time)) + b"\x10" + _varint(int(step))
    if file_version is not None:
        out += _message(3, file_version.encode())
    if scalars:
        values = b"".join(_message(1, _message(1, tag.encode()) + b"\x15" + struct.pack("<f", float(value)))
                          for tag, value in scalars)
        out += _message(5, values)
    return out


class PlainEventWriter:
    """A TensorBoard event file of scalars, written without TensorFlow (see the module doc)."""

    def __init__(self, logdir: str | Path):
        logdir = Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.evonet"
        self.path = logdir / name
        self._file = open(self.path, "ab")
        self._record(encode_event(time.time(), 0, file_version="brain.Event:2"))

    def _record(self, data: bytes) -> None:
        header = struct.pack("<Q", len(data))
        self._file.write(header + struct.pack("<I", _masked(crc32c(header))) + data
                         + struct.pack("<I", _masked(crc32c(data))))

    def scalars(self, step: int, values) -> None:
        """One event at ``step`` holding every ``(tag, value)`` of ``values``."""
        if values:
            self._record(encode_event(time.time(), step, values))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class TensorBoardLogger(Hook):
    """Loop hook writing the logbook record of every generation as scalars.

    ``writer``: ``"plain"`` (:class:`PlainEventWriter`, the default) or ``"tensorflow"``
    (``tf.summary``)."""

    def __init__(self, logdir: str | Path, writer: str = "plain"):
        self.logdir = Path(logdir)
        self.kind = writer
        self.writer = None
        self.tf = None
        self._flushed = 0.0

    def _open(self) -> None:
        if self.kind == "plain":
            self.writer = PlainEventWriter(self.logdir)
            return
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
        values = [(tag, float(rec[key])) for key, tag in TAGS.items()
                  if isinstance(rec.get(key), (int, float)) and not isinstance(rec.get(key), bool)]
        if "cache_hits" in rec:
            values.append(("evaluations/cache_hits", float(rec["cache_hits"])))
        if self.tf is None:
            self.writer.scalars(step, values)
        else:
            with self.writer.as_default():
                for tag, value in values:
                    self.tf.summary.scalar(tag, value, step=step)
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
