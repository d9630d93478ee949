"""The run directory: config, metrics, checkpoints, best artefacts, plots.

Layout (see docs/runs.md)::

    RUN_DIR/
      config.yaml          the resolved experiment config (every default filled in)
      run.json             run id, creation time, evonet version, resumes
      problem.json         what is evolved: genome kind, network, game
      run.log              the console output of every session
      logbook.jsonl        one JSON record per generation, appended as the run goes
      failures.jsonl       evaluations that failed, with their error (only if any did)
      eval_times.jsonl     seconds per evaluation, a line per generation
      checkpoints/         gen-NNNNNN/ (state.json, arrays.npz, manifest.json) and latest
      tensorboard/         TensorBoard scalars per generation
      logbook.csv          the same table, written at the end
      fitness.png          best / mean / std of fitness per generation
      best/genome.npz      the best genome (flat float32 weights) and its scores
      best/agent.keras     the best agent as a Keras model
      best/agent.json      the agent's observation set, rule set, board and network
      best/eval.json       the benchmark table of the best agent on evaluation seeds (and per-seed scores)
      summary.json         final figures, stop reason and wall time (written last)
      report/              evonet report: PNG plots and report.md
      .lock                advisory lock held by the process writing the run

Every file is written atomically (a temporary file, then ``os.replace``), except the
``.jsonl`` logs, which are appended a line at a time.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from evonet.core.errors import EvonetError


class RunDirError(EvonetError):
    """The run directory cannot be used."""


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux:
    ``/proc/self/status``); elsewhere set and restored under a lock."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        old = os.umask(0o022)
        os.umask(old)
    return old


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0666 less the umask (0644 under umask 022)."""
    return 0o666 & ~current_umask()


def mkstemp_for(path: Path, prefix: str, suffix: str) -> tuple[int, str]:
    """``tempfile.mkstemp`` beside ``path``, with the mode a plain ``open()`` would give
    (mkstemp makes 0600 files, which ``os.replace`` would carry over to the final file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    try:
        os.fchmod(fd, new_file_mode())
    except (OSError, AttributeError):  # no fchmod (Windows) or a file system without modes
        pass
    return fd, tmp


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = mkstemp_for(path, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def default_run_dir(name: str, seed: int, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{name}-seed{seed}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path) -> "RunStore":
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RunDirError(f"{path}: already exists and is not empty; choose another --out")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"{path}: cannot create run directory ({exc.strerror})") from None
        return cls(path)

    def file(self, rel: str) -> Path:
        return self.path / rel

    _lock = None

    def acquire_lock(self) -> None:
        """Take ``RUN_DIR/.lock`` (an advisory ``flock``) for as long as this process writes
        the run: a second ``evonet run``/``resume`` on the same directory is refused. The OS
        drops it when the process ends, killed or not."""
        try:
            import fcntl
        except ImportError:  # no flock on this platform: no protection
            return
        try:
            fh = open(self.file(".lock"), "a+")
        except OSError:  # a read-only run directory: nothing will be written anyway
            return
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            raise RunDirError(
                f"{self.path}: in use by another evonet process{f' (pid {holder})' if holder.isdigit() else ''}; "
                "wait for it to end or stop it first"
            ) from None
        self._lock = fh

    def claim_lock(self) -> None:
        """Write this process's pid into the held lock (for the message of a refused second process)."""
        if self._lock is not None:
            self._lock.seek(0)
            self._lock.truncate()
            self._lock.write(str(os.getpid()))
            self._lock.flush()

    def release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def write_text(self, rel: str, text: str) -> Path:
        atomic_write_text(self.file(rel), text)
        return self.file(rel)

    def write_json(self, rel: str, obj) -> Path:
        atomic_write_json(self.file(rel), obj)
        return self.file(rel)

    def append_jsonl(self, rel: str, record: dict) -> None:
        with open(self.file(rel), "a") as fh:
            fh.write(json.dumps(record, default=_jsonable) + "\n")
            fh.flush()

    def read_jsonl(self, rel: str, tolerant: bool = False) -> list[dict]:
        """The records of a JSONL file; ``tolerant``: skip lines a crash cut short."""
        path = self.file(rel)
        if not path.exists():
            return []
        out = []
        for line in path.read_text(errors="replace" if tolerant else "strict").splitlines():
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                if not tolerant:
                    raise
        return out

    def rewrite_jsonl(self, rel: str, records: list[dict], keep_empty: bool = True) -> None:
        """Replace a JSONL file atomically (no file at all when empty and not ``keep_empty``)."""
        if not records and not keep_empty:
            if self.file(rel).exists():
                self.file(rel).unlink()
            return
        atomic_write_text(self.file(rel), "".join(json.dumps(r, default=_jsonable) + "\n" for r in records))

    def write_csv(self, rel: str, records: list[dict]) -> Path:
        buf = io.StringIO()
        if records:
            fields = list(dict.fromkeys(k for r in records for k in r))  # every column, first-seen order
            writer = csv.DictWriter(buf, fieldnames=fields)
            writer.writeheader()
            writer.writerows(records)
        return self.write_text(rel, buf.getvalue())

    def save_genome(self, rel: str, genome: np.ndarray, **meta) -> Path:
        buf = io.BytesIO()
        np.savez(buf, genome=np.asarray(genome, dtype=np.float32),
                 meta=np.array(json.dumps(meta, default=_jsonable)))
        atomic_write_bytes(self.file(rel), buf.getvalue())
        return self.file(rel)

    def load_genome(self, rel: str) -> tuple[np.ndarray, dict]:
        with np.load(self.file(rel), allow_pickle=False) as data:
            return data["genome"], json.loads(str(data["meta"]))

    def plot_fitness(self, records: list[dict], rel: str = "fitness.png", title: str = "") -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        gens = [r["gen"] for r in records]
        best = np.array([r["best"] for r in records])
        mean = np.array([r["mean"] for r in records])
        std = np.array([r["std"] for r in records])
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
        ax.plot(gens, best, label="best", color="tab:green", lw=2)
        ax.plot(gens, mean, label="mean", color="tab:blue")
        ax.fill_between(gens, mean - std, mean + std, color="tab:blue", alpha=0.2, label="mean ± std")
        ax.set_xlabel("generation")
        ax.set_ylabel("fitness (mean score per game)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        atomic_write_bytes(self.file(rel), buf.getvalue())
        return self.file(rel)
