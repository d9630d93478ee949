"""Checkpoints: everything a run needs to continue exactly where it stood.

A checkpoint is a directory ``RUN_DIR/checkpoints/gen-000012/`` holding

* ``state.json``: the generation, the strategy (fitness values, ``games`` counters, the
  hall of fame's fitness, the RNG's ``bit_generator.state``), the loop (logbook,
  failures, evaluation count, evolution time, stopping-rule state) and the problem's
  own state (an evaluation cache) when it has one;
* ``arrays.npz``: the numeric arrays of that state (population and hall-of-fame
  genomes as float64); every array is referred to from ``state.json`` as
  ``{"__array__": "strategy/population/genomes"}``;
* ``manifest.json``: format name and version, run id, generation, and the size and
  SHA-256 of both files.

Safe formats only: JSON, and ``.npz`` read with ``allow_pickle=False``; nothing is ever
unpickled. A checkpoint is written into a temporary directory, fsynced, moved into place
with ``os.replace``, and only then does ``checkpoints/latest`` (a small JSON pointer,
itself replaced atomically) name it; older checkpoints are deleted after that, so the
previous good checkpoint survives a crash at any point of a write. SIGINT and SIGTERM
are held back while a checkpoint is written.

Loading verifies the format, the run id (against ``RUN_DIR/run.json``) and both
checksums; a foreign, corrupt or truncated checkpoint gives a one-line
:class:`CheckpointError` and nothing is modified.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from evonet.core.hooks import Hook
from evonet.core.errors import EvonetError

FORMAT = "evonet-checkpoint"
VERSION = 1
DIR = "checkpoints"
LATEST = "latest"
FILES = ("state.json", "arrays.npz")
_NAME = re.compile(r"^gen-(\d{6,})$")


class CheckpointError(EvonetError):
    """A checkpoint is missing, corrupt, truncated or belongs to another run."""


def checkpoint_name(generation: int) -> str:
    return f"gen-{int(generation):06d}"


# ----------------------------------------------------------------------------- arrays <-> JSON


def split_arrays(obj: Any, path: str = "", arrays: dict[str, np.ndarray] | None = None):
    """``obj`` with every ndarray replaced by ``{"__array__": key}``; returns (json_obj, arrays)."""
    if arrays is None:
        arrays = {}
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"{path}: object arrays cannot be checkpointed")
        key = path or "root"
        arrays[key] = obj
        return {"__array__": key}, arrays
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{path}: checkpoint keys must be strings, got {k!r}")
            if "/" in k:
                raise TypeError(f"{path}/{k}: checkpoint keys may not contain '/'")
            out[k] = split_arrays(v, f"{path}/{k}" if path else k, arrays)[0]
        return out, arrays
    if isinstance(obj, (list, tuple)):
        return [split_arrays(v, f"{path}/{i}" if path else str(i), arrays)[0] for i, v in enumerate(obj)], arrays
    if isinstance(obj, np.generic):
        return obj.item(), arrays
    return obj, arrays


def join_arrays(obj: Any, arrays: dict[str, np.ndarray]):
    """Inverse of :func:`split_arrays`."""
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            key = obj["__array__"]
            if key not in arrays:
                raise KeyError(key)
            return arrays[key]
        return {k: join_arrays(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [join_arrays(v, arrays) for v in obj]
    return obj


# ----------------------------------------------------------------------------- writing


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back until the block is done (main thread, POSIX)."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    """Write and fsync one file of a checkpoint being assembled (a test hook point)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode(state: dict) -> dict[str, bytes]:
    """The bytes of ``state.json`` and ``arrays.npz`` for a checkpoint state."""
    json_state, arrays = split_arrays(state)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return {"state.json": json.dumps(json_state, separators=(",", ":")).encode(), "arrays.npz": buf.getvalue()}


@dataclass(frozen=True)
class Prepared:
    """A checkpoint encoded to bytes (:func:`prepare_checkpoint`), ready to be written."""

    generation: int
    files: dict  # name -> bytes, the manifest included

    @property
    def name(self) -> str:
        return checkpoint_name(self.generation)

    @property
    def bytes(self) -> int:
        return sum(len(data) for data in self.files.values())


