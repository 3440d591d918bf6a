"""Run directories on disk: creation, atomic small files, locks, process parts.

A run directory is never overwritten: it is created fresh (or taken over only when
empty). Small files are written atomically (temp file, fsync, ``os.replace``) so a
killed run never leaves a half-written config or summary. Damaged or foreign files
are one-line :class:`RunDirError`; failed writes (a full disk, a read-only location)
are one-line :class:`WriteError`, and leave what was on disk before them intact.
The accepted rows are :mod:`gcsampler.runs.accepted`'s.
"""

import contextlib
import fcntl
import itertools
import json
import math
import os
import pathlib
import secrets
import time
import zipfile
from typing import Any, Callable

import numpy as np

class RunDirError(Exception):
    """A user-facing problem with a run directory (message is one line)."""


class WriteError(RunDirError):
    """A write that failed (full disk, read-only location); what was on disk before it
    is intact."""


def _os_reason(err: OSError) -> str:
    return err.strerror or str(err)


# --------------------------------------------------------------------------- dirs


def new_default_run_dir(tag: str, parent="runs") -> pathlib.Path:
    """Create a new, empty run directory ``parent/<time>-<tag>``, e.g.
    ``runs/20261123-071502-<tag>``, and return its path.

    Local time to the second, so names sort chronologically; a run started in the same
    second as another with that name gets ``-2`` (``-3``, ...) appended. mkdir is atomic,
    so two runs never get one directory.
    """
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-{tag}"
    for suffix in itertools.count(1):
        path = pathlib.Path(parent) / (name if suffix == 1 else f"{name}-{suffix}")
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as err:
            raise RunDirError(f"cannot create run directory {path}: {_os_reason(err)}") from None
        return path


def create_run_dir(path) -> pathlib.Path:
    """Create the run directory (and parents); refuse anything that already has content.

    An existing empty directory is accepted so a user can pre-create it. Nothing
    is ever overwritten or deleted.
    """
    path = pathlib.Path(path)
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        if not path.is_dir() or any(path.iterdir()):
            raise RunDirError(
                f"run directory {path} already exists and is not empty; choose another --out"
            ) from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise RunDirError(f"cannot write to run directory {path}: permission denied") from None
    except OSError as e:
        raise RunDirError(f"cannot create run directory {path}: {e.strerror or e}") from None
    return path


# ------------------------------------------------------------------ small files


TEMP_SUFFIX = ".tmp"


def _atomic_write(path, write: Callable[[Any], None], mode: str) -> None:
    """Write a file via a temp file in the same directory, fsync, os.replace, and
    fsync the directory.

    Readers see either the old file or the complete new one, never a partial one;
    once this returns, the new file survives a crash. A failed write (full disk,
    read-only location) leaves the old file and raises WriteError.
    """
    path = pathlib.Path(path)
    # The file gets the mode open(path, "w") would give it, 0o666 less the umask, applied
    # by the kernel (mkstemp's 0o600 would make every file owner-only; reading the umask
    # means setting it, which races with other threads). O_EXCL never opens an existing
    # file, and 64 random bits keep the name unique.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:
        raise WriteError(f"cannot write {path}: {_os_reason(err)}") from None
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise WriteError(f"cannot write {path}: {_os_reason(err)}") from None
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as err:
        raise WriteError(f"cannot write {path}: {_os_reason(err)}") from None


def remove_temporaries(run_dir) -> None:
    """Delete temp files that writes killed before their rename left in ``run_dir`` (and
    in the directories of its processes)."""
    for pattern in (f".*{TEMP_SUFFIX}", f"{PART_PREFIX}*/.*{TEMP_SUFFIX}"):
        for leftover in pathlib.Path(run_dir).glob(pattern):
            with contextlib.suppress(OSError):
                leftover.unlink()


PART_PREFIX = "process-"


def part_dir(run_dir, process: int, processes: int) -> pathlib.Path:
    """Where process ``process`` of a run of ``processes`` keeps its accepted rows and
    checkpoints: the run directory itself for a single process."""
    run_dir = pathlib.Path(run_dir)
    return run_dir if processes == 1 else run_dir / f"{PART_PREFIX}{process}"


LOCK_FILE = ".lock"


def claim_part(run_dir, process: int, processes: int):
    """Create process ``process``'s :func:`part_dir` if missing and lock it for this
    process, so two gcsampler processes never write one run at once (say, a resume
    started while the run still goes). Returns the open lock file: the lock lasts
    until it is closed or the process ends, however it ends. A part locked by
    another process is a one-line RunDirError; one that cannot be created, a
    WriteError.
    """
    path = part_dir(run_dir, process, processes)
    lock = path / LOCK_FILE
    try:
        path.mkdir(exist_ok=True)
        if not lock.exists():
            lock.touch()
        handle = open(lock, "rb")  # flock needs no write access: read-only runs still lock
    except OSError as e:
        raise WriteError(f"cannot create {lock}: {_os_reason(e)}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise RunDirError(f"{path} is in use by another gcsampler process; let it finish or "
                          f"stop it first") from None
    return handle


def _jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and paths to plain JSON types; NaN/inf -> None."""
    if isinstance(obj, dict):
        return {(k.item() if isinstance(k, np.generic) else k): _jsonable(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, pathlib.PurePath):
        return str(obj)
    return obj


def write_text(path, text: str) -> None:
    """Atomically write ``text`` (e.g. a CSV table)."""
    _atomic_write(path, lambda f: f.write(text), "w")


def write_json(path, obj: Any) -> None:
    """Atomically write ``obj`` as indented, key-sorted standard JSON.

    numpy scalars and arrays become numbers and lists. NaN and +-inf are written
    as ``null`` (standard JSON has no NaN), so they read back as ``None``.
    """
    text = json.dumps(_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"
    _atomic_write(path, lambda f: f.write(text), "w")


def read_json(path) -> Any:
    """Read a JSON file written by :func:`write_json`; RunDirError if it is unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as err:
        raise RunDirError(f"cannot read {path}: {_os_reason(err)}") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise RunDirError(f"{path} is damaged (not valid JSON: {err})") from None


def save_arrays(path, /, **arrays) -> None:
    """Atomically write named numpy arrays to an uncompressed ``.npz`` file."""
    _atomic_write(path, lambda f: np.savez(f, **arrays), "wb")


def write_bytes(path, write: Callable[[Any], None]) -> None:
    """Atomically write a binary file by ``write(f)`` (f: the open file; e.g. a figure's
    ``savefig``)."""
    _atomic_write(path, write, "wb")


def load_arrays(path) -> dict[str, np.ndarray]:
    """Read all arrays of an ``.npz`` file written by :func:`save_arrays`.

    RunDirError if the file is missing, truncated or not an ``.npz`` file.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise RunDirError(f"{path} is damaged ({err})") from None