def prepare_checkpoint(state: dict) -> Prepared:
    """Encode ``state`` (which must hold ``generation`` and ``run_id``): the bytes of its
    files and manifest. The result shares nothing with ``state``, which may change after."""
    generation = int(state["generation"])
    files = encode(state)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "run_id": state.get("run_id"),
        "generation": generation,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "files": {rel: {"bytes": len(data), "sha256": _sha256(data)} for rel, data in files.items()},
    }
    files["manifest.json"] = (json.dumps(manifest, indent=2) + "\n").encode()
    return Prepared(generation, files)


def commit_checkpoint(run_dir: str | Path, prepared: Prepared, keep: int = 2) -> Path:
    """Write a prepared checkpoint as the latest of ``run_dir`` (temporary directory,
    fsync, ``os.replace``, then the ``latest`` pointer); keep the newest ``keep``.
    Safe from any thread; returns its directory."""
    run_dir = Path(getattr(run_dir, "path", run_dir))
    root = run_dir / DIR
    name, generation = prepared.name, prepared.generation
    with _signals_held():
        root.mkdir(parents=True, exist_ok=True)
        _remove_temporaries(root)
        tmp = root / f".tmp-{name}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            for rel in (*FILES, "manifest.json"):  # the manifest last
                _write_file(tmp / rel, prepared.files[rel])
            _fsync_dir(tmp)
            target = root / name
            old = None
            if target.exists():  # the same generation written before (a resumed run): set it aside
                old = root / f".old-{name}-{os.getpid()}-{secrets.token_hex(4)}"
                os.replace(target, old)
            os.replace(tmp, target)
            _fsync_dir(root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        pointer = json.dumps({"format": FORMAT, "checkpoint": name, "generation": generation}) + "\n"
        ptmp = root / f".tmp-latest-{os.getpid()}-{secrets.token_hex(4)}"
        _write_file(ptmp, pointer.encode())
        os.replace(ptmp, root / LATEST)
        _fsync_dir(root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        _prune(root, generation, keep)
    return target


def save_checkpoint(run_dir: str | Path, state: dict, keep: int = 2) -> Path:
    """Write ``state`` (which must hold ``generation`` and ``run_id``) as the latest
    checkpoint of ``run_dir``; keep the newest ``keep`` checkpoints. Returns its directory."""
    return commit_checkpoint(run_dir, prepare_checkpoint(state), keep)


def _remove_temporaries(root: Path) -> None:
    """Leftovers of writes that a crash interrupted (never a complete checkpoint)."""
    for entry in root.iterdir():
        if entry.name.startswith((".tmp-", ".old-")):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, str]]:
    """(generation, name) of every checkpoint directory, oldest first (unverified)."""
    root = Path(run_dir) / DIR
    if not root.is_dir():
        return []
    out = []
    for entry in root.iterdir():
        m = _NAME.match(entry.name)
        if m and entry.is_dir():
            out.append((int(m.group(1)), entry.name))
    return sorted(out)


def _prune(root: Path, latest_generation: int, keep: int) -> None:
    found = list_checkpoints(root.parent)
    older = [name for gen, name in found if gen < latest_generation]
    stale = [name for gen, name in found if gen > latest_generation]  # left by an earlier, rewound session
    doomed = older[: max(0, len(older) - (max(1, keep) - 1))] + stale
    for name in doomed:
        shutil.rmtree(root / name, ignore_errors=True)


# ----------------------------------------------------------------------------- reading


@dataclass
class Checkpoint:
    """A verified checkpoint: its name, directory, manifest and state (arrays joined in)."""

    name: str
    path: Path
    generation: int
    manifest: dict
    state: dict


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing ({what})") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable {what} ({type(exc).__name__}); corrupt or truncated") from None


def _run_id(run_dir: Path) -> str | None:
    path = run_dir / "run.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        raise CheckpointError(f"{path}: unreadable run info; corrupt or truncated") from None


def verify_checkpoint(run_dir: str | Path, name: str) -> Checkpoint:
    """Read and verify one checkpoint directory; :class:`CheckpointError` if it is not sound."""
    run_dir = Path(run_dir)
    path = run_dir / DIR / name
    if not _NAME.match(name) or not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint")
    manifest = _read_json(path / "manifest.json", "checkpoint manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an evonet checkpoint (foreign manifest)")
    version = manifest.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version!r} is newer than this evonet's ({VERSION})")
    run_id = _run_id(run_dir)
    if run_id is not None and manifest.get("run_id") != run_id:
        raise CheckpointError(
            f"{path}: checkpoint belongs to another run (run id {manifest.get('run_id')!r}, this run is {run_id!r})"
        )
    listed = manifest.get("files")
    if not isinstance(listed, dict) or set(listed) != set(FILES):
        raise CheckpointError(f"{path}: manifest lists {sorted(listed) if isinstance(listed, dict) else listed!r}, "
                              f"expected {', '.join(FILES)}; not an evonet checkpoint")
    data: dict[str, bytes] = {}
    for rel in FILES:
        entry = listed[rel]
        try:
            raw = (path / rel).read_bytes()
        except OSError:
            raise CheckpointError(f"{path / rel}: missing or unreadable") from None
        if not isinstance(entry, dict) or len(raw) != entry.get("bytes"):
            raise CheckpointError(
                f"{path / rel}: {len(raw)} bytes, the manifest says {entry.get('bytes') if isinstance(entry, dict) else '?'}; "
                "truncated or corrupt"
            )
        if _sha256(raw) != entry.get("sha256"):
            raise CheckpointError(f"{path / rel}: SHA-256 does not match the manifest; corrupt")
        data[rel] = raw
    try:
        json_state = json.loads(data["state.json"])
        with np.load(io.BytesIO(data["arrays.npz"]), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        state = join_arrays(json_state, arrays)
    except (ValueError, KeyError, OSError, EOFError) as exc:
        raise CheckpointError(f"{path}: unreadable state ({type(exc).__name__}: {exc}); corrupt") from None
    if not isinstance(state, dict) or state.get("generation") != manifest.get("generation"):
        raise CheckpointError(f"{path}: state and manifest disagree on the generation; corrupt")
    return Checkpoint(name=name, path=path, generation=int(state["generation"]), manifest=manifest, state=state)


def _older_valid(run_dir: Path, below: int | None) -> str | None:
    """The newest checkpoint other than the broken one that verifies, as a hint."""
    for gen, name in reversed(list_checkpoints(run_dir)):
        if below is not None and gen >= below:
            continue
        try:
            verify_checkpoint(run_dir, name)
        except CheckpointError:
            continue
        return name
    return None


def load_checkpoint(run_dir: str | Path, name: str | None = None) -> Checkpoint:
    """The latest checkpoint of ``run_dir`` (or the one called ``name``), verified."""
    run_dir = Path(getattr(run_dir, "path", run_dir))
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    if name is not None:
        return verify_checkpoint(run_dir, name)
    pointer_path = run_dir / DIR / LATEST
    if not pointer_path.exists():
        if list_checkpoints(run_dir):
            hint = _older_valid(run_dir, None)
            raise CheckpointError(
                f"{pointer_path}: missing"
                + (f"; to resume from {hint}: evonet resume {run_dir} --checkpoint {hint}" if hint else "")
            )
        raise CheckpointError(f"{run_dir}: no checkpoint (the run ended before its first generation was saved, "
                              "or its strategy writes none)")
    pointer = _read_json(pointer_path, "checkpoint pointer")
    if not isinstance(pointer, dict) or pointer.get("format") != FORMAT or not isinstance(pointer.get("checkpoint"), str):
        raise CheckpointError(f"{pointer_path}: not an evonet checkpoint pointer")
    try:
        return verify_checkpoint(run_dir, pointer["checkpoint"])
    except CheckpointError as exc:
        m = _NAME.match(pointer["checkpoint"])
        hint = _older_valid(run_dir, int(m.group(1)) if m else None)
        if hint:
            raise CheckpointError(
                f"{exc}; an older checkpoint is intact: evonet resume {run_dir} --checkpoint {hint}"
            ) from None
        raise


# ----------------------------------------------------------------------------- the loop hook


class Checkpointer(Hook):
    """Loop hook: snapshots the run after every generation and writes a checkpoint every
    ``every`` generations, after the last one, and on an interrupt (the last complete
    generation). The loop stays free of file I/O.

    With ``background`` (the default) a checkpoint is encoded on the loop's thread, then
    written and fsynced by a writer thread while the next generation runs: the loop waits
    for a write only when the next checkpoint is due, at the last generation, at an
    interrupt and at the end. A crash while a write is under way leaves the previous
    checkpoint, as a crash during a synchronous write does; a write that fails raises
    :class:`CheckpointError` at the next of those points, and nothing later is written."""

    def __init__(self, run_dir: str | Path, problem, run_id: str, every: int = 1, keep: int = 2,
                 background: bool = True):
        self.run_dir = Path(getattr(run_dir, "path", run_dir))
        self.problem = problem
        self.run_id = run_id
        self.every = max(1, int(every))
        self.keep = max(1, int(keep))
        self.background = bool(background)
        self.snapshot: dict | None = None
        self.written: int | None = None  # generation of the last checkpoint written
        self.seconds: list[float] = []  # time of each write (encoding on the loop's thread + writing)
        self.bytes: int = 0  # size of the last checkpoint
        self._thread: threading.Thread | None = None
        self._outcome: tuple | None = None  # (prepared, seconds) or (prepared, OSError) of the pending write
        self._failed: CheckpointError | None = None

    def take(self, state, strategy) -> dict:
        snap = {
            "generation": int(strategy.generation),
            "run_id": self.run_id,
            "strategy": strategy.get_state(),
            "loop": state.to_dict(),
        }
        snap["problem"] = self.problem.get_state()
        return snap

    def after_generation(self, state, strategy) -> None:
        self.snapshot = self.take(state, strategy)
        gen = self.snapshot["generation"]
        if state.last or gen % self.every == 0:
            self.write(wait=state.last)

    def on_interrupt(self, state) -> None:
        try:
            self.wait()
        except CheckpointError:
            return  # the disk failed: the previous checkpoint stays the latest
        if self.snapshot is not None and self.written != self.snapshot["generation"]:
            self.write(wait=True)

    def on_end(self, result) -> None:
        self.wait()

    def _error(self, generation: int, exc: OSError) -> CheckpointError:
        return CheckpointError(
            f"{self.run_dir / DIR}: cannot write the checkpoint of generation {generation} "
            f"({exc.strerror or exc}); the previous one is intact: evonet resume {self.run_dir} once this is fixed"
        )

    def _commit(self, prepared: Prepared, t0: float) -> None:
        try:
            commit_checkpoint(self.run_dir, prepared, self.keep)
        except OSError as exc:  # a full or lost disk
            self._outcome = (prepared, exc)
            return
        self._outcome = (prepared, time.perf_counter() - t0)

    def wait(self) -> None:
        """Until the pending write is on disk; raises :class:`CheckpointError` if it failed
        (then, and at every later call)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._outcome is not None:
            prepared, outcome = self._outcome
            self._outcome = None
            if isinstance(outcome, OSError):
                self._failed = self._error(prepared.generation, outcome)
            else:
                self.seconds.append(outcome)
                self.bytes = prepared.bytes
                self.written = prepared.generation
        if self._failed is not None:
            raise self._failed

    def write(self, wait: bool = True) -> Path:
        """Write the latest snapshot (after the pending write); ``wait``: return once it is on disk."""
        self.wait()
        t0 = time.perf_counter()
        prepared = prepare_checkpoint(self.snapshot)
        if self.background and not wait:
            self._thread = threading.Thread(target=self._commit, args=(prepared, t0),
                                            name="evonet-checkpoint", daemon=False)
            self._thread.start()
        else:
            self._commit(prepared, t0)
            self.wait()
        return self.run_dir / DIR / prepared.name
